"""``benchmarks.step_trace``: a checkpoint's team and its teacher step by step on the same days."""

import numpy as np
import pytest

from benchmarks import step_trace
from tests.benchmarks.flags import parsed_flags
from tests.launch.test_evaluate import _tiny_checkpoint

TRACE_DEFAULTS = {
    "run_dir": "run",
    "step": None,
    "scenario": "cascading_failure",
    "episodes": 2,
    "eval_seed": 2,
    "shown": "0:13",
}


def _flags(**changes):
    return parsed_flags(TRACE_DEFAULTS, **changes)


@pytest.mark.parametrize(
    "change, words",
    [
        ({"run_dir": None}, "--run_dir is required"),
        ({"episodes": 0}, "--episodes must be >= 1"),
        ({"eval_seed": 1}, "held-out set"),
        ({"eval_seed": 0}, "held-out set"),
        ({"scenario": "sunny"}, "--scenario: unknown 'sunny'"),
        ({"shown": "13"}, "expected FIRST:END"),
        ({"shown": "5:5"}, "expected FIRST:END"),
        ({"shown": "a:9"}, "expected FIRST:END"),
    ],
)
def test_bad_flags_are_named_in_one_line(change, words):
    with pytest.raises(ValueError) as error:
        step_trace.check_flags(_flags(**change))
    assert words in str(error.value) and "\n" not in str(error.value)
    step_trace.check_flags(_flags())  # the defaults run


def test_the_team_and_the_teacher_are_traced_on_the_same_days(tmp_path):
    """Setpoints, not bids: the trace is under test, and without the clearing QP it compiles
    in a fraction of the time (every step then counts as converged: nothing was cleared)."""
    run_dir = _tiny_checkpoint(tmp_path)
    rows = step_trace.trace(run_dir / "checkpoints", None, "cascading_failure", 2, eval_seed=2)
    assert set(rows) == {"team", "teacher"}
    for row in rows.values():
        assert {name: value.shape for name, value in row.items()} == {
            name: (8, 2) for name in ("max_loading", "loaded", "out", "blackout", "converged")
        }
        assert row["converged"].all() and (row["out"] >= 0).all()
        assert (row["loaded"] <= 20).all() and np.isfinite(row["max_loading"]).all()
    # a fresh team's setpoints are far from the zero action: the two dispatches differ
    assert not np.allclose(rows["team"]["max_loading"], rows["teacher"]["max_loading"])
    text = step_trace.format_trace(rows, (2, 5))
    assert text.count("clearing not converged at []") == 4
    assert len(text.splitlines()) == 4 * (2 + 3)
