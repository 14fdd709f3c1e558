"""The OPF benchmark's core: its figures have the stated structure, finite accuracy, honest
target lines."""

import math

import pytest

from benchmarks import opf


@pytest.fixture(scope="module")
def ieee14_result():
    return opf.measure_case(
        "ieee14", [1, 4], highs_solves=3, repeats=1, warm_steps=0, solvers=("clearing",)
    )


def test_measure_case_reports_rates_convergence_and_finite_accuracy(ieee14_result):
    result = ieee14_result
    assert result["case"] == "ieee14"
    highs = result["highs"]
    assert highs["states"] == 3 and highs["solved"] == 3 and highs["solves_per_s"] > 0.0
    assert [row["batch"] for row in result["rows"]] == [1, 4]
    for row in result["rows"]:
        assert row["solver"] == "clearing"
        assert row["solves_per_s"] > 0.0 and row["compile_s"] > 0.0
        assert 0.0 <= row["max_overload_mw"] < 0.5
        assert row["vs_highs"] == pytest.approx(row["solves_per_s"] / highs["solves_per_s"])
        assert row["converged"] == 1.0  # fresh ieee14 states: every QP solves
        acc = row["accuracy"]
        # Only the states both solved and inside the batch are compared.
        assert acc["compared"] == min(row["batch"], 3)
        for name in ("cost_rel_error", "unit_mw", "total_mw"):
            assert math.isfinite(acc[name]), name
        # float32 QP against HiGHS: well inside the tolerances the env's tests hold it to.
        assert acc["cost_rel_error"] < 2e-3 and acc["unit_mw"] < 1.0 and acc["total_mw"] < 1.0
    lines = opf.format_case(result)
    assert lines[0] == "## ieee14" and len(lines) == 5 + 2


def _fake(vs_highs: float, converged: float = 1.0) -> list[dict]:
    row = {"solver": "clearing", "converged": converged, "max_overload_mw": 0.1}
    row["accuracy"] = {"cost_rel_error": 2e-4}
    rows = [dict(row, batch=batch, vs_highs=vs_highs) for batch in (256, 1024)]
    dense = dict(row, solver="dense", batch=1024, vs_highs=100.0)
    return [{"case": "ieee118", "rows": [*rows, dense]}]


def test_target_lines_say_met_or_not_with_the_numbers():
    cpu = {"backend": "cpu"}
    met = "\n".join(opf.target_lines(_fake(12.0), cpu, None))
    assert "ieee118 at batch 1024 on CPU: >= 10x HiGHS" in met
    assert "met (12.0x, 100.0%, 2.00e-04, 0.10 MW)" in met
    assert "ieee14 >= 50,000 solves/s at batch 1024: not measured" in met
    unconverged = "\n".join(opf.target_lines(_fake(12.0, converged=0.99), cpu, None))
    assert "NOT met (12.0x, 99.0%" in unconverged
    assert "1,000x HiGHS on one H100: not measured (no GPU)" in met
    assert "evaluation within 180 s: not measured" in met
    evaluation = {"seconds": 700.0, "finished": False}
    short = "\n".join(opf.target_lines(_fake(3.5), cpu, evaluation))
    assert "NOT met (3.5x" in short
    assert "NOT met (stopped unfinished after 700 s)" in short
    done = "\n".join(opf.target_lines(_fake(3.5), cpu, {"seconds": 120.0, "finished": True}))
    assert "evaluation within 180 s: met (120 s)" in done


@pytest.mark.parametrize(
    "check, value, message",
    [
        (opf.check_batches, ["1", "x"], "--batches must be integers"),
        (opf.check_batches, ["0"], "--batches must be positive"),
        (opf.check_cases, ["ieee30"], "--cases: unknown ['ieee30']"),
        (opf.check_solvers, ["osqp"], "--solvers: unknown ['osqp']"),
    ],
)
def test_bad_flags_get_one_line_errors(check, value, message):
    with pytest.raises(opf.BenchmarkError, match=message.replace("[", r"\[")):
        check(value)
