import jax
import numpy as np
from jax._src.interpreters import mlir
from jax._src.random import threefry2x32 as threefry

from launch.threefry_lowering import unroll_threefry_on_cpu


def _draws():
    """A fresh function each call, so no trace or lowering cache is shared between lowerings."""

    def draws(key):
        keys = jax.random.split(key, 5)
        per_grid = jax.vmap(lambda k: jax.random.uniform(k, (3,)))(keys)
        return jax.random.uniform(key, (1000,)), jax.random.normal(key, (7, 3)), keys, per_grid

    return draws


def _compiled(key):
    compiled = jax.jit(_draws()).lower(key).compile()
    return compiled, "while" in compiled.as_text()


def test_unrolled_threefry_draws_the_rolled_loops_numbers_without_a_loop():
    key = jax.random.PRNGKey(7)
    rolled_rule = threefry._threefry2x32_cpu_lowering_rule
    mlir.register_lowering(threefry.threefry2x32_p, rolled_rule, platform="cpu")
    try:
        rolled, rolled_has_loop = _compiled(key)
    finally:
        assert unroll_threefry_on_cpu()
    unrolled, unrolled_has_loop = _compiled(key)
    assert rolled_has_loop and not unrolled_has_loop
    for a, b in zip(jax.tree.leaves(rolled(key)), jax.tree.leaves(unrolled(key)), strict=True):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
