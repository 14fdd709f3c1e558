"""An interior point for a separable convex QP with box bounds and a few dense rows, per
problem, jit/vmap-able::

    min   sum_i (d_i x_i^2 / 2 + q_i x_i)
    s.t.  E x = e                      (p equality rows)
          row_lo <= C x <= row_hi      (m range rows)
          lo <= x <= hi                (every variable boxed, d > 0)

Why our own and not qpax: qpax takes every bound as a row of one dense inequality matrix G and
forms ``G^T D G`` at each iteration, so a clearing QP of ieee118 (176 variables, 352 bounds,
372 branch rows) paid for 724 dense rows. Here a bound is a box, i.e. a diagonal term of the
Newton system, and each range row gets a boxed row variable ``r = C x``. Eliminating ``x`` and
``r`` leaves one positive-definite system in the rows' multipliers::

    (W M^-1 W^T + diag(1 / M_r, 0)) dy = ...,     W = [C; E],  M = d + barrier terms

of size ``(m + p)^2``: O((m + p)^2 n) per iteration instead of O(rows x n^2), and the few rows
are what screening keeps small (``envs.opf.step_qp``). The iteration is Mehrotra's
predictor-corrector, started inside the box; it stops when every problem of a batch is solved
to ``tolerance`` or after ``max_iter`` iterations.
"""

from typing import NamedTuple

import jax
import jax.numpy as jnp

STEP_TO_BOUNDARY = 0.995  # fraction of the largest step that keeps every slack positive
# The start: each variable at its unconstrained minimiser moved at least START_INSIDE of its
# box's width inside it, each multiplier START_DUAL x (1 + max |q|) above what makes the start
# stationary. Chosen on ieee14 and ieee118 clearing QPs (benchmarks/README.md, "Clearing QP").
START_INSIDE = 0.5
START_DUAL = 0.3
# A problem within this factor of its tolerance stops once a step no longer halves its residual.
STALL_FACTOR = 4.0


class BoxQP(NamedTuple):
    curvature: jax.Array  # [n] d > 0
    linear: jax.Array  # [n] q
    eq_rows: jax.Array  # [p, n] E
    eq_rhs: jax.Array  # [p] e
    rows: jax.Array  # [m, n] C
    row_lo: jax.Array  # [m]
    row_hi: jax.Array  # [m]
    lo: jax.Array  # [n]
    hi: jax.Array  # [n], > lo


class BoxQPSolution(NamedTuple):
    x: jax.Array  # [n]
    row_dual: jax.Array  # [m] multiplier of C x (> 0 pressing on row_hi, < 0 on row_lo)
    eq_dual: jax.Array  # [p] multiplier of E x = e
    bound_dual: jax.Array  # [n] multiplier of the box (> 0 at hi, < 0 at lo)
    residual: jax.Array  # [] ``residual`` of the point
    iterations: jax.Array  # [] int32


class _Iterate(NamedTuple):
    v: jax.Array  # [n + m] x, then the row variables r = C x
    y: jax.Array  # [m + p] multipliers of C x - r = 0, then of E x = e
    z_lo: jax.Array  # [n + m] >= 0
    z_hi: jax.Array  # [n + m] >= 0
    s_lo: jax.Array  # [n + m] v - lo, carried (not recomputed: in float32 v - lo rounds to 0
    s_hi: jax.Array  # [n + m] hi - v   long before the slack does)


