"""DC power flow for batches of grids that mostly keep their topology (few outages).

``dc_flow(grid, p_bus, in_service)`` returns what ``envs.powerflow.dcpf.dc_power_flow`` returns for a
branch mask, but takes a cheap path wherever it can:

* connectivity (``connected_buses``): with at most K = ``WIDE_SLOTS`` branches out, the
  outage set islands buses exactly when ``det(I - H_OO)`` vanishes (H = branch PTDF; the matrix
  determinant lemma). Only grids whose determinant is (nearly) zero, or that have more
  outages, run the connectivity sweep ``envs.powerflow.dcpf.energised_buses``;
* flows (K outages at most): the intact network's angles ``X p`` (X the
  reduced inverse) corrected by a rank-2K Woodbury update: each outage removes its branch, and
  each dead endpoint of an outage is grounded through that branch's susceptance. Dead buses
  carry no injection, so the grounding pins every island at angle 0 without touching the
  energised part: the result is the dense masked solve's, islands included;
* otherwise (more outages, or an ill-conditioned update): the dense masked solve.

``outage_ptdf(grid, in_service, energised)`` returns what ``envs.powerflow.ptdf.ptdf_matrix``
returns, by the same update: the flows above are linear in the energised injections, and their
matrix is the intact PTDF corrected by a rank-2K term (``_low_rank_ptdf``), in the same tiers
with the same dense fallback (``ptdf_matrix``). The clearing and look-ahead OPFs take it for
the topology the step meets; ``outage_ptdf_rows`` returns a few of its rows at the cost of those
rows (the distilled policy's correction reads the rows of its most loaded branches).

Both tests run in two tiers: every grid first with ``few_slots(grid)`` slots, then only grids
with more outages than that with ``WIDE_SLOTS``; on grids above ``SMALL_GRID_BRANCHES`` branches
the flows have a third tier of ``WIDER_SLOTS`` before the dense solve. Most grids of a batch
have few outages, and the elimination of the rank-2K system is O(K^3) per grid whether its
slots are used or not (benchmarks/README.md, "Design choices in the step").

Under ``jax.vmap`` the wider tiers, the sweep and the dense solve run only for the grids that
need them (``envs.batching.compute_where``). A dense LU per grid costs O(N^3); the
update O(K N + K L + K^3) for flows and O(K L N + K^2 N) for a PTDF, which is what makes a
batch of ieee118 grids with outages cheap.
"""

from functools import partial

import jax
import jax.numpy as jnp

from envs.batching import compute_where, lapack_batch_safe
from envs.powerflow.dcpf import DCFlow, energised_buses, masked_flow
from envs.powerflow.grid import lift
from envs.powerflow.ptdf import ptdf_matrix

# |det(I - H_OO)| below this (float32, float64) means the outage set may island buses.
ISLAND_DET_TOL = (1e-4, 1e-8)

SMALL_GRID_BRANCHES = 64  # up to this many branches a grid takes the smaller first tier
# Slots of the second tier (grids with more outages than ``few_slots``): 16 slots by the
# unrolled elimination compiled longer and cost ieee14 more than it gained on ieee118
# (benchmarks/README.md, "Design choices in the step").
WIDE_SLOTS = 8
# Slots of the third tier (9-16 outages, a minority of ieee118 grids under random actions),
# solved by LAPACK (a QR, see ``_solve_qr``): the unrolled elimination makes O(K) passes over the
# batch's [2K, 2K] systems, and the dense 118-bus solve costs more than either
# (benchmarks/README.md, "Design choices in the step").
WIDER_SLOTS = 16


def few_slots(grid) -> int:
    """Slots of the first tier (every grid). Outages (trips, random and planned) grow with the
    branch count, so larger grids get more slots (benchmarks/README.md, "Design choices in the
    step")."""
    return 2 if grid.n_branch <= SMALL_GRID_BRANCHES else 4


