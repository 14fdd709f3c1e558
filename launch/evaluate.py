"""Evaluate a trained checkpoint against baselines and the perfect-foresight oracle.

    python -m launch.evaluate --checkpoint=RUN_DIR[/checkpoints[/STEP]] \\
        [--scenarios=all|normal,peak_demand,...] [--episodes=4] [--horizon=96] \\
        [--report_dir=RUN_DIR/eval] [--render_episode=K] [--eval_seed=0]

Everything comes from the checkpoint directory: the experiment config (environment and
learner) and the policy parameters with the observation normaliser
(``learner.checkpoint.restore_for_eval``). Every scenario runs on fixed held-out reset keys
(``envs.sim.scenarios.eval_keys``; ``--eval_seed`` picks another set); the policy (deterministic
mode), the baselines and the oracle see exactly the same episodes. The policy and the
baselines run in one compiled batched rollout (``envs.opf.baselines.rollout``: vmap over
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

import concurrent.futures
import json
import multiprocessing
import os
import sys
import time
from functools import partial
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
from absl import app, flags
from absl import logging as absl_logging

from configs.validation import adopt_learner_action_prior
from envs.env import GridEnv, make_env
from envs.opf import baselines, oracle
from envs.sim import scenarios
from launch import report
from launch.decision_time import DEFAULT_BATCHES as DEFAULT_DECISION_BATCHES
from launch.decision_time import decision_times, format_decision_times
from launch.report import TABLE_METRICS
from launch.threefry_lowering import unroll_threefry_on_cpu

BASELINES = {
    "do_nothing": baselines.do_nothing,
    "proportional": baselines.proportional,
    "merit_order": baselines.merit_order,
    # single-step DC-OPF, batched in JAX on the device (envs.opf.step_qp)
    "myopic_opf": baselines.myopic_opf_baseline,
    # receding-horizon DC-OPF on the operator's forecast, batched in JAX (envs.opf.lookahead_qp)
    "lookahead_opf": baselines.lookahead_opf,
    # the same, with the energy stored at the horizon's end valued at the forecast's end price
    "lookahead_opf_valued": partial(baselines.lookahead_opf, value_stored_energy=True),
    # the myopic OPF solved exactly by HiGHS on the host: its reference, one LP per grid per step
    "myopic_opf_highs": baselines.myopic_opf_highs,
}
# Evaluated unless --baselines says otherwise. Left out: the HiGHS reference (the same problem
# as myopic_opf, and its host solves are the slow part of an ieee118 suite) and lookahead_opf,
# whose dense multi-period QP (six periods: ~1k variables and ~4k rows on ieee118) costs seconds
# per grid and step on a CPU.
DEFAULT_BASELINES = tuple(
    name
    for name in BASELINES
    if name not in ("myopic_opf_highs", "lookahead_opf", "lookahead_opf_valued")
)

# The oracle's cost is optimal within this relative tolerance (1e-4 percentage points of gap);
# the last decade below it costs about as many cut rounds as everything before.
ORACLE_COST_RTOL = 1e-6

_CHECKPOINT = flags.DEFINE_string(
    "checkpoint", None, "Run directory, its checkpoints/ folder, or one checkpoint step folder."
)
_SCENARIOS = flags.DEFINE_string("scenarios", "all", "'all' or a comma-separated list.")
_EPISODES = flags.DEFINE_integer("episodes", 4, "Held-out episodes per scenario.")
_HORIZON = flags.DEFINE_integer("horizon", 96, "Steps per episode (0 = the env's horizon).")
_BASELINES = flags.DEFINE_string(
    "baselines",
    ",".join(DEFAULT_BASELINES),
    f"Comma-separated baselines ('' for none) out of {', '.join(BASELINES)}.",
)
_ORACLE = flags.DEFINE_bool("oracle", True, "Solve the perfect-foresight oracle per episode.")
_REPORT_DIR = flags.DEFINE_string("report_dir", None, "Output folder (default RUN_DIR/eval).")
_RENDER_EPISODE = flags.DEFINE_integer(
    "render_episode", -1, "Write an animated GIF of this episode of the first scenario."
)
_BEST = flags.DEFINE_bool("best", False, "Restore the best checkpoint instead of the latest.")
_MYOPIC_MARGIN = flags.DEFINE_float(
    "myopic_rating_margin",
    baselines.MYOPIC_RATING_MARGIN,
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


def default_oracle_workers() -> int:
    return max(1, min(4, os.cpu_count() or 1))


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


def load_policy(checkpoint_dir: Path, step: int | None, best: bool = False):
    """``(config, spec, act_fn, policy_args, network)`` from the checkpoint alone: deterministic
    actions, as the setpoints the env applies under the run's ``env.action_interface`` (the
    rollout steps the physics with setpoints, as every baseline gives them); ``network(obs,
    policy_args)`` is the forward pass alone."""
    from learner.checkpoint import restore_for_eval
    from learner.policy import make_policy

    config, params, norm_state, spec = restore_for_eval(checkpoint_dir, step=step, best=best)
    if "env" not in config:
        raise ValueError(f"checkpoint {checkpoint_dir} stores no env config (config.env)")
    adopt_learner_action_prior(config)  # a checkpoint stored with learner.action_prior
    policy = make_policy(config.learner, spec)
    env, env_params = make_env(config.env)
    setpoints = jax.vmap(env.setpoints, in_axes=(0, 0, None))

    def network(obs, args):
        return policy.mode(args[0], args[1], obs)

    def act(obs, state, key, args):
        del key
        return setpoints(network(obs, args), state, env_params)

    return config, spec, act, (params, norm_state), network


def check_spec(env_spec, stored_spec) -> None:
    """The rebuilt environment must match the one the policy was trained on."""
    for name in ("num_agents", "obs_dim", "global_dim", "action_dim"):
        if getattr(env_spec, name) != getattr(stored_spec, name):
            raise ValueError(
                f"environment {name}={getattr(env_spec, name)} differs from the checkpoint's "
                f"{getattr(stored_spec, name)}: the env config does not reproduce training"
            )


def scenario_list(selection: str) -> tuple[str, ...]:
    names = scenarios.scenario_names()
    if selection.strip() in ("", "all"):
        return names
    chosen = tuple(s.strip() for s in selection.split(",") if s.strip())
    unknown = [s for s in chosen if s not in names]
    if unknown:
        raise ValueError(f"unknown scenarios {unknown}; allowed: all or {', '.join(names)}")
    return chosen


def baseline_list(selection: str) -> tuple[str, ...]:
    chosen = tuple(s.strip() for s in selection.split(",") if s.strip())
    unknown = [s for s in chosen if s not in BASELINES]
    if unknown:
        raise ValueError(f"unknown baselines {unknown}; allowed: {', '.join(BASELINES)}")
    return chosen


def decision_batch_list(values) -> tuple[int, ...]:
    try:
        batches = tuple(int(v) for v in values if str(v).strip())
    except ValueError:
        raise ValueError(f"--decision_batches must be positive integers, got {values}") from None
    if any(b < 1 for b in batches):
        raise ValueError(f"--decision_batches must be positive integers, got {values}")
    return batches


def oracle_metrics(solutions, dt_hours: float) -> dict[str, np.ndarray]:
    """Per-episode totals of the oracle's dispatches, in the units of ``episode_metrics``."""
    n_steps = np.array([len(s.step_cost) for s in solutions], float)
    zeros = np.zeros(len(solutions))
    return {
        "cost": np.array([s.total_cost for s in solutions]),
        "gen_cost": np.array([np.sum(s.generation_cost_per_h) * dt_hours for s in solutions]),
        "unserved_mwh": np.array([np.sum(s.shed_mw) * dt_hours for s in solutions]),
        "shed_mwh": np.array([np.sum(s.shed_mw) * dt_hours for s in solutions]),
        "overload_steps": zeros,
        "trips": zeros,
        "freq_violations": zeros,
        "blackouts": zeros,
        "steps": n_steps,
        "solve_seconds": np.array([s.solve_seconds for s in solutions]),
    }


