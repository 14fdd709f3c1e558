"""DC power flow in JAX, batched over any leading axes: :func:`dc_power_flow`.

Model (MATPOWER's ``makeBdc``/``rundcpf``): branch susceptance b = 1/(x·tap),
phase shifters enter as the fixed injections ``Pfinj = -b·shift`` and
``Pbusinj = Aᵀ·Pfinj``, bus shunt conductance Gs is consumed as load at 1 p.u.
voltage, and the slack bus absorbs any imbalance.

Two paths behind the one function:

* fixed topology (``branch_in_service=None``): two matmuls, angles with the
  precomputed inverse of the reduced B matrix and flows with the PTDF (a caller
  that only uses the flows lets XLA drop the first);
* any per-grid outage mask: B is rebuilt from the mask and solved densely
  (:func:`masked_flow`, the plain reference). A connectivity sweep from the slack
  (:func:`energised_buses`) marks the buses still energised; the dead part is
  zeroed, flagged and never produces NaN.

The environment's step solves one grid at a time under ``jax.vmap`` and takes a
low-rank fast path for the usual few outages (``envs.powerflow.dc_outages.dc_flow``,
tested equal to :func:`dc_power_flow`).
"""

from __future__ import annotations

import functools
from typing import NamedTuple

import jax
from jax import numpy as jnp

from envs.powerflow.grid import Grid, lift
from envs.powerflow.ptdf import reference_bus


class IslandChoice(NamedTuple):
    """What picks the island kept energised when outages split a grid (``env.island_rule``
    "largest_load"): of the islands that hold an online conventional unit, the one with the
    most demand, the slack's on a tie. Without it (None) the slack's island is kept, whatever
    the others hold."""

    demand_mw: jnp.ndarray  # [..., N] demand at each bus
    has_unit: jnp.ndarray  # [..., N] bool: an online conventional unit at the bus


class DCFlow(NamedTuple):
    theta: jnp.ndarray  # [..., N] rad (slack at its case angle; 0 on dead buses)
    flow_mw: jnp.ndarray  # [..., L] from-end active flow, 0 on outaged or dead branches
    islanded: jnp.ndarray  # [...] bool: a bus with load, shunt or generator is not energised
    bus_energised: jnp.ndarray  # [..., N] bool: in the island kept (the slack's by default)


def dc_power_flow(
    grid: Grid, p_bus_mw: jnp.ndarray, branch_in_service: jnp.ndarray | None = None
) -> DCFlow:
    """DC power flow for net injections ``p_bus_mw`` [..., N] (generation - load, MW).

    ``branch_in_service`` [..., L] bool (None: all in service) may remove any
    number of branches per grid; outaged branches carry zero flow.
    """
    if branch_in_service is None:
        return _fixed_topology_flow(grid, p_bus_mw)
    return masked_flow(grid, p_bus_mw, branch_in_service)


def _shift_flow_pu(grid: Grid) -> jnp.ndarray:
    """MATPOWER's Pfinj [L]: the flow a phase shifter drives with equal bus angles."""
    return -grid.branch_dc_b * grid.branch_shift


def _injection_pu(grid: Grid, p_bus_mw, shift_flow_pu) -> jnp.ndarray:
    """Net bus injection in p.u. with shunt conductance and shifter injections removed."""
    nd = p_bus_mw.ndim
    shift_injection = jnp.matmul(shift_flow_pu, grid.branch_bus)  # MATPOWER's Pbusinj
    return (p_bus_mw - lift(grid.bus_gs, nd)) / grid.base_mva - lift(shift_injection, nd)


def _flows_from_angles(grid: Grid, theta, shift_flow_pu) -> jnp.ndarray:
    angle_difference = theta[..., grid.branch_from] - theta[..., grid.branch_to]
    nd = theta.ndim
    flow_pu = lift(grid.branch_dc_b, nd) * angle_difference + lift(shift_flow_pu, nd)
    return flow_pu * grid.base_mva


