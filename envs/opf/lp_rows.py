"""The dispatch LP of ``envs.opf.dc_opf``: its columns, bounds, objective and constraint rows.

Per period t the variables are ``pg [G]`` MW, ``z [G]`` $/h (cost epigraph), ``shed [N]`` MW,
``spill [N]`` MW, ``charge [S]`` MW, ``discharge [S]`` MW, ``energy [S]`` MWh (``Layout``).
The rows: one power balance per island and period, battery energy balances, ramp limits
between periods, and branch ratings on the injections through the PTDF
(``envs.opf.topology_cache``), which the solve loop adds only where they bind.
"""

from __future__ import annotations

import functools
from typing import NamedTuple

import numpy as np

from envs.opf.dc_network import DCNetwork, DispatchPenalties, StorageUnits, generation_cost_per_h
from envs.opf.lp import SparseRows
from envs.opf.topology_cache import Periods


class Layout(NamedTuple):
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
def _column_block(layout: Layout, name: str) -> np.ndarray:
    offset = 0
    for key, size in layout.sizes.items():
        if key == name:
            break
        offset += size
    local = offset + np.arange(layout.sizes[name])
    block = np.arange(layout.n_periods)[:, None] * layout.width + local[None, :]
    block.flags.writeable = False
    return block


class Inputs(NamedTuple):
    """Validated per-period data, float64, leading axis T."""

    load_mw: np.ndarray  # [T, N]
    shed_max_mw: np.ndarray  # [T, N] the most each bus may shed (at most its load)
    gen_lower_mw: np.ndarray  # [T, G]
    gen_upper_mw: np.ndarray  # [T, G]
    branch_in_service: np.ndarray  # [T, L] bool
    ramp_mw: np.ndarray  # [G] per period, inf = unlimited
    prev_pg_mw: np.ndarray | None  # [G]
    energy0_mwh: np.ndarray  # [S]
    dt_hours: float
    cost_on: np.ndarray  # [T, G] 1 where the unit is online and pays its cost, else 0


class Problem(NamedTuple):
    """One dispatch problem: what the rows, the bounds and the results are built from."""

    net: DCNetwork
    storage: StorageUnits
    inputs: Inputs
    layout: Layout
    periods: Periods


def variable_bounds(problem: Problem) -> np.ndarray:
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
    lo[cols("shed")], hi[cols("shed")] = 0.0, np.maximum(inputs.shed_max_mw, 0.0)
    lo[cols("spill")] = 0.0
    for name, cap in (
        ("charge", storage.power_mw),
        ("discharge", storage.power_mw),
        ("energy", storage.energy_mwh),
    ):
        lo[cols(name)], hi[cols(name)] = 0.0, np.broadcast_to(cap, cols(name).shape)
    return np.stack([lo, hi], axis=1)


def lp_objective(net, inputs: Inputs, penalties: DispatchPenalties, layout: Layout):
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


def balance_rows(problem: Problem) -> SparseRows:
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


def storage_rows(storage, inputs: Inputs, layout: Layout) -> SparseRows:
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


def ramp_rows(inputs: Inputs, layout: Layout) -> SparseRows:
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


def branch_rows(problem: Problem, t_idx, l_idx) -> SparseRows:
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


def bus_injection(x, problem: Problem) -> np.ndarray:
    """[T, N] net injection (generation + shed - spill + battery - load - shunts) in MW."""
    net, storage, inputs = problem.net, problem.storage, problem.inputs
    cols = problem.layout.columns
    injection = x[cols("shed")] - x[cols("spill")] - inputs.load_mw - net.bus_gs_mw[None, :]
    np.add.at(injection.T, net.gen_bus, x[cols("pg")].T)
    np.add.at(injection.T, storage.bus, (x[cols("discharge")] - x[cols("charge")]).T)
    return injection
