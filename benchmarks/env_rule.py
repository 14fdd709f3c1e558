"""Two settings of one env rule, on the same episodes: a preset's OPF baselines under each.

    python -m benchmarks.env_rule --rule=opf_fallback --eval_seeds=2,3,4,5,6,7,8,9 --episodes=16
    python -m benchmarks.env_rule --rule=island_rule --eval_seeds=2,3,4,5,6,7,8,9 --episodes=16
    python -m benchmarks.env_rule --eval_seeds=1 --episodes=8 --baselines=myopic_opf,lookahead_opf
    python -m benchmarks.env_rule --config=configs/ieee118.py --eval_seeds=7 --episodes=4

The rules (``RULES``: the env field, its setting before and the one it is compared with):

* ``opf_fallback``: where no dispatch meets every branch limit, the clearing QP does not
  converge; the env then dispatches by the merit order (``"merit_order"``) or solves again with
  the limits' excess priced (``"elastic"``, ``envs.opf.step_qp.elastic_qp``);
* ``island_rule``: when outages split the grid, the slack's island stays energised
  (``"slack"``) or the one with the most demand of those holding an online unit
  (``"largest_load"``, ``envs.sim.islands``).

Both settings differ only on the steps the rule decides, so on most days the two rows agree to
the dollar; the days that differ are listed.

Output: per scenario and baseline, under each setting, the mean cost of a day, the unserved
energy, the blackouts and the overload steps a day over every set, then the days that differ;
the machine in the header. ``--eval_seeds``: episode sets (``scenarios.eval_keys``; 0, the
suite's, is refused).
"""

from __future__ import annotations

import numpy as np
from absl import app, flags

from benchmarks.harness import define_preset_flag, describe, describe_line, usage_errors

# env field -> (the setting before, the one compared with it)
RULES = {
    "opf_fallback": ("merit_order", "elastic"),
    "island_rule": ("slack", "largest_load"),
}
COLUMNS = ("cost", "unserved_mwh", "blackouts", "overload_steps")


def define_flags() -> dict:
    """The command's flags, defined when it runs (``__main__``, ``define_preset_flag``)."""
    return {
        "config": define_preset_flag(),
        "rule": flags.DEFINE_enum("rule", "opf_fallback", list(RULES), "The env rule compared."),
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


def summary_rows(per_set: dict, settings: tuple[str, str]) -> list[str]:
    """Table lines from ``{(setting, baseline, seed, scenario): episode metrics}``: per
    scenario and baseline, each of the two ``settings``' mean day cost, unserved MWh, blackouts
    and overload steps a day over the sets; then each day whose cost differs between them."""
    lines = [
        f"{'scenario':<26}{'baseline':<16}{'setting':<14}{'cost/day $':>14}"
        f"{'unserved MWh':>14}{'blackouts':>11}{'overloads/day':>15}"
    ]
    keys = sorted({(b, s) for _, b, _, s in per_set}, key=lambda k: (k[1], k[0]))
    seeds = sorted({seed for _, _, seed, _ in per_set})
    for baseline, scenario in keys:
        for setting in settings:
            rows = [per_set[setting, baseline, seed, scenario] for seed in seeds]
            joined = {c: np.concatenate([np.asarray(r[c], float) for r in rows]) for c in COLUMNS}
            lines.append(
                f"{scenario:<26}{baseline:<16}{setting:<14}{joined['cost'].mean():>14.0f}"
                f"{joined['unserved_mwh'].sum():>14.1f}{joined['blackouts'].sum():>11.0f}"
                f"{joined['overload_steps'].mean():>15.2f}"
            )
    before_name, after_name = settings
    lines.append(f"days that differ (set, day: {before_name} -> {after_name}, $ and MWh unserved)")
    for baseline, scenario in keys:
        for seed in seeds:
            before, after = (per_set[s, baseline, seed, scenario] for s in settings)
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
    rule = flag["rule"].value
    print(f"{config.env.case}, env.{rule}; {describe_line(describe())}", flush=True)
    per_set = {}
    for setting in RULES[rule]:
        config.env[rule] = setting
        _, params = make_env(config.env)
        methods = registry.baseline_methods(params, tuple(names))
        for name in names:
            for seed in seeds:
                for scenario in scenarios.scenario_names():
                    per_set[setting, name, seed, scenario] = suite.rollout_method(
                        params,
                        methods,
                        None,
                        name,
                        scenario,
                        flag["episodes"].value,
                        int(params.consts.horizon),
                        seed,
                    )[0]
    print("\n".join(summary_rows(per_set, RULES[rule])))


if __name__ == "__main__":
    defined = define_flags()
    app.run(lambda argv: main(argv, defined))
