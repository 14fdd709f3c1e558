"""The benchmarks' shared harness: modules import together, and the helpers do what they say."""

import importlib
import pathlib

from absl import flags

from benchmarks import harness

BENCHMARKS = pathlib.Path(harness.__file__).parent


def test_every_benchmark_module_imports_into_one_process():
    """absl flags are global: two modules that both define --cases must share one flag."""
    names = sorted(p.stem for p in BENCHMARKS.glob("*.py") if p.stem != "__init__")
    assert {"env_throughput", "opf", "powerflow", "step_floor"} <= set(names)
    for name in names:
        importlib.import_module(f"benchmarks.{name}")
    assert flags.FLAGS["cases"].name == "cases"


def test_define_once_returns_the_existing_flag():
    first = harness.define_once(flags.DEFINE_integer, "harness_test_flag", 3, "a test flag")
    again = harness.define_once(flags.DEFINE_integer, "harness_test_flag", 5, "a test flag")
    assert again is flags.FLAGS["harness_test_flag"]
    assert first.default == 3 and again.default == 3


def test_timed_rate_counts_items_per_second():
    calls = []
    rate = harness.timed_rate(lambda: calls.append(1), items_per_call=10, min_time=0.05)
    assert len(calls) >= 1
    assert 0 < rate <= 10 * len(calls) / 0.05 + 1e-9