def solve_box_qp(qp: BoxQP, max_iter: int = 30, tolerance: float = 1e-6) -> BoxQPSolution:
    """Mehrotra's predictor-corrector on ``qp``; see the module docstring for the problem."""
    n, m = qp.linear.shape[0], qp.rows.shape[0]
    lo = jnp.concatenate([qp.lo, qp.row_lo])
    hi = jnp.concatenate([qp.hi, qp.row_hi])
    curvature = jnp.concatenate([qp.curvature, jnp.zeros(m, qp.curvature.dtype)])
    linear = jnp.concatenate([qp.linear, jnp.zeros(m, qp.linear.dtype)])
    w = jnp.concatenate([qp.rows, qp.eq_rows])  # [m + p, n]
    rhs = jnp.concatenate([jnp.zeros(m, qp.eq_rhs.dtype), qp.eq_rhs])

    def constraint(v):  # [m + p]: C x - r, E x
        return w @ v[:n] - jnp.concatenate([v[n:], jnp.zeros_like(qp.eq_rhs)])

    def constraint_t(y):  # [n + m]: the transpose
        return jnp.concatenate([w.T @ y, -y[:m]])

    def residuals(it):
        dual = curvature * it.v + linear - constraint_t(it.y) - it.z_lo + it.z_hi
        return dual, constraint(it.v) - rhs

    def gap(it):
        return jnp.sum(it.s_lo * it.z_lo + it.s_hi * it.z_hi)

    def measure(it):
        dual, primal = residuals(it)
        objective = jnp.sum(0.5 * curvature * it.v**2 + linear * it.v)
        scale = jnp.maximum(1.0, jnp.abs(objective))
        worst = jnp.maximum(jnp.max(jnp.abs(dual)), jnp.max(jnp.abs(primal)))
        return jnp.maximum(worst, gap(it) / scale)

    def newton(it, m_diag, factor, comp_lo, comp_hi):
        """The step for complementarity targets ``comp_lo``, ``comp_hi`` (what s z becomes)."""
        dual, primal = residuals(it)
        s_lo, s_hi = it.s_lo, it.s_hi
        g = -dual + comp_lo / s_lo - comp_hi / s_hi
        inv_m = 1.0 / m_diag
        right = -primal - constraint(inv_m * g)
        dy = _solve(factor, right)
        dv = inv_m * (g + constraint_t(dy))
        dz_lo = (comp_lo - it.z_lo * dv) / s_lo
        dz_hi = (comp_hi + it.z_hi * dv) / s_hi
        return _Iterate(dv, dy, dz_lo, dz_hi, dv, -dv)

    def largest_step(it, step):
        def limit(value, change):
            ratio = jnp.where(change < 0, -value / jnp.where(change < 0, change, -1.0), jnp.inf)
            return jnp.min(ratio)

        most = jnp.minimum(
            jnp.minimum(limit(it.s_lo, step.s_lo), limit(it.s_hi, step.s_hi)),
            jnp.minimum(limit(it.z_lo, step.z_lo), limit(it.z_hi, step.z_hi)),
        )
        return jnp.minimum(1.0, most)

    def advance(it, step, alpha):
        return jax.tree_util.tree_map(lambda a, b: a + alpha * b, it, step)

    def iterate(carry):
        it, k, best, best_residual, _ = carry
        s_lo, s_hi = it.s_lo, it.s_hi
        m_diag = curvature + it.z_lo / s_lo + it.z_hi / s_hi
        inv_mx = 1.0 / m_diag[:n]
        system = (w * inv_mx[None, :]) @ w.T
        system = system + jnp.diag(jnp.concatenate([1.0 / m_diag[n:], jnp.zeros_like(rhs[m:])]))
        factor = _factor(system)
        mu = gap(it) / (2 * (n + m))
        affine = newton(it, m_diag, factor, -s_lo * it.z_lo, -s_hi * it.z_hi)
        alpha_aff = largest_step(it, affine)
        moved = advance(it, affine, alpha_aff)
        sigma = (gap(moved) / (2 * (n + m)) / mu) ** 3
        comp_lo = sigma * mu - s_lo * it.z_lo - affine.v * affine.z_lo
        comp_hi = sigma * mu - s_hi * it.z_hi + affine.v * affine.z_hi
        step = newton(it, m_diag, factor, comp_lo, comp_hi)
        alpha = STEP_TO_BOUNDARY * largest_step(it, step)
        moved = advance(it, step, alpha)
        residual = measure(moved)
        # Rounding ends the progress of a float32 solve before the slacks reach zero: a step
        # to a non-finite point ends the loop, and the best point seen is the answer.
        # Near the floor a step that does not halve the residual ends the loop too: under
        # vmap every problem of the batch waits for the slowest.
        floored = (best_residual < STALL_FACTOR * tolerance) & (residual > 0.5 * best_residual)
        stalled = ~jnp.isfinite(residual) | floored
        better = residual < best_residual
        best = jax.tree_util.tree_map(lambda a, b: jnp.where(better, a, b), moved, best)
        best_residual = jnp.where(better, residual, best_residual)
        return moved, k + 1, best, best_residual, stalled

    def keep_going(carry):
        _, k, _, best_residual, stalled = carry
        return (k < max_iter) & ~(best_residual < tolerance) & ~stalled

    start = _start(qp, lo, hi, n)
    carry = (start, jnp.int32(0), start, measure(start), jnp.bool_(False))
    _, k, it, residual, _ = jax.lax.while_loop(keep_going, iterate, carry)
    bound_dual = it.z_hi - it.z_lo
    return BoxQPSolution(
        x=jnp.clip(it.v[:n], qp.lo, qp.hi),
        row_dual=-it.y[:m],
        eq_dual=it.y[m:],
        bound_dual=bound_dual[:n],
        residual=jnp.where(jnp.all(jnp.isfinite(it.v)), residual, jnp.nan),
        iterations=k,
    )


