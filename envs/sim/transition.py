"""One environment step without auto-reset: exogenous -> dispatch -> protection -> accounting."""

from typing import NamedTuple

import jax
import jax.numpy as jnp

from envs.powerflow import network_flow
from envs.powerflow.grid import generation_cost
from envs.sim import dispatch as dsp
from envs.sim import exogenous as exo
from envs.sim import islands, protection, reward
from envs.sim.observation import gen_block, reserve_margin


class Dispatch(NamedTuple):
    pg: jax.Array  # [G] MW after AGC (before primary response and islanding)
    storage: jax.Array  # [S] MW
    shed: jax.Array  # [N] MW
    net_load: jax.Array  # [N] MW demand - shed
    available: jax.Array  # [G] MW (renewables: weather; conventional: Pmax if online)
    conv_online: jax.Array  # [G] bool
    clipped_mw: jax.Array  # []


def dispatch_devices(ctrl, state, inputs, topo, params) -> Dispatch:
    devices, consts, grid = params.devices, params.consts, params.grid
    is_ren = devices.is_renewable
    conv_online = topo.gen_online & ~is_ren
    lo, hi = dsp.reachable_band(state.pg, conv_online, devices)
    target = dsp.conventional_target(ctrl.gen, state.pg, devices, consts.gen_action)
    pg_conv = jnp.clip(target, lo, hi)
    clipped = jnp.sum(jnp.where(conv_online, jnp.abs(target - pg_conv), 0.0))
    renewable_available = jnp.where(topo.gen_online, inputs.renewable_available, 0.0)
    pg = jnp.where(is_ren, dsp.renewable_output(ctrl.gen, renewable_available), pg_conv)
    storage = dsp.storage_output(
        ctrl.storage, state.soc, devices, consts.storage_efficiency, consts.step_hours
    )
    shed = jnp.maximum(ctrl.shed, 0.0) * devices.shed_max * inputs.demand
    net_load = inputs.demand - shed
    _, _, _, expected_residual = dsp.energised_residual(
        state.energised, pg, storage, net_load, grid, devices
    )
    participates = conv_online & state.energised[grid.gen_bus]
    pg, _ = dsp.agc(pg, lo, hi, expected_residual, participates)
    available = jnp.where(is_ren, renewable_available, jnp.where(conv_online, devices.pmax, 0.0))
    return Dispatch(pg, storage, shed, net_load, available, conv_online, clipped)


class Physics(NamedTuple):
    in_service: jax.Array  # [L] bool after protection
    flow_mw: jax.Array  # [L] (AC: apparent power with the sign of the active flow)
    theta: jax.Array  # [N]
    vm: jax.Array  # [N]
    energised: jax.Array  # [N] bool (the island kept, ``envs.sim.islands``, in the final solve)
    inj: dsp.Injections  # accounted on ``energised``
    slack_mw: jax.Array  # [] what the slack bus supplied beyond its schedule
    losses_mw: jax.Array  # [] network losses (0 in DC)
    converged: jax.Array  # [] bool


class _Solved(NamedTuple):
    """One cascade round's result: the network flow and the injections it was solved with."""

    net: network_flow.NetworkFlow
    inj: dsp.Injections

    @property
    def flow_mw(self):
        return self.net.flow_mw

    @property
    def bus_energised(self):
        return self.net.bus_energised


def _solve_topology(in_service, _energised, active, d: Dispatch, primary_weight, params):
    """Flows for one topology, with injections balanced on the island it keeps
    (``envs.sim.islands``), so islands never leave an imbalance for the slack bus."""
    grid, devices = params.grid, params.devices
    energised = islands.kept_buses(params, in_service, d.net_load + d.shed, d.conv_online)
    inj = dsp.injections(energised, d.pg, d.storage, d.net_load, primary_weight, grid, devices)
    q_bus = -network_flow.reactive_demand(grid, inj.served)
    solver = network_flow.SOLVERS[params.consts.physics]
    return _Solved(solver(grid, inj.p_bus, q_bus, in_service, active, energised), inj)