def _outage_slots(in_service, slots):
    """[K] indices of the first K = ``slots`` out-of-service branches (0 pads), [K] valid,
    count []."""
    out = ~in_service
    position = jnp.cumsum(out.astype(jnp.int32))
    slot_number = jnp.arange(1, slots + 1, dtype=jnp.int32)
    hits = out[None, :] & (position[None, :] == slot_number[:, None])  # [K, L], <= 1 per row
    count = position[-1]
    # A row's one hit by a sum, not an argmax: XLA:CPU's variadic argmax reduction is slow
    # under vmap.
    branch = jnp.arange(in_service.shape[-1], dtype=jnp.int32)
    return jnp.sum(jnp.where(hits, branch, 0), axis=-1), slot_number <= count, count


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


def _tolerance(dtype):
    return ISLAND_DET_TOL[jnp.finfo(dtype).bits >= 64]


def _island_det(grid, in_service, slots):
    """|det(I - H_OO)| over the first ``slots`` outages, and the outage count."""
    index, valid, count = _outage_slots(in_service, slots)
    pair = valid[:, None] & valid[None, :]
    coupling = jnp.where(pair, grid.branch_ptdf[index[:, None], index[None, :]], 0.0)
    system = jnp.eye(slots, dtype=coupling.dtype) - coupling
    _, abs_det = solve_small(system, jnp.zeros(slots, coupling.dtype))
    return abs_det, count


def _may_island_wide(grid, in_service):
    abs_det, count = _island_det(grid, in_service, WIDE_SLOTS)
    return (count > WIDE_SLOTS) | (abs_det < _tolerance(abs_det.dtype))


def _may_island(grid, in_service):
    """[] bool: more outages than slots, or det(I - H_OO) ~ 0 (the outages may island)."""
    slots = few_slots(grid)
    abs_det, count = _island_det(grid, in_service, slots)
    few = abs_det < _tolerance(abs_det.dtype)
    wide = compute_where(_may_island_wide, count > slots, jnp.bool_(False), grid, in_service)
    return jnp.where(count > slots, wide, few)


def connected_buses(grid, in_service, choice=None):
    """[N] bool: ``energised_buses(grid, in_service, choice)``, swept only where outages may
    island (``choice``: an ``envs.powerflow.dcpf.IslandChoice``, or None for the slack's
    island)."""
    needed = _may_island(grid, in_service)
    if choice is None:
        return compute_where(energised_buses, needed, grid.bus_energised0, grid, in_service)
    return compute_where(energised_buses, needed, grid.bus_energised0, grid, in_service, choice)


def _update_terms(grid, in_service, energised, slots):
    """Endpoints [2K], coefficients [2K] x 2, row scales [2K] and used [2K] of the update.

    Slots 0..K-1 ground the dead endpoints of outage k (``u = [f dead] e_f + [t dead] e_t``,
    ``C^-1 = 1/b``), slots K..2K-1 remove outage k (``u = e_f - e_t``, ``C^-1 = -1/b``).
    Rows are scaled by ``b`` and ``-b`` so that the outage block reads ``I - H_OO``.
    """
    index, valid, _ = _outage_slots(in_service, slots)
    f, t = grid.branch_from[index], grid.branch_to[index]
    b = grid.branch_dc_b[index]
    dead = ~energised & grid.bus_energised0
    f_dead, t_dead = valid & dead[f], valid & dead[t]
    one = jnp.ones_like(b)
    alpha = jnp.concatenate([f_dead.astype(b.dtype), one])
    gamma = jnp.concatenate([t_dead.astype(b.dtype), -one])
    scale = jnp.concatenate([b, -b])
    used = jnp.concatenate([f_dead | t_dead, valid])
    return jnp.concatenate([f, f]), jnp.concatenate([t, t]), alpha, gamma, scale, used


def _update_system(grid, in_service, energised, slots):
    """The update of ``_update_terms`` as matrices: endpoints ``a``, ``c`` [2K], coefficients
    ``alpha``, ``gamma`` [2K] (0 on unused slots), ``scale`` [2K], ``response = U X`` [2K, N]
    (X the intact reduced inverse) and the scaled system ``I + diag(scale) U X U^T`` [2K, 2K]
    (``diag(scale) (C^-1 + U X U^T)`` on the used slots, I elsewhere)."""
    a, c, alpha, gamma, scale, used = _update_terms(grid, in_service, energised, slots)
    alpha, gamma = jnp.where(used, alpha, 0.0), jnp.where(used, gamma, 0.0)
    inverse = grid.dc_bus_inverse
    response = alpha[:, None] * inverse[a] + gamma[:, None] * inverse[c]  # [2K, N]: U X
    gram = alpha[None, :] * response[:, a] + gamma[None, :] * response[:, c]  # U X U^T
    system = jnp.eye(2 * slots, dtype=gram.dtype) + scale[:, None] * gram
    return a, c, alpha, gamma, scale, response, system


