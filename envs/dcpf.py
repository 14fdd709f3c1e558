"""DC power flow in JAX, batched over any leading axes.

Model (MATPOWER's ``makeBdc``/``rundcpf``): branch susceptance b = 1/(x·tap),
phase shifters enter as the fixed injections ``Pfinj = -b·shift`` and
``Pbusinj = Aᵀ·Pfinj``, bus shunt conductance Gs is consumed as load at 1 p.u.
voltage, and the slack bus absorbs any imbalance.

Three ways in, fastest first:

* fixed topology (``branch_in_service=None``): two matmuls, angles with the
  precomputed inverse of the reduced B matrix and flows with the PTDF (a caller
  that only uses the flows lets XLA drop the first);
* up to K simultaneous outages given by index (:func:`dc_power_flow_outages`):
  base flows plus a K×K compensation solve (Woodbury) using the branch PTDF;
  outage sets that island buses are detected by det(I - H_KK) = 0 and re-solved
  densely;
* any per-grid outage mask: B is rebuilt from the mask and solved densely
  (fine up to a few hundred buses). A connectivity sweep from the slack marks
  the buses still energised; the dead part is zeroed, flagged and never
  produces NaN.

Calling with leading batch axes is faster than ``jax.vmap`` over single grids
for the outage paths (their island handling works on the whole batch).
"""

from __future__ import annotations

import functools
from typing import NamedTuple

import jax
import numpy as np
from jax import numpy as jnp

from envs.grid import Grid, lift

# |det(I - H_KK)| below this (float32, float64) means the outage set may island buses.
ISLAND_DET_TOL = (1e-4, 1e-8)
# dc_power_flow_outages re-solves islanding grids densely, batch // this + 1 at a time.
ISLAND_SLOT_DIVISOR = 128


class DCFlow(NamedTuple):
    theta: jnp.ndarray  # [..., N] rad (slack at its case angle; 0 on dead buses)
    flow_mw: jnp.ndarray  # [..., L] from-end active flow, 0 on outaged or dead branches
    islanded: jnp.ndarray  # [...] bool: a bus with load, shunt or generator lost the slack
    bus_energised: jnp.ndarray  # [..., N] bool: connected to the slack


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


