"""The single-step OPF's fallback, elastic against the merit order: a preset's OPF baselines
under each ``env.opf_fallback`` on the same episodes.

    python -m benchmarks.opf_fallback --eval_seeds=2,3,4,5,6,7,8,9 --episodes=16
    python -m benchmarks.opf_fallback --eval_seeds=1 --episodes=8 --baselines=myopic_opf,lookahead_opf
    python -m benchmarks.opf_fallback --config=configs/ieee118.py --eval_seeds=7 --episodes=4

Where no dispatch meets every branch limit, the clearing QP does not converge; the env then
dispatches by the merit order (``"merit_order"``) or solves again with the limits' excess priced
(``"elastic"``, ``envs.opf.step_qp.elastic_qp``). Both settings differ only on such steps, so
on most days the two rows agree to the dollar; the days that differ are listed.

Output: per scenario and baseline, under each fallback, the mean cost of a day, the unserved
energy, the blackouts and the overload steps a day over every set, then the days that differ;
the machine in the header. ``--eval_seeds``: episode sets (``scenarios.eval_keys``; 0, the
suite's, is refused).
"""

from __future__ import annotations

import numpy as np
from absl import app, flags

from benchmarks.harness import define_preset_flag, describe, describe_line, usage_errors

FALLBACKS = ("merit_order", "elastic")
COLUMNS = ("cost", "unserved_mwh", "blackouts", "overload_steps")


def define_flags() -> dict:
    """The command's flags, defined when it runs (``__main__``, ``define_preset_flag``)."""
    return {
        "config": define_preset_flag(),
        "baselines": flags.DEFINE_list(
            "baselines", ["myopic_opf"], "OPF baselines (envs.evaluation.registry)."
        ),
        "eval_seeds": flags.DEFINE_list("eval_seeds", ["7"], "Episode sets; 0 is refused."),
        "episodes": flags.DEFINE_integer("episodes", 8, "Whole-day episodes per scenario."),
    }


def parse_seeds(texts) -> list[int]:
    """``["2", "7"]`` -> [2, 7]; a clear error for anything but whole numbers >= 1."""
    seeds = []
    for text in texts:
        try:
            seed = int(text)
        except ValueError:
            raise ValueError(f"--eval_seeds: {text!r} is not a whole number") from None
        if seed < 1:
            raise ValueError("--eval_seeds: 0 is the suite's held-out set; pick others")
        seeds.append(seed)
    if not seeds:
        raise ValueError("--eval_seeds: name at least one set")
    return seeds


def summary_rows(per_set: dict) -> list[str]:
    """Table lines from ``{(fallback, baseline, seed, scenario): episode metrics}``: per
    scenario and baseline, each fallback's mean day cost, unserved MWh, blackouts and overload
    steps a day over the sets; then each day whose cost differs between the fallbacks."""
    lines = [
        f"{'scenario':<26}{'baseline':<16}{'fallback':<13}{'cost/day $':>14}"
        f"{'unserved MWh':>14}{'blackouts':>11}{'overloads/day':>15}"
    ]
    keys = sorted({(b, s) for _, b, _, s in per_set}, key=lambda k: (k[1], k[0]))
    seeds = sorted({seed for _, _, seed, _ in per_set})
    for baseline, scenario in keys:
        for fallback in FALLBACKS:
            rows = [per_set[fallback, baseline, seed, scenario] for seed in seeds]
            joined = {c: np.concatenate([np.asarray(r[c], float) for r in rows]) for c in COLUMNS}
            lines.append(
                f"{scenario:<26}{baseline:<16}{fallback:<13}{joined['cost'].mean():>14.0f}"
                f"{joined['unserved_mwh'].sum():>14.1f}{joined['blackouts'].sum():>11.0f}"
                f"{joined['overload_steps'].mean():>15.2f}"
            )
    lines.append("days that differ (set, day: merit order -> elastic, $ and MWh unserved)")
    for baseline, scenario in keys:
        for seed in seeds:
            before, after = (per_set[f, baseline, seed, scenario] for f in FALLBACKS)
            for day in np.flatnonzero(~np.isclose(before["cost"], after["cost"], rtol=1e-6)):
                lines.append(
                    f"  {scenario} {baseline} set {seed} day {day}: "
                    f"{before['cost'][day]:,.0f} -> {after['cost'][day]:,.0f} $, "
                    f"{before['unserved_mwh'][day]:.1f} -> {after['unserved_mwh'][day]:.1f} MWh"
                )
    return lines


def main(argv, flag) -> None:
    del argv
    from envs.env import make_env
    from envs.evaluation import registry, suite
    from envs.sim import scenarios

    with usage_errors(ValueError):
        seeds = parse_seeds(flag["eval_seeds"].value)
        if flag["episodes"].value < 1:
            raise ValueError(f"--episodes must be >= 1, got {flag['episodes'].value}")
        names = registry.baseline_list(",".join(flag["baselines"].value))
        if not names:
            raise ValueError("--baselines: name at least one")
    config = flag["config"].value
    print(f"{config.env.case}; {describe_line(describe())}", flush=True)
    per_set = {}
    for fallback in FALLBACKS:
        config.env.opf_fallback = fallback
        _, params = make_env(config.env)
        methods = registry.baseline_methods(params, tuple(names))
        for name in names:
            for seed in seeds:
                for scenario in scenarios.scenario_names():
                    per_set[fallback, name, seed, scenario] = suite.rollout_method(
                        params,
                        methods,
                        None,
                        name,
                        scenario,
                        flag["episodes"].value,
                        int(params.consts.horizon),
                        seed,
                    )[0]
    print("\n".join(summary_rows(per_set)))


if __name__ == "__main__":
    defined = define_flags()
    app.run(lambda argv: main(argv, defined))
