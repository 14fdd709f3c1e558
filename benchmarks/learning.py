"""Time to quality: how good a preset's policy is after how many seconds of wall clock.

    python -m benchmarks.learning [--config=configs/default.py] [--override='--config.a.b=v']
        [--seeds=3] [--budget_s=600] [--scenarios=all] [--episodes=2] [--horizon=96]
        [--checkpoints=8] [--eval_seed=1] [--out_dir=DIR]
    python -m benchmarks.learning --from_runs=RUN_DIR1,RUN_DIR2 [...]   # evaluate runs only

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
have if they stopped there). Episodes are a held-out set of their own (``--eval_seed``, never
the evaluation suite's set 0, so nothing is tuned to the suite's episodes). The baselines
(do-nothing, myopic DC-OPF) and the perfect-foresight oracle are the same for every
checkpoint, so they run once and are kept in ``OUT_DIR/references.json`` for later calls
with the same settings; per checkpoint only the policy is rolled out.

Prints, against wall-clock seconds and per scenario: the gap to the oracle bound (%), cost
relative to the myopic OPF and to do-nothing (%), unserved energy, overload steps and
blackouts as the mean over seeds with their min-max; then every target with whether it is
met. Writes ``learning.json`` (every number, std over seeds included) and ``learning.png``
(the curves) to ``--out_dir``; the runs are ``OUT_DIR/runs/seed_<N>`` with a ``.log`` beside.

Targets (``IEEE14_TARGETS``, the ieee14 default preset's): within 600 s of wall clock, the
normal-day gap to the oracle at most 3 %; in every scenario cost, overload steps and
blackouts at most the myopic OPF's; no blackout in normal, peak_demand and
renewable_intermittency. They are checked on the mean over seeds at the last point within
600 s where every seed has a checkpoint (what a run of that length ends with), with the
number of seeds meeting each on their own beside it; "time to quality" is the first point
where all are met.
"""

from __future__ import annotations

import dataclasses
import datetime
import hashlib
import json
import logging
import math
import os
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path

from absl import app, flags

from benchmarks import harness
from benchmarks.harness import define_once

REPO = Path(__file__).resolve().parent.parent
DEFAULT_CONFIG = "configs/default.py"
BASELINE_NAMES = ("do_nothing", "myopic_opf")
# Training ends at the budget, not at a step count (no setting depends on the total).
UNBOUNDED_ENV_STEPS = 10**12
# Only sets the save cadence: the default preset's rate on a 2-core VM (README).
ASSUMED_ENV_STEPS_PER_S = 4_300
SAVES_PER_EVALUATED = 3  # saved checkpoints per evaluated one, so each grid time finds one
STOP_GRACE_S = 180.0  # after SIGINT: the update in flight, the final checkpoint, Ray's shutdown
LAUNCH_RECORD = "benchmark_launch.json"
METRICS = (  # (key, label) of the curve's columns
    ("gap_percent", "gap to oracle %"),
    ("cost_vs_myopic_percent", "cost vs myopic %"),
    ("cost_vs_do_nothing_percent", "cost vs nothing %"),
    ("unserved_mwh", "unserved MWh"),
    ("overload_steps", "overload steps"),
    ("blackouts", "blackouts"),
)

# The benchmark's own flag namespace: launch.evaluate (imported to evaluate) and launch.cli
# define flags of the same names (--config, --episodes, ...) on absl's global FLAGS.
BENCH_FLAGS = flags.FlagValues()
_CONFIG = define_once(
    flags.DEFINE_string,
    "config",
    DEFAULT_CONFIG,
    "Training preset (configs/*.py).",
    flag_values=BENCH_FLAGS,
)
_OVERRIDE = define_once(
    flags.DEFINE_multi_string,
    "override",
    [],
    "Config overrides for training, e.g. '--config.learner.learning_rate=1e-4' "
    "(repeat the flag, or several in one quoted string).",
    flag_values=BENCH_FLAGS,
)
_SEEDS = define_once(
    flags.DEFINE_integer,
    "seeds",
    3,
    "Training seeds 0..N-1, one run each.",
    flag_values=BENCH_FLAGS,
)
_BUDGET = define_once(
    flags.DEFINE_float,
    "budget_s",
    600.0,
    "Wall clock of each training run in seconds (--from_runs: the recorded budget).",
    flag_values=BENCH_FLAGS,
)
_SCENARIOS = define_once(
    flags.DEFINE_string,
    "scenarios",
    "all",
    "'all' or a comma-separated list.",
    flag_values=BENCH_FLAGS,
)
_EPISODES = define_once(
    flags.DEFINE_integer, "episodes", 2, "Held-out episodes per scenario.", flag_values=BENCH_FLAGS
)
_HORIZON = define_once(
    flags.DEFINE_integer,
    "horizon",
    96,
    "Steps per evaluation episode (0 = the env's).",
    flag_values=BENCH_FLAGS,
)
_CHECKPOINTS = define_once(
    flags.DEFINE_integer,
    "checkpoints",
    8,
    "Points of the curve (evaluated times).",
    flag_values=BENCH_FLAGS,
)
_EVAL_SEED = define_once(
    flags.DEFINE_integer,
    "eval_seed",
    1,
    "Held-out episode set (envs.sim.scenarios.eval_keys); 0, the suite's, is refused.",
    flag_values=BENCH_FLAGS,
)
_OUT_DIR = define_once(
    flags.DEFINE_string,
    "out_dir",
    None,
    "Output folder (default runs/learning-<time>).",
    flag_values=BENCH_FLAGS,
)
_FROM_RUNS = define_once(
    flags.DEFINE_list,
    "from_runs",
    [],
    "Evaluate these run directories; train nothing.",
    flag_values=BENCH_FLAGS,
)
_SAVE_EVERY = define_once(
    flags.DEFINE_integer,
    "save_every_updates",
    0,
    "Checkpoint cadence of training (0 = from the budget).",
    flag_values=BENCH_FLAGS,
)
_CACHE = define_once(
    flags.DEFINE_enum,
    "compilation_cache",
    "cold",
    ["cold", "warm"],
    "cold: each run compiles into an empty XLA cache (a first run's wall clock); warm: the "
    "preset's shared cache.",
    flag_values=BENCH_FLAGS,
)


