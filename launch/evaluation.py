"""The evaluation of a trained checkpoint against the baselines and the oracle (the library
behind ``python -m launch.evaluate``).

Everything comes from the checkpoint directory: the experiment config (environment and
learner) and the policy parameters with the observation normaliser
(``learner.checkpoint.restore_for_eval``). The policy (deterministic mode) and the baselines
run through the evaluation suite (``envs.evaluation.suite.run_suite``) on the held-out
episodes, beside the perfect-foresight oracle. ``run_evaluation`` writes ``evaluation.json``
and ``evaluation.txt`` (``format_table``: per scenario, mean cost, optimality gap = cost /
oracle cost - 1 in %, cost against the scenario's best causal baseline (the cheapest baseline
that ran, ``envs.evaluation.metrics.against_best_causal``), unserved energy, overload steps, trips, frequency violations,
blackouts; then the policy's decision time per grid beside one myopic OPF solve,
``launch.decision_time``) and the HTML report with its figures (``launch.report``).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from configs.validation import adopt_learner_action_prior
from envs.env import GridEnv, make_env
from envs.evaluation.registry import (
    DEFAULT_BASELINES,
    baseline_methods,
    with_policy_references,
)
from envs.evaluation.suite import (
    OracleSolver,
    default_oracle_workers,
    episode_horizon,
    progress,
    run_suite,
)
from envs.opf import oracle, storage_value
from envs.opf.controls import MYOPIC_RATING_MARGIN, check_rating_margin
from envs.sim import scenarios
from launch import report
from launch.decision_time import DEFAULT_BATCHES as DEFAULT_DECISION_BATCHES
from launch.decision_time import decision_times, format_decision_times
from launch.report import TABLE_METRICS


def resolve_checkpoint(path: str | os.PathLike) -> tuple[Path, int | None, Path]:
    """``(checkpoint directory, step or None, run directory)`` for any accepted path."""
    path = Path(path).expanduser().resolve()
    if not path.is_dir():
        raise FileNotFoundError(f"--checkpoint {path} is not a directory")
    if path.name.isdigit() and (path / "params").exists():
        return path.parent, int(path.name), _run_dir_of(path.parent)
    if (path / "checkpoints").is_dir():
        return path / "checkpoints", None, path
    return path, None, _run_dir_of(path)


def _run_dir_of(checkpoint_dir: Path) -> Path:
    return checkpoint_dir.parent if checkpoint_dir.name == "checkpoints" else checkpoint_dir


def load_policy(checkpoint_dir: Path, step: int | None, best: bool = False, env_config=None):
    """``(config, spec, act_fn, policy_args, network)`` from the checkpoint alone: deterministic
    actions, as the setpoints the env applies under the run's ``env.action_interface`` (the
    rollout steps the physics with setpoints, as every baseline gives them); ``network(obs,
    policy_args)`` is the forward pass alone. ``env_config``: the env the policy acts in, where
    it is not the one it trained on (an evaluation with env overrides); the same observations
    and actions are the caller's to check (``check_spec``)."""
    from learner.checkpoint import restore_for_eval
    from learner.policy import make_policy
    from learner.validation import greedy_acting

    config, params, norm_state, spec = restore_for_eval(checkpoint_dir, step=step, best=best)
    if "env" not in config:
        raise ValueError(f"checkpoint {checkpoint_dir} stores no env config (config.env)")
    adopt_learner_action_prior(config)  # a checkpoint stored with learner.action_prior
    policy = make_policy(config.learner, spec)
    env, env_params = make_env(config.env if env_config is None else env_config)
    network, act = greedy_acting(env, env_params, policy)
    return config, spec, act, (params, norm_state), network


def check_spec(env_spec, stored_spec) -> None:
    """The rebuilt environment must match the one the policy was trained on."""
    for name in ("num_agents", "obs_dim", "global_dim", "action_dim"):
        if getattr(env_spec, name) != getattr(stored_spec, name):
            raise ValueError(
                f"environment {name}={getattr(env_spec, name)} differs from the checkpoint's "
                f"{getattr(stored_spec, name)}: the env config does not reproduce training"
            )


def _number(value) -> float:
    return float("nan") if value is None else float(value)


