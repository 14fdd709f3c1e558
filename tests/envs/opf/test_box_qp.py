"""The box-bounded interior point against qpax on the same QP, and the clearing's screening."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import qpax

from envs.opf import box_qp


def _random_qp(seed: int, n: int = 30, m: int = 5):
    rng = np.random.default_rng(seed)
    curvature = rng.uniform(1e-4, 1.0, n)  # flat and curved costs, as in a clearing QP
    linear = rng.normal(size=n)
    rows = rng.normal(size=(m, n))
    lo, hi = -rng.uniform(0.1, 1.0, n), rng.uniform(0.1, 1.0, n)
    return (
        curvature,
        linear,
        np.ones((1, n)),
        np.array([0.5]),
        rows,
        -0.3 * np.ones(m),
        0.3 * np.ones(m),
        lo,
        hi,
    )


def _qpax_reference(arrays):
    curvature, linear, eq, eq_rhs, rows, row_lo, row_hi, lo, hi = arrays
    eye = np.eye(len(linear))
    ineq = np.concatenate([rows, -rows, eye, -eye])
    rhs = np.concatenate([row_hi, -row_lo, hi, -lo])
    with jax.numpy_rank_promotion("allow"):  # qpax broadcasts [n, p] * [p] inside
        x, *_ = qpax.solve_qp(
            np.diag(curvature), linear, eq, eq_rhs, ineq, rhs, solver_tol=1e-10, max_iter=100
        )
    return np.asarray(x)


@pytest.mark.parametrize("seed", [0, 1])
def test_the_box_qp_reaches_qpax_optimum_in_float64_and_float32(x64, seed):
    arrays = _random_qp(seed)
    reference = _qpax_reference(arrays)
    solve = jax.jit(lambda qp: box_qp.solve_box_qp(qp, max_iter=50, tolerance=1e-10))
    exact = solve(box_qp.BoxQP(*map(jnp.asarray, arrays)))
    assert float(exact.residual) < 1e-9
    np.testing.assert_allclose(np.asarray(exact.x), reference, atol=1e-5)
    single = box_qp.BoxQP(*(jnp.asarray(a, jnp.float32) for a in arrays))
    rounded = jax.jit(lambda qp: box_qp.solve_box_qp(qp, tolerance=5e-5))(single)
    assert float(rounded.residual) < 5e-5
    assert int(rounded.iterations) < 20
    # In float32 the flat-cost variables are determined only to residual / curvature; the
    # objective is what must match.
    x = np.asarray(rounded.x, np.float64)
    curvature, linear, _, _, rows, row_lo, row_hi, lo, hi = arrays

    def objective(v):
        return np.sum(0.5 * curvature * v**2 + linear * v)

    assert objective(x) == pytest.approx(objective(reference), rel=1e-4)
    # The answer is inside its box and its range rows.
    assert np.all(x >= lo) and np.all(x <= hi)
    assert np.all(rows @ x <= row_hi + 1e-4) and np.all(rows @ x >= row_lo - 1e-4)


def test_a_short_run_reports_its_residual():
    arrays = _random_qp(2)
    qp = box_qp.BoxQP(*(jnp.asarray(a, jnp.float32) for a in arrays))
    short = box_qp.solve_box_qp(qp, max_iter=2)
    assert int(short.iterations) == 2 and float(short.residual) > 1e-2
