"""The optional evaluator node: greedy episodes on fixed held-out seeds with the latest params.

Off by default (``config.evaluator.enabled``). Every ``every_updates`` published versions it
runs ``num_envs`` grids for one episode each with ``Policy.mode`` and logs the mean return
(per agent) and cost under ``eval/`` in TensorBoard. For the full report against baselines
and the OPF oracle use ``python -m launch.evaluate``.
"""

from __future__ import annotations

import os

import jax
import jax.numpy as jnp
import ml_collections

from launch.metrics import open_writer
from learner.acting import build_env_and_policy
from replay.compute_lock import cpu_compute_lock
from replay.service_node import ServiceNode


def make_greedy_episode(env, env_params, policy, steps: int):
    """``episode(params, norm_state, keys [B]) -> (return [B], cost [B])`` until the first end."""
    batched_reset = jax.vmap(env.reset, in_axes=(0, None))
    batched_step = jax.vmap(env.step, in_axes=(0, 0, 0, None))
    agent_mask = jnp.asarray(env.spec(env_params).agent_mask, jnp.float32)

    def episode(params, norm_state, keys):
        obs, state = batched_reset(keys, env_params)
        zeros = jnp.zeros(keys.shape[:1], jnp.float32)

        def step(carry, t):
            obs, state, alive, total_return, total_cost = carry
            action = policy.mode(params, norm_state, obs)
            step_keys = jax.vmap(jax.random.fold_in, in_axes=(0, None))(keys, t)
            obs, state, reward, terminated, truncated, info = batched_step(
                step_keys, state, action, env_params
            )
            team = jnp.sum(reward * agent_mask[None], axis=1) / jnp.sum(agent_mask)
            total_return = total_return + alive * team
            total_cost = total_cost + alive * info.get("cost", zeros)
            alive = alive * (1.0 - (terminated | truncated).astype(jnp.float32))
            return (obs, state, alive, total_return, total_cost), None

        carry = (obs, state, jnp.ones_like(zeros), zeros, zeros)
        carry, _ = jax.lax.scan(step, carry, jnp.arange(steps))
        return carry[3], carry[4]

    return episode


class EvaluatorNode(ServiceNode):
    def __init__(self, config: ml_collections.ConfigDict, device_indices, variables, run_dir):
        self._config = config
        self._device_index = device_indices[0]
        self._variables = variables
        self._run_dir = run_dir
        super().__init__()
        self._last: dict = {}

    def stats(self) -> dict:
        return dict(self._last)

    def run(self, incarnation: int = 0) -> dict:
        eval_config = self._config.evaluator
        env, env_params, policy = build_env_and_policy(self._config, training=False)
        steps = int(eval_config.episode_steps) or int(self._config.env.horizon)
        episode = jax.jit(make_greedy_episode(env, env_params, policy, steps))
        device = jax.devices()[self._device_index]
        keys = jax.random.split(jax.random.PRNGKey(eval_config.seed), eval_config.num_envs)
        keys = jax.device_put(keys, device)
        log_dir = os.path.join(self._run_dir, "tensorboard", "eval")
        writer = open_writer(log_dir, self._config, "eval", self._run_dir)
        evaluated = -(10**9)
        try:
            while not self._stop.wait(1.0):
                version = self._variables.get_version()
                if version < evaluated + int(eval_config.every_updates):
                    continue
                latest = self._variables.get()
                if latest.params is None or latest.norm_state is None:
                    # The store can answer with nothing while the run shuts down: there is
                    # nothing to evaluate, and evaluating it raised at every stop.
                    continue
                params = jax.device_put((latest.params, latest.norm_state), device)
                with cpu_compute_lock([device]):  # local_mt: not beside a rollout
                    returns, costs = jax.device_get(episode(*params, keys))
                self._last = {
                    "eval/return": float(returns.mean()),
                    "eval/cost": float(costs.mean()),
                }
                writer.write(latest.version, self._last)
                evaluated = latest.version
        finally:
            writer.close()
        return self.stats()
