"""Checks on config fields, declared next to the defaults they guard.

Each config module (envs/config.py, learner/config.py, configs/runtime.py) keeps a table
``{field: Rule}`` beside its defaults and calls ``check_fields`` from its validator, so a bad
value is named with the allowed range before anything starts:
``learner.learning_rate=-1.0 is invalid: allowed a number > 0``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import Any, NamedTuple


class Rule(NamedTuple):
    test: Callable[[Any], bool]
    allowed: str


def _number(value) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _integer(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


POSITIVE = Rule(lambda v: _number(v) and v > 0, "a number > 0")
NON_NEGATIVE = Rule(lambda v: _number(v) and v >= 0, "a number >= 0")
NON_POSITIVE = Rule(lambda v: _number(v) and v <= 0, "a number <= 0")
FINITE = Rule(_number, "a finite number")
UNIT_INTERVAL = Rule(lambda v: _number(v) and 0 <= v <= 1, "a number in [0, 1]")


def at_least(low: int) -> Rule:
    return Rule(lambda v: _integer(v) and v >= low, f"an integer >= {low}")


def one_of(*choices) -> Rule:
    return Rule(lambda v: v in choices, "one of " + ", ".join(repr(c) for c in choices))


def _is_section(value) -> bool:
    return isinstance(value, Mapping) or hasattr(value, "items")  # a dict or a ConfigDict


def merged_onto(defaults, stored):
    """``defaults`` (a ConfigDict) with every field ``stored`` has set to its stored value,
    nested sub-configs merged the same way. A config stored before a field existed (a
    checkpoint's) then builds as it ran: a new field's default keeps the behaviour from before."""
    for name, value in stored.items():
        if _is_section(value) and name in defaults and _is_section(defaults[name]):
            merged_onto(defaults[name], value)
            continue
        with defaults.ignore_type():
            defaults[name] = value
    return defaults


def check_fields(section: str, config: Mapping, rules: Mapping[str, Rule]) -> None:
    """Raise ValueError naming the first field of ``config`` that breaks its rule.

    ``rules`` keys may be dotted paths into nested sub-configs (``checkpoint.max_to_keep``).
    """
    for name, rule in rules.items():
        value = config
        for part in name.split("."):
            value = value[part]
        if not rule.test(value):
            raise ValueError(f"{section}.{name}={value!r} is invalid: allowed {rule.allowed}")
