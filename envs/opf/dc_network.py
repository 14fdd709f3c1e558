"""The data of a DC dispatch problem in NumPy (float64): the network with its generators' cost
curves (``DCNetwork``, built from MATPOWER arrays or an ``envs.powerflow.grid.Grid``), the
batteries (``StorageUnits``) and the linear penalties (``DispatchPenalties``), and the true
generation cost of a dispatch (``generation_cost_per_h``)."""

from __future__ import annotations

import dataclasses

import numpy as np

from envs.powerflow import matpower as mp
from envs.powerflow.cost_curves import cost_rate, costs_from_gencost


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
