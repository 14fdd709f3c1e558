"""A single-process PPO loop: jitted ``lax.scan`` rollouts over a ``vmap``-ed env, then updates.

No distribution, no queue: the reference loop for tests and quick experiments
(the distributed runtime does the same with actors on other devices). Works
with any environment following the gridpod env API (``reset``, ``step`` with
auto-reset and ``info["final_obs"]``, ``spec``).
"""

from collections.abc import Callable
from typing import NamedTuple

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from learner.learner import Learner
from learner.policy import Policy
from learner.types import LearnerState
from replay.rollout import RolloutCarry, batched_env_step, make_trajectory_rollout, rollout


class RolloutStats(NamedTuple):
    """Per rollout, averaged over grids (and real agents for rewards)."""

    mean_reward: jax.Array  # [] mean per-step, per-agent reward
    episodes_done: jax.Array  # [] number of episode ends in the rollout


def make_rollout(env, env_params, policy: Policy, agent_mask: np.ndarray, unroll_length: int):
    """``rollout(params, norm_state, carry, key) -> (carry, Trajectory, RolloutStats)`` (jitted).

    ``replay.rollout``'s trajectory rollout (the actors' too), with the rewards of padded
    agents zeroed.
    """
    real = jnp.asarray(agent_mask, jnp.float32)

    def mask_padded_agents(extra, transition, info):
        del info
        return extra, transition._replace(reward=transition.reward * real[None, :]), None

    trajectory_rollout = make_trajectory_rollout(
        policy, env, env_params, unroll_length, on_step=mask_padded_agents
    )

    @jax.jit
    def rollout_with_stats(params, norm_state, carry: RolloutCarry, key):
        carry, traj, _ = trajectory_rollout(params, norm_state, carry, key)
        stats = RolloutStats(
            mean_reward=jnp.sum(traj.reward)
            / (jnp.sum(real) * traj.reward.shape[0] * traj.reward.shape[1]),
            episodes_done=jnp.sum(traj.terminated | traj.truncated),
        )
        return carry, traj, stats

    return rollout_with_stats


def reset_batch(env, env_params, key: jax.Array, batch_size: int) -> RolloutCarry:
    """``batch_size`` fresh episodes (jitted: op-by-op resets are slow)."""
    reset = jax.jit(jax.vmap(env.reset, in_axes=(0, None)))
    obs, env_state = reset(jax.random.split(key, batch_size), env_params)
    return RolloutCarry(env_state, obs)


def train(
    env,
    env_params,
    config: ml_collections.ConfigDict,
    num_updates: int,
    key: jax.Array,
    on_update: Callable[[int, dict], None] | None = None,
) -> tuple[LearnerState, list[dict]]:
    """Run ``num_updates`` rollouts + PPO updates on one device.

    ``config`` is the learner sub-config: ``batch_size`` grids are stepped for
    ``unroll_length`` steps per update. Returns the final learner state and one
    host-side dict per update (learner metrics plus ``rollout/mean_reward`` and
    ``rollout/episodes_done``, read after the update so nothing blocks the step).
    """
    spec = env.spec(env_params)
    learner = Learner(config, spec, devices=jax.devices()[:1])
    rollout = make_rollout(
        env, env_params, learner.policy, np.asarray(spec.agent_mask), config.unroll_length
    )
    key_init, key_reset, key = jax.random.split(key, 3)
    state = learner.init(key_init)
    carry = reset_batch(env, env_params, key_reset, config.batch_size)
    noise = learner.policy.init_noise(jax.random.fold_in(key_reset, 1), config.batch_size)
    carry = carry._replace(noise=noise)
    # Same placement as the learner state, so the rollout's input shardings never change
    # between calls (a change would recompile it).
    carry = learner.replicate(carry)
    history = []
    for update in range(num_updates):
        key, key_rollout = jax.random.split(key)
        carry, traj, stats = rollout(state.params, state.norm_state, carry, key_rollout)
        state, metrics = learner.update(state, traj)
        record = {k: float(v) for k, v in jax.device_get(metrics).items()}
        record["rollout/mean_reward"] = float(stats.mean_reward)
        record["rollout/episodes_done"] = float(stats.episodes_done)
        history.append(record)
        if on_update is not None:
            on_update(update, record)
    return state, history


def make_evaluator(env, env_params, policy: Policy, batch_size: int, num_steps: int):
    """``evaluate(params, norm_state, key) -> mean per-step reward of real agents`` (jitted).

    Runs ``batch_size`` fresh episodes for ``num_steps`` with the stochastic
    policy. Parameters are arguments, so one compile serves every policy (e.g. an
    untrained and a trained one compared on the same ``key``, i.e. the same episodes).
    """
    spec = env.spec(env_params)
    real = jnp.asarray(spec.agent_mask, jnp.float32)
    step_grids = batched_env_step(env, env_params)
    reset = jax.vmap(env.reset, in_axes=(0, None))

    @jax.jit
    def evaluate(params, norm_state, key):
        key_reset, key_run = jax.random.split(key)
        obs, env_state = reset(jax.random.split(key_reset, batch_size), env_params)

        def one_step(carry, key):
            key_act, key_env = jax.random.split(key)
            action, _, _ = policy.act(params, norm_state, carry.obs, key_act)
            obs, env_state, reward, *_ = step_grids(key_env, carry.env_state, action)
            return RolloutCarry(env_state, obs), jnp.sum(reward * real[None, :]) / jnp.sum(real)

        _, rewards = rollout(one_step, RolloutCarry(env_state, obs), key_run, num_steps)
        return jnp.mean(rewards) / batch_size

    return evaluate
