"""Evaluate a trained checkpoint against baselines and the perfect-foresight oracle.

    python -m launch.evaluate --checkpoint=RUN_DIR[/checkpoints[/STEP]] \\
        [--scenarios=all|normal,peak_demand,...] [--episodes=4] [--horizon=96] \\
        [--report_dir=RUN_DIR/eval] [--render_episode=K] [--eval_seed=0]

Everything comes from the checkpoint directory: the experiment config (environment and
learner) and the policy parameters with the observation normaliser
(``learner.checkpoint.restore_for_eval``). Every scenario runs on fixed held-out reset keys
(``envs.sim.scenarios.eval_keys``; ``--eval_seed`` picks another set); the policy (deterministic
mode), the baselines and the oracle see exactly the same episodes. The policy and the
baselines run in one compiled batched rollout (``envs.evaluation.rollout``: vmap over
episodes, scan over time, the method picked by ``lax.switch`` and the scenario a traced
argument, so it compiles once per evaluation); the myopic OPF baseline solves its QPs
batched in JAX on the same device (``envs.opf.step_qp``), and ``myopic_opf_highs`` is the same
OPF solved by HiGHS on the host through ``pure_callback``, the reference. The oracle's
multi-period LPs run in ``--oracle_workers`` spawned processes as soon as a scenario's episodes are known, beside the remaining rollouts.
A progress line per method and scenario goes to stderr.

Writes ``evaluation.json`` and ``evaluation.txt`` (per scenario: mean cost, optimality gap
= cost / oracle cost - 1 in %, unserved energy, overload steps, trips, frequency violations,
blackouts; then the policy's decision time per grid beside one myopic OPF solve at each of
``--decision_batches``, ``launch.decision_time``) and the HTML report with its figures
(``launch.report``) to ``--report_dir``.
"""

from __future__ import annotations

import sys

from absl import app, flags
from absl import logging as absl_logging

# The library behind the command line; its names stay importable from here.
from envs.evaluation.metrics import oracle_metrics, summarise  # noqa: F401
from envs.evaluation.registry import BASELINES, DEFAULT_BASELINES, baseline_list, scenario_list
from envs.evaluation.suite import (  # noqa: F401
    ORACLE_COST_RTOL,
    OracleSolver,
    default_oracle_workers,
    rollout_method,
    run_suite,
)
from envs.opf.controls import MYOPIC_RATING_MARGIN
from launch.decision_time import DEFAULT_BATCHES as DEFAULT_DECISION_BATCHES
from launch.evaluation import (  # noqa: F401
    check_spec,
    format_table,
    load_policy,
    resolve_checkpoint,
    run_evaluation,
)
from launch.threefry_lowering import unroll_threefry_on_cpu

_CHECKPOINT = flags.DEFINE_string(
    "checkpoint", None, "Run directory, its checkpoints/ folder, or one checkpoint step folder."
)
_SCENARIOS = flags.DEFINE_string("scenarios", "all", "'all' or a comma-separated list.")
_EPISODES = flags.DEFINE_integer("episodes", 4, "Held-out episodes per scenario.")
_HORIZON = flags.DEFINE_integer("horizon", 96, "Steps per episode (0 = the env's horizon).")
_BASELINES = flags.DEFINE_string(
    "baselines",
    ",".join(DEFAULT_BASELINES),
    f"Comma-separated baselines ('' for none) out of {', '.join(BASELINES)}. Left unset, the "
    "checkpoint's teacher is added where its batteries bid on a base (env.storage_bid_base) "
    "and the myopic OPF with its alarm rule where it has one (env.alarm_margin).",
)
_ORACLE = flags.DEFINE_bool("oracle", True, "Solve the perfect-foresight oracle per episode.")
_REPORT_DIR = flags.DEFINE_string("report_dir", None, "Output folder (default RUN_DIR/eval).")
_RENDER_EPISODE = flags.DEFINE_integer(
    "render_episode", -1, "Write an animated GIF of this episode of the first scenario."
)
_BEST = flags.DEFINE_bool(
    "best",
    False,
    "Restore the best-validating checkpoint instead of the latest (a run trained with "
    "learner.checkpoint.validation_episodes > 0, ranked by learner.checkpoint.best_metric).",
)
_MYOPIC_MARGIN = flags.DEFINE_float(
    "myopic_rating_margin",
    MYOPIC_RATING_MARGIN,
    "Share of every branch rating the myopic OPF (myopic_opf) keeps free (0 = dispatch to the "
    "ratings).",
)
_DECISION_BATCHES = flags.DEFINE_list(
    "decision_batches",
    [str(b) for b in DEFAULT_DECISION_BATCHES],
    "Batch sizes at which the policy's decision time per grid is measured beside one OPF solve "
    "('' to skip).",
)
_ORACLE_WORKERS = flags.DEFINE_integer(
    "oracle_workers",
    None,
    "Processes solving oracle LPs beside the rollouts (default: one per "
    "CPU core, at most 4; 0 = solve them in this process).",
)


_EVAL_SEED = flags.DEFINE_integer(
    "eval_seed",
    0,
    "Held-out episode set (envs.sim.scenarios.eval_keys): 0 = the suite's own, another value "
    "an independent set of the same scenarios.",
)


def decision_batch_list(values) -> tuple[int, ...]:
    try:
        batches = tuple(int(v) for v in values if str(v).strip())
    except ValueError:
        raise ValueError(f"--decision_batches must be positive integers, got {values}") from None
    if any(b < 1 for b in batches):
        raise ValueError(f"--decision_batches must be positive integers, got {values}")
    return batches


def main(argv) -> None:
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {argv[1:]}")
    if not _CHECKPOINT.value:
        raise app.UsageError("--checkpoint is required (a run directory or checkpoint folder)")
    if not flags.FLAGS["verbosity"].present:
        absl_logging.set_verbosity(absl_logging.WARNING)  # Orbax logs every restore step at INFO
    unroll_threefry_on_cpu()
    try:
        results = run_evaluation(
            _CHECKPOINT.value,
            scenario_list(_SCENARIOS.value),
            _EPISODES.value,
            _HORIZON.value,
            baseline_list(_BASELINES.value),
            _ORACLE.value,
            _REPORT_DIR.value,
            _RENDER_EPISODE.value,
            _BEST.value,
            _ORACLE_WORKERS.value,
            _MYOPIC_MARGIN.value,
            _EVAL_SEED.value,
            decision_batch_list(_DECISION_BATCHES.value),
            # the policy's teacher joins the default baselines; a named list is taken as given
            policy_references=not flags.FLAGS["baselines"].present,
        )
    except (ValueError, FileNotFoundError) as err:
        sys.exit(f"launch.evaluate: {err}")
    print(format_table(results))


def run() -> None:
    """Console-script entry point (pyproject [project.scripts])."""
    app.run(main)


if __name__ == "__main__":
    run()
