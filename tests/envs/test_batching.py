"""``compute_where`` under ``vmap`` is ``where(needed, fn(args), fallback)`` row by row;
``lapack_batch_safe`` under ``vmap`` is ``vmap``, run in chunks on CPU."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from envs.batching import LAPACK_INLINE_FLOPS, _needing_first, compute_where, lapack_batch_safe


@pytest.mark.parametrize("size", [1, 2, 7, 100])
@pytest.mark.parametrize("fraction", [0.0, 0.3, 1.0])
def test_grids_that_need_it_come_first_in_batch_order(size, fraction):
    needed = np.random.default_rng(size).random(size) < fraction
    order = np.asarray(_needing_first(jnp.asarray(needed)))
    np.testing.assert_array_equal(order, np.argsort(~needed, kind="stable"))


@pytest.mark.parametrize("size", [1, 5, 64, 300])
def test_batched_result_equals_the_row_by_row_choice(size):
    rng = np.random.default_rng(size)
    x = jnp.asarray(rng.normal(size=(size, 3)), jnp.float32)
    needed = jnp.asarray(rng.random(size) < 0.4)
    fallback = -jnp.ones((size, 3), jnp.float32)

    def fn(x, scale):
        return jnp.sin(x) * scale

    batched = jax.jit(jax.vmap(lambda n, f, x: compute_where(fn, n, f, x, 2.0)))
    expected = np.where(np.asarray(needed)[:, None], np.sin(np.asarray(x)) * 2.0, -1.0)
    np.testing.assert_allclose(batched(needed, fallback, x), expected, rtol=1e-6)


@pytest.mark.parametrize("n, size", [(6, 5), (24, 40), (60, 300)])
def test_lapack_batch_safe_solves_like_vmap_in_chunks_small_enough_to_stay_inline(n, size):
    rng = np.random.default_rng(n)
    factors = rng.normal(size=(size, n, n))
    matrices = jnp.asarray(factors @ factors.transpose(0, 2, 1) + n * np.eye(n))
    rhs = jnp.asarray(rng.normal(size=n))  # one right-hand side for every grid: broadcast

    def solve(matrix, b):
        return jnp.linalg.solve(matrix, b), jnp.linalg.cholesky(matrix)

    flops = n**3
    safe = jax.jit(jax.vmap(lapack_batch_safe(solve, flops), in_axes=(0, None)))
    x, lower = safe(matrices, rhs)
    x_ref, lower_ref = jax.vmap(solve, in_axes=(0, None))(matrices, rhs)
    np.testing.assert_allclose(x, x_ref, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(lower, lower_ref, rtol=1e-5, atol=1e-6)

    # on CPU the batch runs in chunks whose LAPACK calls stay below jaxlib's threshold
    chunk = max(1, (LAPACK_INLINE_FLOPS - 1) // flops)
    hlo = jax.jit(jax.vmap(lapack_batch_safe(solve, flops), in_axes=(0, None))).lower(matrices, rhs)
    text = hlo.as_text()
    assert f"tensor<{size}x{n}x{n}xf" in text  # the inputs
    if chunk < size:  # factorised a chunk at a time
        assert f"tensor<{chunk}x{n}x{n}xf" in text
