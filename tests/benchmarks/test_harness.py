"""The benchmarks' shared harness: modules import together, and the helpers do what they say."""

import pathlib
import subprocess
import sys

import pytest
from absl import flags

from benchmarks import harness

BENCHMARKS = pathlib.Path(harness.__file__).parent


def test_every_benchmark_module_imports_into_one_process():
    """absl flags are global: two modules that both define --cases must share one flag. In a
    child process, so that the flags do not stay defined for the other tests of this one."""
    names = sorted(p.stem for p in BENCHMARKS.glob("*.py") if p.stem != "__init__")
    assert {"env_throughput", "opf", "powerflow", "step_floor"} <= set(names)
    script = "; ".join(f"import benchmarks.{name}" for name in names)
    script += "; from absl import flags; print(flags.FLAGS['cases'].name)"
    done = subprocess.run(
        [sys.executable, "-c", script], cwd=BENCHMARKS.parent, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip() == "cases"


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


def test_usage_errors_exit_2_with_one_line_and_let_other_errors_through(capsys):
    with pytest.raises(SystemExit) as exit_, harness.usage_errors(ValueError, FileNotFoundError):
        raise FileNotFoundError("--run_dir runs/x has no checkpoints")
    assert exit_.value.code == 2
    assert capsys.readouterr().err == "error: --run_dir runs/x has no checkpoints\n"
    with pytest.raises(KeyError), harness.usage_errors(ValueError):
        raise KeyError("a bug, not bad input")
