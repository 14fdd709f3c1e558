"""What an evaluation runs, by name: the baselines a policy is judged against
(``envs.opf.baselines``) and the held-out scenarios (``envs.sim.scenarios``)."""

from __future__ import annotations

from functools import partial

from envs.evaluation.rollout import ActFn
from envs.opf import baselines, storage_value
from envs.opf.controls import MYOPIC_RATING_MARGIN
from envs.sim import scenarios
from envs.types import EnvParams

BASELINES = {
    "do_nothing": baselines.do_nothing,
    "proportional": baselines.proportional,
    "merit_order": baselines.merit_order,
    # single-step DC-OPF, batched in JAX on the device (envs.opf.step_qp)
    "myopic_opf": baselines.myopic_opf_baseline,
    # the same with the batteries' energy offered at the price the forecast expects ahead
    "myopic_opf_valued": baselines.myopic_opf_valued,
    # the same with each battery offered within the round-trip band below that price
    "myopic_opf_banded": partial(baselines.myopic_opf_valued, offers=storage_value.banded_offers),
    # the same with the batteries' energy at the evaluation's value past the day's end
    "myopic_opf_to_day_end": baselines.myopic_opf_to_day_end,
    # the same with the clearing's alarm rule: a wider margin on the step after an overload
    "myopic_opf_alarm": baselines.myopic_opf_alarm,
    # receding-horizon DC-OPF on the operator's forecast, batched in JAX (envs.opf.lookahead_qp)
    "lookahead_opf": baselines.lookahead_opf,
    # the same, with the energy stored at the horizon's end valued at the forecast's end price
    "lookahead_opf_valued": partial(baselines.lookahead_opf, value_stored_energy=True),
    # the myopic OPF solved exactly by HiGHS on the host: its reference, one LP per grid per step
    "myopic_opf_highs": baselines.myopic_opf_highs,
}
# Evaluated unless --baselines says otherwise. Left out: the HiGHS reference (the same problem
# as myopic_opf, and its host solves are the slow part of an ieee118 suite), lookahead_opf,
# whose dense multi-period QP (six periods: ~1k variables and ~4k rows on ieee118) costs seconds
# per grid and step on a CPU, myopic_opf_alarm, the yardstick of envs with an alarm margin, and
# myopic_opf_valued and myopic_opf_banded, the teachers of env.storage_bid_base=
# "forecast_price" and "forecast_band" (launch.evaluate adds a checkpoint's own teacher,
# ``with_policy_references``).
# myopic_opf_to_day_end is in: the cheapest causal baseline in four ieee14 scenarios of six
# (held-out set 1 of benchmarks.learning, the look-ahead OPF included), and the teacher of the
# default preset, whose batteries bid on that base.
DEFAULT_BASELINES = tuple(
    name
    for name in BASELINES
    if name
    not in (
        "myopic_opf_highs",
        "lookahead_opf",
        "lookahead_opf_valued",
        "myopic_opf_alarm",
        "myopic_opf_valued",
        "myopic_opf_banded",
    )
)
# The baselines that keep a share of every branch rating free (``rating_margin``).
WITH_RATING_MARGIN = (
    "myopic_opf",
    "myopic_opf_valued",
    "myopic_opf_banded",
    "myopic_opf_to_day_end",
    "myopic_opf_alarm",
    "myopic_opf_highs",
    "lookahead_opf",
    "lookahead_opf_valued",
)


# The teacher (what a zero bid clears to) of each battery bid base under bids.
BASE_TEACHERS = {
    "forecast_price": "myopic_opf_valued",
    "forecast_band": "myopic_opf_banded",
    "forecast_to_day_end": "myopic_opf_to_day_end",
}
# The myopic OPF under the clearing's alarm rule, the yardstick of an env with an alarm margin.
ALARM_BASELINE = "myopic_opf_alarm"


def with_policy_references(names: tuple[str, ...], env_config) -> tuple[str, ...]:
    """``names`` and, where they lack them, the baselines a policy trained on ``env_config`` is
    judged beside: the myopic OPF that runs its alarm rule (``env.alarm_margin`` > 0) and,
    where its batteries bid on a base of ``BASE_TEACHERS``, that base's teacher."""
    extra = []
    if env_config.get("alarm_margin", 0.0):
        extra.append(ALARM_BASELINE)
    if env_config.get("action_interface") == "bids":
        extra.append(BASE_TEACHERS.get(env_config.get("storage_bid_base", "zero")))
    return tuple(names) + tuple(n for n in extra if n and n not in names)


def _chosen(selection: str, allowed, what: str, allowed_text: str) -> tuple[str, ...]:
    """The names of a comma-separated selection; unknown ones raise ValueError."""
    chosen = tuple(s.strip() for s in selection.split(",") if s.strip())
    unknown = [s for s in chosen if s not in allowed]
    if unknown:
        raise ValueError(f"unknown {what} {unknown}; allowed: {allowed_text}")
    return chosen


def baseline_list(selection: str) -> tuple[str, ...]:
    """A comma-separated selection as names of ``BASELINES`` ('' for none); unknown names raise
    ValueError."""
    return _chosen(selection, BASELINES, "baselines", ", ".join(BASELINES))


def scenario_list(selection: str) -> tuple[str, ...]:
    """``'all'`` (or empty) or a comma-separated selection as scenario names; unknown names
    raise ValueError."""
    names = scenarios.scenario_names()
    if selection.strip() in ("", "all"):
        return names
    return _chosen(selection, names, "scenarios", f"all or {', '.join(names)}")


def baseline_methods(
    params: EnvParams, names, rating_margin: float = MYOPIC_RATING_MARGIN
) -> dict[str, ActFn]:
    """``{name: ActFn}`` of the named baselines on ``params``, in that order; the OPF baselines
    keep ``rating_margin`` of every branch rating free."""
    return {
        name: BASELINES[name](params, rating_margin=rating_margin)
        if name in WITH_RATING_MARGIN
        else BASELINES[name](params)
        for name in names
    }
