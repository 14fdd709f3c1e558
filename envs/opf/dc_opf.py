"""DC optimal power flow and its multi-period (perfect-foresight) form, solved with HiGHS.

One sparse linear programme covers T >= 1 periods; the single-step OPF is the case T = 1 with the
previous dispatch as ramp anchor. Per period t the variables are

    pg [G] MW, z [G] $/h (cost epigraph), shed [N] MW, spill [N] MW,
    charge [S] MW, discharge [S] MW, energy [S] MWh

The network is PYPOWER's DC model (flow = b (theta_f - theta_t - shift)) written through power
transfer distribution factors of each period's outage pattern: one power balance per island and
period, and branch ratings as rows on the injections, added lazily (solve, add every violated or
nearly binding rating, re-solve), so the LP only carries the few limits that bind; its optimum is
that of the full B-theta model. Further constraints: generator limits from the per-step
availability, ramp limits between periods (and from the previous dispatch), storage energy
balance. Bus shunts count as load.

Quadratic generator costs are handled exactly by outer approximation: z_g >= tangent cuts of
c2 p^2 + c1 p + c0; after each solve a cut is added at every dispatch whose true cost exceeds
its epigraph, until the true cost of the dispatch is within ``cost_rtol`` of the LP bound (the LP
objective is a lower bound of the QP optimum and the true cost of its dispatch an upper bound, so
the reported cost is optimal to that tolerance). Piecewise-linear (convex) costs enter exactly as
one cut per segment. Shedding (value of lost load), spilling surplus generation at a bus and
curtailing renewable availability carry linear penalties; with them every period is feasible
even for islanded topologies.

The model stays loaded in one HiGHS object between these rounds (the bindings scipy ships), so
each re-solve restarts from the previous optimal basis; ``scipy.optimize.linprog`` is the
fallback where those bindings are missing.

This module is the solve loop and the public entry points; its parts: ``envs.opf.dc_network``
(the network, storage and penalties, the true generation cost), ``envs.opf.topology_cache``
(the PTDF of each outage pattern), ``envs.opf.lp_rows`` (the LP's columns, bounds, objective
and rows) and ``envs.opf.cost_cuts`` (the outer approximation of the cost curves).
"""

from __future__ import annotations

import itertools
import time
from typing import NamedTuple

import numpy as np

from envs.opf.cost_cuts import anchor_cuts, cut_rows, initial_cuts, refining_cuts
from envs.opf.dc_network import (
    DCNetwork,
    DispatchPenalties,
    StorageUnits,
    generation_cost_per_h,
    network_from_grid,
    network_from_matpower,
)
from envs.opf.lp import HIGHS, LinearProgram
from envs.opf.lp_rows import (
    Inputs,
    Layout,
    Problem,
    balance_rows,
    branch_rows,
    bus_injection,
    lp_objective,
    ramp_rows,
    storage_rows,
    variable_bounds,
)
from envs.opf.topology_cache import network_state, period_topologies

__all__ = [
    "DCNetwork",
    "DispatchPenalties",
    "DispatchSolution",
    "StorageUnits",
    "generation_cost_per_h",
    "network_from_grid",
    "network_from_matpower",
    "solve_dc_opf",
    "solve_dispatch",
]


class DispatchSolution(NamedTuple):
    """Optimal dispatch over T periods (T = 1 for the single-step OPF)."""

    pg_mw: np.ndarray  # [T, G]
    shed_mw: np.ndarray  # [T, N]
    spill_mw: np.ndarray  # [T, N]
    theta_rad: np.ndarray  # [T, N]
    flow_mw: np.ndarray  # [T, L] from-end
    storage_charge_mw: np.ndarray  # [T, S]
    storage_discharge_mw: np.ndarray  # [T, S]
    storage_energy_mwh: np.ndarray  # [T, S] at the end of each period
    generation_cost_per_h: np.ndarray  # [T] true generation cost rate ($/h)
    step_cost: np.ndarray  # [T] ($): (generation + penalties) * dt_hours
    total_cost: float  # sum of step_cost ($)
    lower_bound: float  # LP bound of total_cost ($)
    cut_rounds: int
    solve_seconds: float


def _load_per_period(net: DCNetwork, load_mw, dt_hours) -> np.ndarray:
    """[T, N] MW: ``load_mw`` ([N] for one period or [T, N]), checked with ``dt_hours``."""
    load = np.atleast_2d(np.asarray(load_mw, dtype=float))
    if load.shape[1] != net.n_bus:
        raise ValueError(f"load_mw has {load.shape[1]} buses, the network {net.n_bus}")
    if not dt_hours > 0:
        raise ValueError(f"dt_hours must be positive, got {dt_hours}")
    return load


