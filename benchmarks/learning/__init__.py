"""Time to quality: how good a preset's policy is after how many seconds of wall clock.

    python -m benchmarks.learning [--config=configs/default.py] [--override='--config.a.b=v']
        [--seeds=3] [--first_seed=0] [--budget_s=600] [--scenarios=all] [--episodes=8]
        [--horizon=0] [--checkpoints=8] [--eval_seed=1] [--select=latest] [--out_dir=DIR]
    python -m benchmarks.learning --from_runs=RUN_DIR1,RUN_DIR2 [...]   # evaluate runs only
    python -m benchmarks.learning --from_runs=... --override='--config.env.a=v'  # on a changed env

Training: each seed runs ``python -m launch.local`` with the preset and overrides, one seed
after another, for ``--budget_s`` of wall clock counted from the moment the command starts
(interpreter, Ray and compilation included; by default each run compiles into an empty
compilation cache). At the budget the launcher gets SIGINT: it finishes the update in flight,
writes a final checkpoint and exits. Checkpoints are saved often enough that
``--checkpoints`` of them can be spread over the budget, and all are kept.

Wall clock of a checkpoint: Orbax's save-start timestamp (``_CHECKPOINT_METADATA``), taken
just after the update it holds, minus the launch time the benchmark recorded
(``benchmark_launch.json`` in the run directory). A checkpoint's time is therefore when its
parameters existed, not when the asynchronous write ended.

Evaluation runs after all training, in this process, so it never competes with a timed run
for the cores. The curve's points are ``--checkpoints`` times evenly spaced up to the budget;
at each, every seed contributes its latest checkpoint saved by then (the quality a user would
have if they stopped there), or with ``--select=best`` the checkpoint its run validated best
among those saved by then (``learner.checkpoint.validation_episodes``, ``learner.validation``:
what a run that keeps its best checkpoint hands its user; the validation's time is in the
run's wall clock). Episodes are a held-out set of their own (``--eval_seed``, never
the evaluation suite's set 0, so nothing is tuned to the suite's episodes). The baselines
(do-nothing, myopic DC-OPF) and the perfect-foresight oracle are the same for every
checkpoint, so they run once and are kept in ``OUT_DIR/references.json`` for later calls
with the same settings; per checkpoint only the policy is rolled out. With ``--from_runs``,
``--override`` may change only the env (``--config.env.<field>``): the trained policies and
the references are then evaluated on the changed env.

Prints, against wall-clock seconds and per scenario: the gap to the oracle bound (%), cost
relative to the myopic OPF and to do-nothing (%), unserved energy, overload steps and
blackouts as the mean over seeds with their min-max; then every target with whether it is
met. Writes ``learning.json`` (every number, std over seeds included) and ``learning.png``
(the curves) to ``--out_dir``; the runs are ``OUT_DIR/runs/seed_<N>`` with a ``.log`` beside.

Targets, by the preset's grid (``targets_for``):

* ``IEEE14_TARGETS`` (the default preset), within 600 s of wall clock: the normal-day gap to the
  oracle at most 3 %; cost at most 0.9 x the myopic OPF's (the teacher's) in equipment
  failure and cascading failure, at most 1.002 x in the four other scenarios; in every
  scenario overload steps and blackouts at most the myopic OPF's; no blackout in normal,
  peak_demand and renewable_intermittency.
* ``IEEE118_TARGETS`` (``configs/ieee118.py``, the hierarchical team), within 1,800 s: cost
  at most 1.005 x the myopic OPF's in each of the six scenarios; no blackout in normal,
  peak_demand and renewable_intermittency.

They are checked on the mean over seeds at the last point within the time limit where every
seed has a checkpoint (what a run of that length ends with), with the number of seeds meeting
each on their own beside it; "time to quality" is the first point where all are met.

The package: ``settings`` (the checked flags as ``Settings``, constants), ``train`` (one
launcher run per seed), ``evaluation`` (the checkpoints and the references, through the
evaluation library ``envs.evaluation`` and ``launch.evaluation``), ``curve`` (the curve's
points and the targets, pure), ``report`` (table and plot); ``__main__`` is the command line
and the only module that defines flags.
"""

from benchmarks.learning.curve import (
    IEEE14_TARGETS,
    IEEE118_TARGETS,
    METRICS,
    Targets,
    aggregate,
    all_met,
    build_curve,
    check_stretch,
    check_targets,
    checkpoint_scores,
    checkpoint_times,
    curve_point,
    launch_start,
    pick_checkpoints,
    point_means,
    relative_row,
    rows_at,
    seed_counts,
    targets_for,
    time_grid,
    time_to_quality,
    verdict_point,
)
from benchmarks.learning.evaluation import Evaluator, evaluate_run, evaluate_runs, stored_env_config
from benchmarks.learning.report import format_report, plot_curves, title
from benchmarks.learning.settings import (
    ASSUMED_ENV_STEPS_PER_S,
    BASELINE_NAMES,
    DEFAULT_CONFIG,
    LAUNCH_RECORD,
    REPO,
    SAVES_PER_EVALUATED,
    STOP_GRACE_S,
    UNBOUNDED_ENV_STEPS,
    Settings,
    UsageError,
    load_preset,
    parse_overrides,
    progress,
    read_json,
)
from benchmarks.learning.train import save_cadence, train_command, train_for_budget, train_seeds

__all__ = [
    "ASSUMED_ENV_STEPS_PER_S",
    "BASELINE_NAMES",
    "DEFAULT_CONFIG",
    "IEEE14_TARGETS",
    "IEEE118_TARGETS",
    "LAUNCH_RECORD",
    "METRICS",
    "REPO",
    "SAVES_PER_EVALUATED",
    "STOP_GRACE_S",
    "UNBOUNDED_ENV_STEPS",
    "Evaluator",
    "Settings",
    "Targets",
    "UsageError",
    "aggregate",
    "all_met",
    "build_curve",
    "check_stretch",
    "check_targets",
    "checkpoint_scores",
    "checkpoint_times",
    "curve_point",
    "evaluate_run",
    "evaluate_runs",
    "format_report",
    "launch_start",
    "load_preset",
    "parse_overrides",
    "pick_checkpoints",
    "plot_curves",
    "point_means",
    "progress",
    "read_json",
    "relative_row",
    "rows_at",
    "save_cadence",
    "seed_counts",
    "stored_env_config",
    "targets_for",
    "time_grid",
    "time_to_quality",
    "title",
    "train_command",
    "train_for_budget",
    "train_seeds",
    "verdict_point",
]