def _factor(system):
    """Cholesky factor of ``system`` scaled to a unit diagonal, and the scale.

    The diagonal spans many orders of magnitude (an inactive row's ``1 / M_r`` grows as its
    slack's multiplier vanishes); the scaling keeps float32 accurate on the active rows, and a
    few eps on the unit diagonal keep the factor regular when a row has no free variable left.
    """
    scale = jnp.sqrt(jnp.maximum(jnp.diagonal(system), jnp.finfo(system.dtype).tiny))
    unit = system / (scale[:, None] * scale[None, :])
    unit = unit + 10 * jnp.finfo(system.dtype).eps * jnp.eye(system.shape[0], dtype=system.dtype)
    return jax.scipy.linalg.cho_factor(unit, lower=True), scale


def _solve(factor, right):
    (cholesky, scale) = factor
    return jax.scipy.linalg.cho_solve(cholesky, right / scale) / scale


def _start(qp: BoxQP, lo, hi, n) -> _Iterate:
    """The unconstrained minimiser of each variable, moved ``START_INSIDE`` into its box; row
    variables at C x moved likewise; multipliers equal on both sides of every box."""
    width = hi - lo
    inner_lo, inner_hi = lo + START_INSIDE * width, hi - START_INSIDE * width
    x = jnp.clip(-qp.linear / qp.curvature, inner_lo[:n], inner_hi[:n])
    r = jnp.clip(qp.rows @ x, inner_lo[n:], inner_hi[n:])
    v = jnp.concatenate([x, r])
    # Multipliers that make the start stationary (with y = 0): the gradient's part pushing
    # out of the box goes to the bound it presses on, plus a floor on both.
    floor = START_DUAL * (1.0 + jnp.max(jnp.abs(qp.linear)))
    gradient = jnp.concatenate([qp.curvature * x + qp.linear, jnp.zeros_like(r)])
    z_lo = floor + jnp.maximum(gradient, 0.0)
    z_hi = floor + jnp.maximum(-gradient, 0.0)
    y = jnp.zeros(qp.rows.shape[0] + qp.eq_rows.shape[0], v.dtype)
    return _Iterate(v, y, z_lo, z_hi, v - lo, hi - v)


def empty_solution(n: int, m: int, p: int, dtype) -> BoxQPSolution:
    """A placeholder of ``solve_box_qp``'s output shapes (a loop's initial carry)."""
    return BoxQPSolution(
        x=jnp.zeros(n, dtype),
        row_dual=jnp.zeros(m, dtype),
        eq_dual=jnp.zeros(p, dtype),
        bound_dual=jnp.zeros(n, dtype),
        residual=jnp.asarray(jnp.nan, dtype),
        iterations=jnp.int32(0),
    )
