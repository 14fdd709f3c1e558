"""Build the static ``EnvParams`` of an environment from its config and grid (NumPy, once).

Choices documented here:

* generator ramp per step = ``gen_ramp`` (MW/min) x step minutes; where the case gives no
  ramp (0), ``ramp_default_frac_per_min`` x Pmax per minute (2%/min: a typical thermal unit);
  renewables have no ramp limit (they follow the weather and can be curtailed at once);
* a unit's Pmax is capped by its connection: the sum of the ratings of the branches at its
  bus (ieee14's unit at bus 8 sits behind one 40 MVA branch, so it can export 40 MW, not
  the case's 100 MW; without the cap its mid-range setpoint would trip that branch);
* battery power = ``storage_power_frac`` x total base load shared equally by the case's
  batteries, energy = power x ``storage_hours``;
* the reference cost that normalises the cost term is the generation cost of serving the
  base load for one step with the conventional units dispatched proportionally to their
  range (the reset dispatch rule), so the cost term is O(1) for every case;
* critical branches (cascading-failure triggers) are the three most loaded branches of that
  base-case dispatch; large generators (emergency scenario) are the two largest conventional
  units not at the slack bus.
"""

import jax.numpy as jnp
import ml_collections
import numpy as np

from envs.sim import layouts, scenarios
from envs.sim.devices import device_table
from envs.types import DeviceParams, EnvConstants, EnvParams, LayoutArrays, ScenarioTable


def _bus_index(case, bus_number: int) -> int:
    numbers = np.asarray(case.bus[:, 0]).astype(int)
    hits = np.flatnonzero(numbers == int(bus_number))
    if hits.size == 0:
        raise ValueError(f"bus {bus_number} is not in case {case.name!r}")
    return int(hits[0])


def _gens_at(case, grid, buses) -> list[int]:
    gen_bus = np.asarray(grid.gen_bus)
    out = []
    for b in buses:
        hits = np.flatnonzero(gen_bus == _bus_index(case, b))
        if hits.size == 0:
            raise ValueError(f"case {case.name!r} has no generator at bus {b} to make renewable")
        out.append(int(hits[0]))
    return out


def proportional_dispatch(pmin: np.ndarray, pmax: np.ndarray, total: float) -> np.ndarray:
    """pmin + lam (pmax - pmin) with one lam in [0, 1] so the sum meets ``total`` if it can."""
    span = np.maximum(pmax - pmin, 0.0)
    lam = np.clip((total - pmin.sum()) / max(span.sum(), 1e-6), 0.0, 1.0)
    return pmin + lam * span


def connection_capacity(grid) -> np.ndarray:
    """[N] MW: sum of the ratings of the branches at each bus (a unit's export limit)."""
    capacity = np.zeros(grid.n_bus)
    rating = np.asarray(grid.branch_rating, np.float64)
    np.add.at(capacity, np.asarray(grid.branch_from), rating)
    np.add.at(capacity, np.asarray(grid.branch_to), rating)
    return capacity


def build_devices(config, case, grid, table: dict) -> DeviceParams:
    n_gen = grid.n_gen
    wind = _gens_at(case, grid, table["wind_buses"])
    solar = _gens_at(case, grid, table["solar_buses"])
    is_wind, is_solar = np.zeros(n_gen, bool), np.zeros(n_gen, bool)
    is_wind[wind], is_solar[solar] = True, True
    is_ren = is_wind | is_solar
    pmax = np.asarray(grid.gen_pmax, np.float64)
    pmax = np.where(is_ren, pmax * config.renewable_capacity_scale, pmax)
    pmax = np.minimum(pmax, connection_capacity(grid)[np.asarray(grid.gen_bus)])
    pmin = np.where(is_ren, 0.0, np.asarray(grid.gen_pmin, np.float64))
    ramp_case = np.asarray(grid.gen_ramp, np.float64) * config.step_minutes
    ramp_default = config.ramp_default_frac_per_min * pmax * config.step_minutes
    ramp = np.where(ramp_case > 0, ramp_case, ramp_default)
    ramp = np.where(is_ren, pmax, ramp)
    storage_bus = np.asarray([_bus_index(case, b) for b in table["storage_buses"]], np.int32)
    n_storage = storage_bus.size
    unit_power = config.storage_power_frac * float(np.sum(grid.bus_pd)) / max(n_storage, 1)
    bus_pd = np.asarray(grid.bus_pd, np.float64)
    f32 = lambda x: jnp.asarray(x, jnp.float32)  # noqa: E731
    return DeviceParams(
        is_renewable=jnp.asarray(is_ren),
        is_wind=jnp.asarray(is_wind),
        is_solar=jnp.asarray(is_solar),
        pmin=f32(pmin),
        pmax=f32(pmax),
        ramp=f32(ramp),
        storage_bus=jnp.asarray(storage_bus),
        storage_pmax=f32(np.full(n_storage, unit_power)),
        storage_emax=f32(np.full(n_storage, unit_power * config.storage_hours)),
        shed_max=f32(np.where(bus_pd > 0, config.shed_max_fraction, 0.0)),
        load_ref=f32(np.maximum(np.abs(bus_pd), 1.0)),
    )