class _ReadOnlyRestoreFilter(logging.Filter):
    """Drops Orbax's two warnings on every read-only restore: evaluation restores read-only
    by design, and this benchmark restores every evaluated checkpoint."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        return "read_only=True" not in message and "directory is read only" not in message


class UsageError(ValueError):
    """A bad flag: reported in one line before anything is trained."""


@dataclasses.dataclass(frozen=True)
class Settings:
    """The checked flags: everything a benchmark call depends on, stored with its results."""

    config_path: str
    overrides: tuple[str, ...]  # each '--config.a.b=v', passed to training verbatim
    seeds: tuple[int, ...]
    budget_s: float
    scenarios: tuple[str, ...]
    episodes: int
    horizon: int
    checkpoints: int
    eval_seed: int
    out_dir: Path
    from_runs: tuple[Path, ...]
    save_every_updates: int
    cold_cache: bool


@dataclasses.dataclass(frozen=True)
class Targets:
    """What 'good enough' means; the defaults are the ieee14 default preset's targets."""

    time_limit_s: float = 600.0  # wall clock from the launch command, compilation included
    gap_scenario: str = "normal"
    max_gap_percent: float = 3.0
    no_blackout_scenarios: tuple[str, ...] = ("normal", "peak_demand", "renewable_intermittency")
    # In every scenario the policy's mean of each is at most the myopic OPF's.
    versus_myopic: tuple[str, ...] = ("cost", "overload_steps", "blackouts")
    scenarios: tuple[str, ...] = (
        "normal",
        "peak_demand",
        "equipment_failure",
        "renewable_intermittency",
        "cascading_failure",
        "emergency_response",
    )


IEEE14_TARGETS = Targets()


# ---------------------------------------------------------------- targets, curve (pure) ----


def _target(name: str, value, limit, met_if) -> dict:
    """One target's record; ``met`` is None where the value was not measured."""
    met = None if value is None or limit is None else bool(met_if(value, limit))
    return {"target": name, "value": value, "limit": limit, "met": met}


def check_targets(policy: dict, myopic: dict, targets: Targets = IEEE14_TARGETS) -> list[dict]:
    """Each target against one point of the curve.

    ``policy`` and ``myopic`` map scenario -> {metric: value} (the policy's means over seeds,
    the myopic OPF's means over episodes); a scenario missing from either is 'not measured'
    (``met`` None), never silently passed.
    """
    at_most = lambda value, limit: value <= limit  # noqa: E731
    gap = policy.get(targets.gap_scenario, {}).get("gap_percent")
    out = [
        _target(f"{targets.gap_scenario}: gap to oracle %", gap, targets.max_gap_percent, at_most)
    ]
    for scenario in targets.scenarios:
        mine, theirs = policy.get(scenario, {}), myopic.get(scenario, {})
        for metric in targets.versus_myopic:
            name = f"{scenario}: {metric} <= myopic OPF"
            out.append(_target(name, mine.get(metric), theirs.get(metric), at_most))
    for scenario in targets.no_blackout_scenarios:
        blackouts = policy.get(scenario, {}).get("blackouts")
        out.append(_target(f"{scenario}: blackouts = 0", blackouts, 0.0, at_most))
    return out


def all_met(checks: list[dict]) -> bool:
    """True only if every target was measured and met."""
    return bool(checks) and all(check["met"] is True for check in checks)


def aggregate(values: list) -> dict:
    """Mean, population std, min and max of the seeds that have a value (None: no checkpoint
    by then); ``n`` says how many, so a mean over fewer seeds is never mistaken for all."""
    present = [float(v) for v in values if v is not None and not math.isnan(float(v))]
    if not present:
        return {"mean": None, "std": None, "min": None, "max": None, "n": 0}
    mean = sum(present) / len(present)
    std = math.sqrt(sum((v - mean) ** 2 for v in present) / len(present))
    return {"mean": mean, "std": std, "min": min(present), "max": max(present), "n": len(present)}


