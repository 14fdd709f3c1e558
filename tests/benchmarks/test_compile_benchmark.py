"""benchmarks.compile: the first call's compile is separated from the run time."""

import subprocess
import sys
import time

import jax
import jax.numpy as jnp
import pytest

from benchmarks import compile as compile_benchmark


def test_time_program_separates_the_first_calls_compile_from_its_runs():
    calls = []

    def call():
        calls.append(time.perf_counter())
        if len(calls) == 1:  # the first call pays a (simulated) compile
            time.sleep(0.2)
        return jnp.ones(3)

    timing = compile_benchmark.time_program(call, repeats=3)
    assert len(calls) == 4
    assert timing["first_s"] >= 0.2
    assert timing["run_s"] < 0.1
    assert timing["compile_s"] == pytest.approx(timing["first_s"] - timing["run_s"])


def test_time_program_refuses_no_repeats():
    with pytest.raises(compile_benchmark.BenchmarkError, match="--repeats"):
        compile_benchmark.time_program(lambda: jax.numpy.zeros(1), repeats=0)


def test_the_benchmark_imports_beside_the_launchers_config_flag():
    # A test worker imports this module and launch.cli (whose --config is a config file).
    code = "import benchmarks.compile, launch.cli"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]