def _low_rank(grid, p_bus, in_service, energised, slots, solve=None):
    """(DCFlow, |det| of the scaled update system) for up to K = ``slots`` outages, islands
    included.

    Woodbury: with ``U`` [2K, N] the update vectors, ``y = (C^-1 + U X U^T)^-1 U X p`` is what
    the update injects, so the post-outage angles and flows are the intact network's for the
    injections ``p - U^T y`` (two matmuls with the shared X and PTDF, no per-grid matrix).
    """
    a, c, alpha, gamma, scale, response, system = _update_system(grid, in_service, energised, slots)
    live_branch = in_service & energised[grid.branch_from]
    shift_flow = jnp.where(live_branch, -grid.branch_dc_b * grid.branch_shift, 0.0)
    p_pu = (p_bus - grid.bus_gs) / grid.base_mva - jnp.matmul(shift_flow, grid.branch_bus)
    p_pu = jnp.where(energised, p_pu, 0.0)  # dead buses: no injection (pinned at 0 below)
    rhs = scale * jnp.matmul(response, p_pu)
    y, abs_det = (solve or solve_unpivoted)(system, rhs)
    injection = p_pu.at[a].add(-alpha * y).at[c].add(-gamma * y)  # p - U^T y
    theta = jnp.matmul(injection, grid.dc_bus_inverse) + grid.bus_va0[grid.slack]
    flow = (jnp.matmul(injection, grid.ptdf.T) + shift_flow) * grid.base_mva
    has_something = grid.bus_has_device | (p_bus != 0)
    islanded = jnp.any(has_something & ~energised)
    result = DCFlow(
        jnp.where(energised, theta, 0.0),
        jnp.where(live_branch, flow, 0.0),
        islanded,
        energised,
    )
    return result, abs_det


def _ptdf_update(grid, in_service, energised, slots, solve):
    """``(a, c, alpha, gamma, y [2K, N], live_bus [N], |det|)``: the rank-2K term of the
    topology's PTDF (``_low_rank_ptdf``), which any set of its rows applies."""
    a, c, alpha, gamma, scale, response, system = _update_system(grid, in_service, energised, slots)
    live_bus = energised.astype(response.dtype)
    rhs = scale[:, None] * response * live_bus[None, :]  # diag(scale) U X E  [2K, N]
    y, abs_det = (solve or solve_unpivoted)(system, rhs)  # [2K, N]
    return a, c, alpha, gamma, y, live_bus, abs_det


def _updated_rows(ptdf_rows, live_branch, update):
    """The intact PTDF's ``ptdf_rows`` [R, N] (branches ``live_branch`` [R]) on the topology."""
    a, c, alpha, gamma, y, live_bus, _ = update
    ptdf_u = alpha[None, :] * ptdf_rows[:, a] + gamma[None, :] * ptdf_rows[:, c]  # [R, 2K]
    ptdf = ptdf_rows * live_bus[None, :] - jnp.matmul(ptdf_u, y)
    return jnp.where(live_branch[:, None], ptdf, 0.0)


def _low_rank_ptdf(grid, in_service, energised, slots, solve=None):
    """([L, N] PTDF of the topology, |det| of the scaled update system) for up to K =
    ``slots`` outages, islands included.

    ``_low_rank``'s flows for injections ``p`` [N] are ``PTDF (E p - U^T y)`` on the live
    branches (0 on the others), with ``E = diag(energised)`` (dead buses carry nothing) and
    ``y = M^-1 diag(scale) U X E p``, ``M`` the scaled system. Linear in ``p``, so the
    topology's PTDF is ``PTDF E - (PTDF U^T) M^-1 (diag(scale) U X E)``, rows of branches out
    of service or dead set to 0: one [2K, 2K] solve with N right-hand sides and a rank-2K
    product, where ``ptdf_matrix`` inverts an [N, N] matrix.
    """
    update = _ptdf_update(grid, in_service, energised, slots, solve)
    live_branch = in_service & energised[grid.branch_from]
    return _updated_rows(grid.ptdf, live_branch, update), update[-1]