def curve_point(time_s: float, seed_rows: list) -> dict:
    """One point: per scenario and metric, the aggregate over seeds of their rows.

    ``seed_rows`` holds one {scenario: {metric: value}} per seed, or None for a seed without
    a checkpoint by ``time_s``.
    """
    present = [rows for rows in seed_rows if rows is not None]
    names = list(dict.fromkeys(s for rows in present for s in rows))
    scenarios = {
        scenario: {
            key: aggregate([rows.get(scenario, {}).get(key) for rows in present])
            for key, _ in METRICS
        }
        | {"cost": aggregate([rows.get(scenario, {}).get("cost") for rows in present])}
        for scenario in names
    }
    return {
        "time_s": time_s,
        "seeds": len(present),
        "of_seeds": len(seed_rows),
        "scenarios": scenarios,
    }


def point_means(point: dict) -> dict:
    """{scenario: {metric: mean over seeds}}: the input ``check_targets`` takes."""
    return {
        scenario: {metric: stats["mean"] for metric, stats in metrics.items()}
        for scenario, metrics in point["scenarios"].items()
    }


def verdict_point(points: list[dict], targets: Targets) -> dict | None:
    """The last point within the time limit at which every seed had a checkpoint: the
    quality a run of at most ``time_limit_s`` ends with."""
    eligible = [
        p for p in points if p["time_s"] <= targets.time_limit_s and p["seeds"] == p["of_seeds"]
    ]
    return eligible[-1] if eligible else None


def time_to_quality(points: list[dict], myopic: dict, targets: Targets) -> float | None:
    """The first time at which every target is met by the mean over all seeds (None: never)."""
    for point in points:
        if point["seeds"] == point["of_seeds"] and all_met(
            check_targets(point_means(point), myopic, targets)
        ):
            return point["time_s"]
    return None


def relative_row(policy: dict, references: dict) -> dict:
    """The policy's row with its cost relative to the myopic OPF and to do-nothing (%),
    as ratios of the scenario's mean costs."""

    def percent_over(method: str):
        """100 x (policy / reference - 1), None without a reference cost."""
        reference = references.get(method, {}).get("cost")
        return None if not reference else 100.0 * (policy["cost"] / reference - 1.0)

    keep = ("cost", "gap_percent", "unserved_mwh", "overload_steps", "blackouts", "trips")
    row = {key: policy.get(key) for key in keep}
    row["cost_vs_myopic_percent"] = percent_over("myopic_opf")
    row["cost_vs_do_nothing_percent"] = percent_over("do_nothing")
    return row


# ------------------------------------------------------- checkpoints and wall clock ----


def checkpoint_times(checkpoint_dir: str | os.PathLike, start_epoch_s: float) -> dict[int, float]:
    """{update step: seconds after the launch} of every complete checkpoint.

    Orbax stamps each save with ``init_timestamp_nsecs`` when it starts, right after the
    update it holds; a checkpoint without that metadata falls back to its folder's mtime
    (later: the write's end). Temporary folders of an unfinished save are skipped.
    """
    times = {}
    directory = Path(checkpoint_dir)
    if not directory.is_dir():
        return times
    for entry in directory.iterdir():
        if not (entry.is_dir() and entry.name.isdigit()):
            continue
        stamp = entry.stat().st_mtime
        metadata = entry / "_CHECKPOINT_METADATA"
        if metadata.is_file():
            try:
                stamp = json.loads(metadata.read_text())["init_timestamp_nsecs"] / 1e9
            except (ValueError, KeyError, TypeError):
                pass
        times[int(entry.name)] = stamp - start_epoch_s
    return dict(sorted(times.items()))


def time_grid(budget_s: float, points: int) -> list[float]:
    """``points`` times evenly spaced over (0, budget]."""
    return [budget_s * (k + 1) / points for k in range(points)]


def pick_checkpoints(times: dict[int, float], grid: list[float]) -> list[int | None]:
    """For each grid time the latest checkpoint saved by then (None: none yet)."""
    picked = []
    for limit in grid:
        steps = [step for step, t in times.items() if t <= limit]
        picked.append(max(steps, key=lambda s: times[s]) if steps else None)
    return picked


def launch_start(run_dir: Path) -> tuple[float, str]:
    """``(epoch seconds the run's command started, where that came from)``.

    A run this benchmark launched records it; any other run falls back to its config.json,
    written after interpreter and Ray start-up (so its times come out a few seconds short).
    """
    record = run_dir / LAUNCH_RECORD
    if record.is_file():
        return float(json.loads(record.read_text())["start_epoch_s"]), "launch command"
    config = run_dir / "config.json"
    if config.is_file():
        return config.stat().st_mtime, "config.json mtime (start-up before it not counted)"
    raise FileNotFoundError(f"{run_dir} holds neither {LAUNCH_RECORD} nor config.json")


# ------------------------------------------------------------------------ settings ----