def solve_with_protection(d: Dispatch, topo, state, params) -> Physics:
    grid, consts, devices = params.grid, params.consts, params.devices
    primary_weight = jnp.where(d.conv_online, devices.pmax, 0.0)
    in_service, solved, _ = protection.run_cascade(
        _solve_topology,
        topo.branch_in_service,
        jnp.ones(grid.n_bus, bool),
        state.overload_count,
        grid.branch_rating,
        consts.overload_steps_to_trip,
        consts.instant_trip_ratio,
        consts.cascade_rounds,
        context=(d, primary_weight, params),
    )
    flow, inj = solved
    energised = flow.bus_energised
    shunt = jnp.sum(jnp.where(energised, grid.bus_gs, 0.0))
    lossless_slack = jnp.sum(inj.served) + shunt - jnp.sum(inj.gen) - jnp.sum(inj.storage)
    slack = flow.slack_injection_mw - inj.p_bus[grid.slack]
    return Physics(
        in_service,
        flow.flow_mw,
        flow.theta,
        flow.vm,
        energised,
        inj,
        slack,
        slack - lossless_slack,
        flow.converged,
    )


class Costs(NamedTuple):
    gen: jax.Array  # [] $ generation at the dispatched outputs (incl. primary response)
    shed: jax.Array  # [] $ VOLL x voluntary shedding
    curtailment: jax.Array  # [] $ curtailment price x spilled renewable energy
    spilled_mwh: jax.Array  # []
    slack: jax.Array  # [] $ slack unit's cost curve for what the slack bus supplied
    ufls: jax.Array  # [] $ VOLL x under-frequency load shedding

    def total(self):
        return self.gen + self.shed + self.curtailment + self.slack + self.ufls


def slack_energy_cost(gen, slack_mw, params):
    """$/h the slack unit spends on ``slack_mw`` beyond its output: cost(p + s) - cost(p).

    Without a conventional unit at the slack bus the energy is priced at VOLL."""
    grid, devices = params.grid, params.devices
    at_slack = (grid.gen_bus == grid.slack) & ~devices.is_renewable
    unit = jnp.argmax(at_slack)
    extra = jnp.where(jnp.arange(grid.n_gen) == unit, slack_mw, 0.0)
    delta = generation_cost(grid, gen + extra)[unit] - generation_cost(grid, gen)[unit]
    return jnp.where(jnp.any(at_slack), delta, params.consts.voll * slack_mw)


def step_costs(d: Dispatch, ph: Physics, params) -> Costs:
    """What this step costs ($), every MW that was produced or lost priced."""
    consts, devices = params.consts, params.devices
    dt = consts.step_hours
    producing = d.conv_online & ph.energised[params.grid.gen_bus]
    gen_cost = jnp.sum(jnp.where(producing, generation_cost(params.grid, ph.inj.gen), 0.0)) * dt
    shed_cost = consts.voll * jnp.sum(d.shed) * dt
    spilled = jnp.sum(jnp.where(devices.is_renewable, d.available - d.pg, 0.0)) * dt
    spilled = spilled + ph.inj.spilled * dt
    return Costs(
        gen_cost,
        shed_cost,
        consts.curtailment_cost * spilled,
        spilled,
        slack_energy_cost(ph.inj.gen, ph.slack_mw, params) * dt,
        consts.voll * ph.inj.ufls * dt,
    )


def islanded_mw(d: Dispatch, ph: Physics) -> jax.Array:
    """Net demand on de-energised buses (MW): load lost to islanding, not shed by the dispatch."""
    return jnp.sum(jnp.where(ph.energised, 0.0, d.net_load))


def _reward_terms(ph: Physics, d: Dispatch, state_next, freq_dev, costs, inputs, params):
    consts = params.consts
    loading = protection.loading_ratio(ph.flow_mw, params.grid.branch_rating)
    demand = jnp.maximum(jnp.sum(inputs.demand), 1e-6)
    lost = islanded_mw(d, ph) + ph.inj.ufls
    unserved_share = lost / demand
    safety = reward.safety_term(
        loading,
        ph.in_service,
        freq_dev,
        consts.freq_band_hz,
        voltage_violation(ph, params),
        unserved_share,
        consts.overload_weight,
    )
    cost = reward.cost_term(costs.total(), consts.reference_cost)
    margin = reserve_margin_of(state_next, params)
    uptime = reward.uptime_term(ph.in_service, margin, consts.reserve_target)
    return jnp.stack([safety, cost, uptime]), loading, margin


