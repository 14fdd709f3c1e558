"""The evaluation suite: methods over every scenario's held-out episodes, beside the oracle.

Every scenario runs on fixed held-out reset keys (``envs.sim.scenarios.eval_keys``; an
``eval_seed`` picks another set); every method and the oracle see exactly the same episodes.
The methods run in one compiled batched rollout (``envs.evaluation.rollout``: the method and
the scenario are traced arguments, so it compiles once per suite). The oracle's multi-period
LPs run in spawned worker processes (``OracleSolver``) as soon as a scenario's episodes are
known, beside the remaining rollouts. A progress line per method and scenario goes to stderr.
"""

from __future__ import annotations

import concurrent.futures
import multiprocessing
import os
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np

from envs.evaluation import metrics as metrics_lib
from envs.evaluation import rollout as rollout_lib
from envs.evaluation.registry import BASELINES
from envs.opf import oracle
from envs.sim import scenarios

# The oracle's cost is optimal within this relative tolerance (1e-4 percentage points of gap);
# the last decade below it costs about as many cut rounds as everything before.
ORACLE_COST_RTOL = 1e-6


def default_oracle_workers() -> int:
    return max(1, min(4, os.cpu_count() or 1))


def episode_horizon(env_params, horizon: int) -> int:
    """Steps per evaluated episode: ``horizon``, at most the env's (0 or less: the env's)."""
    full = int(env_params.consts.horizon)
    return full if horizon <= 0 else min(horizon, full)


def progress(message: str) -> None:
    """One line per finished piece of work on stderr: an evaluation can take minutes."""
    print(f"[evaluate] {message}", file=sys.stderr, flush=True)


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

    def submit(self, scenario: str, record: rollout_lib.Rollout) -> None:
        episodes = np.asarray(record.alive).shape[1]
        inputs = [rollout_lib.oracle_inputs(record, b) for b in range(episodes)]
        if self.pool is None:
            self.pending[scenario] = (time.perf_counter(), inputs, None)
            return
        jobs = [
            self.pool.submit(oracle.solve_oracle, self.model, x, ORACLE_COST_RTOL) for x in inputs
        ]
        self.pending[scenario] = (time.perf_counter(), inputs, jobs)

    def result(self, scenario: str) -> dict[str, np.ndarray]:
        """Per-episode oracle metrics of ``scenario`` (waits for its solves)."""
        started, inputs, jobs = self.pending.pop(scenario)
        if jobs is None:
            started = time.perf_counter()
            solutions = [oracle.solve_oracle(self.model, x, ORACLE_COST_RTOL) for x in inputs]
        else:
            solutions = [job.result() for job in jobs]
        solve = sum(s.solve_seconds for s in solutions)
        progress(
            f"{scenario}: oracle ready {time.perf_counter() - started:.1f} s after its "
            f"inputs ({solve:.1f} s of LP solves, {len(solutions)} episodes)"
        )
        return metrics_lib.oracle_metrics(solutions, inputs, self.model)

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
    record = rollout_lib.rollout(
        env_params,
        tuple(methods.values()),
        jnp.int32(list(methods).index(name)),
        scenarios.eval_keys(scenario, episodes, eval_seed),
        jnp.int32(scenarios.scenario_id(scenario)),
        horizon,
        policy_args,
    )
    record = jax.device_get(record)
    metrics = metrics_lib.episode_metrics(record, env_params)
    progress(f"{scenario}: {name} done in {time.perf_counter() - started:.1f} s")
    return metrics, record


def run_suite(
    env_params, methods, policy_args, scenario_names, episodes, horizon, oracles, eval_seed=0
):
    """``({scenario: summary}, (first scenario, its records))``.

    Each summary row holds its mean metrics, its gap to the oracle and its cost against the
    scenario's best causal baseline (``metrics.against_best_causal``: the cheapest of the
    ``envs.evaluation.registry.BASELINES`` that ran).

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
            values["oracle"] = oracles.result(scenario)
        summaries[scenario] = metrics_lib.summarise(values)
        metrics_lib.against_best_causal(summaries[scenario], BASELINES)
    return summaries, shown