def energised_buses(grid: Grid, branch_in_service: jnp.ndarray) -> jnp.ndarray:
    """[..., N] bool: buses connected to the slack through in-service branches.

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
    return label == label[..., grid.slack : grid.slack + 1]


def _masked_bus_matrix(grid: Grid, weight) -> jnp.ndarray:
    """B = Aᵀ diag(weight) A for per-grid branch weights [..., L] -> [..., N, N]."""
    f, t = grid.branch_from, grid.branch_to
    shape = (*weight.shape[:-1], grid.n_bus, grid.n_bus)
    bbus = jnp.zeros(shape, dtype=weight.dtype)
    bbus = bbus.at[..., f, f].add(weight).at[..., t, t].add(weight)
    return bbus.at[..., f, t].add(-weight).at[..., t, f].add(-weight)


def masked_flow(grid: Grid, p_bus_mw, branch_in_service, energised=None) -> DCFlow:
    """The dense masked solve; ``energised`` [..., N]: ``energised_buses`` of the mask when
    the caller has it already."""
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
    # Unknown angles: energised non-slack buses. The rest get identity rows.
    unknown = energised.at[..., grid.slack].set(False)
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


def dc_power_flow_outages(grid: Grid, p_bus_mw: jnp.ndarray, outages: jnp.ndarray) -> DCFlow:
    """DC power flow with up to K branches out per grid, K static.

    ``outages`` [..., K] int32 holds branch indices; -1 (or a repeated index)
    leaves a slot unused. The post-outage flows are the base flows plus the K×K
    compensation f' = f + H[:, K] (I - H_KK)⁻¹ f_K (H = branch PTDF). By the matrix
    determinant lemma det(B') = det(B)·det(I - H_KK), so an outage set islands
    buses exactly when that K×K determinant vanishes. Those grids (and any
    near-singular ones) are re-solved by the dense masked path, a fixed number
    at a time (see ISLAND_SLOT_DIVISOR).
    """
    batch = jnp.broadcast_shapes(p_bus_mw.shape[:-1], outages.shape[:-1])
    size = int(np.prod(batch, dtype=np.int64))
    p_flat = jnp.broadcast_to(p_bus_mw, (*batch, grid.n_bus)).reshape(size, grid.n_bus)
    outages = jnp.broadcast_to(outages, (*batch, outages.shape[-1])).reshape(size, -1)
    valid = _valid_outages(grid, outages)
    in_service = outage_mask(grid, outages)
    system = _compensation_matrix(grid, outages, valid)
    base = _fixed_topology_flow(grid, p_flat)
    index = jnp.where(valid, outages, 0)
    outaged_flow = jnp.where(valid, jnp.take_along_axis(base.flow_mw, index, axis=-1), 0.0)
    transfer, abs_det = solve_small(system, outaged_flow)  # [B, K] MW across each outage
    near_singular = abs_det < ISLAND_DET_TOL[jnp.finfo(system.dtype).bits >= 64]
    compensated = _compensated_flow(grid, base, transfer, index, in_service)
    flow = _resolve_islanding(grid, compensated, near_singular, p_flat, in_service)
    return DCFlow(*(x.reshape(*batch, *x.shape[1:]) for x in flow))


def _resolve_islanding(grid: Grid, flow: DCFlow, redo, p_bus_mw, in_service) -> DCFlow:
    """Re-solves the grids flagged in ``redo`` [B] with the dense masked path.

    They are taken ISLAND_SLOTS at a time in a while loop (usually zero rounds),
    which updates the batch in place rather than branching over all of it.
    """
    size = redo.shape[0]
    slots = min(size, size // ISLAND_SLOT_DIVISOR + 1)
    order = jnp.argsort(~redo, stable=True)  # flagged grids first
    rounds = (jnp.sum(redo) + slots - 1) // slots

    def one_round(state):
        flow, done = state
        index = jax.lax.dynamic_slice(order, (done * slots,), (slots,))
        index = jnp.minimum(index, size - 1)
        dense = masked_flow(grid, p_bus_mw[index], in_service[index])
        take = redo[index]

        def merge(ours, theirs):
            keep = take.reshape(take.shape + (1,) * (theirs.ndim - 1))
            return ours.at[index].set(jnp.where(keep, theirs, ours[index]))

        return DCFlow(*(merge(a, b) for a, b in zip(flow, dense, strict=True))), done + 1

    flow, _ = jax.lax.while_loop(lambda s: s[1] < rounds, one_round, (flow, jnp.array(0)))
    return flow


def solve_small(matrix: jnp.ndarray, rhs: jnp.ndarray) -> tuple[jnp.ndarray, jnp.ndarray]:
    """Solves [..., K, K] x = [..., K] for a small static K; also returns |det|.

    Gaussian elimination with partial pivoting unrolled over K, vectorised over
    the batch: LAPACK's batched solve pays a call per tiny matrix on CPU.
    """
    k = matrix.shape[-1]
    augmented = jnp.concatenate([matrix, rhs[..., None]], axis=-1)  # [..., K, K+1]
    abs_det = jnp.ones(matrix.shape[:-2], matrix.dtype)
    for col in range(k):
        candidates = jnp.abs(augmented[..., col:, col])
        pivot_row = col + jnp.argmax(candidates, axis=-1)  # [...]
        rows = lift(jnp.arange(k), pivot_row.ndim + 1)
        order = jnp.where(rows == col, pivot_row[..., None], rows)
        order = jnp.where(rows == pivot_row[..., None], col, order)
        augmented = jnp.take_along_axis(augmented, order[..., None], axis=-2)
        pivot = augmented[..., col, col]
        abs_det = abs_det * jnp.abs(pivot)
        safe = jnp.where(pivot == 0, 1.0, pivot)
        factor = augmented[..., :, col] / safe[..., None]
        factor = jnp.where(rows == col, 0.0, factor)
        augmented = augmented - factor[..., :, None] * augmented[..., col, None, :]
    diagonal = jnp.diagonal(augmented[..., :, :k], axis1=-2, axis2=-1)
    solution = augmented[..., k] / jnp.where(diagonal == 0, 1.0, diagonal)
    return solution, abs_det


def _valid_outages(grid: Grid, outages: jnp.ndarray) -> jnp.ndarray:
    """[..., K] bool: a real branch index not already listed earlier in the row."""
    in_range = (outages >= 0) & (outages < grid.n_branch)
    k = outages.shape[-1]
    earlier = lift(jnp.tril(jnp.ones((k, k), dtype=bool), -1), outages.ndim + 1)
    repeated = jnp.any((outages[..., :, None] == outages[..., None, :]) & earlier, axis=-1)
    return in_range & ~repeated


def outage_mask(grid: Grid, outages: jnp.ndarray) -> jnp.ndarray:
    """[..., K] branch indices (-1 = none) -> [..., L] bool in-service mask."""
    valid = _valid_outages(grid, outages)
    hit = jax.nn.one_hot(jnp.where(valid, outages, 0), grid.n_branch, dtype=jnp.int32)
    hit = jnp.sum(hit * valid[..., None].astype(jnp.int32), axis=-2)
    return hit == 0


def _compensation_matrix(grid: Grid, outages, valid) -> jnp.ndarray:
    """I - H_KK [..., K, K] over the valid outage slots (identity for unused ones)."""
    index = jnp.where(valid, outages, 0)
    pair_valid = valid[..., :, None] & valid[..., None, :]
    coupling = grid.branch_ptdf[index[..., :, None], index[..., None, :]]
    eye = lift(jnp.eye(outages.shape[-1], dtype=coupling.dtype), pair_valid.ndim)
    return eye - jnp.where(pair_valid, coupling, 0.0)


def _compensated_flow(grid: Grid, base: DCFlow, transfer, index, in_service) -> DCFlow:
    columns = grid.branch_ptdf.T[index]  # [..., K, L]: H[:, k] for each outage
    flow = base.flow_mw + jnp.einsum("...k,...kl->...l", transfer, columns)
    flow = jnp.where(in_service, flow, 0.0)
    # Angles move by X (e_f - e_t) per MW transferred across each outaged branch.
    inverse = grid.dc_bus_inverse / grid.base_mva
    sensitivity = inverse[grid.branch_from[index]] - inverse[grid.branch_to[index]]  # [..., K, N]
    shift = jnp.einsum("...k,...kn->...n", transfer, sensitivity)
    theta = base.theta + jnp.where(base.bus_energised, shift, 0.0)
    return DCFlow(theta, flow, base.islanded, base.bus_energised)


def dc_flows_single_outage(grid: Grid, base_flow_mw: jnp.ndarray) -> jnp.ndarray:
    """Post-outage flows [..., K=L, L] via LODF: row k is the grid after branch k trips.

    Rows of bridge branches (``grid.branch_is_bridge``, whose outage islands
    buses) keep the pre-outage flows elsewhere; check the flag before using them.
    """
    nd = base_flow_mw.ndim + 1
    change = base_flow_mw[..., :, None] * lift(grid.lodf.T, nd)  # [..., k, l]
    post = base_flow_mw[..., None, :] + change
    return jnp.where(lift(jnp.eye(grid.n_branch, dtype=bool), nd), 0.0, post)
