"""Validation of the checkpoints a run saves: which of them a user should keep.

A policy trained by PPO does not improve monotonically: on ieee118 the team meets its targets
after 10 minutes and drifts away from them by 30. A run that only keeps its latest parameters
hands the user whatever the last update left. With ``learner.checkpoint.validation_episodes``
= N > 0 the learner rolls out the greedy policy, before each checkpoint it saves on its
cadence, on N whole-day episodes of every scenario, and stores the result as the checkpoint's
metrics; ``learner.checkpoint.best_metric`` then ranks them, Orbax keeps the best besides the
latest, and ``launch.evaluate --best`` restores it.

The episodes are a set of their own (``envs.sim.scenarios.eval_keys`` with
``VALIDATION_SET``): not the training draws, not the evaluation suite's set (0), not the
learning benchmark's (1). So choosing a checkpoint on them does not tune to the episodes a
policy is judged on. The rollout and the cost are the evaluation's (``envs.evaluation``), so a
validation cost is an evaluation cost.

Metrics (means over the episodes of all scenarios, each episode weighted alike):

* ``validation/cost``: the episode's cost as the evaluation counts it ($).
* ``validation/cost_vs_teacher``: the episode's cost over its teacher's on the same episode
  (the zero action of the ``bids`` or ``merit_residual`` interface: the myopic OPF or the merit
  order). Days differ in cost by orders of magnitude (a day with a blackout costs 100 x a
  quiet one); the ratio weighs each day by how much better or worse the policy ran it.
  Only under those interfaces.
* ``validation/overload_steps``, ``validation/blackouts``: per episode.
* ``validation/cost_vs_teacher/<scenario>``: the ratio's mean over that scenario's days (which
  days a ranking moves on; TensorBoard draws each).

The teacher's episodes do not depend on the policy, so they run once per run.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from envs.teacher_relative import TEACHER_INTERFACES

VALIDATION_SET = 2  # envs.sim.scenarios.eval_keys' seed: 0 is the suite's, 1 the benchmark's
TEACHER_METRIC = "validation/cost_vs_teacher"
METRICS = ("validation/cost", TEACHER_METRIC, "validation/overload_steps", "validation/blackouts")


def validation_metrics(interface: str) -> tuple[str, ...]:
    """The metrics a validation reports under ``env.action_interface`` = ``interface``."""
    from envs.sim.scenarios import scenario_names

    if interface in TEACHER_INTERFACES:
        return METRICS + tuple(f"{TEACHER_METRIC}/{name}" for name in scenario_names())
    return tuple(m for m in METRICS if m != TEACHER_METRIC)


def check_best_metric(config: ml_collections.ConfigDict) -> None:
    """A run that validates must rank its checkpoints by a metric the validation reports."""
    ckpt = config.learner.checkpoint
    if int(ckpt.get("validation_episodes", 0)) <= 0:
        return
    reported = validation_metrics(str(config.env.action_interface))
    if ckpt.best_metric not in reported:
        raise ValueError(
            f"learner.checkpoint.best_metric={ckpt.best_metric!r} is not a validation metric "
            f"under env.action_interface={config.env.action_interface!r}: one of "
            f"{', '.join(reported)}"
        )


def greedy_acting(env, env_params, policy):
    """``(network, act)`` of a trained policy as the evaluation rolls it out: ``network(obs,
    (params, norm_state))`` the deterministic action, ``act`` (an ``envs.evaluation`` ActFn)
    the setpoints the env applies for it under the run's action interface."""
    setpoints = jax.vmap(env.setpoints, in_axes=(0, 0, None))

    def network(obs, args):
        return policy.mode(args[0], args[1], obs)

    def act(obs, state, key, args):
        del key
        return setpoints(network(obs, args), state, env_params)

    return network, act


class Validator:
    """``validator(params, norm_state) -> metrics``: the greedy policy on the validation set.

    Built once per run (the rollout compiles at the first call); ``device`` is where it runs.
    """

    def __init__(self, config: ml_collections.ConfigDict, device=None):
        from envs.env import make_env
        from envs.sim import scenarios
        from learner.policy import make_policy

        env, env_params = make_env(config.env)
        spec = env.spec(env_params)
        policy = make_policy(config.learner, spec)
        setpoints = jax.vmap(env.setpoints, in_axes=(0, 0, None))
        _, act = greedy_acting(env, env_params, policy)

        def teacher(obs, state, key, args):
            del key, args
            zero = jnp.zeros((state.t.shape[0], spec.num_agents, spec.action_dim), jnp.float32)
            return setpoints(zero, state, env_params)

        episodes = int(config.learner.checkpoint.validation_episodes)
        names = scenarios.scenario_names()
        keys = [scenarios.eval_keys(name, episodes, seed=VALIDATION_SET) for name in names]
        self._names = names
        self._keys = jnp.concatenate(keys)
        self._scenario = jnp.repeat(jnp.arange(len(names), dtype=jnp.int32), episodes)
        self._env_params = env_params
        self._policies = (act, teacher)
        self._with_teacher = str(config.env.action_interface) in TEACHER_INTERFACES
        self._teacher_cost: np.ndarray | None = None
        self._device = device or jax.devices()[0]

    def _episode_metrics(self, index: int, args: Any) -> dict[str, np.ndarray]:
        from envs.evaluation.metrics import episode_metrics
        from envs.evaluation.rollout import rollout
        from envs.evaluation.suite import episode_horizon

        horizon = episode_horizon(self._env_params, 0)
        with jax.default_device(self._device):
            record = rollout(
                self._env_params,
                self._policies,
                jnp.int32(index),
                self._keys,
                self._scenario,
                horizon,
                args,
            )
        return episode_metrics(jax.device_get(record), self._env_params)

    def __call__(self, params, norm_state) -> dict[str, float]:
        args = jax.device_put((params, norm_state), self._device)
        episodes = self._episode_metrics(0, args)
        metrics = {
            "validation/cost": float(np.mean(episodes["cost"])),
            "validation/overload_steps": float(np.mean(episodes["overload_steps"])),
            "validation/blackouts": float(np.mean(episodes["blackouts"])),
        }
        if self._with_teacher:
            if self._teacher_cost is None:
                self._teacher_cost = self._episode_metrics(1, args)["cost"]
            ratio = episodes["cost"] / np.maximum(self._teacher_cost, 1e-9)
            metrics[TEACHER_METRIC] = float(np.mean(ratio))
            by_scenario = ratio.reshape(len(self._names), -1).mean(axis=1)
            for name, value in zip(self._names, by_scenario, strict=True):
                metrics[f"{TEACHER_METRIC}/{name}"] = float(value)
        return metrics