def _per_period(value, default, shape: tuple, dtype) -> np.ndarray:
    """``value`` (``default`` where None) broadcast to ``shape`` [T, ...]."""
    return np.broadcast_to(np.asarray(default if value is None else value, dtype), shape)


def _checked_vector(value, size: int, name: str) -> np.ndarray | None:
    """``value`` as a float [size] vector (None stays None)."""
    if value is None:
        return None
    vector = np.asarray(value, dtype=float)
    if vector.shape != (size,):
        raise ValueError(f"{name} must have shape ({size},), got {vector.shape}")
    return vector


_HIGHS = HIGHS  # None forces the scipy.optimize.linprog path


def solve_dispatch(
    net: DCNetwork,
    load_mw: np.ndarray,
    *,
    dt_hours: float,
    gen_available_mw: np.ndarray | None = None,
    branch_in_service: np.ndarray | None = None,
    prev_pg_mw: np.ndarray | None = None,
    storage: StorageUnits | None = None,
    storage_energy0_mwh: np.ndarray | None = None,
    gen_online: np.ndarray | None = None,
    shed_max_mw: np.ndarray | None = None,
    penalties: DispatchPenalties = DispatchPenalties(),
    stored_energy_value: float = 0.0,
    cost_rtol: float = 1e-7,
    n_tangents: int = 8,
    max_cut_rounds: int = 60,
) -> DispatchSolution:
    """Least-cost dispatch over T periods with perfect knowledge of every period.

    Args: load_mw [T, N] bus demand; gen_available_mw [T, G] (or [G]) upper limits this period
    (renewable availability, 0 for a tripped unit; default pmax); branch_in_service [T, L] bool;
    prev_pg_mw [G] dispatch before period 0 (ramp anchor; None = free start); storage units and
    their initial energy; gen_online [T, G] bool: an offline unit produces nothing and pays no
    cost (not even its no-load c0); shed_max_mw [T, N] the most each bus may shed (default: its
    whole load). Ramp limit per period = RAMP_AGC (MW/min) * 60 * dt_hours.
    stored_energy_value ($/MWh, >= 0) credits the energy left in the batteries after the last
    period in the objective (its worth beyond the horizon); ``total_cost`` stays the operating
    cost and ``lower_bound`` the LP bound of it, neither with the credit.

    The network enters through PTDFs: one balance per island and period, and a branch limit
    only once the dispatch violates it (solve, add every violated or nearly binding limit,
    re-solve), which gives the optimum of the full B-theta model with the few limits that bind.
    """
    started = time.perf_counter()
    storage = StorageUnits.none() if storage is None else storage
    load = _load_per_period(net, load_mw, dt_hours)
    n_periods = load.shape[0]
    units = (n_periods, net.n_gen)
    online = _per_period(gen_online, True, units, bool)
    available = np.where(online, _per_period(gen_available_mw, net.gen_pmax, units, float), 0.0)
    ramp_per_min = net.gen_ramp_mw_per_min
    energy0 = np.zeros(storage.n) if storage_energy0_mwh is None else storage_energy0_mwh
    shed_max = np.minimum(load, _per_period(shed_max_mw, load, load.shape, float))
    inputs = Inputs(
        load_mw=load,
        shed_max_mw=shed_max,
        gen_lower_mw=np.minimum(net.gen_pmin[None, :], available),
        gen_upper_mw=available,
        branch_in_service=_per_period(branch_in_service, True, (n_periods, net.n_branch), bool),
        ramp_mw=np.where(ramp_per_min > 0, ramp_per_min * 60.0 * dt_hours, np.inf),
        prev_pg_mw=_checked_vector(prev_pg_mw, net.n_gen, "prev_pg_mw"),
        energy0_mwh=_checked_vector(energy0, storage.n, "storage_energy0_mwh"),
        dt_hours=float(dt_hours),
        cost_on=online.astype(float),
    )
    layout = Layout(net.n_gen, net.n_bus, storage.n, n_periods)
    problem = Problem(
        net, storage, inputs, layout, period_topologies(net, inputs.branch_in_service)
    )
    bounds = variable_bounds(problem)
    if not (np.isfinite(stored_energy_value) and stored_energy_value >= 0):
        raise ValueError(f"stored_energy_value must be >= 0, got {stored_energy_value}")
    cost, constant, curtail = lp_objective(net, inputs, penalties, layout)
    final_energy = layout.columns("energy")[-1]
    cost[final_energy] -= stored_energy_value
    lp = LinearProgram(cost, bounds, use_highs=_HIGHS is not None)
    for rows in (
        balance_rows(problem),
        storage_rows(storage, inputs, layout),
        ramp_rows(inputs, layout),
        cut_rows(
            initial_cuts(net, bounds, layout, n_tangents)
            + anchor_cuts(net, bounds, layout, inputs.prev_pg_mw)
        ),
    ):
        lp.add_rows(rows)
    limited = np.zeros((layout.n_periods, net.n_branch), bool)
    for cut_round in itertools.count(1):  # ends: limits are finite, cuts stop at max rounds
        x, objective = lp.solve()
        flow, theta = network_state(problem.periods, bus_injection(x, problem))
        new_limits = _limits_to_add(net, flow, limited)
        pg, z = x[layout.columns("pg")], x[layout.columns("z")]
        true_cost = generation_cost_per_h(net, pg)
        shortfall = (true_cost - z) * inputs.dt_hours
        # the operating cost's bound: the objective without the credit of the final energy
        lower_bound = objective + constant + stored_energy_value * float(np.sum(x[final_energy]))
        tolerance = cost_rtol * max(abs(lower_bound), 1.0)
        cuts_done = np.sum(shortfall) <= tolerance or cut_round >= max_cut_rounds
        if cuts_done and not new_limits.any():
            break
        if new_limits.any():
            limited |= new_limits
            lp.add_rows(branch_rows(problem, *np.nonzero(new_limits)))
        if not cuts_done:
            refine = refining_cuts(
                net, bounds, layout, pg, shortfall, tolerance, cut_round, n_tangents
            )
            lp.add_rows(cut_rows(refine))
    true_cost = true_cost * inputs.cost_on
    return _solution(
        x,
        layout,
        inputs,
        penalties,
        curtail,
        true_cost,
        lower_bound,
        cut_round,
        flow,
        theta,
        time.perf_counter() - started,
    )


