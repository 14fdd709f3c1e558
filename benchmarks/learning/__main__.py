"""The command line of the time-to-quality benchmark (the package's docstring says what it
does): ``python -m benchmarks.learning --help``.

The flags are defined here only, on absl's flags, so importing the package (its tests, or a
script) defines none.
"""

from __future__ import annotations

import datetime
import json
import logging
import sys
from pathlib import Path

from absl import app, flags

from benchmarks import harness, learning
from benchmarks.learning.evaluation import ReadOnlyRestoreFilter, evaluate_runs
from benchmarks.learning.report import format_report, plot_curves
from benchmarks.learning.settings import (
    DEFAULT_CONFIG,
    LAUNCH_RECORD,
    REPO,
    Settings,
    UsageError,
    env_only,
    load_preset,
    parse_overrides,
    progress,
    read_json,
)
from benchmarks.learning.train import train_seeds

_CONFIG = flags.DEFINE_string(
    "config",
    DEFAULT_CONFIG,
    "Training preset (configs/*.py).",
)


_OVERRIDE = flags.DEFINE_multi_string(
    "override",
    [],
    "Config overrides for training, e.g. '--config.learner.learning_rate=1e-4' "
    "(repeat the flag, or several in one quoted string). With --from_runs, env overrides "
    "only: the trained runs are evaluated on the changed env.",
)


_SEEDS = flags.DEFINE_integer(
    "seeds",
    3,
    "Training seeds, one run each (0..N-1, or from --first_seed).",
)


_FIRST_SEED = flags.DEFINE_integer(
    "first_seed",
    0,
    "The first training seed: seeds first_seed .. first_seed + N - 1 (more seeds for runs "
    "already made, evaluated together with --from_runs).",
)


_BUDGET = flags.DEFINE_float(
    "budget_s",
    600.0,
    "Wall clock of each training run in seconds (--from_runs: the recorded budget).",
)


_SCENARIOS = flags.DEFINE_string(
    "scenarios",
    "all",
    "'all' or a comma-separated list.",
)


# Eight days, not two: a scenario's figure on two days was decided by whether one event (a
# protective trip on a renewable surge, a blackout under equipment failures) fell on one of them
# (benchmarks/README.md, "Eight held-out days per scenario").
_EPISODES = flags.DEFINE_integer(
    "episodes",
    8,
    "Held-out episodes (whole days) per scenario.",
)


# The env's episode (a day) by default: the policy is trained on whole days, and an episode cut
# after 8 hours throws away the energy a battery holds for the evening peak.
_HORIZON = flags.DEFINE_integer(
    "horizon",
    0,
    "Steps per evaluation episode (0 = the env's: a day on the presets).",
)


_CHECKPOINTS = flags.DEFINE_integer(
    "checkpoints",
    8,
    "Points of the curve (evaluated times).",
)


_EVAL_SEED = flags.DEFINE_integer(
    "eval_seed",
    1,
    "Held-out episode set (envs.sim.scenarios.eval_keys); 0, the suite's, is refused.",
)


_OUT_DIR = flags.DEFINE_string(
    "out_dir",
    None,
    "Output folder (default runs/learning-<time>).",
)


_FROM_RUNS = flags.DEFINE_list(
    "from_runs",
    [],
    "Evaluate these run directories; train nothing.",
)


_SAVE_EVERY = flags.DEFINE_integer(
    "save_every_updates",
    0,
    "Checkpoint cadence of training (0 = from the budget).",
)


_LOOKAHEAD = flags.DEFINE_bool(
    "lookahead",
    False,
    "Also roll out the look-ahead OPF (lookahead_opf) as a reference, once per benchmark: the "
    "stretch target sets the policy against the cheapest causal baseline of each scenario.",
)


_SELECT = flags.DEFINE_enum(
    "select",
    "latest",
    ["latest", "best"],
    "The checkpoint each seed contributes at a time: the latest saved by then, or the best "
    "by the run's validation metric (learner.checkpoint.best_metric) among those saved by then "
    "(needs --config.learner.checkpoint.validation_episodes > 0 in training).",
)


_CACHE = flags.DEFINE_enum(
    "compilation_cache",
    "cold",
    ["cold", "warm"],
    "cold: each run compiles into an empty XLA cache (a first run's wall clock); warm: the "
    "preset's shared cache.",
)


def _check_counts() -> None:
    """The numeric flags, each with the range that makes sense."""
    positive = {
        "seeds": _SEEDS.value,
        "episodes": _EPISODES.value,
        "checkpoints": _CHECKPOINTS.value,
    }
    for name, value in positive.items():
        if value < 1:
            raise UsageError(f"--{name} must be >= 1, got {value}")
    if not _BUDGET.value > 0:
        raise UsageError(f"--budget_s must be > 0, got {_BUDGET.value}")
    if _HORIZON.value < 0:
        raise UsageError(f"--horizon must be >= 0 (0 = the env's), got {_HORIZON.value}")
    if _FIRST_SEED.value < 0:
        raise UsageError(f"--first_seed must be >= 0, got {_FIRST_SEED.value}")
    if _SAVE_EVERY.value < 0:
        raise UsageError(f"--save_every_updates must be >= 0, got {_SAVE_EVERY.value}")
    if _EVAL_SEED.value < 1:
        raise UsageError(
            f"--eval_seed must be >= 1 (0 is the evaluation suite's set), got {_EVAL_SEED.value}"
        )