def parse_overrides(values: list[str]) -> tuple[str, ...]:
    """Each ``--config.a.b=v`` (also ``config.a.b=v`` or ``a.b=v``), several per value allowed."""
    out = []
    for value in values:
        for item in shlex.split(value):
            item = item.removeprefix("--").removeprefix("config.")
            key = item.split("=", 1)[0]
            if "=" not in item or not key or key.startswith("-"):
                raise UsageError(f"--override {item!r}: expected --config.<field>=<value>")
            out.append(f"--config.{item}")
    return tuple(out)


def load_preset(config_path: str, overrides: tuple[str, ...]):
    """The preset with the overrides applied by ml_collections, exactly as training will."""
    from ml_collections import config_flags

    from learner.config import validate_learner_config

    argv = ["learning", f"--config={config_path}", *overrides]
    holder = flags.FlagValues()
    config_flags.DEFINE_config_file("config", config_path, "", holder, sys_argv=argv)
    try:
        holder(argv)
        config = holder.config
        validate_learner_config(config.learner)
    except (AttributeError, KeyError) as err:
        raise UsageError(f"--override: the preset has no field {err}") from None
    except (flags.Error, TypeError, ValueError) as err:
        message = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise UsageError(f"--config/--override: {message}") from None
    return config


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
    if _SAVE_EVERY.value < 0:
        raise UsageError(f"--save_every_updates must be >= 0, got {_SAVE_EVERY.value}")
    if _EVAL_SEED.value < 1:
        raise UsageError(
            f"--eval_seed must be >= 1 (0 is the evaluation suite's set), got {_EVAL_SEED.value}"
        )


def _scenarios(selection: str) -> tuple[str, ...]:
    """--scenarios as names (``envs.evaluation.suite.scenario_list``), unknown ones refused."""
    from envs.evaluation.suite import scenario_list

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
    if not from_runs or BENCH_FLAGS["budget_s"].present:
        return _BUDGET.value
    records = [_read_json(run / LAUNCH_RECORD) for run in from_runs]
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
    config_path = _preset_path(_CONFIG.value)
    if not from_runs:
        load_preset(config_path, overrides)
    stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
    out_dir = Path(_OUT_DIR.value or f"runs/learning-{stamp}").expanduser().resolve()
    if not from_runs and (out_dir / "runs").exists():
        raise UsageError(f"--out_dir {out_dir} already holds runs: choose another, or --from_runs")
    return Settings(
        config_path=config_path,
        overrides=overrides,
        seeds=tuple(range(_SEEDS.value)),
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
    )


# ------------------------------------------------------------------------ training ----


