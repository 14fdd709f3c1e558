"""Command line of ``launch.distillation``: distil a bid policy into a network that decides
without an OPF, and judge it beside the policy and the myopic OPF.

    python -m launch.distill --checkpoint=RUN_DIR [--episodes=16 --epochs=30 --eval_episodes=2]

Writes RUN_DIR/distilled/ (see ``launch.distillation``); a bad flag exits 2 with one line.
"""

from __future__ import annotations

import sys

from absl import app, flags

from envs.evaluation.registry import scenario_list
from envs.opf.ptdf_correction import DEFAULT_ROWS
from launch.distillation import DistillError, format_results, run_distillation

_CHECKPOINT = flags.DEFINE_string(
    "checkpoint", None, "Run directory (or checkpoint) of a bid policy."
)
_OUT = flags.DEFINE_string(
    "out", None, "Output folder (default RUN_DIR/distilled; must not exist)."
)
_SCENARIOS = flags.DEFINE_string("scenarios", "all", "'all' or a comma-separated list.")
_EPISODES = flags.DEFINE_integer("episodes", 16, "Training episodes per scenario.")
_HORIZON = flags.DEFINE_integer("horizon", 0, "Steps per episode (0 = the env's day).")
_HIDDEN = flags.DEFINE_integer("hidden", 256, "Student hidden width.")
_LAYERS = flags.DEFINE_integer("layers", 2, "Student hidden layers.")
_EPOCHS = flags.DEFINE_integer("epochs", 30, "Passes over the collected steps.")
_ROWS = flags.DEFINE_integer("rows", DEFAULT_ROWS, "Branches the correction takes per pass.")
_PASSES = flags.DEFINE_integer("passes", 1, "Correction passes.")
_EVAL_EPISODES = flags.DEFINE_integer("eval_episodes", 2, "Held-out episodes per scenario.")
_EVAL_SEED = flags.DEFINE_integer(
    "eval_seed", 1, "Held-out episode set (envs.sim.scenarios.eval_keys)."
)
_BATCHES = flags.DEFINE_list(
    "decision_batches", ["1", "1024"], "Batch sizes of the decision timing."
)
_DAGGER = flags.DEFINE_integer(
    "dagger_rounds",
    2,
    "Rounds in which the distilled policy drives and the bid policy labels (0: imitation only).",
)
_SEED = flags.DEFINE_integer("seed", 0, "Training episodes' and the fit's seed.")


def main(argv) -> None:
    del argv
    try:
        if not _CHECKPOINT.value:
            raise DistillError("--checkpoint is required")
        batches = tuple(int(b) for b in _BATCHES.value)
        results = run_distillation(
            _CHECKPOINT.value,
            _OUT.value,
            scenario_list(_SCENARIOS.value),
            _EPISODES.value,
            _HORIZON.value,
            _HIDDEN.value,
            _LAYERS.value,
            _EPOCHS.value,
            _ROWS.value,
            _PASSES.value,
            _EVAL_EPISODES.value,
            _EVAL_SEED.value,
            batches,
            _SEED.value,
            _DAGGER.value,
        )
    except (DistillError, FileNotFoundError, ValueError) as err:
        print(f"launch.distill: {err}", file=sys.stderr)
        sys.exit(2)
    print(format_results(results))


def run() -> None:
    """Console script ``gridpod-distill``."""
    app.run(main)


if __name__ == "__main__":
    run()