def _scenarios(selection: str) -> tuple[str, ...]:
    """--scenarios as names (``envs.evaluation.registry.scenario_list``), unknown ones refused."""
    from envs.evaluation.registry import scenario_list

    try:
        return scenario_list(selection)
    except ValueError as err:
        raise UsageError(f"--scenarios: {err}") from err


def _from_runs(values: list[str]) -> tuple[Path, ...]:
    """--from_runs as run directories that hold checkpoints."""
    runs = tuple(Path(v).expanduser().resolve() for v in values if v.strip())
    for run in runs:
        if not (run / "checkpoints").is_dir():
            raise UsageError(f"--from_runs: {run} has no checkpoints/ folder")
    return runs


def _curve_budget(from_runs: tuple[Path, ...]) -> float:
    """--budget_s; for given runs without it, the longest budget they were launched with."""
    if not from_runs or flags.FLAGS["budget_s"].present:
        return _BUDGET.value
    records = [read_json(run / LAUNCH_RECORD) for run in from_runs]
    budgets = [float(r["budget_s"]) for r in records if r and "budget_s" in r]
    return max(budgets) if budgets else _BUDGET.value


def _preset_path(value: str) -> str:
    """The preset as an absolute path (training runs from the repository root)."""
    for candidate in (Path(value).expanduser(), REPO / value):
        if candidate.is_file():
            return str(candidate.resolve())
    raise UsageError(f"--config {value} is not a file")


def settings_from_flags() -> Settings:
    """Every flag checked (a bad one raises ``UsageError``) before anything is trained."""
    _check_counts()
    overrides = parse_overrides(_OVERRIDE.value)
    from_runs = _from_runs(_FROM_RUNS.value)
    if from_runs:
        env_only(
            overrides,
            " with --from_runs: the runs are trained, so only the evaluation's env "
            "(--config.env.<field>) can change",
        )
    config_path = _preset_path(_CONFIG.value)
    if not from_runs:
        config = load_preset(config_path, overrides)
        if _SELECT.value == "best" and config.learner.checkpoint.validation_episodes <= 0:
            raise UsageError(
                "--select=best needs validated checkpoints: add "
                "--override=--config.learner.checkpoint.validation_episodes=N (N > 0)"
            )
    stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
    out_dir = Path(_OUT_DIR.value or f"runs/learning-{stamp}").expanduser().resolve()
    if not from_runs and (out_dir / "runs").exists():
        raise UsageError(f"--out_dir {out_dir} already holds runs: choose another, or --from_runs")
    return Settings(
        config_path=config_path,
        overrides=overrides,
        seeds=tuple(range(_FIRST_SEED.value, _FIRST_SEED.value + _SEEDS.value)),
        budget_s=_curve_budget(from_runs),
        scenarios=_scenarios(_SCENARIOS.value),
        episodes=_EPISODES.value,
        horizon=_HORIZON.value,
        checkpoints=_CHECKPOINTS.value,
        eval_seed=_EVAL_SEED.value,
        out_dir=out_dir,
        from_runs=from_runs,
        save_every_updates=_SAVE_EVERY.value,
        cold_cache=_CACHE.value == "cold",
        lookahead=_LOOKAHEAD.value,
        select=_SELECT.value,
    )


def _parse_flags(argv: list[str]) -> list[str]:
    """Parse the flags; a bad flag is one line and exit status 2, like a bad value."""
    if any(arg in ("-h", "--help", "--helpshort", "--helpfull") for arg in argv[1:]):
        print(f"{learning.__doc__}\nflags:\n{flags.FLAGS.main_module_help()}")
        sys.exit(0)
    try:
        return flags.FLAGS(argv)
    except flags.Error as err:
        usage_exit(str(err))


def usage_exit(message: str) -> None:
    """A bad flag: one line on stderr and exit status 2, before anything runs."""
    print(f"benchmarks.learning: error: {message}", file=sys.stderr, flush=True)
    sys.exit(2)


def main(argv) -> None:
    """Check the flags, train each seed (unless --from_runs), evaluate, report."""
    if len(argv) > 1:
        usage_exit(f"unexpected arguments: {argv[1:]}")
    try:
        settings = settings_from_flags()
    except UsageError as err:
        usage_exit(str(err))
    from absl import logging as absl_logging

    absl_logging.set_verbosity(absl_logging.WARNING)  # Orbax logs every restore at INFO
    machine = harness.describe()  # before training: the load average of the idle machine
    settings.out_dir.mkdir(parents=True, exist_ok=True)
    logging.getLogger("absl").addFilter(ReadOnlyRestoreFilter())
    try:
        run_dirs = list(settings.from_runs) or train_seeds(settings)
        results = evaluate_runs(settings, run_dirs, machine)
    except (RuntimeError, ValueError, FileNotFoundError) as err:
        print(f"benchmarks.learning: error: {err}", file=sys.stderr, flush=True)
        sys.exit(1)
    (settings.out_dir / "learning.json").write_text(json.dumps(results, indent=2))
    plot_curves(results, settings.out_dir / "learning.png")
    print(format_report(results), flush=True)
    progress(f"wrote {settings.out_dir / 'learning.json'} and learning.png")


if __name__ == "__main__":
    app.run(main, flags_parser=_parse_flags)
