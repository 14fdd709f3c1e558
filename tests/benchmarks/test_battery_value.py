"""The hand battery values of ``benchmarks.battery_value``: what ``--values`` accepts."""

import pytest

from benchmarks.battery_value import parse_value


def test_a_value_is_flat_or_falling_with_the_time_left():
    assert parse_value("50") == (50.0, False)
    assert parse_value(" 35.5:falling ") == (35.5, True)
    assert parse_value("0") == (0.0, False)


def test_the_forecast_values_parse_by_name():
    assert parse_value("forecast:falling") == ("forecast", True)
    assert parse_value("forecast") == ("forecast", False)
    assert parse_value(" band ") == ("band", False)
    assert parse_value("day_end") == ("day_end", False)


@pytest.mark.parametrize(
    "text, words",
    [
        ("abc", "not a number"),
        ("50:rising", "must be 'falling'"),
        ("-5", ">= 0"),
        ("inf", "finite"),
    ],
)
def test_a_bad_value_is_named_in_one_line(text, words):
    with pytest.raises(ValueError, match=words) as error:
        parse_value(text)
    assert text in str(error.value) and "\n" not in str(error.value)
