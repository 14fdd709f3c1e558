"""Test-wide JAX settings.

Tests are not library code, so this is the one place (besides the launchers)
that may set XLA flags: four emulated CPU devices let data-parallel tests run
on a 2-core machine, and the CPU backend optimises less (compiles faster). float64 stays off by default; parity tests opt in with the
``x64`` fixture.
"""

import os
import shutil
import tempfile

# The suite is compile-bound (each test compiles its own env steps, QPs and updates, and runs
# them briefly): LLVM's optimisation level 0 compiles about a fifth faster and the programs run
# slower, which the tests' few steps do not notice; XLA:CPU's older elemental fusion emitters
# (``--xla_cpu_use_fusion_emitters=false``) emit an env step's ~1,000 kernels in about two
# thirds of the time (benchmarks/README.md, "Test suite").
os.environ.setdefault(
    "XLA_FLAGS",
    "--xla_force_host_platform_device_count=4 --xla_backend_optimization_level=0"
    " --xla_cpu_use_fusion_emitters=false",
)
os.environ.setdefault("JAX_PLATFORMS", "cpu")

# One persistent compilation cache for the whole test run, created empty by the first process
# that loads this file (the xdist controller) and inherited through the environment by every
# xdist worker and every process a test launches (launch.cli keeps a JAX_COMPILATION_CACHE_DIR
# that is already set). Programs compiled by one worker or launched run (env steps, rollouts,
# learner updates of the same shapes) are then loaded, not compiled again, by the others.
# Set before JAX is imported, which reads it once.
_OWN_CACHE_DIR = None
if "JAX_COMPILATION_CACHE_DIR" not in os.environ:
    _OWN_CACHE_DIR = tempfile.mkdtemp(prefix="gridpod-tests-xla-")
    os.environ["JAX_COMPILATION_CACHE_DIR"] = _OWN_CACHE_DIR

import jax  # noqa: E402 (after the cache directory is exported)
import pytest  # noqa: E402

from launch.threefry_lowering import unroll_threefry_on_cpu  # noqa: E402

unroll_threefry_on_cpu()  # as the launchers do (same numbers; shorter compiles)
jax.config.update("jax_numpy_rank_promotion", "raise")
jax.config.update("jax_enable_x64", False)


@pytest.fixture
def x64():
    """Run one test with float64 enabled (power-flow parity needs it)."""
    with jax.enable_x64(True):
        yield


def pytest_unconfigure(config):
    if _OWN_CACHE_DIR is not None:
        shutil.rmtree(_OWN_CACHE_DIR, ignore_errors=True)


def pytest_collection_modifyitems(config, items):
    """Modules with a ``slow`` test (minutes each: launched runs, learning, ieee118 threads)
    first, whole, in their usual order: the xdist workers start on them and fill in with the
    short tests, instead of one worker finishing a long test alone at the end.

    The workers take whole modules (``--dist loadscope --no-loadscope-reorder`` in
    pyproject.toml, in this order), so a module-scoped fixture, mostly a compiled env step or
    clearing QP, is built in one worker only. Under ``worksteal`` a steal split modules at any
    test, and both workers compiled the same fixture at once (benchmarks/README.md, "Test
    suite")."""
    slow_modules = {item.module.__name__ for item in items if item.get_closest_marker("slow")}
    items.sort(key=lambda item: item.module.__name__ not in slow_modules)
