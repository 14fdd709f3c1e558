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
"""

from __future__ import annotations

import dataclasses
import functools
import itertools
import time
from typing import NamedTuple

import numpy as np

from envs.opf.lp import HIGHS, LinearProgram, SparseRows
from envs.powerflow import matpower as mp
from envs.powerflow.connectivity import island_labels
from envs.powerflow.cost_curves import cost_rate, costs_from_gencost
from envs.powerflow.ptdf import dc_sensitivities, incidence_matrix

_FAN = np.array([-1.0, 0.0, 1.0])  # tangent offsets around a dispatch, in steps
_CUT_SHARE = 1.0  # refine the dispatches holding more than an even share of the error


@dataclasses.dataclass(frozen=True)
class DCNetwork:
    """Static DC data of one grid in NumPy (float64), 0-based consecutive indices."""

    base_mva: float
    slack: int
    bus_gs_mw: np.ndarray  # [N] shunt conductance consumption at 1 p.u. (MW)
    branch_from: np.ndarray  # [L] int
    branch_to: np.ndarray  # [L] int
    branch_b_mw_per_rad: np.ndarray  # [L] base_mva / (x * tap)
    branch_shift_rad: np.ndarray  # [L]
    branch_rating_mw: np.ndarray  # [L], inf where unlimited
    gen_bus: np.ndarray  # [G] int
    gen_pmin: np.ndarray  # [G] MW
    gen_pmax: np.ndarray  # [G] MW
    gen_pg0: np.ndarray  # [G] MW, dispatch in the case file
    gen_ramp_mw_per_min: np.ndarray  # [G], 0 = no ramp limit
    cost_c2: np.ndarray  # [G] $/MW^2h
    cost_c1: np.ndarray  # [G] $/MWh
    cost_c0: np.ndarray  # [G] $/h
    cost_pwl_mw: np.ndarray  # [G, K] breakpoints (MW)
    cost_pwl_usd: np.ndarray  # [G, K] cost at the breakpoints ($/h)
    cost_is_pwl: np.ndarray  # [G] bool

    @property
    def n_bus(self) -> int:
        return self.bus_gs_mw.shape[0]

    @property
    def n_branch(self) -> int:
        return self.branch_from.shape[0]

    @property
    def n_gen(self) -> int:
        return self.gen_bus.shape[0]


@dataclasses.dataclass(frozen=True)
class StorageUnits:
    """Batteries: charge/discharge power limits, energy capacity, one-way efficiencies."""

    bus: np.ndarray  # [S] int
    power_mw: np.ndarray  # [S]
    energy_mwh: np.ndarray  # [S]
    charge_efficiency: np.ndarray  # [S] in (0, 1]
    discharge_efficiency: np.ndarray  # [S] in (0, 1]

    @staticmethod
    def none() -> StorageUnits:
        empty = np.zeros(0)
        return StorageUnits(np.zeros(0, int), empty, empty, empty, empty)

    @property
    def n(self) -> int:
        return self.bus.shape[0]


@dataclasses.dataclass(frozen=True)
class DispatchPenalties:
    """Linear penalties added to the generation cost ($/MWh)."""

    voll: float = 1000.0  # value of lost load, per MW shed
    spill: float = 1000.0  # per MW of surplus generation dumped at a bus
    curtailment: np.ndarray | float = 0.0  # [G] or scalar, per MW of unused availability


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


def _row_of(array: np.ndarray, columns: list[int]) -> np.ndarray:
    return np.asarray(array, dtype=float)[:, columns]


def network_from_matpower(base_mva, bus, gen, branch, gencost, slack=None) -> DCNetwork:
    """DC network from MATPOWER arrays (a PYPOWER dict's or an ``envs.powerflow.case.Case``'s).

    Keeps in-service branches and generators in file order, as ``envs.powerflow.grid.build_grid`` does.
    """
    bus, gen, branch = (np.asarray(a, dtype=float) for a in (bus, gen, branch))
    index_of = {int(b): i for i, b in enumerate(bus[:, mp.BUS_I])}
    br = branch[branch[:, mp.BR_STATUS] > 0]
    on = gen[:, mp.GEN_STATUS] > 0
    g = gen[on]
    tap = np.where(br[:, mp.TAP] == 0.0, 1.0, br[:, mp.TAP])
    rating = np.where(br[:, mp.RATE_A] > 0.0, br[:, mp.RATE_A], np.inf)
    if slack is None:
        slack = int(np.flatnonzero(bus[:, mp.BUS_TYPE] == 3)[0])
    costs = costs_from_gencost(np.asarray(gencost, dtype=float)[on], g.shape[0], "gencost")
    return DCNetwork(
        base_mva=float(base_mva),
        slack=int(slack),
        bus_gs_mw=bus[:, mp.GS].copy(),
        branch_from=np.array([index_of[int(b)] for b in br[:, mp.F_BUS]], dtype=int),
        branch_to=np.array([index_of[int(b)] for b in br[:, mp.T_BUS]], dtype=int),
        branch_b_mw_per_rad=float(base_mva) / (br[:, mp.BR_X] * tap),
        branch_shift_rad=np.deg2rad(br[:, mp.SHIFT]),
        branch_rating_mw=rating,
        gen_bus=np.array([index_of[int(b)] for b in g[:, mp.GEN_BUS]], dtype=int),
        gen_pmin=g[:, mp.PMIN].copy(),
        gen_pmax=g[:, mp.PMAX].copy(),
        gen_pg0=g[:, mp.PG].copy(),
        gen_ramp_mw_per_min=g[:, mp.RAMP_AGC].copy()
        if g.shape[1] > mp.RAMP_AGC
        else np.zeros(len(g)),
        **{f"cost_{key}": value for key, value in costs.items()},
    )


def network_from_grid(grid) -> DCNetwork:
    """DC network from an ``envs.powerflow.grid.Grid`` (device arrays are copied to float64 NumPy)."""

    def f64(x):
        return np.asarray(x, dtype=np.float64)

    return DCNetwork(
        base_mva=float(grid.base_mva),
        slack=int(grid.slack),
        bus_gs_mw=f64(grid.bus_gs),
        branch_from=np.asarray(grid.branch_from, dtype=int),
        branch_to=np.asarray(grid.branch_to, dtype=int),
        branch_b_mw_per_rad=float(grid.base_mva) * f64(grid.branch_dc_b),
        branch_shift_rad=f64(grid.branch_shift),
        branch_rating_mw=f64(grid.branch_rating),
        gen_bus=np.asarray(grid.gen_bus, dtype=int),
        gen_pmin=f64(grid.gen_pmin),
        gen_pmax=f64(grid.gen_pmax),
        gen_pg0=f64(grid.gen_pg0),
        gen_ramp_mw_per_min=f64(grid.gen_ramp),
        cost_c2=f64(grid.gen_cost_c2),
        cost_c1=f64(grid.gen_cost_c1),
        cost_c0=f64(grid.gen_cost_c0),
        cost_pwl_mw=f64(grid.gen_cost_pwl_mw),
        cost_pwl_usd=f64(grid.gen_cost_pwl_usd),
        cost_is_pwl=np.asarray(grid.gen_cost_is_pwl, dtype=bool),
    )


def generation_cost_per_h(net: DCNetwork, pg_mw: np.ndarray) -> np.ndarray:
    """True cost rate [..., G] ($/h) of a dispatch [..., G]: quadratic or piecewise-linear
    (``envs.powerflow.cost_curves.cost_rate``, the environment's cost)."""
    pg = np.asarray(pg_mw, dtype=float)
    curves = (net.cost_c2, net.cost_c1, net.cost_c0, net.cost_pwl_mw, net.cost_pwl_usd)
    return cost_rate(np, *curves, net.cost_is_pwl, pg)


def _pwl_segments(net: DCNetwork, g: int) -> tuple[np.ndarray, np.ndarray]:
    """Slopes and intercepts of the non-degenerate segments (a convex cost = their maximum)."""
    x, y = net.cost_pwl_mw[g], net.cost_pwl_usd[g]
    dx = np.diff(x)
    keep = dx > 0
    slopes = np.diff(y)[keep] / dx[keep]
    return slopes, y[:-1][keep] - slopes * x[:-1][keep]


class _Layout(NamedTuple):
    """Column offsets of one period's variables; period t occupies [t*width, (t+1)*width)."""

    n_gen: int
    n_bus: int
    n_storage: int
    n_periods: int

    @property
    def sizes(self) -> dict[str, int]:
        g, n, s = self.n_gen, self.n_bus, self.n_storage
        return dict(pg=g, z=g, shed=n, spill=n, charge=s, discharge=s, energy=s)

    @property
    def width(self) -> int:
        return sum(self.sizes.values())

    @property
    def n_vars(self) -> int:
        return self.width * self.n_periods

    def columns(self, name: str) -> np.ndarray:
        """Global column indices [T, size] of one variable block (read-only, cached)."""
        return _column_block(self, name)


@functools.lru_cache(maxsize=256)
def _column_block(layout: _Layout, name: str) -> np.ndarray:
    offset = 0
    for key, size in layout.sizes.items():
        if key == name:
            break
        offset += size
    local = offset + np.arange(layout.sizes[name])
    block = np.arange(layout.n_periods)[:, None] * layout.width + local[None, :]
    block.flags.writeable = False
    return block


class _Inputs(NamedTuple):
    """Validated per-period data, float64, leading axis T."""

    load_mw: np.ndarray  # [T, N]
    gen_lower_mw: np.ndarray  # [T, G]
    gen_upper_mw: np.ndarray  # [T, G]
    branch_in_service: np.ndarray  # [T, L] bool
    ramp_mw: np.ndarray  # [G] per period, inf = unlimited
    prev_pg_mw: np.ndarray | None  # [G]
    energy0_mwh: np.ndarray  # [S]
    dt_hours: float
    cost_on: np.ndarray  # [T, G] 1 where the unit is online and pays its cost, else 0


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


class _Topology(NamedTuple):
    """DC sensitivities of one outage pattern; every island is referenced to its own bus."""

    ptdf: np.ndarray  # [L, N] MW of branch flow per MW injected at a bus
    flow_offset_mw: np.ndarray  # [L] flow without injections (phase shifters)
    theta_per_mw: np.ndarray  # [N, N] rad per MW injected (0 at the island references)
    theta_offset_rad: np.ndarray  # [N]
    island: np.ndarray  # [N] int label of the bus's island
    n_islands: int


_TOPOLOGY_CACHE: dict[bytes, _Topology] = {}
_TOPOLOGY_CACHE_SIZE = 512


def _topology(net: DCNetwork, in_service: np.ndarray) -> _Topology:
    """PTDF of the B-theta model: flow = b (theta_f - theta_t - shift), nodal balance A' flow = P.

    Cached by network and outage pattern: an episode (or a myopic rollout) sees few patterns.
    """
    key = b"".join(
        np.ascontiguousarray(a).tobytes()
        for a in (
            net.branch_from,
            net.branch_to,
            net.branch_b_mw_per_rad,
            net.branch_shift_rad,
            np.array([net.slack, net.n_bus]),
            np.packbits(in_service),
        )
    )
    if key not in _TOPOLOGY_CACHE:
        if len(_TOPOLOGY_CACHE) >= _TOPOLOGY_CACHE_SIZE:
            _TOPOLOGY_CACHE.clear()
        _TOPOLOGY_CACHE[key] = _compute_topology(net, in_service)
    return _TOPOLOGY_CACHE[key]


def _compute_topology(net: DCNetwork, in_service: np.ndarray) -> _Topology:
    n = net.n_bus
    live = in_service & (net.branch_b_mw_per_rad != 0.0)
    b = np.where(live, net.branch_b_mw_per_rad, 0.0)
    incidence = incidence_matrix(n, net.branch_from, net.branch_to)
    island = island_labels(n, net.branch_from, net.branch_to, live)
    n_islands = int(island.max()) + 1 if n else 0
    reference = np.zeros(n, bool)
    reference[np.unique(island, return_index=True)[1]] = True
    reference[island == island[net.slack]] = False
    reference[net.slack] = True
    ptdf, theta_per_mw, weighted = dc_sensitivities(incidence, b, ~reference)
    theta_offset = theta_per_mw @ (incidence.T @ (b * net.branch_shift_rad))
    flow_offset = weighted @ theta_offset - b * net.branch_shift_rad
    return _Topology(ptdf, flow_offset, theta_per_mw, theta_offset, island, n_islands)


class _Periods(NamedTuple):
    """The topologies of the T periods, stacked by distinct outage pattern."""

    index: np.ndarray  # [T] pattern of each period
    ptdf: np.ndarray  # [U, L, N]
    flow_offset_mw: np.ndarray  # [U, L]
    theta_per_mw: np.ndarray  # [U, N, N]
    theta_offset_rad: np.ndarray  # [U, N]
    island: np.ndarray  # [T, N]
    n_islands: np.ndarray  # [T]


class _Problem(NamedTuple):
    """One dispatch problem: what the rows, the bounds and the results are built from."""

    net: DCNetwork
    storage: StorageUnits
    inputs: _Inputs
    layout: _Layout
    periods: _Periods


def _periods(net: DCNetwork, in_service: np.ndarray) -> _Periods:
    if np.all(in_service == in_service[:1]):  # the common case, without a sort of rows
        patterns, index = in_service[:1], np.zeros(in_service.shape[0], int)
    else:
        patterns, index = np.unique(in_service, axis=0, return_inverse=True)
    topo = [_topology(net, p) for p in patterns]
    index = np.ravel(index)
    return _Periods(
        index,
        np.stack([t.ptdf for t in topo]),
        np.stack([t.flow_offset_mw for t in topo]),
        np.stack([t.theta_per_mw for t in topo]),
        np.stack([t.theta_offset_rad for t in topo]),
        np.stack([t.island for t in topo])[index],
        np.array([t.n_islands for t in topo])[index],
    )


def _variable_bounds(problem: _Problem) -> np.ndarray:
    """[n_vars, 2] bounds: generator limits (ramped from prev at t=0), shedding, storage."""
    storage, inputs, layout = problem.storage, problem.inputs, problem.layout
    lo, hi = np.full(layout.n_vars, -np.inf), np.full(layout.n_vars, np.inf)
    g_lo, g_hi = inputs.gen_lower_mw.copy(), inputs.gen_upper_mw.copy()
    if inputs.prev_pg_mw is not None:
        ramp_lo = np.minimum(np.maximum(g_lo[0], inputs.prev_pg_mw - inputs.ramp_mw), g_hi[0])
        ramp_hi = np.maximum(np.minimum(g_hi[0], inputs.prev_pg_mw + inputs.ramp_mw), g_lo[0])
        g_lo[0], g_hi[0] = ramp_lo, ramp_hi
    cols = layout.columns
    lo[cols("pg")], hi[cols("pg")] = g_lo, g_hi
    lo[cols("shed")], hi[cols("shed")] = 0.0, np.maximum(inputs.load_mw, 0.0)
    lo[cols("spill")] = 0.0
    for name, cap in (
        ("charge", storage.power_mw),
        ("discharge", storage.power_mw),
        ("energy", storage.energy_mwh),
    ):
        lo[cols(name)], hi[cols(name)] = 0.0, np.broadcast_to(cap, cols(name).shape)
    return np.stack([lo, hi], axis=1)


def _balance_rows(problem: _Problem) -> SparseRows:
    """One power balance per island and period (the B-theta nodal balances summed)."""
    net, storage, inputs, layout, periods = problem
    eq, cols = SparseRows(), layout.columns
    first = np.concatenate([[0], np.cumsum(periods.n_islands)[:-1]])
    row_of_bus = first[:, None] + periods.island  # [T, N]
    rhs = np.zeros(int(periods.n_islands.sum()))
    np.add.at(rhs, row_of_bus, inputs.load_mw + net.bus_gs_mw[None, :])
    start = eq.add_block(rhs)
    eq.add(start + row_of_bus[:, net.gen_bus], cols("pg"), 1.0)
    eq.add(start + row_of_bus, cols("shed"), 1.0)
    eq.add(start + row_of_bus, cols("spill"), -1.0)
    eq.add(start + row_of_bus[:, storage.bus], cols("discharge"), 1.0)
    eq.add(start + row_of_bus[:, storage.bus], cols("charge"), -1.0)
    return eq


def _storage_rows(storage, inputs: _Inputs, layout: _Layout) -> SparseRows:
    """Battery energy balance: e_t = e_{t-1} + eta_c charge dt - discharge dt / eta_d."""
    eq, cols = SparseRows(), layout.columns
    n_t, n_s, dt = layout.n_periods, storage.n, inputs.dt_hours
    energy_rhs = np.zeros((n_t, n_s))
    energy_rhs[0] = inputs.energy0_mwh
    start = eq.add_block(energy_rhs)
    rows = start + np.arange(n_t * n_s).reshape(n_t, n_s)
    eq.add(rows, cols("energy"), 1.0)
    eq.add(rows[1:], cols("energy")[:-1], -1.0)
    eq.add(rows, cols("charge"), -storage.charge_efficiency[None, :] * dt)
    eq.add(rows, cols("discharge"), dt / np.maximum(storage.discharge_efficiency, 1e-9)[None, :])
    return eq


def _ramp_rows(inputs: _Inputs, layout: _Layout) -> SparseRows:
    """-down <= pg_t - pg_{t-1} <= up, widened by forced changes of the availability window."""
    rows = SparseRows()
    limited = np.flatnonzero(np.isfinite(inputs.ramp_mw))
    if layout.n_periods < 2 or limited.size == 0:
        return rows
    lo, hi = inputs.gen_lower_mw[:, limited], inputs.gen_upper_mw[:, limited]
    ramp = inputs.ramp_mw[limited][None, :]
    up_allow = ramp + np.maximum(lo[1:] - lo[:-1], 0.0)
    down_allow = ramp + np.maximum(hi[:-1] - hi[1:], 0.0)
    pg = layout.columns("pg")[:, limited]
    start = rows.add_block(-down_allow, up_allow)
    index = start + np.arange(up_allow.size).reshape(up_allow.shape)
    rows.add(index, pg[1:], 1.0)
    rows.add(index, pg[:-1], -1.0)
    return rows


def _bus_injection(x, problem: _Problem) -> np.ndarray:
    """[T, N] net injection (generation + shed - spill + battery - load - shunts) in MW."""
    net, storage, inputs = problem.net, problem.storage, problem.inputs
    cols = problem.layout.columns
    injection = x[cols("shed")] - x[cols("spill")] - inputs.load_mw - net.bus_gs_mw[None, :]
    np.add.at(injection.T, net.gen_bus, x[cols("pg")].T)
    np.add.at(injection.T, storage.bus, (x[cols("discharge")] - x[cols("charge")]).T)
    return injection


def _network_state(periods: _Periods, injection: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Branch flows [T, L] (MW) and bus angles [T, N] (rad) of per-period injections."""
    pattern = periods.index
    flow = np.einsum("tln,tn->tl", periods.ptdf[pattern], injection)
    theta = np.einsum("tmn,tn->tm", periods.theta_per_mw[pattern], injection)
    return flow + periods.flow_offset_mw[pattern], theta + periods.theta_offset_rad[pattern]


def _branch_rows(problem: _Problem, t_idx, l_idx) -> SparseRows:
    """|flow of branch l_idx in period t_idx| <= rating, written on the dispatch via the PTDF."""
    net, storage, inputs, layout, periods = problem
    rows, cols = SparseRows(), layout.columns
    ptdf = periods.ptdf[periods.index[t_idx], l_idx]  # [K, N]
    ptdf = np.where(np.abs(ptdf) > 1e-12, ptdf, 0.0)
    fixed = periods.flow_offset_mw[periods.index[t_idx], l_idx] - np.sum(
        ptdf * (inputs.load_mw[t_idx] + net.bus_gs_mw[None, :]), axis=1
    )
    rating = net.branch_rating_mw[l_idx]
    start = rows.add_block(-rating - fixed, rating - fixed)
    index = (start + np.arange(t_idx.size))[:, None]
    rows.add(index, cols("pg")[t_idx], ptdf[:, net.gen_bus])
    rows.add(index, cols("shed")[t_idx], ptdf)
    rows.add(index, cols("spill")[t_idx], -ptdf)
    rows.add(index, cols("discharge")[t_idx], ptdf[:, storage.bus])
    rows.add(index, cols("charge")[t_idx], -ptdf[:, storage.bus])
    return rows


def _tangent_cuts(net, gens, points):
    """Tangents (slope, intercept) of the quadratic cost of ``gens`` at ``points`` (same shape)."""
    c2, c1, c0 = net.cost_c2[gens], net.cost_c1[gens], net.cost_c0[gens]
    return 2.0 * c2 * points + c1, c0 - c2 * points * points


def _initial_cuts(net, bounds, layout: _Layout, n_tangents: int):
    """Cuts (z column, pg column, slope, intercept): PWL segments, a few tangents per curved
    quadratic cost and the exact line of each linear one."""
    pg_cols, z_cols = layout.columns("pg"), layout.columns("z")
    cuts = []
    quad = np.flatnonzero(~net.cost_is_pwl)
    for gens, n_points in (
        (quad[net.cost_c2[quad] != 0.0], n_tangents),
        (quad[net.cost_c2[quad] == 0.0], 1),
    ):
        if gens.size == 0:
            continue
        lo, hi = bounds[pg_cols[:, gens], 0], bounds[pg_cols[:, gens], 1]
        pts = lo[..., None] + (hi - lo)[..., None] * np.linspace(0.0, 1.0, n_points)
        slope, icpt = _tangent_cuts(net, gens[None, :, None], pts)
        tiled = np.broadcast_to
        cuts.append(
            (
                tiled(z_cols[:, gens, None], pts.shape),
                tiled(pg_cols[:, gens, None], pts.shape),
                slope,
                icpt,
            )
        )
    for g in np.flatnonzero(net.cost_is_pwl):
        slopes, icpts = _pwl_segments(net, g)
        shape = (layout.n_periods, slopes.size)
        cuts.append(
            (
                np.broadcast_to(z_cols[:, g, None], shape),
                np.broadcast_to(pg_cols[:, g, None], shape),
                np.broadcast_to(slopes, shape),
                np.broadcast_to(icpts, shape),
            )
        )
    return [tuple(np.ravel(a) for a in cut) for cut in cuts]


def _anchor_cuts(net, bounds, layout: _Layout, prev_pg: np.ndarray | None):
    """Tangents close around the previous dispatch in period 0 (curved costs only).

    A step's optimum usually lies near the last one, so a myopic OPF stepped along an episode
    starts with its optimum bracketed and needs fewer cut rounds."""
    gens = np.flatnonzero(~net.cost_is_pwl & (net.cost_c2 != 0.0))
    if prev_pg is None or gens.size == 0:
        return []
    cols = layout.columns("pg")[0, gens]
    lo, hi = bounds[cols, 0], bounds[cols, 1]
    offsets = np.array([-1.0, -0.25, 0.0, 0.25, 1.0]) / 64.0
    points = np.clip(prev_pg[gens, None] + (hi - lo)[:, None] * offsets, lo[:, None], hi[:, None])
    slope, icpt = _tangent_cuts(net, gens[:, None], points)
    z_cols = np.broadcast_to(layout.columns("z")[0, gens, None], points.shape)
    pg_cols = np.broadcast_to(cols[:, None], points.shape)
    return [tuple(np.ravel(a) for a in (z_cols, pg_cols, slope, icpt))]


def _cut_rows(cuts) -> SparseRows:
    """Inequalities slope * pg - z <= -intercept."""
    rows = SparseRows()
    for z_col, pg_col, slope, icpt in cuts:
        start = rows.add_block(np.full(slope.size, -np.inf), -icpt)
        idx = start + np.arange(slope.size)
        rows.add(idx, pg_col, slope)
        rows.add(idx, z_col, -1.0)
    return rows


def _refining_cuts(net, bounds, layout, pg, shortfall, tolerance, cut_round, n_tangents):
    """A small fan of tangents around every dispatch that holds a fair share of the remaining
    error (narrower each round), so the next optimum is bracketed too."""
    pg_cols, z_cols = layout.columns("pg"), layout.columns("z")
    t_idx, g_idx = np.nonzero(shortfall > _CUT_SHARE * tolerance / shortfall.size)
    lo, hi = bounds[pg_cols[t_idx, g_idx], 0], bounds[pg_cols[t_idx, g_idx], 1]
    step = (hi - lo) / (n_tangents * 4.0**cut_round)
    fan = pg[t_idx, g_idx][:, None] + step[:, None] * _FAN[None, :]
    points = np.clip(fan, lo[:, None], hi[:, None])
    slope, icpt = _tangent_cuts(net, g_idx[:, None], points)
    cols = np.broadcast_to(z_cols[t_idx, g_idx][:, None], points.shape)
    pcols = np.broadcast_to(pg_cols[t_idx, g_idx][:, None], points.shape)
    return [tuple(np.ravel(a) for a in (cols, pcols, slope, icpt))]


def _objective(net, inputs: _Inputs, penalties: DispatchPenalties, layout: _Layout):
    """Cost vector (per period, scaled by dt) and the constant (curtailment, idle units)."""
    dt = inputs.dt_hours
    cost = np.zeros(layout.n_vars)
    curtail = np.broadcast_to(np.asarray(penalties.curtailment, float), (net.n_gen,))
    cost[layout.columns("z")] = dt
    cost[layout.columns("shed")] = penalties.voll * dt
    cost[layout.columns("spill")] = penalties.spill * dt
    cost[layout.columns("pg")] = -curtail[None, :] * dt
    constant = float(np.sum(curtail[None, :] * inputs.gen_upper_mw) * dt)
    idle_cost = generation_cost_per_h(net, np.zeros(net.n_gen))[None, :] * (1.0 - inputs.cost_on)
    constant -= float(np.sum(idle_cost) * dt)  # offline units' epigraph still holds c0
    return cost, constant, curtail


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
    penalties: DispatchPenalties = DispatchPenalties(),
    cost_rtol: float = 1e-7,
    n_tangents: int = 8,
    max_cut_rounds: int = 60,
) -> DispatchSolution:
    """Least-cost dispatch over T periods with perfect knowledge of every period.

    Args: load_mw [T, N] bus demand; gen_available_mw [T, G] (or [G]) upper limits this period
    (renewable availability, 0 for a tripped unit; default pmax); branch_in_service [T, L] bool;
    prev_pg_mw [G] dispatch before period 0 (ramp anchor; None = free start); storage units and
    their initial energy; gen_online [T, G] bool: an offline unit produces nothing and pays no
    cost (not even its no-load c0). Ramp limit per period = RAMP_AGC (MW/min) * 60 * dt_hours.

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
    inputs = _Inputs(
        load_mw=load,
        gen_lower_mw=np.minimum(net.gen_pmin[None, :], available),
        gen_upper_mw=available,
        branch_in_service=_per_period(branch_in_service, True, (n_periods, net.n_branch), bool),
        ramp_mw=np.where(ramp_per_min > 0, ramp_per_min * 60.0 * dt_hours, np.inf),
        prev_pg_mw=_checked_vector(prev_pg_mw, net.n_gen, "prev_pg_mw"),
        energy0_mwh=_checked_vector(energy0, storage.n, "storage_energy0_mwh"),
        dt_hours=float(dt_hours),
        cost_on=online.astype(float),
    )
    layout = _Layout(net.n_gen, net.n_bus, storage.n, n_periods)
    problem = _Problem(net, storage, inputs, layout, _periods(net, inputs.branch_in_service))
    bounds = _variable_bounds(problem)
    cost, constant, curtail = _objective(net, inputs, penalties, layout)
    lp = LinearProgram(cost, bounds, use_highs=_HIGHS is not None)
    for rows in (
        _balance_rows(problem),
        _storage_rows(storage, inputs, layout),
        _ramp_rows(inputs, layout),
        _cut_rows(
            _initial_cuts(net, bounds, layout, n_tangents)
            + _anchor_cuts(net, bounds, layout, inputs.prev_pg_mw)
        ),
    ):
        lp.add_rows(rows)
    limited = np.zeros((layout.n_periods, net.n_branch), bool)
    for cut_round in itertools.count(1):  # ends: limits are finite, cuts stop at max rounds
        x, objective = lp.solve()
        flow, theta = _network_state(problem.periods, _bus_injection(x, problem))
        new_limits = _limits_to_add(net, flow, limited)
        pg, z = x[layout.columns("pg")], x[layout.columns("z")]
        true_cost = generation_cost_per_h(net, pg)
        shortfall = (true_cost - z) * inputs.dt_hours
        lower_bound = objective + constant
        tolerance = cost_rtol * max(abs(lower_bound), 1.0)
        cuts_done = np.sum(shortfall) <= tolerance or cut_round >= max_cut_rounds
        if cuts_done and not new_limits.any():
            break
        if new_limits.any():
            limited |= new_limits
            lp.add_rows(_branch_rows(problem, *np.nonzero(new_limits)))
        if not cuts_done:
            refine = _refining_cuts(
                net, bounds, layout, pg, shortfall, tolerance, cut_round, n_tangents
            )
            lp.add_rows(_cut_rows(refine))
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