def _limits_to_add(net: DCNetwork, flow: np.ndarray, limited: np.ndarray) -> np.ndarray:
    """[T, L] branch limits to enforce next: none while every flow is within its rating, else
    every not yet enforced one above 99 % of its rating (neighbours of a binding limit tend to
    bind next; adding them together saves re-solves)."""
    loading = np.abs(flow) / net.branch_rating_mw[None, :]
    excess = np.abs(flow) - net.branch_rating_mw[None, :]
    if not np.any((excess > 1e-7 * np.maximum(net.branch_rating_mw, 1.0)) & ~limited):
        return np.zeros_like(limited)
    return (loading > 0.99) & ~limited


def _solution(
    x, layout, inputs, penalties, curtail, true_cost, lower_bound, rounds, flow, theta, seconds
):
    def block(name):
        return x[layout.columns(name)]

    pg, shed, spill = block("pg"), block("shed"), block("spill")
    rate = (
        true_cost.sum(axis=1)
        + penalties.voll * shed.sum(axis=1)
        + penalties.spill * spill.sum(axis=1)
        + np.sum(curtail[None, :] * (inputs.gen_upper_mw - pg), axis=1)
    )
    step_cost = rate * inputs.dt_hours
    return DispatchSolution(
        pg_mw=pg,
        shed_mw=shed,
        spill_mw=spill,
        theta_rad=theta,
        flow_mw=flow,
        storage_charge_mw=block("charge"),
        storage_discharge_mw=block("discharge"),
        storage_energy_mwh=block("energy"),
        generation_cost_per_h=true_cost.sum(axis=1),
        step_cost=step_cost,
        total_cost=float(step_cost.sum()),
        lower_bound=lower_bound,
        cut_rounds=rounds,
        solve_seconds=seconds,
    )


def solve_dc_opf(net: DCNetwork, load_mw: np.ndarray, *, dt_hours: float = 1.0, **kwargs):
    """Single-period DC-OPF: ``solve_dispatch`` with T = 1, arrays returned without the T axis.

    Keyword arguments are those of ``solve_dispatch`` with per-period arrays given for the one
    period ([N], [G], [L]); ``step_cost`` becomes a float in $ for ``dt_hours``.
    """
    load = np.asarray(load_mw, dtype=float)
    if load.ndim != 1:
        raise ValueError(f"load_mw must be [N] for a single period, got shape {load.shape}")
    for name in ("gen_available_mw", "branch_in_service", "gen_online"):
        if kwargs.get(name) is not None:
            kwargs[name] = np.asarray(kwargs[name])[None, :]
    sol = solve_dispatch(net, load[None, :], dt_hours=dt_hours, **kwargs)
    per_period = {k: v[0] for k, v in sol._asdict().items() if isinstance(v, np.ndarray)}
    return sol._replace(**per_period)