def build_layout_arrays(config, grid, devices: DeviceParams, table: dict) -> LayoutArrays:
    storage_bus = np.asarray(devices.storage_bus)
    inp = layouts.LayoutInputs(
        n_bus=grid.n_bus,
        n_branch=grid.n_branch,
        n_gen=grid.n_gen,
        n_storage=int(storage_bus.size),
        branch_from=np.asarray(grid.branch_from),
        branch_to=np.asarray(grid.branch_to),
        branch_x=np.asarray(grid.branch_x),
        gen_bus=np.asarray(grid.gen_bus),
        storage_bus=storage_bus,
        bus_has_load=np.asarray(grid.bus_pd) > 0,
        is_renewable=np.asarray(devices.is_renewable),
        n_regions=int(table["regions"]),
        reward_weights=tuple(float(w) for w in config.reward_weights),
    )
    data = layouts.build_layout(table["layout"], inp)
    chosen = data.action_mask
    if config.unit_offers == "regional":
        chosen = layouts.battery_slots_of_operational_agents(data, inp)
    if config.chosen_slots == "offers" and config.action_interface == "bids":
        units_bid = bool(config.bid_scale)
        chosen = chosen & layouts.slots_that_move_offers(data, inp, units_bid=units_bid)
    region = data.region_of_bus
    f, t = inp.branch_from, inp.branch_to
    boundary = np.stack([(region[f] == k) & (region[t] != k) for k in range(inp.n_regions)]).astype(
        np.float32
    ) - np.stack([(region[t] == k) & (region[f] != k) for k in range(inp.n_regions)]).astype(
        np.float32
    )
    return LayoutArrays(
        ctrl_index=jnp.asarray(data.ctrl_index),
        action_mask=jnp.asarray(data.action_mask),
        chosen_mask=jnp.asarray(chosen),
        ctrl_sources=jnp.asarray(data.ctrl_sources),
        obs_index=jnp.asarray(data.obs_index),
        agent_const=jnp.asarray(data.agent_const),
        group_to_device=jnp.asarray(data.group_to_device),
        reward_weights=jnp.asarray(data.reward_weights),
        region_of_bus=jnp.asarray(region),
        region_of_gen=jnp.asarray(region[inp.gen_bus]),
        boundary=jnp.asarray(boundary),
        agent_type=jnp.asarray(data.agent_type),
        agent_mask=jnp.ones(data.agent_type.shape, bool),
        n_regions=inp.n_regions,
        n_signals=data.n_signals,
        name=data.name,
        agent_type_names=data.type_names,
        agent_type_gamma=data.type_gamma,
        agent_type_lambda=data.type_lambda,
    )


def reference_dispatch(grid, devices: DeviceParams) -> np.ndarray:
    """Conventional units serving the base load, renewables off (MW per generator)."""
    conv = ~np.asarray(devices.is_renewable)
    pmin = np.where(conv, np.asarray(devices.pmin, np.float64), 0.0)
    pmax = np.where(conv, np.asarray(devices.pmax, np.float64), 0.0)
    return proportional_dispatch(pmin, pmax, float(np.sum(grid.bus_pd)))


