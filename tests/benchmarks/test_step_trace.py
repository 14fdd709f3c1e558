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
    assert set(rows) == {"team", "teacher", "stored_start_mwh", "stored_value", "voll"}
    names = (
        "max_loading",
        "loaded",
        "out",
        "blackout",
        "converged",
        "stored_mwh",
        "battery_bid",
        "unserved_mwh",
        "demand_mwh",
        *step_trace.COST_PARTS[:3],
        "step_cost",
    )
    for variant in ("team", "teacher"):
        row = rows[variant]
        assert {name: value.shape for name, value in row.items()} == {n: (8, 2) for n in names}
        assert row["converged"].all() and (row["out"] >= 0).all()
        assert np.isnan(row["battery_bid"]).all()  # setpoints: nothing was bid
        assert (row["loaded"] <= 20).all() and np.isfinite(row["max_loading"]).all()
        # the parts are the whole of what the evaluation charges a step
        parts = sum(row[name] for name in step_trace.COST_PARTS[:3])
        np.testing.assert_allclose(parts, row["step_cost"], rtol=1e-5)
        assert (row["generation"] > 0).all() and (row["stored_mwh"] >= 0).all()
    # a fresh team's setpoints are far from the zero action: the two dispatches differ
    assert not np.allclose(rows["team"]["max_loading"], rows["teacher"]["max_loading"])
    text = step_trace.format_trace(rows, (2, 5))
    assert text.count("clearing not converged at []") == 4
    assert len(text.splitlines()) == 4 * (2 + 3)
    costs = step_trace.format_costs(rows)
    assert len(costs.splitlines()) == 2 * 6 + 4 and costs.count("team - teacher") == 3
    assert "battery bid" not in costs


def test_the_blocks_of_the_day_are_means_over_the_days_with_the_teams_bid():
    """16 steps in 8 blocks of 2, 2 days: the team pays 1 $ a step more on day 0 and 3 $ on
    day 1, holds 10 and 20 MWh, bids the step's index in $/MWh; the teacher holds nothing."""
    steps, days = 16, 2
    zero = np.zeros((steps, days))

    def row(extra, stored, bid):
        return {
            "generation": 100.0 + extra,
            "curtailment": zero,
            "unserved": zero,
            "blackout": zero.astype(bool),
            "demand_mwh": zero + 1.0,
            "stored_mwh": stored,
            "battery_bid": bid,
        }

    team = row(
        np.tile([1.0, 3.0], (steps, 1)),
        np.tile([10.0, 20.0], (steps, 1)),
        np.repeat(np.arange(steps, dtype=float)[:, None], days, 1),
    )
    rows = {"team": team, "teacher": row(zero, zero, zero * np.nan), "voll": 1000.0}
    one, both = step_trace.block_lines(rows, [1]), step_trace.block_lines(rows, [0, 1])
    assert one[0].endswith(" ".join(["+6"] * 8))  # 2 steps of +3 $
    assert both[0].endswith(" ".join(["+4"] * 8))  # (2 + 6) / 2
    assert one[1].endswith(" ".join(["20.0"] * 8)) and both[1].endswith(" ".join(["15.0"] * 8))
    assert both[2].endswith(" ".join(["0.0"] * 8))
    expected = " ".join(f"{2 * b + 0.5:+.1f}" for b in range(8))  # the mean of steps 2b, 2b + 1
    assert both[3] == "  team battery bid over its base, $/MWh by block: " + expected


def test_a_days_cost_is_its_parts_up_to_the_blackout_and_the_stored_energy_given_up():
    """Two days of three steps: the second blacks out at its second step, so its third step is
    charged its demand (2 MWh) at the VOLL (1,000 $/MWh), as the evaluation charges it; the
    batteries gave up 4 and 1 MWh, at 10 $/MWh."""
    step = np.ones((3, 2))
    row = {
        "generation": 100.0 * step,
        "curtailment": 10.0 * step,
        "unserved": np.array([[0.0, 0.0], [0.0, 500.0], [0.0, 7.0]]),
        "blackout": np.array([[False, False], [False, True], [False, False]]),
        "stored_mwh": np.array([[5.0, 5.0], [3.0, 5.0], [1.0, 0.0]]),
        "demand_mwh": 2.0 * step,
    }
    parts = step_trace.cost_breakdown(row, np.array([5.0, 6.0]), 10.0, 1000.0)
    np.testing.assert_allclose(parts["generation"], [300.0, 200.0])
    np.testing.assert_allclose(parts["curtailment"], [30.0, 20.0])
    np.testing.assert_allclose(parts["unserved"], [0.0, 2500.0])
    np.testing.assert_allclose(parts["stored energy"], [40.0, 10.0])  # day 1 ends at step 1
    np.testing.assert_allclose(parts["total"], [370.0, 2730.0])
    np.testing.assert_allclose(
        step_trace.operating_cost(row, 1000.0),
        [[110.0, 110.0], [110.0, 610.0], [110.0, 2000.0]],
    )
