"""The all-cores env benchmark: pinned workers, summed rates, clear errors."""

import os
import subprocess
import sys

import pytest

from benchmarks import per_core

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def test_one_pinned_worker_per_core_reports_a_summed_rate():
    cores = per_core.usable_cores()[:1]
    result = per_core.measure_all_cores("ieee14", "dc", 2, 0.2, cores=cores)
    assert result["cores"] == 1 and len(result["per_core"]) == 1
    assert result["rate"] == pytest.approx(sum(result["per_core"]))
    assert result["rate"] > 0 and result["steps"] >= 2


def test_a_worker_that_fails_is_a_clear_error_naming_its_core():
    with pytest.raises(RuntimeError, match=r"per-core worker on core \d+ exited with status [1-9]"):
        per_core.measure_all_cores("no_such_case", "dc", 2, 0.1, cores=per_core.usable_cores()[:1])


def test_bad_per_core_batches_flag_fails_before_measuring():
    command = [sys.executable, "-m", "benchmarks.env_throughput", "--per_core_batches=64,x"]
    done = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=120)
    assert done.returncode != 0
    assert "--per_core_batches must be integers" in done.stderr
    assert "Grid2Op" not in done.stdout  # nothing was measured


def test_memory_report_gives_peak_and_second_half_growth_per_process():
    from benchmarks.process_memory import memory_report

    mib = 2**20
    series = {
        11: ("python x", [(0.0, 100 * mib), (5.0, 900 * mib), (10.0, 910 * mib)]),
        12: ("python y", [(0.0, 50 * mib), (4.0, 400 * mib), (6.0, 300 * mib), (8.0, 350 * mib)]),
    }
    nodes = {"learner": 11, "actor-0": 12}
    report = memory_report(series, nodes, processes=1)
    growth_pct = 100.0 * 10 / 900  # from 900 MiB at half time to 910 MiB at the end
    assert report == {
        "learner (pid 11)": {
            "peak_mb": 910.0,
            "second_half_growth_mb": 10.0,
            "second_half_growth_pct": pytest.approx(growth_pct),
        }
    }
    assert list(memory_report(series, {})) == ["python x (pid 11)", "python y (pid 12)"]
    actor = memory_report(series, nodes)["actor-0 (pid 12)"]
    # At 4 s (half of 8 s) 400 MiB, at the end 350 MiB.
    assert actor == {
        "peak_mb": 400.0,
        "second_half_growth_mb": -50.0,
        "second_half_growth_pct": pytest.approx(-12.5),
    }