def format_table(results: dict) -> str:
    """Plain-text table: one block per scenario, one row per method."""
    names = [method for rows in results["scenarios"].values() for method in rows]
    width = max([14, *(len(name) + 1 for name in names)])  # the longest name stays apart
    header = f"{'method':<{width}}" + "".join(f"{m:>17}" for m in TABLE_METRICS)
    lines = []
    for scenario, rows in results["scenarios"].items():
        lines += [f"scenario: {scenario}", header, "-" * len(header)]
        for method, row in rows.items():
            cells = "".join(f"{_number(row.get(m)):>17.2f}" for m in TABLE_METRICS)
            lines.append(f"{method:<{width}}{cells}")
        best = next(iter(rows.values()), {}).get("best_causal")
        if best is not None:
            lines.append(f"vs_best_causal: cost / the cost of {best}, the best causal baseline")
        lines.append("")
    if "stored_energy_value" in results:
        lines.append(
            "cost includes the energy the batteries gave up over the episode at "
            f"{results['stored_energy_value']:.1f} $/MWh (negative where they end fuller)"
        )
        lines.append("")
    if "decision_time" in results:
        lines += [format_decision_times(results["decision_time"]), ""]
    return "\n".join(lines)


def run_evaluation(
    checkpoint: str | os.PathLike,
    scenario_names: tuple[str, ...] | None = None,
    episodes: int = 4,
    horizon: int = 96,
    baseline_names: tuple[str, ...] = DEFAULT_BASELINES,
    with_oracle: bool = True,
    report_dir: str | os.PathLike | None = None,
    render_episode: int = -1,
    best: bool = False,
    oracle_workers: int | None = None,
    myopic_rating_margin: float = MYOPIC_RATING_MARGIN,
    eval_seed: int = 0,
    decision_batches: tuple[int, ...] = DEFAULT_DECISION_BATCHES,
    policy_references: bool = False,
) -> dict:
    """Evaluate, write ``evaluation.json``/``.txt`` and the report; returns the results dict.

    ``policy_references`` adds the baselines the checkpoint's policy is judged beside where
    ``baseline_names`` lack them (``registry.with_policy_references``: its bid base's teacher,
    its alarm rule's myopic OPF).

    ``eval_seed`` picks the held-out episode set (0 = the suite's, ``scenarios.eval_keys``).
    ``decision_batches`` are the batch sizes the policy's decision time is measured at, beside
    one OPF solve (``launch.decision_time``; empty: not measured).
    """
    if episodes < 1:
        raise ValueError(f"--episodes must be >= 1, got {episodes}")
    if eval_seed < 0:
        raise ValueError(f"--eval_seed must be >= 0, got {eval_seed}")
    check_rating_margin(myopic_rating_margin, "--myopic_rating_margin")
    oracle_workers = default_oracle_workers() if oracle_workers is None else oracle_workers
    if oracle_workers < 0:
        raise ValueError(f"--oracle_workers must be >= 0, got {oracle_workers}")
    checkpoint_dir, step, run_dir = resolve_checkpoint(checkpoint)
    config, spec, act, policy_args, network = load_policy(checkpoint_dir, step, best)
    env, env_params = make_env(config.env)
    check_spec(GridEnv().spec(env_params), spec)
    horizon = episode_horizon(env_params, horizon)
    if not 0 <= render_episode < episodes and render_episode != -1:
        raise ValueError(f"--render_episode must be in [0, {episodes}), got {render_episode}")
    methods = {"policy": act}
    if policy_references:
        baseline_names = with_policy_references(baseline_names, config.env)
    methods |= baseline_methods(env_params, baseline_names, myopic_rating_margin)
    scenario_names = tuple(scenario_names or scenarios.scenario_names())
    results = {
        "checkpoint": str(checkpoint_dir),
        "step": step,
        "case": str(config.env.case),
        "horizon": horizon,
        "episodes": episodes,
        "myopic_rating_margin": myopic_rating_margin,
        "eval_seed": eval_seed,
        # $/MWh of the energy the batteries give up over an episode, in every method's cost
        "stored_energy_value": storage_value.stored_energy_value(env_params),
        "scenarios": {},
    }
    oracles = (
        OracleSolver(oracle.dispatch_model(env_params), oracle_workers) if with_oracle else None
    )
    try:
        results["scenarios"], shown = run_suite(
            env_params, methods, policy_args, scenario_names, episodes, horizon, oracles, eval_seed
        )
    finally:
        if oracles is not None:
            oracles.close()
    if decision_batches:
        progress(f"decision time at batch {', '.join(map(str, decision_batches))}")
        results["decision_time"] = decision_times(
            env, env_params, network, act, policy_args, decision_batches
        )
    report_dir = Path(report_dir) if report_dir else run_dir / "eval"
    report_dir.mkdir(parents=True, exist_ok=True)
    (report_dir / "evaluation.json").write_text(json.dumps(results, indent=2))
    (report_dir / "evaluation.txt").write_text(format_table(results))
    episode = max(render_episode, 0)
    report.write_report(report_dir, results, env_params, shown[0], shown[1], episode, run_dir)
    if render_episode >= 0:
        report.write_episode_gif(report_dir, env_params, shown[0], shown[1]["policy"], episode)
    return results
