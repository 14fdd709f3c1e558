"""What is stored energy worth on a grid? The myopic OPF with every battery offering its energy
at a hand value, against the myopic OPF itself, before any policy learns to bid it.

    python -m benchmarks.battery_value                                 # ieee14 default preset
    python -m benchmarks.battery_value --config=configs/ieee118.py --values=35,50,50:falling

A battery's bid in the clearing QP is the value it puts on its stored energy: it discharges
when the step's marginal price is above it, charges below it (``envs/action_interface.py``).
Here the bid is fixed by hand instead of learned: ``V`` offers every battery's energy at V $/MWh
in every step; ``V:falling`` at ``V x (1 - t / horizon)``, a value that falls with the time
left in the day; ``forecast`` at the price the operator's forecast expects at the look-ahead's
horizon (``envs.opf.storage_value``, the ``myopic_opf_valued`` baseline), ``forecast:falling``
that price times ``1 - t / horizon``; ``band`` at the present price within the round-trip band
below it (``myopic_opf_banded``); ``day_end`` at the forecast's price until the step it is taken
at lies past the day's end, then at the evaluation's value of stored energy
(``myopic_opf_to_day_end``). The units offer at cost (the preset's ``bid_scale`` is
set to 0), so only the batteries' value differs from the myopic OPF, which runs beside them on
the same episodes.

If no hand value saves anything under stress, the batteries have little to learn on that grid
and a bid policy's gains, if any, come from elsewhere (benchmarks/README.md, "ieee118 with
battery bids only"). On ieee14 a high value saves a great deal where a failure follows
("A battery's bid range").

Output: per scenario and method, the mean episode cost over the myopic OPF's, the per-episode
ratios, overload steps and unserved energy; the machine in the header. The held-out set
``--eval_seed`` (default 7, a development set; 0, the suite's, is refused).
"""

from __future__ import annotations

from functools import partial

import numpy as np
from absl import app, flags

from benchmarks.harness import define_preset_flag, describe, describe_line, usage_errors


def define_flags() -> dict:
    """The command's flags, defined when it runs (``__main__``, ``define_preset_flag``)."""
    return {
        "config": define_preset_flag(),
        "values": flags.DEFINE_list(
            "values",
            ["35", "50", "50:falling"],
            "Battery values, $/MWh: V (every step) or V:falling (V x (1 - t / horizon)); V may"
            " be 'forecast' (the forecast's price), 'band' (its round-trip band) or 'day_end'"
            " (the forecast's price to the day's end).",
        ),
        "scenarios": flags.DEFINE_list(
            "scenarios",
            ["normal", "equipment_failure", "renewable_intermittency", "cascading_failure"],
            "Scenarios to roll out.",
        ),
        "episodes": flags.DEFINE_integer("episodes", 2, "Whole-day episodes per scenario."),
        "eval_seed": flags.DEFINE_integer(
            "eval_seed", 7, "Episode set (scenarios.eval_keys); 0 is refused."
        ),
    }


# Values that are no number of $/MWh: the ``envs.opf.storage_value`` offers they stand for.
NAMED_VALUES = ("forecast", "band", "day_end")


def parse_value(text: str) -> tuple[float | str, bool]:
    """``"50"`` -> (50.0, False); ``"50:falling"`` -> (50.0, True); ``"forecast"`` ->
    ("forecast", False), the price expected at the look-ahead's horizon; ``"band"`` -> ("band",
    False), the present price within that price's round-trip band; ``"day_end"`` -> ("day_end",
    False), the forecast's price to the day's end; a clear error otherwise."""
    number, _, shape = text.strip().partition(":")
    if shape not in ("", "falling"):
        raise ValueError(f"--values: {text!r}: the shape after ':' must be 'falling'")
    if number in NAMED_VALUES:
        return number, shape == "falling"
    try:
        value = float(number)
    except ValueError:
        raise ValueError(f"--values: {text!r} is not a number of $/MWh") from None
    if not np.isfinite(value) or value < 0:
        raise ValueError(f"--values: {text!r} must be a finite value >= 0 $/MWh")
    return value, shape == "falling"


def valued_batteries(params, value: float | str, falling: bool):
    """The myopic OPF (an ActFn) with every battery offering its energy at ``value`` $/MWh (or
    a ``NAMED_VALUES`` offer), times ``1 - t / horizon`` if ``falling``; the units at cost."""
    import jax.numpy as jnp

    from envs.opf import baselines, storage_value
    from envs.opf.controls import MYOPIC_RATING_MARGIN, myopic_opf_controls

    n_gen, n_storage = params.grid.n_gen, params.devices.storage_bus.shape[0]
    horizon = params.consts.horizon
    end_value = storage_value.stored_energy_value(params)
    named = {
        "forecast": storage_value.valued_offers,
        "band": storage_value.banded_offers,
        "day_end": partial(storage_value.day_end_offers, end_value=end_value),
    }

    def controls(state, params):
        scale = 1.0 - state.t / horizon if falling else 1.0
        if isinstance(value, str):
            worth = named[value](state, params)[n_gen:]
        else:
            worth = jnp.full(n_storage, value)
        offers = jnp.concatenate([jnp.zeros(n_gen), worth * scale])
        return myopic_opf_controls(state, params, MYOPIC_RATING_MARGIN, offers)

    return baselines.single_to_batched(controls, params)


def main(argv, flag) -> None:
    del argv
    from envs.env import make_env
    from envs.evaluation import registry, suite
    from envs.sim import scenarios

    with usage_errors(ValueError):
        values = {text: parse_value(text) for text in flag["values"].value}
        if flag["episodes"].value < 1:
            raise ValueError(f"--episodes must be >= 1, got {flag['episodes'].value}")
        if flag["eval_seed"].value < 1:
            raise ValueError("--eval_seed: 0 is the suite's held-out set; pick another")
        unknown = set(flag["scenarios"].value) - set(scenarios.scenario_names())
        if unknown:
            raise ValueError(f"--scenarios: unknown {sorted(unknown)}")
    config = flag["config"].value
    config.env.bid_scale = 0.0
    _, params = make_env(config.env)
    methods = registry.baseline_methods(params, ("myopic_opf",))
    for text, (value, falling) in values.items():
        methods[text] = valued_batteries(params, value, falling)
    horizon = int(params.consts.horizon)
    print(f"{config.env.case}; {describe_line(describe())}")
    print(f"{'scenario':<26}{'battery value':<16}{'cost / OPF':>11}  per episode, overload, MWh")
    for scenario in flag["scenarios"].value:
        rows = {
            name: suite.rollout_method(
                params,
                methods,
                None,
                name,
                scenario,
                flag["episodes"].value,
                horizon,
                flag["eval_seed"].value,
            )[0]
            for name in methods
        }
        base = rows["myopic_opf"]["cost"]
        for name, row in rows.items():
            print(
                f"{scenario:<26}{name:<16}{row['cost'].sum() / base.sum():>11.4f}  "
                f"{np.round(row['cost'] / base, 4)} {row['overload_steps']} "
                f"{np.round(row['unserved_mwh'], 1)}",
                flush=True,
            )


if __name__ == "__main__":
    defined = define_flags()
    app.run(lambda argv: main(argv, defined))