def _fixed_topology_flow(grid: Grid, p_bus_mw) -> DCFlow:
    shift_flow = _shift_flow_pu(grid)
    p_pu = _injection_pu(grid, p_bus_mw, shift_flow)
    # The reduced inverse is symmetric, so p @ inverse == (inverse @ p) per grid.
    theta = jnp.matmul(p_pu, grid.dc_bus_inverse) + grid.bus_va0[grid.slack]
    energised = jnp.broadcast_to(grid.bus_energised0, p_bus_mw.shape)
    theta = jnp.where(energised, theta, 0.0)
    # Flows straight from the PTDF rather than from theta: a gather along the last
    # axis is slow on CPU, and a caller that only uses flows lets XLA drop theta.
    nd = p_bus_mw.ndim
    flow = (jnp.matmul(p_pu, grid.ptdf.T) + lift(shift_flow, nd)) * grid.base_mva
    live_branch = lift(grid.bus_energised0[grid.branch_from], nd)
    flow = jnp.where(live_branch, flow, 0.0)
    return DCFlow(theta, flow, _islanded(grid, energised, p_bus_mw), energised)


def _islanded(grid: Grid, energised, p_bus_mw) -> jnp.ndarray:
    has_something = lift(grid.bus_has_device, p_bus_mw.ndim) | (p_bus_mw != 0)
    return jnp.any(has_something & ~energised, axis=-1)


def energised_buses(
    grid: Grid, branch_in_service: jnp.ndarray, choice: IslandChoice | None = None
) -> jnp.ndarray:
    """[..., N] bool: the buses of the island kept: connected to the slack through in-service
    branches, or the island ``choice`` picks (``IslandChoice``).

    Connected components by min-label propagation: every bus starts with its own index as
    label, each round every in-service branch pulls both ends to the smaller label
    (scatter-min, O(L)) and every bus then takes its label's label (pointer jumping), until
    nothing changes. Labels only decrease and stay inside their component, so at the fixed
    point each component carries one label. The jump about halves the rounds of a plain
    hop-by-hop sweep from the slack (benchmarks/README.md, "Outage tiers and connectivity").
    """
    batch = branch_in_service.shape[:-1]
    n, f, t = grid.n_bus, grid.branch_from, grid.branch_to
    start = jnp.broadcast_to(jnp.arange(n, dtype=jnp.int32), (*batch, n))

    def merge(state):
        label, _, rounds = state
        pulled = jnp.where(
            branch_in_service, jnp.minimum(label[..., f], label[..., t]), jnp.int32(n)
        )
        merged = label.at[..., f].min(pulled).at[..., t].min(pulled)
        merged = jnp.take_along_axis(merged, merged, axis=-1)
        return merged, jnp.any(merged != label), rounds + 1

    def keep_merging(state):
        _, changed, rounds = state
        return changed & (rounds < n)

    label, _, _ = jax.lax.while_loop(keep_merging, merge, (start, jnp.array(True), 0))
    kept = label[..., grid.slack]
    if choice is not None:
        kept = _chosen_label(label, kept, choice)
    return label == kept[..., None]


def _chosen_label(label, slack_label, choice: IslandChoice) -> jnp.ndarray:
    """[...] the label of the island ``choice`` keeps (see ``IslandChoice``); ``label`` [..., N]
    as ``energised_buses`` leaves it (each island labelled by one of its buses). ``member``
    [..., bus, island]: O(N^2) a grid, paid only where outages may island."""
    member = label[..., :, None] == lift(jnp.arange(label.shape[-1]), label.ndim + 1)
    demand = jnp.sum(jnp.where(member, choice.demand_mw[..., :, None], 0.0), axis=-2)
    fed = jnp.any(member & choice.has_unit[..., :, None], axis=-2)
    worth = jnp.where(fed, demand, -1.0)  # an island without a unit cannot stand
    best = jnp.argmax(worth, axis=-1)
    best_worth = jnp.take_along_axis(worth, best[..., None], axis=-1)[..., 0]
    slack_worth = jnp.take_along_axis(worth, slack_label[..., None], axis=-1)[..., 0]
    return jnp.where(best_worth > slack_worth, best, slack_label)


