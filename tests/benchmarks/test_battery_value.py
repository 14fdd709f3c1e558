"""The hand battery values of ``benchmarks.battery_value``: what ``--values`` accepts."""

import math

import pytest

from benchmarks.battery_value import parse_value


def test_a_value_is_flat_or_falling_with_the_time_left():
    assert parse_value("50") == (50.0, False)
    assert parse_value(" 35.5:falling ") == (35.5, True)
    assert parse_value("0") == (0.0, False)


def test_the_forecast_value_parses_as_no_number():
    value, falling = parse_value("forecast:falling")
    assert math.isnan(value) and falling
    assert math.isnan(parse_value("forecast")[0]) and not parse_value("forecast")[1]


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