class OracleSolver:
    """Solves oracle episodes in worker processes while the main process keeps rolling out.

    The oracle needs only an episode's exogenous inputs, known after the first rollout of a
    scenario; its LPs (host NumPy + HiGHS, no JAX) then run beside the remaining rollouts and
    the myopic OPF. ``workers=0`` solves in this process, when the results are asked for.
    """

    def __init__(self, model: oracle.EnvDispatchModel, workers: int):
        self.model, self.pool, self.pending = model, None, {}
        if workers > 0:
            context = multiprocessing.get_context("spawn")  # never fork a process running JAX
            self.pool = concurrent.futures.ProcessPoolExecutor(workers, mp_context=context)

    def submit(self, scenario: str, record: baselines.Rollout) -> None:
        episodes = np.asarray(record.alive).shape[1]
        inputs = [baselines.oracle_inputs(record, b) for b in range(episodes)]
        if self.pool is None:
            self.pending[scenario] = (time.perf_counter(), inputs)
            return
        jobs = [
            self.pool.submit(oracle.solve_oracle, self.model, x, ORACLE_COST_RTOL) for x in inputs
        ]
        self.pending[scenario] = (time.perf_counter(), jobs)

    def result(self, scenario: str, dt_hours: float) -> dict[str, np.ndarray]:
        """Per-episode oracle metrics of ``scenario`` (waits for its solves)."""
        started, work = self.pending.pop(scenario)
        if self.pool is None:
            started = time.perf_counter()
            solutions = [oracle.solve_oracle(self.model, x, ORACLE_COST_RTOL) for x in work]
        else:
            solutions = [job.result() for job in work]
        solve = sum(s.solve_seconds for s in solutions)
        _progress(
            f"{scenario}: oracle ready {time.perf_counter() - started:.1f} s after its "
            f"inputs ({solve:.1f} s of LP solves, {len(solutions)} episodes)"
        )
        return oracle_metrics(solutions, dt_hours)

    def close(self) -> None:
        if self.pool is not None:
            self.pool.shutdown(cancel_futures=True)


