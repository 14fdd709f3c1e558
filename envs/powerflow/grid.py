"""The static network as device arrays: :class:`Grid` and :func:`build_grid`.

Indexing is 0-based and consecutive: buses in file order, in-service branches
in file order, in-service generators in file order. Everything that depends on
the topology only (PTDF, LODF, the DC bus matrix inverse) is computed once here
in float64 NumPy and then cast to the requested dtype.

Bus types follow MATPOWER's ``bustypes``: a PV or reference bus without an
in-service generator becomes PQ; if no reference bus has a generator the first
PV bus becomes the reference (and :func:`check_case` says so); reference buses
after the first become PV. Isolated buses (type 4) keep their row but carry no
load, branch or generator.

A case the environment cannot run is a :class:`envs.powerflow.case.CaseError` with one line
naming the problem: no in-service generator with Pmax > 0 (no controllable unit),
no bus of type 3 or 2 with an in-service generator (no slack), a bus with load or
generation that no in-service branch path joins to the slack (islanded at base
load), an in-service branch with zero reactance or a negative rating. Branches
without a rating (rateA 0, MATPOWER's "unlimited", or 9900 and above) get one by
the rule of ``envs/powerflow/cases/RATINGS.md``.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from flax import struct
from jax import numpy as jnp

from envs.powerflow import ratings
from envs.powerflow.case import Case, CaseError, graph_layout
from envs.powerflow.connectivity import slack_component
from envs.powerflow.cost_curves import cost_rate, costs_from_gencost
from envs.powerflow.jacobian_pattern import jacobian_structure
from envs.powerflow.matpower import (  # MATPOWER column indices
    BR_B,
    BR_R,
    BR_STATUS,
    BR_X,
    BS,
    BUS_I,
    BUS_TYPE,
    F_BUS,
    GEN_BUS,
    GEN_STATUS,
    GS,
    PD,
    PG,
    PMAX,
    PMIN,
    QD,
    QG,
    QMAX,
    QMIN,
    RAMP_AGC,
    RATE_A,
    SHIFT,
    T_BUS,
    TAP,
    VA,
    VG,
    VM,
    VMAX,
    VMIN,
)
from envs.powerflow.ptdf import dc_sensitivities, incidence_matrix

PQ, PV, REF, ISOLATED = 1, 2, 3, 4
BRIDGE_TOL = 1e-6  # |1 - PTDF_kk| below this: removing branch k islands the grid
LISTED_BUSES = 5  # bus numbers named in one error line at most


@struct.dataclass
class Grid:
    """Static network data (see module docstring for the indexing rules)."""

    name: str = struct.field(pytree_node=False)
    base_mva: float = struct.field(pytree_node=False)
    n_bus: int = struct.field(pytree_node=False)
    n_branch: int = struct.field(pytree_node=False)
    n_gen: int = struct.field(pytree_node=False)
    slack: int = struct.field(pytree_node=False)
    pv_buses: tuple = struct.field(pytree_node=False)  # bus indices of PV buses (AC unknowns)
    pq_buses: tuple = struct.field(pytree_node=False)  # bus indices of PQ buses (AC unknowns)
    # Every branch_dc_b > 0 (no series capacitor): the reduced DC B matrix of any topology is
    # then symmetric positive definite and the dense masked solve can use Cholesky.
    dc_susceptance_positive: bool = struct.field(pytree_node=False)

    bus_type: jnp.ndarray  # [N] int32: 1 PQ, 2 PV, 3 ref
    bus_pd: jnp.ndarray  # [N] MW
    bus_qd: jnp.ndarray  # [N] MVAr
    bus_gs: jnp.ndarray  # [N] MW consumed at 1 p.u. voltage
    bus_bs: jnp.ndarray  # [N] MVAr injected at 1 p.u. voltage
    bus_vmin: jnp.ndarray  # [N] p.u.
    bus_vmax: jnp.ndarray  # [N] p.u.
    bus_xy: jnp.ndarray  # [N, 2] drawing coordinates
    bus_vm_set: jnp.ndarray  # [N] p.u.: first in-service gen's VG at PV/ref buses, file Vm else
    bus_va0: jnp.ndarray  # [N] rad: file angles (slack angle reference, AC start)
    bus_has_device: jnp.ndarray  # [N] bool: carries load, shunt or an in-service generator
    bus_energised0: jnp.ndarray  # [N] bool: connected to the slack with every branch in service

    branch_from: jnp.ndarray  # [L] int32
    branch_to: jnp.ndarray  # [L] int32
    branch_r: jnp.ndarray  # [L] p.u.
    branch_x: jnp.ndarray  # [L] p.u.
    branch_b: jnp.ndarray  # [L] p.u. total line charging
    branch_tap: jnp.ndarray  # [L] off-nominal ratio (1.0 where the file has 0)
    branch_shift: jnp.ndarray  # [L] rad
    branch_rating: jnp.ndarray  # [L] MVA, finite and > 0
    branch_dc_b: jnp.ndarray  # [L] p.u.: DC susceptance 1 / (x · tap)
    branch_is_bridge: jnp.ndarray  # [L] bool: its outage alone islands part of the grid

    gen_bus: jnp.ndarray  # [G] int32
    gen_pmin: jnp.ndarray  # [G] MW
    gen_pmax: jnp.ndarray  # [G] MW
    gen_qmin: jnp.ndarray  # [G] MVAr
    gen_qmax: jnp.ndarray  # [G] MVAr
    gen_pg0: jnp.ndarray  # [G] MW case dispatch
    gen_qg0: jnp.ndarray  # [G] MVAr
    gen_vg: jnp.ndarray  # [G] p.u.
    gen_ramp: jnp.ndarray  # [G] MW/min (RAMP_AGC)
    gen_cost_c2: jnp.ndarray  # [G] $/MW²h
    gen_cost_c1: jnp.ndarray  # [G] $/MWh
    gen_cost_c0: jnp.ndarray  # [G] $/h
    gen_cost_pwl_mw: jnp.ndarray  # [G, K] breakpoints, padded by repeating the last
    gen_cost_pwl_usd: jnp.ndarray  # [G, K] $/h at the breakpoints
    gen_cost_is_pwl: jnp.ndarray  # [G] bool

    gen_to_bus: jnp.ndarray  # [N, G] 1 where generator g sits on bus n
    branch_bus: jnp.ndarray  # [L, N] +1 at the from bus, -1 at the to bus
    ptdf: jnp.ndarray  # [L, N] MW flow per MW injected at a bus and withdrawn at the slack
    branch_ptdf: jnp.ndarray  # [L, L] flow on l per MW transferred from k's from to its to bus
    lodf: jnp.ndarray  # [L, L] flow change on l per MW pre-outage flow on k (0 for bridges)
    dc_bus_inverse: jnp.ndarray  # [N, N] inverse of the reduced DC B matrix (0 at slack/dead)
    ac_jacobian: (
        Any  # envs.powerflow.acpf.JacobianStructure: sparsity and LU schedule of the AC Jacobian
    )


def check_case(case: Case) -> tuple[str, ...]:
    """Runs every check :func:`build_grid` runs (NumPy only, no device arrays) and returns
    one line per thing derived from the data (the slack chosen, the ratings filled in).
    Raises :class:`envs.powerflow.case.CaseError` for a case the environment cannot run."""
    net = _network_numpy(case)
    net.update(_dc_matrices(net))
    _branch_ratings(case, net)
    return tuple(net["_notes"])


def build_grid(case: Case, dtype=jnp.float32) -> Grid:
    """Builds the device-array network of ``case`` (arrays cast to ``dtype``)."""
    net = _network_numpy(case)
    net.update(_dc_matrices(net))
    net["branch_rating"] = _branch_ratings(case, net)
    net.pop("_notes")  # check_case reports them
    float_arrays = {k: jnp.asarray(v, dtype=dtype) for k, v in net.items() if _is_float(k, v)}
    other_arrays = {k: jnp.asarray(v) for k, v in net.items() if not _is_float(k, v)}
    n_bus = case.bus.shape[0]
    pq_buses = tuple(int(i) for i in np.flatnonzero(net["bus_type"] == PQ))
    structure = _ac_structure(n_bus, net["_slack"], pq_buses, net)
    return Grid(
        ac_jacobian=structure,
        name=case.name,
        base_mva=float(case.base_mva),
        n_bus=n_bus,
        n_branch=int(net["branch_from"].shape[0]),
        n_gen=int(net["gen_bus"].shape[0]),
        slack=int(net.pop("_slack")),
        pv_buses=tuple(int(i) for i in np.flatnonzero(net["bus_type"] == PV)),
        pq_buses=pq_buses,
        dc_susceptance_positive=bool(np.all(net["branch_dc_b"] > 0)),
        **{k: v for k, v in {**float_arrays, **other_arrays}.items() if not k.startswith("_")},
    )


def _ac_structure(n_bus: int, slack: int, pq_buses: tuple, net: dict):
    structure = jacobian_structure(n_bus, slack, pq_buses, net["branch_from"], net["branch_to"])
    return type(structure)(*(jnp.asarray(array) for array in structure))


def _is_float(key: str, value) -> bool:
    return not key.startswith("_") and np.asarray(value).dtype.kind == "f"


def lift(array: jnp.ndarray, ndim: int) -> jnp.ndarray:
    """Prepends size-1 axes so ``array`` broadcasts against an ``ndim``-dimensional batch.

    The project forbids implicit rank promotion; this makes it explicit.
    """
    array = jnp.asarray(array)
    return array.reshape((1,) * (ndim - array.ndim) + array.shape)


def generation_cost(grid: Grid, pg_mw: jnp.ndarray) -> jnp.ndarray:
    """Cost rate [..., G] in $/h of each generator at output ``pg_mw`` [..., G] MW
    (``envs.powerflow.cost_curves.cost_rate``: quadratic or piecewise linear)."""
    return cost_rate(
        jnp,
        grid.gen_cost_c2,
        grid.gen_cost_c1,
        grid.gen_cost_c0,
        grid.gen_cost_pwl_mw,
        grid.gen_cost_pwl_usd,
        grid.gen_cost_is_pwl,
        pg_mw,
    )


# ----------------------------------------------------------------------------
# NumPy construction (float64, once per case).
# ----------------------------------------------------------------------------


def _network_numpy(case: Case) -> dict:
    bus = case.bus
    n_bus = bus.shape[0]
    index_of = {int(number): i for i, number in enumerate(bus[:, BUS_I])}
    isolated = bus[:, BUS_TYPE] == ISOLATED
    net = {"_notes": []}
    net.update(_branches(case, index_of, isolated))
    net.update(_generators(case, index_of, isolated))
    _check_controllable(case, net)
    bus_type, slack = _bus_types(case, net["gen_bus"], net["_notes"])
    net["_slack"] = slack
    net["bus_type"] = bus_type.astype(np.int32)
    net["bus_pd"] = np.where(isolated, 0.0, bus[:, PD])
    net["bus_qd"] = np.where(isolated, 0.0, bus[:, QD])
    net["bus_gs"] = np.where(isolated, 0.0, bus[:, GS])
    net["bus_bs"] = np.where(isolated, 0.0, bus[:, BS])
    net["bus_vmin"], net["bus_vmax"] = bus[:, VMIN], bus[:, VMAX]
    net["bus_va0"] = np.deg2rad(bus[:, VA])
    net["bus_vm_set"] = _voltage_setpoints(bus[:, VM], bus_type, net["gen_bus"], net["gen_vg"])
    gen_to_bus = np.zeros((n_bus, len(net["gen_bus"])))
    gen_to_bus[net["gen_bus"], np.arange(len(net["gen_bus"]))] = 1.0
    net["gen_to_bus"] = gen_to_bus
    net["branch_bus"] = incidence_matrix(n_bus, net["branch_from"], net["branch_to"])
    load_or_shunt = (net["bus_pd"] != 0) | (net["bus_qd"] != 0) | (net["bus_gs"] != 0)
    net["bus_has_device"] = load_or_shunt | (net["bus_bs"] != 0) | (gen_to_bus.sum(1) > 0)
    net["bus_energised0"] = slack_component(n_bus, net["branch_from"], net["branch_to"], slack)
    _check_islands(case, net, slack)
    if case.bus_xy is not None and case.bus_xy.shape == (n_bus, 2):
        net["bus_xy"] = case.bus_xy
    else:
        net["bus_xy"] = graph_layout(n_bus, net["branch_from"], net["branch_to"])
    return net


def _branches(case: Case, index_of: dict, isolated: np.ndarray) -> dict:
    branch = case.branch
    from_bus = np.array([index_of[int(b)] for b in branch[:, F_BUS]], dtype=np.int32)
    to_bus = np.array([index_of[int(b)] for b in branch[:, T_BUS]], dtype=np.int32)
    on = (branch[:, BR_STATUS] != 0) & ~isolated[from_bus] & ~isolated[to_bus]
    tap = np.where(branch[:, TAP] == 0, 1.0, branch[:, TAP])
    x = branch[on, BR_X]
    for flagged, problem in (
        (branch[:, BR_X] == 0, "zero reactance x"),
        (branch[:, RATE_A] < 0, "a negative rating rateA"),
    ):
        bad = np.flatnonzero(on & flagged)
        if bad.size:
            first = branch[bad[0]]
            raise CaseError(
                f"case {case.name}: {bad.size} in-service branch(es) with {problem}, the "
                f"first from bus {first[F_BUS]:g} to bus {first[T_BUS]:g} (mpc.branch row "
                f"{bad[0] + 1})"
            )
    return {
        "branch_from": from_bus[on],
        "branch_to": to_bus[on],
        "branch_r": branch[on, BR_R],
        "branch_x": x,
        "branch_b": branch[on, BR_B],
        "branch_tap": tap[on],
        "branch_shift": np.deg2rad(branch[on, SHIFT]),
        "branch_dc_b": 1.0 / (x * tap[on]),
        "_rate_a": branch[on, RATE_A],
    }


def _generators(case: Case, index_of: dict, isolated: np.ndarray) -> dict:
    gen = case.gen
    gen_bus = np.array([index_of[int(b)] for b in gen[:, GEN_BUS]], dtype=np.int32)
    on = (gen[:, GEN_STATUS] > 0) & ~isolated[gen_bus]
    arrays = {
        "gen_bus": gen_bus[on],
        "gen_pmin": gen[on, PMIN],
        "gen_pmax": gen[on, PMAX],
        "gen_qmin": gen[on, QMIN],
        "gen_qmax": gen[on, QMAX],
        "gen_pg0": gen[on, PG],
        "gen_qg0": gen[on, QG],
        "gen_vg": gen[on, VG],
        "gen_ramp": gen[on, RAMP_AGC],
    }
    gencost = case.gencost[on] if case.gencost is not None else None
    costs = costs_from_gencost(gencost, int(on.sum()), f"case {case.name}")
    arrays.update({f"gen_cost_{key}": value for key, value in costs.items()})
    return arrays


def _check_controllable(case: Case, net: dict) -> None:
    if not np.any(net["gen_pmax"] > 0):
        raise CaseError(
            f"case {case.name} has no controllable unit: no in-service generator with Pmax > 0"
        )


def _bus_types(case: Case, gen_bus: np.ndarray, notes: list[str]):
    """MATPOWER's ``bustypes``: the first reference bus with a generator is the slack, else
    the first PV bus with one (noted); none of either is an error."""
    file_type, numbers = case.bus[:, BUS_TYPE], case.bus[:, BUS_I]
    n_bus = len(file_type)
    has_gen = np.zeros(n_bus, dtype=bool)
    has_gen[gen_bus] = True
    bus_type = np.where(file_type == ISOLATED, PQ, file_type).astype(np.int64)
    bus_type[(bus_type != PQ) & ~has_gen] = PQ
    refs = np.flatnonzero(bus_type == REF)
    if refs.size == 0:
        pvs = np.flatnonzero(bus_type == PV)
        if pvs.size == 0:
            raise CaseError(
                f"case {case.name} has no slack: no bus of type 3 (reference) or 2 (PV) "
                "carries an in-service generator"
            )
        refs = pvs[:1]
        bus_type[refs[0]] = REF
        notes.append(
            f"no reference bus with an in-service generator: bus {numbers[refs[0]]:g}, the "
            "first PV bus with one, is the slack (MATPOWER's rule)"
        )
    bus_type[refs[1:]] = PV
    return bus_type, int(refs[0])


def _check_islands(case: Case, net: dict, slack: int) -> None:
    """Every bus with load or generation must reach the slack over in-service branches."""
    live_gen = np.zeros(len(net["bus_pd"]), dtype=bool)
    live_gen[net["gen_bus"]] = True
    needed = (net["bus_pd"] != 0) | (net["bus_gs"] != 0) | live_gen
    cut_off = np.flatnonzero(needed & ~net["bus_energised0"])
    if cut_off.size:
        numbers = ", ".join(f"{n:g}" for n in case.bus[cut_off[:LISTED_BUSES], BUS_I])
        more = f" and {cut_off.size - LISTED_BUSES} more" if cut_off.size > LISTED_BUSES else ""
        raise CaseError(
            f"case {case.name} is islanded at base load: bus(es) {numbers}{more} with load or "
            f"generation have no path of in-service branches to the slack bus "
            f"{case.bus[slack, BUS_I]:g}"
        )


def _voltage_setpoints(file_vm, bus_type, gen_bus, gen_vg) -> np.ndarray:
    vm = file_vm.astype(np.float64).copy()
    for g in range(len(gen_bus) - 1, -1, -1):  # reversed so the first gen on a bus wins
        if bus_type[gen_bus[g]] != PQ:
            vm[gen_bus[g]] = gen_vg[g]
    return vm


def _dc_matrices(net: dict) -> dict:
    solved = net["bus_energised0"].copy()
    solved[net["_slack"]] = False  # reduced system: slack and dead buses removed
    ptdf, inverse, _ = dc_sensitivities(net["branch_bus"], net["branch_dc_b"], solved)
    branch_ptdf = ptdf @ net["branch_bus"].T  # [L, L]
    diagonal = np.diag(branch_ptdf)
    is_bridge = np.abs(1.0 - diagonal) < BRIDGE_TOL
    denominator = np.where(is_bridge, 1.0, 1.0 - diagonal)
    lodf = np.where(is_bridge[None, :], 0.0, branch_ptdf / denominator[None, :])
    np.fill_diagonal(lodf, np.where(is_bridge, 0.0, -1.0))
    return {
        "ptdf": ptdf,
        "branch_ptdf": branch_ptdf,
        "lodf": lodf,
        "branch_is_bridge": is_bridge,
        "dc_bus_inverse": inverse,
    }


def dc_flows_numpy(net: dict, p_bus_mw: np.ndarray, base_mva: float) -> np.ndarray:
    """DC branch flows [L] MW (phase shifters included) for a NumPy network dict and net
    injections ``p_bus_mw`` with shunt conductance already taken out.

    The ratings rule needs base flows while the ``Grid`` is being built, before any device
    array exists; everywhere else the flow is ``envs.powerflow.dcpf.dc_power_flow`` (tested equal).
    """
    shift_flow = -net["branch_dc_b"] * net["branch_shift"]  # MATPOWER's Pfinj, p.u.
    shift_injection = net["branch_bus"].T @ shift_flow  # Pbusinj
    p_pu = p_bus_mw / base_mva - shift_injection
    return (net["ptdf"] @ p_pu + shift_flow) * base_mva


def _branch_ratings(case: Case, net: dict) -> np.ndarray:
    """rateA where the case has one; the documented rule of envs/powerflow/ratings.py elsewhere."""
    rate_a = net.pop("_rate_a")
    missing = ratings.needs_rating(rate_a)
    if not missing.any():
        return rate_a
    net["_notes"].append(
        f"{int(missing.sum())} of {missing.size} in-service branches have no rating (rateA 0 "
        f"or >= {ratings.UNRATED_MVA:g}): rated by the rule of envs/powerflow/cases/RATINGS.md "
        "(DC base flows)"
    )
    injection = ratings.dispatch_injection_mw(
        net["bus_pd"], net["bus_gs"], net["gen_to_bus"], net["gen_pg0"], load_level=1.0
    )
    derived = ratings.ratings_from_base_flows(dc_flows_numpy(net, injection, case.base_mva))
    return np.where(missing, derived, rate_a)