def _masked_bus_matrix(grid: Grid, weight) -> jnp.ndarray:
    """B = Aᵀ diag(weight) A for per-grid branch weights [..., L] -> [..., N, N]."""
    f, t = grid.branch_from, grid.branch_to
    shape = (*weight.shape[:-1], grid.n_bus, grid.n_bus)
    bbus = jnp.zeros(shape, dtype=weight.dtype)
    bbus = bbus.at[..., f, f].add(weight).at[..., t, t].add(weight)
    return bbus.at[..., f, t].add(-weight).at[..., t, f].add(-weight)


def masked_flow(grid: Grid, p_bus_mw, branch_in_service, energised=None) -> DCFlow:
    """The dense masked solve (``dc_power_flow`` with a mask, the reference of the low-rank
    fast path); ``energised`` [..., N]: ``energised_buses`` of the mask when the caller has it
    already."""
    batch = jnp.broadcast_shapes(p_bus_mw.shape[:-1], branch_in_service.shape[:-1])
    p_bus_mw = jnp.broadcast_to(p_bus_mw, (*batch, grid.n_bus))
    in_service = jnp.broadcast_to(branch_in_service, (*batch, grid.n_branch))
    if energised is None:
        energised = energised_buses(grid, in_service)
    energised = jnp.broadcast_to(energised, (*batch, grid.n_bus))
    live_branch = in_service & energised[..., grid.branch_from]
    nd = live_branch.ndim
    shift_flow = jnp.where(live_branch, lift(_shift_flow_pu(grid), nd), 0.0)
    p_pu = _injection_pu(grid, p_bus_mw, shift_flow)
    bbus = _masked_bus_matrix(grid, jnp.where(live_branch, lift(grid.branch_dc_b, nd), 0.0))
    # Unknown angles: energised buses but the reference. The rest get identity rows.
    reference = reference_bus(grid, energised)
    unknown = energised & (lift(jnp.arange(grid.n_bus), nd) != reference[..., None])
    both_unknown = unknown[..., :, None] & unknown[..., None, :]
    reduced = jnp.where(both_unknown, bbus, 0.0) + _diag_embed(~unknown, bbus.dtype)
    rhs = jnp.where(unknown, p_pu, 0.0)
    theta = _solve_reduced(grid, reduced, rhs) + grid.bus_va0[grid.slack]
    theta = jnp.where(energised, theta, 0.0)
    flow = jnp.where(live_branch, _flows_from_angles(grid, theta, shift_flow), 0.0)
    return DCFlow(theta, flow, _islanded(grid, energised, p_bus_mw), energised)


def _solve_reduced(grid: Grid, reduced, rhs) -> jnp.ndarray:
    """Solves the reduced B system [..., N, N] x = [..., N].

    With positive susceptances it is symmetric positive definite: Cholesky and two triangular
    solves, LAPACK calls only. ``jnp.linalg.solve``'s LU also turns its row exchanges into a
    permutation, which XLA:CPU runs as a loop of N steps of tiny kernels (benchmarks/README.md,
    "Environment throughput").
    """
    if not grid.dc_susceptance_positive:  # a series capacitor: indefinite, LU with pivoting
        return jnp.linalg.solve(reduced, rhs[..., None])[..., 0]
    lower = jax.lax.linalg.cholesky(reduced, symmetrize_input=False)
    solve = functools.partial(jax.lax.linalg.triangular_solve, left_side=True, lower=True)
    half = solve(lower, rhs[..., None])
    return solve(lower, half, transpose_a=True)[..., 0]


def _diag_embed(values, dtype) -> jnp.ndarray:
    n = values.shape[-1]
    return values[..., :, None].astype(dtype) * lift(jnp.eye(n, dtype=dtype), values.ndim + 1)
