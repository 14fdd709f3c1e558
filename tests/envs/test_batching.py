"""``compute_where`` under ``vmap`` is ``where(needed, fn(args), fallback)`` row by row."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from envs.batching import _needing_first, compute_where


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