def _low_rank_ptdf_rows(grid, rows, in_service, energised, slots, solve=None):
    """``_low_rank_ptdf``'s rows ``rows`` [R] alone: the same update, R rows of the product."""
    update = _ptdf_update(grid, in_service, energised, slots, solve)
    live_branch = (in_service & energised[grid.branch_from])[rows]
    return _updated_rows(grid.ptdf[rows], live_branch, update), update[-1]


def _by_tiers(low_rank, dense, args, in_service, active, wider_solve=None):
    """``low_rank(*args, slots=, solve=)`` (a result and the |det| of its update system) in
    the tiers of slots the outage count of ``in_service`` calls for, ``dense(*args)`` where
    there are more outages than the widest tier, the update is ill-conditioned or the slack is
    not energised; only for ``active`` grids beyond the first tier (see the module docstring).
    ``args`` end with ``energised`` [N]."""
    grid = args[0]
    count = jnp.sum(~in_service)
    slots = few_slots(grid)
    result, abs_det = low_rank(*args, slots=slots, solve=solve_unpivoted)
    tiers = [(WIDE_SLOTS, solve_unpivoted)]
    if grid.n_branch > SMALL_GRID_BRANCHES:  # small grids: the dense solve is cheap already
        tiers.append((WIDER_SLOTS, wider_solve or _solve_qr))
    for width, solve in tiers:
        needed = (count > slots) & (count <= width) & active
        tier = partial(low_rank, slots=width, solve=solve)
        result, abs_det = compute_where(tier, needed, (result, abs_det), *args)
        slots = width
    # An island kept without the slack has no grounded bus in the update: the dense solve
    # references it at its own bus (``envs.powerflow.ptdf.reference_bus``).
    slack_dead = ~args[-1][grid.slack]
    needed = (count > slots) | (abs_det < _tolerance(abs_det.dtype)) | slack_dead
    return compute_where(dense, needed & active, result, *args)


def outage_ptdf(grid, in_service, energised) -> jax.Array:
    """``ptdf_matrix(grid, in_service, energised)`` of one grid, in the dtype of ``grid.ptdf``:
    the grid's own PTDF while every branch is in service, else the low-rank update of it
    (``_low_rank_ptdf``) in the tiers of ``dc_flow``, and the dense ``ptdf_matrix`` only where
    those cannot serve. ``energised`` [N] bool: ``connected_buses(grid, in_service)``."""
    intact = jnp.all(in_service)
    tiers = partial(_ptdf_by_tiers, _low_rank_ptdf, _dense_ptdf)
    return compute_where(tiers, ~intact, grid.ptdf, grid, in_service, energised)


def _ptdf_by_tiers(low_rank, dense, *args):
    """``_by_tiers`` for a PTDF or some of its rows: ``args`` end with ``in_service``,
    ``energised``."""
    grid, in_service = args[0], args[-2]
    return _by_tiers(low_rank, dense, args, in_service, jnp.bool_(True), _wider_ptdf_solve(grid))


def _wider_ptdf_solve(grid):
    # The widest tier's QR solves a right-hand side per bus: with a batch of grids it would
    # reach the LAPACK size that deadlocks XLA's CPU pool (envs.batching.lapack_batch_safe).
    k = 2 * WIDER_SLOTS
    return lapack_batch_safe(_solve_qr, flops_per_call=2 * k**3 + 2 * k * k * grid.n_bus)