def rollout_method(
    env_params, methods, policy_args, name, scenario, episodes, horizon, eval_seed=0
):
    """``(per-episode metrics, Rollout)`` of method ``name`` on one scenario's episodes.

    ``methods`` is an ordered {name: ActFn}; its values' tuple must be the same object for
    every call so the rollout compiles once (method and scenario are traced arguments).
    ``eval_seed`` picks the held-out episode set (``scenarios.eval_keys``; 0 = the suite's).
    """
    started = time.perf_counter()
    record = baselines.rollout(
        env_params,
        tuple(methods.values()),
        jnp.int32(list(methods).index(name)),
        scenarios.eval_keys(scenario, episodes, eval_seed),
        jnp.int32(scenarios.scenario_id(scenario)),
        horizon,
        policy_args,
    )
    record = jax.device_get(record)
    metrics = baselines.episode_metrics(record, env_params)
    _progress(f"{scenario}: {name} done in {time.perf_counter() - started:.1f} s")
    return metrics, record


def _progress(message: str) -> None:
    """One line per finished piece of work on stderr: an evaluation can take minutes."""
    print(f"[evaluate] {message}", file=sys.stderr, flush=True)


def summarise(metrics: dict[str, dict[str, np.ndarray]]) -> dict[str, dict]:
    """Means over episodes per method, the optimality gap against the oracle, per-episode cost."""
    reference = metrics.get("oracle", {}).get("cost")
    out = {}
    for name, values in metrics.items():
        row = {k: float(np.mean(v)) for k, v in values.items()}
        if reference is not None:
            gaps = values["cost"] / np.maximum(reference, 1e-9) - 1.0
            row["gap_percent"] = float(100.0 * np.mean(gaps))
        else:
            row["gap_percent"] = None  # no oracle: no gap (JSON null)
        row["episode_cost"] = [float(c) for c in values["cost"]]
        row["per_episode"] = {k: [float(x) for x in v] for k, v in values.items()}
        if reference is not None:  # episodes where the env's accounting beat the bound
            row["episodes_below_oracle"] = int(np.sum(values["cost"] < reference * (1 - 1e-6)))
        out[name] = row
    return out


def _number(value) -> float:
    return float("nan") if value is None else float(value)