def voltage_violation(ph: Physics, params) -> jax.Array:
    """Sum of p.u. excursions outside [Vmin, Vmax] on energised PQ buses (PV and slack buses
    sit at their case setpoints, which no agent controls); a power flow that did not
    converge counts as a 0.05 p.u. violation (voltage collapse)."""
    grid = params.grid
    above = jnp.maximum(ph.vm - grid.bus_vmax, 0.0)
    below = jnp.maximum(grid.bus_vmin - ph.vm, 0.0)
    watched = ph.energised & (grid.bus_type == 1)
    excursion = jnp.sum(jnp.where(watched, above + below, 0.0))
    return excursion + jnp.where(ph.converged, 0.0, 0.05)


def reserve_margin_of(state, params):
    _, head = gen_block(state, params)
    return reserve_margin(state, params, head)


def _next_state(state, t, weather, inputs, topo, d, ph, ctrl, freq_dev, params):
    consts, devices = params.consts, params.devices
    loading = protection.loading_ratio(ph.flow_mw, params.grid.branch_rating)
    tripped = topo.branch_in_service & ~ph.in_service
    strategic_turn = jnp.mod(state.t, consts.strategic_period) == 0
    demand = jnp.maximum(jnp.sum(inputs.demand), 1e-6)
    return state.replace(
        t=t,
        pg=ph.inj.gen,
        soc=dsp.next_soc(
            state.soc, ph.inj.storage, devices, consts.storage_efficiency, consts.step_hours
        ),
        load_noise=weather.load_noise,
        wind_speed=weather.wind_speed,
        cloud=weather.cloud,
        branch_cooldown=jnp.where(tripped, consts.reconnect_steps, topo.branch_cooldown),
        overload_count=protection.next_overload_count(loading, ph.in_service, state.overload_count),
        gen_cooldown=topo.gen_cooldown,
        freq_dev=freq_dev,
        signals=jnp.where(strategic_turn, ctrl.signals, state.signals),
        demand=inputs.demand,
        shed=d.shed,
        available=d.available,
        storage_p=ph.inj.storage,
        flow=ph.flow_mw,
        theta=ph.theta,
        energised=ph.energised,
        branch_in_service=ph.in_service,
        served_fraction=jnp.sum(ph.inj.served) / demand,
        vm=ph.vm,
    )


def _end_of_day_credit(state_next, t, blackout, params) -> jax.Array:
    """Reward (scalar) of the energy stored at the day's end beyond the start, at
    ``end_energy_value`` $/MWh (``env.episode_end="stored_energy"``), on the step the time
    limit cuts: the evaluation's stored-energy term (``envs.evaluation.metrics``) in the
    operator reward's units. Added after the reward's clip, so the whole credit counts."""
    consts = params.consts
    if consts.episode_end == "bootstrap":
        return jnp.float32(0.0)
    gained = jnp.sum(state_next.soc) - jnp.sum(dsp.initial_soc(params.devices))
    last = (t >= consts.horizon) & ~blackout
    return jnp.where(last, consts.end_energy_value * gained / consts.reference_cost, 0.0)