def build_scenario_table(config, grid, devices: DeviceParams, pg_ref: np.ndarray):
    p_bus = np.asarray(grid.gen_to_bus) @ pg_ref - np.asarray(grid.bus_pd)
    loading = np.abs(np.asarray(grid.ptdf) @ p_bus) / np.asarray(grid.branch_rating)
    critical = np.argsort(-loading, kind="stable")[:3]
    size = np.where(
        np.asarray(devices.is_renewable) | (np.asarray(grid.gen_bus) == grid.slack),
        -1.0,
        np.asarray(devices.pmax),
    )
    large = np.argsort(-size, kind="stable")[:2]
    return ScenarioTable(
        probs=jnp.asarray(scenarios.scenario_probs(config.scenario)),
        ranges=jnp.asarray(scenarios.scenario_ranges()),
        critical_branches=jnp.asarray(critical, jnp.int32),
        large_gens=jnp.asarray(large, jnp.int32),
    )


def build_constants(config, reference_cost: float, n_chronics_steps: int) -> EnvConstants:
    return EnvConstants(
        physics=config.physics,
        horizon=int(config.horizon),
        step_hours=float(config.step_minutes) / 60.0,
        gen_action=config.gen_action,
        peak_scale=float(config.peak_scale),
        load_noise_std=float(config.load_noise_std),
        load_noise_rho=float(config.load_noise_rho),
        curtailment_cost=float(config.curtailment_cost),
        nominal_hz=float(config.nominal_hz),
        droop=float(config.droop),
        load_damping=float(config.load_damping),
        freq_band_hz=float(config.freq_band_hz),
        freq_collapse_hz=float(config.freq_collapse_hz),
        storage_efficiency=float(config.storage_efficiency),
        voll=float(config.voll),
        overload_steps_to_trip=int(config.overload_steps_to_trip),
        instant_trip_ratio=float(config.instant_trip_ratio),
        reconnect_steps=int(config.reconnect_steps),
        cascade_rounds=int(config.cascade_rounds),
        repair_steps=int(config.repair_steps),
        blackout_served_fraction=float(config.blackout_served_fraction),
        blackout_penalty=float(config.blackout_penalty),
        reserve_target=float(config.reserve_target),
        strategic_period=int(config.strategic_period),
        reference_cost=reference_cost,
        reward=str(config.get("reward", "layered")),
        overload_weight=float(config.get("overload_weight", 1.0)),
        action_interface=str(config.get("action_interface", "setpoints")),
        residual_scale=float(config.get("residual_scale", 2.0)),
        bid_scale=float(config.get("bid_scale", 50.0)),
        storage_bid_scale=float(config.get("storage_bid_scale", 0.0))
        or float(config.get("bid_scale", 50.0)),
        alarm_margin=float(config.get("alarm_margin", 0.0)),
        opf_fallback=str(config.get("opf_fallback", "elastic")),
        island_rule=str(config.get("island_rule", "largest_load")),
        storage_bid_base=str(config.get("storage_bid_base", "zero")),
        episode_end=str(config.get("episode_end", "bootstrap")),
        observe_progress=bool(config.get("observe_progress", True)),
        n_chronics_steps=n_chronics_steps,
    )


def build_params(
    config: ml_collections.ConfigDict, case, grid, generation_cost, chronics=None
) -> EnvParams:
    """All static data of one environment instance.

    ``chronics``: optional ``(load [T, N] MW per bus, renewable [T, G] MW per generator)``.
    """
    table = device_table(config, case, grid)
    devices = build_devices(config, case, grid, table)
    pg_ref = reference_dispatch(grid, devices)
    cost_h = float(np.sum(np.asarray(generation_cost(grid, jnp.asarray(pg_ref, jnp.float32)))))
    reference_cost = max(cost_h * config.step_minutes / 60.0, 1.0)
    if chronics is None:
        load = np.zeros((0, grid.n_bus), np.float32)
        renewable = np.zeros((0, grid.n_gen), np.float32)
    else:
        load, renewable = chronics
    return EnvParams(
        grid=grid,
        devices=devices,
        layout=build_layout_arrays(config, grid, devices, table),
        scenarios=build_scenario_table(config, grid, devices, pg_ref),
        chronics_load=jnp.asarray(load, jnp.float32),
        chronics_renewable=jnp.asarray(renewable, jnp.float32),
        consts=build_constants(config, reference_cost, int(load.shape[0])),
    )