def format_table(results: dict) -> str:
    """Plain-text table: one block per scenario, one row per method."""
    header = f"{'method':<14}" + "".join(f"{m:>17}" for m in TABLE_METRICS)
    lines = []
    for scenario, rows in results["scenarios"].items():
        lines += [f"scenario: {scenario}", header, "-" * len(header)]
        for method, row in rows.items():
            cells = "".join(f"{_number(row.get(m)):>17.2f}" for m in TABLE_METRICS)
            lines.append(f"{method:<14}{cells}")
        lines.append("")
    if "decision_time" in results:
        lines += [format_decision_times(results["decision_time"]), ""]
    return "\n".join(lines)


def run_suite(
    env_params, methods, policy_args, scenario_names, episodes, horizon, oracles, eval_seed=0
):
    """``({scenario: summary}, (first scenario, its records))``.

    The first method runs on every scenario first: its rollouts give the oracle (``oracles``,
    an ``OracleSolver`` or None) every episode early, so the worker processes solve while
    this process runs the other methods. ``eval_seed`` picks the held-out episode set.
    """
    first, *others = methods
    metrics = {scenario: {} for scenario in scenario_names}
    shown = (scenario_names[0], {})
    for name in (first, *others):
        for scenario in scenario_names:
            args = (env_params, methods, policy_args, name, scenario, episodes, horizon, eval_seed)
            metrics[scenario][name], record = rollout_method(*args)
            if name == first and oracles is not None:
                oracles.submit(scenario, record)
            if scenario == shown[0]:
                shown[1][name] = record
    summaries = {}
    for scenario, values in metrics.items():
        if oracles is not None:
            values["oracle"] = oracles.result(scenario, env_params.consts.step_hours)
        summaries[scenario] = summarise(values)
    return summaries, shown


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
    myopic_rating_margin: float = baselines.MYOPIC_RATING_MARGIN,
    eval_seed: int = 0,
    decision_batches: tuple[int, ...] = DEFAULT_DECISION_BATCHES,
) -> dict:
    """Evaluate, write ``evaluation.json``/``.txt`` and the report; returns the results dict.

    ``eval_seed`` picks the held-out episode set (0 = the suite's, ``scenarios.eval_keys``).
    ``decision_batches`` are the batch sizes the policy's decision time is measured at, beside
    one OPF solve (``launch.decision_time``; empty: not measured).
    """
    if episodes < 1:
        raise ValueError(f"--episodes must be >= 1, got {episodes}")
    if eval_seed < 0:
        raise ValueError(f"--eval_seed must be >= 0, got {eval_seed}")
    baselines.check_rating_margin(myopic_rating_margin, "--myopic_rating_margin")
    oracle_workers = default_oracle_workers() if oracle_workers is None else oracle_workers
    if oracle_workers < 0:
        raise ValueError(f"--oracle_workers must be >= 0, got {oracle_workers}")
    checkpoint_dir, step, run_dir = resolve_checkpoint(checkpoint)
    config, spec, act, policy_args, network = load_policy(checkpoint_dir, step, best)
    env, env_params = make_env(config.env)
    check_spec(GridEnv().spec(env_params), spec)
    full = env_params.consts.horizon
    horizon = full if horizon <= 0 else min(horizon, full)
    if not 0 <= render_episode < episodes and render_episode != -1:
        raise ValueError(f"--render_episode must be in [0, {episodes}), got {render_episode}")
    options = {
        name: {"rating_margin": myopic_rating_margin}
        for name in ("myopic_opf", "myopic_opf_highs", "lookahead_opf", "lookahead_opf_valued")
    }
    methods = {"policy": act}
    methods |= {b: BASELINES[b](env_params, **options.get(b, {})) for b in baseline_names}
    scenario_names = tuple(scenario_names or scenarios.scenario_names())
    results = {
        "checkpoint": str(checkpoint_dir),
        "step": step,
        "case": str(config.env.case),
        "horizon": horizon,
        "episodes": episodes,
        "myopic_rating_margin": myopic_rating_margin,
        "eval_seed": eval_seed,
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
        _progress(f"decision time at batch {', '.join(map(str, decision_batches))}")
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
        )
    except (ValueError, FileNotFoundError) as err:
        sys.exit(f"launch.evaluate: {err}")
    print(format_table(results))


def run() -> None:
    """Console-script entry point (pyproject [project.scripts])."""
    app.run(main)


if __name__ == "__main__":
    run()