def transition(key, state, action, params):
    """(next_state, rewards [A], terminated, info) — no auto-reset here."""
    grid, consts = params.grid, params.consts
    noise = exo.draw_step_noise(key, grid)
    t = state.t + 1
    weather = exo.step_weather(
        noise,
        exo.Weather(state.load_noise, state.wind_speed, state.cloud),
        state.episode,
        consts,
    )
    inputs = exo.exogenous_at(t, weather, state.episode, params)
    topo = exo.step_topology(
        noise, t, state.branch_cooldown, state.gen_cooldown, state.episode, params
    )
    n_storage = params.devices.storage_bus.shape[0]
    hold = dsp.holding_controls(state, params.devices, consts.gen_action, grid.n_bus)
    ctrl, nonfinite = dsp.decode_finite_controls(
        action, params.layout, grid.n_gen, n_storage, grid.n_bus, hold
    )
    d = dispatch_devices(ctrl, state, inputs, topo, params)
    ph = solve_with_protection(d, topo, state, params)
    shortfall = ph.inj.residual + ph.slack_mw
    droop_capacity = jnp.sum(jnp.where(d.conv_online, params.devices.pmax, 0.0))
    freq_dev = dsp.frequency_deviation(shortfall, droop_capacity, jnp.sum(ph.inj.served), consts)
    nxt = _next_state(state, t, weather, inputs, topo, d, ph, ctrl, freq_dev, params)
    costs = step_costs(d, ph, params)
    terms, loading, margin = _reward_terms(ph, d, nxt, freq_dev, costs, inputs, params)
    blackout = (nxt.served_fraction < consts.blackout_served_fraction) | (
        jnp.abs(freq_dev) > consts.freq_collapse_hz
    )
    if consts.reward == "operator":
        rewards = reward.operator_rewards(
            costs.total() + consts.voll * islanded_mw(d, ph) * consts.step_hours,
            consts.reference_cost,
            terms[0],
            params.layout.reward_weights.shape[0],
            blackout,
            consts.blackout_penalty,
            consts.horizon - t,
        )
        rewards = rewards + _end_of_day_credit(nxt, t, blackout, params)
    else:
        rewards = reward.agent_rewards(
            terms, params.layout.reward_weights, blackout, consts.blackout_penalty
        )
    info = _info(d, ph, inputs, topo, costs, terms, loading, margin, nxt, blackout, params)
    info["nonfinite_actions"] = nonfinite.astype(jnp.float32)  # entries held, not applied
    return nxt, rewards, blackout, info


def _info(d, ph, inputs, topo, costs, terms, loading, margin, nxt, blackout, params):
    dt = params.consts.step_hours
    island_mw = islanded_mw(d, ph)
    live = ph.in_service
    f32 = lambda x: jnp.asarray(x, jnp.float32)  # noqa: E731
    info = {
        "cost": costs.total(),
        "gen_cost": costs.gen,
        "shed_cost": costs.shed,
        "curtailment_cost": costs.curtailment,
        "slack_cost": costs.slack,
        "ufls_cost": costs.ufls,
        "unserved_energy_mwh": (island_mw + ph.inj.ufls) * dt,
        "island_unserved_mwh": island_mw * dt,
        "ufls_mwh": ph.inj.ufls * dt,
        "overfreq_mw": ph.inj.overfreq,
        "shed_mwh": jnp.sum(d.shed) * dt,
        "curtailed_mwh": costs.spilled_mwh,
        "n_overloaded": jnp.sum(live & (loading > 1.0)),
        "max_loading": jnp.max(jnp.where(live, loading, 0.0)),
        "freq_dev_hz": nxt.freq_dev,
        "trips": jnp.sum(topo.branch_in_service & ~ph.in_service),
        "branches_out": jnp.sum(~ph.in_service),
        "clipped_mw": d.clipped_mw,
        "reward_safety": terms[0],
        "reward_cost": terms[1],
        "reward_uptime": terms[2],
        "served_fraction": nxt.served_fraction,
        "demand_mw": jnp.sum(inputs.demand),
        "served_mw": jnp.sum(ph.inj.served),
        "gen_mw": jnp.sum(ph.inj.gen),
        "storage_mw": jnp.sum(ph.inj.storage),
        "shunt_mw": jnp.sum(jnp.where(ph.energised, params.grid.bus_gs, 0.0)),
        "slack_mw": ph.slack_mw,
        "losses_mw": ph.losses_mw,
        "voltage_violation_pu": voltage_violation(ph, params),
        "pf_converged": ph.converged,
        "primary_mw": ph.inj.residual - ph.inj.ufls + ph.inj.overfreq,
        "reserve_margin": margin,
        "blackout": blackout,
        "scenario_id": nxt.episode.scenario_id,
    }
    return {k: f32(v) for k, v in info.items()}
