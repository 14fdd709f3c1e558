"""Evaluation of the runs' checkpoints on a held-out episode set, against the references
(baselines and oracle, once per settings) computed by the evaluation library
(``envs.evaluation``, ``launch.evaluation``)."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import subprocess
from pathlib import Path

from benchmarks.learning.curve import (
    all_met,
    build_curve,
    check_stretch,
    check_targets,
    checkpoint_scores,
    checkpoint_times,
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
from benchmarks.learning.settings import (
    LAUNCH_RECORD,
    REPO,
    Settings,
    progress,
    read_json,
    with_env_overrides,
)


def reference_baselines(settings: Settings, env_config) -> tuple[str, ...]:
    """The baselines the references hold: the settings' and the policy's own references
    (``registry.with_policy_references``: its alarm rule's OPF, its bid base's teacher)."""
    from envs.evaluation.registry import with_policy_references

    return with_policy_references(settings.baseline_names, env_config)


class ReadOnlyRestoreFilter(logging.Filter):
    """Drops Orbax's two warnings on every read-only restore: evaluation restores read-only
    by design, and this benchmark restores every evaluated checkpoint."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        return "read_only=True" not in message and "directory is read only" not in message


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

    def __init__(self, settings: Settings, env_config, trained_env_config=None):
        """Builds the env once and gets the references (from disk when the key matches).
        ``trained_env_config``: the env the runs trained on, where the evaluation's differs
        (``--from_runs`` with env overrides); default ``env_config``."""
        from envs.env import make_env
        from envs.evaluation.suite import episode_horizon

        self.settings, self.env_config = settings, env_config
        self.env_json = json.loads(env_config.to_json())
        trained = env_config if trained_env_config is None else trained_env_config
        self.trained_env_json = json.loads(trained.to_json())
        self.baseline_names = reference_baselines(settings, env_config)
        _, self.env_params = make_env(env_config)
        self.horizon = episode_horizon(self.env_params, settings.horizon)
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
            "baselines": self.baseline_names,
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
        """The baselines' rollouts (do-nothing, the myopic OPF, with ``--lookahead`` the
        look-ahead OPF) with the oracle solving beside them."""
        from envs.evaluation.registry import baseline_methods
        from envs.evaluation.suite import OracleSolver, default_oracle_workers, run_suite
        from envs.opf import oracle

        progress("baselines and oracle on the held-out episodes (once for every checkpoint)")
        params = self.env_params
        methods = baseline_methods(params, self.baseline_names)
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

        if json.loads(config.env.to_json()) != self.trained_env_json:
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

        config, spec, act, policy_args, _ = load_policy(
            checkpoint_dir, step, env_config=self.env_config
        )
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


def validation_selection(run_dir: Path) -> dict:
    """``{"metric", "mode", "scores"}``: how the run ranks its checkpoints (its stored
    ``learner.checkpoint`` block) and each validated checkpoint's score."""
    from learner.checkpoint import stored_checkpoint_options

    options = stored_checkpoint_options(str(run_dir / "checkpoints"))
    metric, mode = str(options.best_metric), str(options.best_mode)
    scores = checkpoint_scores(run_dir / "checkpoints", metric)
    if not scores:
        raise ValueError(
            f"--select=best: no checkpoint of {run_dir} carries {metric!r}; train with "
            "--config.learner.checkpoint.validation_episodes=N (N > 0)"
        )
    return {"metric": metric, "mode": mode, "scores": scores}


def evaluate_run(evaluator: Evaluator, run_dir: Path, grid: list[float]) -> dict:
    """The run's checkpoints at the grid times, each evaluated once."""
    start, source = launch_start(run_dir)
    times = checkpoint_times(run_dir / "checkpoints", start)
    selection = validation_selection(run_dir) if evaluator.settings.select == "best" else None
    scores = selection["scores"] if selection else None
    minimise = selection["mode"] == "min" if selection else True
    picked = pick_checkpoints(times, grid, scores, minimise)
    rows = {}
    for step in dict.fromkeys(s for s in picked if s is not None):
        progress(f"{run_dir.name}: checkpoint {step} ({times[step]:.0f} s)")
        rows[step] = evaluator.evaluate(run_dir / "checkpoints", step)
    return {
        "run_dir": str(run_dir),
        "start_source": source,
        "launch": read_json(run_dir / LAUNCH_RECORD),
        "summary": read_json(run_dir / "summary.json"),
        "checkpoint_times_s": {str(k): v for k, v in times.items()},
        "picked": picked,
        "selection": selection and {**selection, "scores": {str(k): v for k, v in scores.items()}},
        "rows": {str(k): v for k, v in rows.items()},
    }


def evaluate_runs(settings: Settings, run_dirs: list[Path], machine: dict) -> dict:
    """Every number of the benchmark: runs, references, curve, targets."""
    from launch.threefry_lowering import unroll_threefry_on_cpu

    unroll_threefry_on_cpu()  # as launch.evaluate does: same numbers, faster on CPU
    trained = stored_env_config(run_dirs[0])
    evaluated = with_env_overrides(trained, settings.overrides if settings.from_runs else ())
    evaluator = Evaluator(settings, evaluated, trained)
    grid = time_grid(settings.budget_s, settings.checkpoints)
    runs = [evaluate_run(evaluator, run_dir, grid) for run_dir in run_dirs]
    points = build_curve(runs, grid)
    targets = targets_for(str(evaluator.env_config.case))
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
            "stretch": check_stretch(
                point_means(verdict) if verdict else {}, evaluator.references, settings.scenarios
            ),
        },
    }
