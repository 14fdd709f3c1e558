"""Command line of ``launch.distillation``: distil a bid policy into a network that decides
without an OPF, and judge it beside the policy and the myopic OPF.

    python -m launch.distill --checkpoint=RUN_DIR [--episodes=16 --epochs=30 --eval_episodes=2]

Writes RUN_DIR/distilled/ (see ``launch.distillation``); a bad flag exits 2 with one line.
"""

from __future__ import annotations

import sys

from absl import app, flags

from envs.evaluation.registry import scenario_list
from envs.opf.ptdf_correction import DEFAULT_ROWS, RESORT_MOVES
from launch.distillation import (
    CORRECTION_MARGIN,
    DEFAULT_TARGET,
    DistillError,
    format_results,
    run_distillation,
)

# The flags are defined when the command runs, not when it is imported: a process that imports
# several commands (the packaging test resolves every console script) would define
# --checkpoint twice, once here and once in launch.evaluate.
_FLAGS: dict = {}


def define_flags() -> None:
    if _FLAGS:
        return
    _FLAGS["checkpoint"] = flags.DEFINE_string(
        "checkpoint", None, "Run directory (or checkpoint) of a bid policy."
    )
    _FLAGS["out"] = flags.DEFINE_string(
        "out", None, "Output folder (default RUN_DIR/distilled; must not exist)."
    )
    _FLAGS["scenarios"] = flags.DEFINE_string(
        "scenarios", "all", "'all' or a comma-separated list."
    )
    _FLAGS["episodes"] = flags.DEFINE_integer("episodes", 16, "Training episodes per scenario.")
    _FLAGS["horizon"] = flags.DEFINE_integer("horizon", 0, "Steps per episode (0 = the env's day).")
    _FLAGS["hidden"] = flags.DEFINE_integer("hidden", 256, "Student hidden width.")
    _FLAGS["layers"] = flags.DEFINE_integer("layers", 2, "Student hidden layers.")
    _FLAGS["epochs"] = flags.DEFINE_integer("epochs", 30, "Passes over the collected steps.")
    _FLAGS["rows"] = flags.DEFINE_integer(
        "rows", DEFAULT_ROWS, "Branches the correction takes per pass."
    )
    _FLAGS["passes"] = flags.DEFINE_integer("passes", 1, "Correction passes.")
    _FLAGS["resort_moves"] = flags.DEFINE_integer(
        "resort_moves",
        RESORT_MOVES,
        "Correction moves with every last resort's variables, where the units leave a branch "
        "above its rating.",
    )
    _FLAGS["eval_episodes"] = flags.DEFINE_integer(
        "eval_episodes", 2, "Held-out episodes per scenario."
    )
    _FLAGS["eval_seed"] = flags.DEFINE_integer(
        "eval_seed", 1, "Held-out episode set (envs.sim.scenarios.eval_keys)."
    )
    _FLAGS["batches"] = flags.DEFINE_list(
        "decision_batches", ["1", "1024"], "Batch sizes of the decision timing."
    )
    _FLAGS["dagger"] = flags.DEFINE_integer(
        "dagger_rounds",
        2,
        "Rounds in which the distilled policy drives and the bid policy labels (0: imitation only).",
    )
    _FLAGS["seed"] = flags.DEFINE_integer("seed", 0, "Training episodes' and the fit's seed.")
    _FLAGS["correction_margin"] = flags.DEFINE_float(
        "correction_margin",
        CORRECTION_MARGIN,
        "Share of every branch rating the correction keeps free beyond the bid clearing's margin.",
    )
    _FLAGS["target"] = flags.DEFINE_string(
        "target",
        DEFAULT_TARGET,
        "What the student learns: 'residual' (the dispatch the bid policy's offers clear to, "
        "less the merit order of a copper plate), 'dispatch' (that dispatch itself) or 'offers' "
        "(its bids, cleared on a copper plate without a QP).",
    )


def main(argv) -> None:
    del argv
    try:
        if not _FLAGS["checkpoint"].value:
            raise DistillError("--checkpoint is required")
        batches = tuple(int(b) for b in _FLAGS["batches"].value)
        results = run_distillation(
            _FLAGS["checkpoint"].value,
            _FLAGS["out"].value,
            scenario_list(_FLAGS["scenarios"].value),
            _FLAGS["episodes"].value,
            _FLAGS["horizon"].value,
            _FLAGS["hidden"].value,
            _FLAGS["layers"].value,
            _FLAGS["epochs"].value,
            _FLAGS["rows"].value,
            _FLAGS["passes"].value,
            _FLAGS["eval_episodes"].value,
            _FLAGS["eval_seed"].value,
            batches,
            _FLAGS["seed"].value,
            _FLAGS["dagger"].value,
            _FLAGS["target"].value,
            _FLAGS["correction_margin"].value,
            _FLAGS["resort_moves"].value,
        )
    except (DistillError, FileNotFoundError, ValueError) as err:
        print(f"launch.distill: {err}", file=sys.stderr)
        sys.exit(2)
    print(format_results(results))


def run() -> None:
    """Console script ``gridpod-distill``."""
    define_flags()
    app.run(main)


if __name__ == "__main__":
    run()