def outage_ptdf_rows(grid, rows, in_service, energised) -> jax.Array:
    """``outage_ptdf(grid, in_service, energised)[rows]`` of one grid (``rows`` [R] int branch
    indices) without the other rows: what a correction onto a few branches' limits needs. The
    update's cost is O(K^2 N) for its solve and O(R K N) for the rows, where the whole matrix
    takes O(L K N)."""
    intact = jnp.all(in_service)
    tiers = partial(_ptdf_by_tiers, _low_rank_ptdf_rows, _dense_ptdf_rows)
    return compute_where(tiers, ~intact, grid.ptdf[rows], grid, rows, in_service, energised)


def _dense_ptdf_rows(grid, rows, in_service, energised):
    return _dense_ptdf(grid, in_service, energised)[rows]


def _dense_ptdf(grid, in_service, energised):
    # ptdf_matrix computes in JAX's default float (float64 under x64); the update, in the
    # grid's dtype, is only as exact as the grid's factors anyway.
    return ptdf_matrix(grid, in_service, energised).astype(grid.ptdf.dtype)


def _solve_qr(matrix, rhs):
    """LAPACK Householder QR and a triangular solve; also |det| (the product of |diag R|).

    Not LU: JAX turns an LU's row exchanges into a permutation by a loop of K steps of tiny
    kernels on XLA:CPU, which cost more than the factorisation at K = 32.
    """
    q, r = jnp.linalg.qr(matrix)
    columns = rhs if rhs.ndim == 2 else rhs[:, None]  # [K] or [K, M] right-hand sides
    projected = jnp.matmul(q.T, columns)  # Q^T rhs
    solution = jax.lax.linalg.triangular_solve(r, projected, left_side=True, lower=False)
    solution = solution if rhs.ndim == 2 else solution[:, 0]
    return solution, jnp.prod(jnp.abs(jnp.diagonal(r)))


def solve_unpivoted(matrix, rhs):
    """Gaussian elimination in row order, no row exchanges (no gathers), unrolled; also |det|.
    ``matrix`` [K, K], ``rhs`` [K] or [K, M] (M right-hand sides); one system (vmap it).

    Sound where every leading block is nonsingular: symmetric positive definite systems (the
    PTDF correction's), and the outage update's system in slot order. There the grounding
    slots come first: their block is positive definite, and once they are eliminated every
    leading block of the outages is ``I - H_SS`` of the grounded network, singular only if
    those outages alone island a bus without a grounded one, which they cannot (each island
    touches an outage whose dead end is grounded). A tiny pivot means an ill-conditioned
    update: the caller re-solves densely when |det| is small.

    Why not ``jnp.linalg.solve``: on CPU, LAPACK's batched solve pays a call per tiny matrix,
    and JAX applies an LU's row exchanges by a loop of K steps of tiny kernels.
    """
    n = matrix.shape[-1]
    columns = rhs if rhs.ndim == 2 else rhs[:, None]
    augmented = jnp.concatenate([matrix, columns], axis=-1)
    abs_det = jnp.ones((), matrix.dtype)
    rows = jnp.arange(n)
    for col in range(n):
        pivot = augmented[col, col]
        abs_det = abs_det * jnp.abs(pivot)
        factor = augmented[:, col] / jnp.where(pivot == 0, 1.0, pivot)
        factor = jnp.where(rows == col, 0.0, factor)
        augmented = augmented - factor[:, None] * augmented[col][None, :]
    diagonal = jnp.diagonal(augmented[:, :n])
    solution = augmented[:, n:] / jnp.where(diagonal == 0, 1.0, diagonal)[:, None]
    return (solution if rhs.ndim == 2 else solution[:, 0]), abs_det


def dc_flow(grid, p_bus, in_service, active=None, energised=None) -> DCFlow:
    """One grid: p_bus [N] MW, in_service [L] bool.

    ``active`` (bool [], default True): False marks a grid whose result the caller discards;
    under ``jax.vmap`` such grids skip the dense solve (their result is then unspecified,
    possibly non-finite). ``energised`` [N] bool: ``energised_buses(grid, in_service)``
    (or ``connected_buses``) when the caller has it already.
    """
    active = jnp.bool_(True) if active is None else jnp.asarray(active, bool)
    if energised is None:
        energised = connected_buses(grid, in_service)
    args = (grid, p_bus, in_service, energised)
    return _by_tiers(_low_rank, masked_flow, args, in_service, active)
