"""Perfect-foresight oracle: the least-cost operation of a whole episode, known in advance.

``EpisodeInputs`` holds an episode's exogenous trajectory (demand, renewable availability,
generator outages, scheduled and random branch outages), which does not depend on the policy;
``envs.evaluation.rollout.rollout`` records it next to any policy's run (``oracle_inputs``), and
``solve_oracle`` solves the multi-period DC dispatch (``envs.opf.dc_opf.solve_dispatch``) over it,
coupling steps through ramp limits and battery energy. Its cost is a lower bound for any
causal policy on that episode, up to the simplifications below, all of which only relax the
oracle (so the bound stays a bound):

* the network is the DC model with the episode's exogenous outages; protective trips are the
  policy's own doing and never appear in the oracle;
* a unit coming back online may ramp by ``ramp + Pmin`` (the environment allows
  ``max(ramp, Pmin)``); load may be shed beyond the demand-response share, at VOLL;
* surplus generation can be spilled at VOLL (never cheaper than curtailing renewables).

Cost accounting matches the environment's ``info["cost"]``: conventional units pay
``generation_cost`` while online, renewables are free, shedding costs VOLL and unused
renewable availability the curtailment price, all times the step length.
The energy left in the batteries after the last step is credited at ``stored_energy_value``
in the objective, as the evaluation credits every method's (``envs.evaluation.metrics``): an
oracle that empties the batteries because the episode ends would not bound a method that keeps
energy worth that much.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import numpy as np

from envs.opf import dc_opf
from envs.opf.storage_value import stored_energy_value
from envs.powerflow.connectivity import energised_buses
from envs.types import EnvParams


class EpisodeInputs(NamedTuple):
    """What the oracle knows about one episode (steps 1..T of the environment)."""

    demand_mw: jax.Array  # [T, N]
    available_mw: jax.Array  # [T, G] renewables: weather; conventional: Pmax if online
    gen_online: jax.Array  # [T, G] bool
    branch_in_service: jax.Array  # [T, L] bool, exogenous outages only
    pg0_mw: jax.Array  # [G] dispatch at reset
    soc0_mwh: jax.Array  # [S] battery energy at reset


def step_keys(reset_key: jax.Array, horizon: int) -> jax.Array:
    """The per-step keys [T, 2] evaluation uses for the episode started with ``reset_key``."""
    return jax.random.split(jax.random.fold_in(reset_key, 1), horizon)


class EnvDispatchModel(NamedTuple):
    """The environment's devices and prices as an OPF model (NumPy, float64)."""

    network: dc_opf.DCNetwork
    storage: dc_opf.StorageUnits
    penalties: dc_opf.DispatchPenalties
    dt_hours: float
    shed_max_fraction: np.ndarray  # [N]
    stored_energy_value: float  # $/MWh of the energy left in the batteries at the end
    # Shedding at an energised bus up to ``shed_max_fraction`` of its demand, as the env sheds
    # (a causal controller's plan: ``highs_reference.myopic_model``); False: up to all of it,
    # the oracle's relaxation (module doc).
    shed_as_env: bool = False
    # ``env.island_rule="largest_load"``: [G] bool, the conventional units, whose online buses
    # (with the demand) pick the island kept (``envs.sim.islands``); None: the slack's island.
    conventional: np.ndarray | None = None


def dispatch_model(params: EnvParams) -> EnvDispatchModel:
    """DC network with the env's unit limits, per-step ramps and zero-cost renewables."""
    devices, consts = params.devices, params.consts
    net = dc_opf.network_from_grid(params.grid)
    renewable = np.asarray(devices.is_renewable, bool)
    step_minutes = consts.step_hours * 60.0
    free = {
        name: np.where(renewable, 0.0, getattr(net, name))
        for name in ("cost_c2", "cost_c1", "cost_c0")
    }
    network = dc_opf.DCNetwork(
        **{
            **vars(net),
            **free,
            "cost_is_pwl": net.cost_is_pwl & ~renewable,
            "gen_pmin": np.asarray(devices.pmin, np.float64),
            "gen_pmax": np.asarray(devices.pmax, np.float64),
            "gen_ramp_mw_per_min": np.asarray(devices.ramp, np.float64) / step_minutes,
        }
    )
    efficiency = np.full(devices.storage_bus.shape[0], consts.storage_efficiency)
    storage = dc_opf.StorageUnits(
        bus=np.asarray(devices.storage_bus, int),
        power_mw=np.asarray(devices.storage_pmax, np.float64),
        energy_mwh=np.asarray(devices.storage_emax, np.float64),
        charge_efficiency=efficiency,
        discharge_efficiency=efficiency,
    )
    penalties = dc_opf.DispatchPenalties(
        voll=consts.voll,
        spill=consts.voll,
        curtailment=np.where(renewable, consts.curtailment_cost, 0.0),
    )
    shed_max = np.asarray(devices.shed_max, np.float64)
    value = stored_energy_value(params)
    conventional = None if consts.island_rule == "slack" else ~renewable
    return EnvDispatchModel(
        network,
        storage,
        penalties,
        consts.step_hours,
        shed_max,
        value,
        conventional=conventional,
    )


def solve_oracle(
    model: EnvDispatchModel, inputs: EpisodeInputs, cost_rtol: float = 1e-7
) -> dc_opf.DispatchSolution:
    """Least-cost dispatch of the periods in ``inputs`` (no batch axis; T = 1 is myopic).

    As in the environment, units on buses cut off from the island kept (``envs.sim.islands``)
    produce nothing and pay nothing; load there can only be shed (at VOLL). The cost is optimal
    within ``cost_rtol`` (relative; see ``envs.opf.dc_opf.solve_dispatch``).
    """
    x = jax.tree_util.tree_map(lambda a: np.asarray(a, np.float64), inputs)
    in_service = x.branch_in_service > 0.5
    if model.conventional is None:
        energised = energised_buses(model.network, in_service)
    else:
        unit_online = (x.gen_online > 0.5) & model.conventional  # [T, G]
        gen_at_bus = model.network.gen_bus[:, None] == np.arange(model.network.n_bus)
        has_unit = (unit_online.astype(float) @ gen_at_bus) > 0  # [T, N]
        energised = energised_buses(model.network, in_service, x.demand_mw, has_unit)
    online = (x.gen_online > 0.5) & energised[:, model.network.gen_bus]
    shed_max = None
    if model.shed_as_env:  # load cut off from the island kept is lost whatever the plan
        shed_max = np.where(energised, model.shed_max_fraction * x.demand_mw, x.demand_mw)
    return dc_opf.solve_dispatch(
        model.network,
        x.demand_mw,
        dt_hours=model.dt_hours,
        gen_available_mw=np.where(online, x.available_mw, 0.0),
        gen_online=online,
        shed_max_mw=shed_max,
        branch_in_service=in_service,
        prev_pg_mw=x.pg0_mw,
        storage=model.storage,
        storage_energy0_mwh=np.clip(x.soc0_mwh, 0.0, model.storage.energy_mwh),
        penalties=model.penalties,
        stored_energy_value=model.stored_energy_value,
        cost_rtol=cost_rtol,
    )
