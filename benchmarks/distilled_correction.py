"""A saved distilled student under settings of its correction, beside its bid policy.

    python -m benchmarks.distilled_correction --checkpoint=RUN --resort_moves=1,3 \
        --episodes=4 --eval_seed=7

Reads the student ``launch.distill`` wrote (``RUN/distilled``, or ``--student``) and its
correction's settings (target, rows, passes, margin), then rolls out the bid policy and the
distilled policy once per ``--resort_moves`` value on the same held-out days (whole days,
``--eval_seed``'s set; 7 is the development set). Prints, per scenario, the bid policy's
cost a day and each variant's cost against it, with the overload steps and the blackouts.
The student is not refitted: only the correction changes between the columns.
"""

import argparse
import json
import sys
from pathlib import Path

from envs.env import make_env
from envs.evaluation.suite import episode_horizon, run_suite
from envs.sim import scenarios
from launch.distillation import distilled_act, load_student, on_bid_args, on_student_args
from launch.evaluation import load_policy, resolve_checkpoint


def _counts(text: str) -> tuple[int, ...]:
    try:
        values = tuple(int(v) for v in text.split(",") if v.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a comma-separated list of ints"
        ) from None
    if not values or min(values) < 1:
        raise argparse.ArgumentTypeError(f"{text!r}: give counts >= 1")
    return values


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", required=True, help="a run dir or one checkpoint")
    parser.add_argument("--student", default=None, help="default: RUN/distilled")
    parser.add_argument("--resort_moves", type=_counts, default=(1, 3))
    parser.add_argument("--episodes", type=int, default=4)
    parser.add_argument("--eval_seed", type=int, default=7)
    parser.add_argument("--scenarios", default=",".join(scenarios.scenario_names()))
    args = parser.parse_args()
    if args.episodes < 1:
        parser.error(f"--episodes must be >= 1, got {args.episodes}")
    names = tuple(s for s in args.scenarios.split(",") if s)
    unknown = sorted(set(names) - set(scenarios.scenario_names()))
    if unknown:
        parser.error(f"unknown scenarios {unknown}; known: {scenarios.scenario_names()}")

    checkpoint_dir, step, run_dir = resolve_checkpoint(args.checkpoint)
    student_dir = Path(args.student) if args.student else run_dir / "distilled"
    if not (student_dir / "student.json").exists():
        sys.exit(f"benchmarks.distilled_correction: no student in {student_dir}")
    student, student_params, spec = load_student(student_dir)
    correction = json.loads((student_dir / "distilled.json").read_text())["correction"]
    config, _, bid_act, bid_args, _ = load_policy(checkpoint_dir, step)
    _, env_params = make_env(config.env)
    horizon = episode_horizon(env_params, 0)

    def distilled(moves):
        return on_student_args(
            distilled_act(
                student,
                env_params,
                spec["target"],
                correction["rows"],
                correction["passes"],
                correction_margin=correction["correction_margin"],
                resort_moves=moves,
            )
        )

    methods = {"bid_policy": on_bid_args(bid_act)}
    methods |= {f"resort_moves={k}": distilled(k) for k in args.resort_moves}
    print(
        f"{spec['target']} student of {checkpoint_dir}, step {step}; correction {correction}; "
        f"set {args.eval_seed}, {args.episodes} whole days per scenario",
        flush=True,
    )
    table, _ = run_suite(
        env_params,
        methods,
        (bid_args, student_params),
        names,
        args.episodes,
        horizon,
        None,
        args.eval_seed,
    )
    head = f"{'scenario':26s}{'bid policy $/day':>18s}"
    print(head + "".join(f"{m:>34s}" for m in methods if m != "bid_policy"))
    print(
        " " * 44 + "".join(f"{'cost ratio (overloads, blackouts)':>34s}" for _ in args.resort_moves)
    )
    for name in names:
        rows = table[name]
        bid = rows["bid_policy"]
        line = f"{name:26s}{bid['cost']:>12,.0f} ({bid['overload_steps']:.2f})"
        for method, row in rows.items():
            if method == "bid_policy" or method not in methods:
                continue
            ratio = row["cost"] / bid["cost"]
            cell = f"{ratio:.4f} ({row['overload_steps']:.2f}, {row['blackouts']:.2f})"
            line += f"{cell:>34s}"
        print(line)
    print(
        "bid policy blackouts: "
        + ", ".join(f"{n} {table[n]['bid_policy']['blackouts']:.2f}" for n in names)
    )


if __name__ == "__main__":
    main()
