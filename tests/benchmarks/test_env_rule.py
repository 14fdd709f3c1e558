"""``benchmarks.env_rule``: what ``--eval_seeds`` accepts and how the table reads."""

import numpy as np
import pytest

from benchmarks.env_rule import RULES, parse_seeds, summary_rows


def test_sets_are_whole_numbers_and_never_the_suites():
    assert parse_seeds(["2", "7"]) == [2, 7]
    with pytest.raises(ValueError, match="suite's held-out set"):
        parse_seeds(["0"])
    with pytest.raises(ValueError, match="not a whole number"):
        parse_seeds(["seven"])
    with pytest.raises(ValueError, match="at least one"):
        parse_seeds([])


def _metrics(cost, unserved, blackouts, overloads):
    return {
        "cost": np.asarray(cost, float),
        "unserved_mwh": np.asarray(unserved, float),
        "blackouts": np.asarray(blackouts, float),
        "overload_steps": np.asarray(overloads, float),
    }


def test_the_table_sums_over_sets_and_names_only_the_days_that_differ():
    same = _metrics([10.0, 30.0], [0.0, 0.0], [0, 0], [1, 3])
    per_set = {
        ("merit_order", "myopic_opf", 2, "normal"): same,
        ("elastic", "myopic_opf", 2, "normal"): same,
        ("merit_order", "myopic_opf", 7, "normal"): _metrics(
            [500.0, 20.0], [9.0, 0.0], [1, 0], [2, 0]
        ),
        ("elastic", "myopic_opf", 7, "normal"): _metrics([100.0, 20.0], [1.5, 0.0], [0, 0], [4, 0]),
    }
    lines = summary_rows(per_set, RULES["opf_fallback"])
    merit = next(line for line in lines if "merit_order" in line).split()
    elastic = next(line for line in lines if " elastic " in line).split()
    # mean cost over the four days, unserved and blackouts summed, overloads a day
    assert merit[3:] == ["140", "9.0", "1", "1.50"]
    assert elastic[3:] == ["40", "1.5", "0", "2.00"]
    differing = [line for line in lines if line.startswith("  ")]
    assert differing == ["  normal myopic_opf set 7 day 0: 500 -> 100 $, 9.0 -> 1.5 MWh"]
