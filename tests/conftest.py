"""Test-wide JAX settings.

Tests are not library code, so this is the one place (besides the launchers)
that may set XLA flags: four emulated CPU devices let data-parallel tests run
on a 2-core machine. float64 stays off by default; parity tests opt in with the
``x64`` fixture.
"""

import os

os.environ.setdefault("XLA_FLAGS", "--xla_force_host_platform_device_count=4")
os.environ.setdefault("JAX_PLATFORMS", "cpu")

import jax
import pytest

from launch.threefry_lowering import unroll_threefry_on_cpu

unroll_threefry_on_cpu()  # as the launchers do (same numbers; shorter compiles)
jax.config.update("jax_numpy_rank_promotion", "raise")
jax.config.update("jax_enable_x64", False)


@pytest.fixture
def x64():
    """Run one test with float64 enabled (power-flow parity needs it)."""
    with jax.enable_x64(True):
        yield