def save_cadence(budget_s: float, env_steps_per_update: int, checkpoints: int) -> int:
    """Updates between saves: about ``SAVES_PER_EVALUATED`` saves per evaluated point at the
    assumed rate, so every grid time has a recent checkpoint without saving every update."""
    updates = budget_s * ASSUMED_ENV_STEPS_PER_S / max(env_steps_per_update, 1)
    return max(1, int(updates // (SAVES_PER_EVALUATED * checkpoints)))


def train_command(settings: Settings, run_dir: Path, seed: int, save_every: int) -> list[str]:
    """The launcher's command line; the user's overrides come last and so win."""
    return [
        sys.executable,
        "-m",
        "launch.local",
        f"--config={settings.config_path}",
        f"--run_dir={run_dir}",
        f"--seed={seed}",
        f"--total_env_steps={UNBOUNDED_ENV_STEPS}",
        f"--config.learner.checkpoint.save_every_updates={save_every}",
        "--config.learner.checkpoint.max_to_keep=100000",
        *settings.overrides,
    ]


def _stop(process: subprocess.Popen) -> int:
    """SIGINT: the launcher stops cleanly with a final checkpoint; a second SIGINT aborts it,
    and only a process that ignores both is killed."""
    for sig, wait_s in ((signal.SIGINT, STOP_GRACE_S), (signal.SIGINT, 30.0)):
        if process.poll() is not None:
            break
        process.send_signal(sig)
        try:
            return process.wait(timeout=wait_s)
        except subprocess.TimeoutExpired:
            progress(f"pid {process.pid} still running {wait_s:.0f} s after SIGINT")
    if process.poll() is None:
        process.kill()
    return process.wait()


def train_for_budget(command: list[str], run_dir: Path, budget_s: float, env: dict) -> dict:
    """Run ``command`` for ``budget_s`` of wall clock, then stop it; the launch record."""
    log_path = run_dir.with_suffix(".log")
    run_dir.mkdir(parents=True, exist_ok=True)
    with open(log_path, "w") as log:
        start = time.time()
        process = subprocess.Popen(
            command, cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
        try:
            code = process.wait(timeout=budget_s)
            stopped = False
        except subprocess.TimeoutExpired:
            stopped = True
        except KeyboardInterrupt:
            _stop(process)
            raise
        signalled = time.time() - start
        if stopped:
            code = _stop(process)
    record = {
        "start_epoch_s": start,
        "budget_s": budget_s,
        "stopped_at_budget": stopped,
        "signal_s": signalled if stopped else None,
        "exit_s": time.time() - start,
        "exit_code": code,
        "command": command,
        "log": str(log_path),
        "load_average_after": list(os.getloadavg()) if hasattr(os, "getloadavg") else None,
    }
    (run_dir / LAUNCH_RECORD).write_text(json.dumps(record, indent=2))
    return record


def train_seeds(settings: Settings) -> list[Path]:
    """One run per seed, one after another (each has the whole machine)."""
    config = load_preset(settings.config_path, settings.overrides)
    steps_per_update = int(config.learner.unroll_length) * int(config.learner.batch_size)
    save_every = settings.save_every_updates or save_cadence(
        settings.budget_s, steps_per_update, settings.checkpoints
    )
    runs = []
    for seed in settings.seeds:
        run_dir = settings.out_dir / "runs" / f"seed_{seed}"
        env = dict(os.environ)
        if settings.cold_cache:
            env["JAX_COMPILATION_CACHE_DIR"] = str(settings.out_dir / "xla_cache" / f"seed_{seed}")
        progress(
            f"seed {seed}: training for {settings.budget_s:.0f} s, a checkpoint every "
            f"{save_every} updates ({run_dir})"
        )
        command = train_command(settings, run_dir, seed, save_every)
        record = train_for_budget(command, run_dir, settings.budget_s, env)
        times = checkpoint_times(run_dir / "checkpoints", record["start_epoch_s"])
        within = sum(t <= settings.budget_s for t in times.values())
        progress(
            f"seed {seed}: exit {record['exit_code']} at {record['exit_s']:.0f} s, "
            f"{len(times)} checkpoints, {within} within the budget (log {record['log']})"
        )
        failed = record["exit_code"] != 0 and not record["stopped_at_budget"]
        if failed or not times:
            raise RuntimeError(
                f"seed {seed}: training failed or saved nothing; see {record['log']}"
            )
        runs.append(run_dir)
    return runs


def progress(message: str) -> None:
    """Progress on stderr: training alone takes seeds x budget."""
    print(f"[learning] {message}", file=sys.stderr, flush=True)


# ---------------------------------------------------------------------- evaluation ----


def _fingerprint(value) -> str:
    """A short stable hash of JSON-able settings (cache keys)."""
    return hashlib.sha256(json.dumps(value, sort_keys=True).encode()).hexdigest()[:16]


def _code_version() -> str | None:
    """The commit the references were computed with: a baseline's code may change."""
    try:
        done = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            cwd=REPO,
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return done.stdout.strip()


class Evaluator:
    """Rolls out checkpoints of runs that share one env config on one held-out episode set.

    Baselines and oracle run once (``references``); each checkpoint then only needs its
    policy's rollouts, compiled once per policy architecture (the parameters are arguments).
    """

    def __init__(self, settings: Settings, env_config):
        """Builds the env once and gets the references (from disk when the key matches)."""
        from envs.env import make_env

        self.settings, self.env_config = settings, env_config
        self.env_json = json.loads(env_config.to_json())
        _, self.env_params = make_env(env_config)
        full = int(self.env_params.consts.horizon)
        self.horizon = full if settings.horizon <= 0 else min(settings.horizon, full)
        self.methods: dict[str, dict] = {}  # architecture fingerprint -> {"policy": act}
        self.references = self._load_or_compute_references()

    def _reference_key(self) -> dict:
        """Everything the references depend on: a stale cache must never be reused."""
        from envs.opf.controls import MYOPIC_RATING_MARGIN

        s = self.settings
        return {
            "env": self.env_json,
            "scenarios": list(s.scenarios),
            "episodes": s.episodes,
            "horizon": self.horizon,
            "eval_seed": s.eval_seed,
            "baselines": BASELINE_NAMES,
            "myopic_rating_margin": MYOPIC_RATING_MARGIN,
            "code": _code_version(),
        }

    def _load_or_compute_references(self) -> dict:
        """{scenario: {method: row}} for the baselines and the oracle, cached on disk."""
        key = _fingerprint(self._reference_key())
        path = self.settings.out_dir / "references.json"
        if path.is_file():
            stored = json.loads(path.read_text())
            if stored.get("key") == key:
                progress(f"baselines and oracle from {path}")
                return stored["scenarios"]
        scenarios = self._compute_references()
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps({"key": key, "scenarios": scenarios}, indent=2))
        return scenarios

    def _compute_references(self) -> dict:
        """Do-nothing and myopic OPF rollouts with the oracle solving beside them."""
        from envs.evaluation.registry import baseline_methods
        from envs.evaluation.suite import OracleSolver, default_oracle_workers, run_suite
        from envs.opf import oracle

        progress("baselines and oracle on the held-out episodes (once for every checkpoint)")
        params = self.env_params
        methods = baseline_methods(params, BASELINE_NAMES)
        oracles = OracleSolver(oracle.dispatch_model(params), default_oracle_workers())
        s = self.settings
        try:
            summaries, _ = run_suite(
                params, methods, None, s.scenarios, s.episodes, self.horizon, oracles, s.eval_seed
            )
        finally:
            oracles.close()
        return summaries

    def _policy_methods(self, config, spec, act) -> dict:
        """The same methods dict (hence one compile) for every checkpoint of one architecture;
        the run's seed is not part of the architecture."""
        from envs.env import GridEnv
        from launch.evaluation import check_spec

        if json.loads(config.env.to_json()) != self.env_json:
            raise ValueError("the runs were trained on different env configs: evaluate apart")
        learner = {
            k: v
            for k, v in json.loads(config.learner.to_json()).items()
            if k not in ("seed", "checkpoint")
        }
        key = _fingerprint(learner)
        if key not in self.methods:
            check_spec(GridEnv().spec(self.env_params), spec)
            self.methods[key] = {"policy": act}
        return self.methods[key]

    def evaluate(self, checkpoint_dir: Path, step: int) -> dict:
        """{scenario: policy row with its gap and relative costs} of one checkpoint."""
        from envs.evaluation.metrics import summarise
        from envs.evaluation.suite import rollout_method
        from launch.evaluation import load_policy

        config, spec, act, policy_args, _ = load_policy(checkpoint_dir, step)
        methods = self._policy_methods(config, spec, act)
        s, rows = self.settings, {}
        for scenario in s.scenarios:
            metrics, _ = rollout_method(
                self.env_params,
                methods,
                policy_args,
                "policy",
                scenario,
                s.episodes,
                self.horizon,
                s.eval_seed,
            )
            refs = self.references[scenario]
            oracle_cost = {"cost": _array(refs["oracle"]["episode_cost"])}
            row = summarise({"policy": metrics, "oracle": oracle_cost})["policy"]
            rows[scenario] = relative_row(row, refs)
        return rows


def _array(values):
    """Per-episode numbers back from JSON as the float array ``summarise`` expects."""
    import numpy as np

    return np.asarray(values, np.float64)


def stored_env_config(run_dir: Path):
    """The env config a run trained on (its newest checkpoint holds the experiment config)."""
    from learner.checkpoint import restore_for_eval

    config, *_ = restore_for_eval(run_dir / "checkpoints")
    return config.env


def evaluate_run(evaluator: Evaluator, run_dir: Path, grid: list[float]) -> dict:
    """The run's checkpoints at the grid times, each evaluated once."""
    start, source = launch_start(run_dir)
    times = checkpoint_times(run_dir / "checkpoints", start)
    picked = pick_checkpoints(times, grid)
    rows = {}
    for step in dict.fromkeys(s for s in picked if s is not None):
        progress(f"{run_dir.name}: checkpoint {step} ({times[step]:.0f} s)")
        rows[step] = evaluator.evaluate(run_dir / "checkpoints", step)
    return {
        "run_dir": str(run_dir),
        "start_source": source,
        "launch": _read_json(run_dir / LAUNCH_RECORD),
        "summary": _read_json(run_dir / "summary.json"),
        "checkpoint_times_s": {str(k): v for k, v in times.items()},
        "picked": picked,
        "rows": {str(k): v for k, v in rows.items()},
    }


def _read_json(path: Path):
    """A JSON file's content, None where the file is absent (runs not launched here)."""
    return json.loads(path.read_text()) if path.is_file() else None


def build_curve(runs: list[dict], grid: list[float]) -> list[dict]:
    """The curve's points from each run's picked checkpoints."""
    return [curve_point(time_s, rows_at(runs, k)) for k, time_s in enumerate(grid)]


def rows_at(runs: list[dict], k: int) -> list:
    """Each run's evaluated rows at grid point ``k`` (None: no checkpoint by then)."""
    return [
        None if run["picked"][k] is None else run["rows"][str(run["picked"][k])] for run in runs
    ]


def seed_counts(seed_rows: list, myopic: dict, targets: Targets) -> list[int]:
    """Per target, how many seeds meet it on their own (a mean can hide one bad seed)."""
    per_seed = [check_targets(rows or {}, myopic, targets) for rows in seed_rows]
    return [sum(checks[i]["met"] is True for checks in per_seed) for i in range(len(per_seed[0]))]


def evaluate_runs(settings: Settings, run_dirs: list[Path], machine: dict) -> dict:
    """Every number of the benchmark: runs, references, curve, targets."""
    from launch.threefry_lowering import unroll_threefry_on_cpu

    unroll_threefry_on_cpu()  # as launch.evaluate does: same numbers, faster on CPU
    evaluator = Evaluator(settings, stored_env_config(run_dirs[0]))
    grid = time_grid(settings.budget_s, settings.checkpoints)
    runs = [evaluate_run(evaluator, run_dir, grid) for run_dir in run_dirs]
    points = build_curve(runs, grid)
    targets = IEEE14_TARGETS
    myopic = {name: rows["myopic_opf"] for name, rows in evaluator.references.items()}
    verdict = verdict_point(points, targets)
    checks = check_targets(point_means(verdict) if verdict else {}, myopic, targets)
    if verdict is not None:
        counts = seed_counts(rows_at(runs, points.index(verdict)), myopic, targets)
        for check, count in zip(checks, counts, strict=True):
            check["seeds_met"] = count
    return {
        "hardware": machine,
        "settings": json.loads(json.dumps(dataclasses.asdict(settings), default=str)),
        "from_runs": bool(settings.from_runs),
        "case": str(evaluator.env_config.case),
        "evaluation": {
            "eval_seed": settings.eval_seed,
            "episodes": settings.episodes,
            "horizon": evaluator.horizon,
            "scenarios": list(settings.scenarios),
        },
        "references": evaluator.references,
        "runs": runs,
        "curve": points,
        "targets": {
            "definition": dataclasses.asdict(targets),
            "at_time_s": None if verdict is None else verdict["time_s"],
            "checks": checks,
            "all_met": all_met(checks),
            "time_to_quality_s": time_to_quality(points, myopic, targets),
        },
    }


# ------------------------------------------------------------------------- report ----


def _cell(stats: dict, width: int = 24) -> str:
    """``mean [min, max]`` (the mean alone for one seed); '-' where no seed had a value."""
    if stats["mean"] is None:
        return f"{'-':>{width}}"
    text = f"{stats['mean']:.2f}"
    if stats["n"] > 1:
        text += f" [{stats['min']:.2f}, {stats['max']:.2f}]"
    return f"{text:>{width}}"


def _number(value, digits: int = 2) -> str:
    """A number for a table cell, '-' for a missing one."""
    return "-" if value is None else f"{value:.{digits}f}"


def title(results: dict) -> str:
    """The preset (relative to the repository) or, for given runs, their folders; the case."""
    if results["from_runs"]:
        names = ", ".join(Path(run["run_dir"]).name for run in results["runs"])
        return f"runs {names} ({results['case']})"
    preset = Path(results["settings"]["config_path"])
    shown = preset.relative_to(REPO) if preset.is_relative_to(REPO) else preset
    return f"{shown} ({results['case']})"


def format_header(results: dict) -> list[str]:
    """The setting a reader needs to compare two reports: preset, machine, budget, episodes."""
    s, ev = results["settings"], results["evaluation"]
    cache = "cold XLA cache" if s["cold_cache"] else "warm XLA cache"
    training = (
        f"training: runs given (--from_runs), curve over {s['budget_s']:.0f} s"
        if results["from_runs"]
        else f"training: {len(s['seeds'])} seeds x {s['budget_s']:.0f} s of wall clock each "
        f"(from the launch command: start-up and compilation included, {cache})"
    )
    return [
        f"# Time to quality: {title(results)}",
        f"hardware: {harness.describe_line(results['hardware'])}",
        training,
        f"overrides: {' '.join(s['overrides']) or 'none'}",
        f"evaluation: held-out set {ev['eval_seed']} (not the suite's set 0), "
        f"{len(ev['scenarios'])} scenarios x {ev['episodes']} episodes x {ev['horizon']} steps",
        "",
    ]


def format_runs(results: dict) -> list[str]:
    """Per run: how far it got, its throughput, and when its first checkpoint existed
    (start-up and compilation are most of that on a cold cache)."""
    lines = [
        f"{'run':<12}{'env steps':>12}{'steps/s':>10}{'checkpoints':>13}"
        f"{'first s':>9}{'stop s':>8}{'exit':>6}  start from"
    ]
    for run in results["runs"]:
        summary, launch = run["summary"] or {}, run["launch"] or {}
        times = list(run["checkpoint_times_s"].values())
        lines.append(
            f"{Path(run['run_dir']).name:<12}{summary.get('env_steps', 0):>12,}"
            f"{_number(summary.get('mean_steps_per_s'), 0):>10}{len(times):>13}"
            f"{_number(min(times) if times else None, 0):>9}"
            f"{_number(launch.get('signal_s'), 0):>8}{launch.get('exit_code', '-')!s:>6}"
            f"  {run['start_source']}"
        )
    return [*lines, ""]


def format_references(results: dict) -> list[str]:
    """What the policy is measured against, on exactly its episodes."""
    lines = [
        "references on the same episodes (mean per episode):",
        f"{'scenario':<25}{'method':<12}{'cost':>14}{'gap %':>9}{'unserved MWh':>14}"
        f"{'overloads':>11}{'blackouts':>11}",
    ]
    for scenario, rows in results["references"].items():
        for method in ("oracle", *BASELINE_NAMES):
            row = rows[method]
            lines.append(
                f"{scenario:<25}{method:<12}{row['cost']:>14,.0f}{_number(row['gap_percent']):>9}"
                f"{row['unserved_mwh']:>14.2f}{row['overload_steps']:>11.2f}"
                f"{row['blackouts']:>11.2f}"
            )
    return [*lines, ""]


def format_curve(results: dict) -> list[str]:
    """One block per scenario, one row per point of the curve."""
    lines = ["policy against wall clock: mean over seeds [min, max]"]
    header = f"{'time s':>8}{'seeds':>7}" + "".join(f"{label:>24}" for _, label in METRICS)
    for scenario in results["evaluation"]["scenarios"]:
        lines += [f"scenario: {scenario}", header]
        for point in results["curve"]:
            stats = point["scenarios"].get(scenario)
            cells = "".join(_cell(stats[key]) if stats else f"{'-':>24}" for key, _ in METRICS)
            lines.append(
                f"{point['time_s']:>8.0f}{point['seeds']:>4}/{point['of_seeds']:<2}{cells}"
            )
        lines.append("")
    return lines


def format_targets(results: dict) -> list[str]:
    """One line per measured target; targets of scenarios not evaluated are named together."""
    targets = results["targets"]
    limit = targets["definition"]["time_limit_s"]
    at = targets["at_time_s"]
    where = f"at {at:.0f} s" if at is not None else "no point with every seed's checkpoint"
    lines = [
        f"targets (ieee14 default preset), mean over seeds {where} (within {limit:.0f} s):",
        f"  {'':<14}{'target':<56}{'value':>12}{'limit':>12}{'seeds':>8}",
    ]
    unmeasured = [check["target"] for check in targets["checks"] if check["met"] is None]
    for check in targets["checks"]:
        if check["met"] is None:
            continue
        seeds = f"{check['seeds_met']}/{len(results['runs'])}" if "seeds_met" in check else "-"
        lines.append(
            f"  {'met' if check['met'] else 'NOT MET':<14}{check['target']:<56}"
            f"{_number(check['value']):>12}{_number(check['limit']):>12}{seeds:>8}"
        )
    if unmeasured and at is None:
        lines.append(f"  not measured: all {len(unmeasured)} targets (no checkpoint by then)")
    elif unmeasured:
        missing = ", ".join(dict.fromkeys(name.split(":")[0] for name in unmeasured))
        lines.append(
            f"  not measured: {len(unmeasured)} targets of scenarios not evaluated ({missing})"
        )
    reached = targets["time_to_quality_s"]
    lines.append(
        f"time to quality (every target met by the mean): "
        f"{'not reached' if reached is None else f'{reached:.0f} s'}"
    )
    lines.append(f"all targets met: {'yes' if targets['all_met'] else 'no'}")
    return lines


def format_report(results: dict) -> str:
    """The whole printed report: setting, runs, references, curve, targets."""
    return "\n".join(
        format_header(results)
        + format_runs(results)
        + format_references(results)
        + format_curve(results)
        + format_targets(results)
    )


def _decorate(axis, key: str, label: str, results: dict, largest: float) -> None:
    """Axes over the whole budget, the targets' lines; percentages that reach past 100 on a
    symmetric log scale (an untrained policy is thousands of percent off, a good one a few)."""
    definition = results["targets"]["definition"]
    limits = {"gap_percent": definition["max_gap_percent"], "cost_vs_myopic_percent": 0.0}
    if key in limits:
        axis.axhline(limits[key], color="k", linestyle="--", linewidth=0.8)
    if key.endswith("_percent") and largest > 100.0:
        axis.set_yscale("symlog", linthresh=10.0)
    budget_s = results["settings"]["budget_s"]
    if definition["time_limit_s"] <= budget_s:
        axis.axvline(definition["time_limit_s"], color="grey", linestyle=":", linewidth=0.8)
    axis.set(xlabel="wall clock since launch (s)", ylabel=label, xlim=(0, budget_s * 1.02))


def plot_curves(results: dict, path: Path) -> None:
    """One panel per metric, one line per scenario (mean over seeds, min-max shaded)."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    figure, axes = plt.subplots(2, 3, figsize=(15, 8), constrained_layout=True)
    for axis, (key, label) in zip(axes.flat, METRICS, strict=True):
        largest = 0.0
        for scenario in results["evaluation"]["scenarios"]:
            xs, mean, low, high = [], [], [], []
            for point in results["curve"]:
                stats = point["scenarios"].get(scenario, {}).get(key)
                if stats and stats["mean"] is not None:
                    xs.append(point["time_s"])
                    mean.append(stats["mean"])
                    low.append(stats["min"])
                    high.append(stats["max"])
            (line,) = axis.plot(xs, mean, marker="o", label=scenario)
            axis.fill_between(xs, low, high, color=line.get_color(), alpha=0.2)
            largest = max([largest, *map(abs, low), *map(abs, high)])
        _decorate(axis, key, label, results, largest)
        axis.grid(alpha=0.3)
    axes.flat[0].legend(fontsize=8)
    figure.suptitle(
        f"{title(results)}: {len(results['runs'])} seeds; "
        f"{harness.describe_line(results['hardware'])}",
        fontsize=9,
    )
    figure.savefig(path, dpi=110)
    plt.close(figure)


# --------------------------------------------------------------------------- main ----


def _parse_flags(argv: list[str]) -> list[str]:
    """Parse into ``BENCH_FLAGS``; a bad flag is one line and exit status 2, like a bad value.

    absl's global FLAGS (its logging flags) keep their defaults but must count as parsed.
    """
    if any(arg in ("-h", "--help", "--helpshort", "--helpfull") for arg in argv[1:]):
        print(f"{__doc__}\nflags:\n{BENCH_FLAGS.get_help()}")
        sys.exit(0)
    try:
        rest = BENCH_FLAGS(argv)
    except flags.Error as err:
        usage_exit(str(err))
    flags.FLAGS(argv[:1])
    return rest


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
    logging.getLogger("absl").addFilter(_ReadOnlyRestoreFilter())
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
