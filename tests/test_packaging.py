"""The installed distribution exposes every top-level package."""

import importlib

import pytest


@pytest.mark.parametrize("name", ["envs", "actors", "replay", "learner", "launch", "configs"])
def test_top_level_packages_import(name):
    module = importlib.import_module(name)
    assert module.__doc__, f"package {name} has no docstring"


def test_x64_fixture_enables_float64(x64):
    import jax.numpy as jnp

    assert jnp.zeros(1).dtype == jnp.float64


def test_float32_is_default():
    import jax.numpy as jnp

    assert jnp.zeros(1).dtype == jnp.float32


def test_rank_promotion_raises():
    import jax.numpy as jnp

    with pytest.raises(ValueError):
        _ = jnp.ones((3, 1)) + jnp.ones(3)
