"""The jitted actor rollout: ``lax.scan`` over T steps of ``vmap(env.step)`` and ``Policy.act``.

``make_rollout`` returns pure functions; one compiled rollout produces a whole
``learner.types.Trajectory`` ``[T, B, A, ...]`` plus episode statistics, so the host touches
the data once per rollout.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from actors.types import EpisodeTotals
from learner.acting import FINAL_OBS, act_and_step


class EpisodeRunning(NamedTuple):
    """Per-grid sums of the episode in progress."""

    reward: jax.Array  # [B, A]
    length: jax.Array  # [B]
    info: dict  # {key: [B]}


class RolloutCarry(NamedTuple):
    env_state: Any  # batched env state [B, ...]
    obs: Any  # batched Observation: agent_obs [B, A, O], global_state [B, S]
    episode: EpisodeRunning


def scalar_info_keys(info: dict) -> tuple[str, ...]:
    """Info entries that are one number per grid (everything but the final observation)."""
    return tuple(sorted(k for k, v in info.items() if k != FINAL_OBS and jnp.ndim(v) == 1))


def make_rollout(env, env_params, policy, unroll_length: int) -> tuple[Callable, Callable]:
    """Build ``(init_carry(key, num_envs), rollout(params, norm_state, carry, key))``.

    ``rollout`` returns ``(carry, trajectory, episode_totals)``; jit it and place its inputs
    on the actor's device.
    """
    batched_reset = jax.vmap(env.reset, in_axes=(0, None))
    batched_step = jax.vmap(env.step, in_axes=(0, 0, 0, None))

    def init_carry(key: jax.Array, num_envs: int) -> RolloutCarry:
        key_reset, key_probe = jax.random.split(key)
        obs, env_state = batched_reset(jax.random.split(key_reset, num_envs), env_params)
        info_keys = probe_info_keys(key_probe, env_state, num_envs)
        zeros = jnp.zeros((num_envs,), jnp.float32)
        episode = EpisodeRunning(
            reward=jnp.zeros(obs.agent_obs.shape[:2], jnp.float32),
            length=zeros,
            info={k: zeros for k in info_keys},
        )
        return RolloutCarry(env_state, obs, episode)

    def probe_info_keys(key, env_state, num_envs):
        action = jnp.zeros((num_envs, *policy_action_shape()), jnp.float32)
        shapes = jax.eval_shape(
            batched_step, jax.random.split(key, num_envs), env_state, action, env_params
        )
        return scalar_info_keys(shapes[5])

    def policy_action_shape():
        spec = env.spec(env_params)
        return (spec.num_agents, spec.action_dim)

    def step(params, norm_state, carry: RolloutCarry, key: jax.Array):
        transition, obs, env_state, info = act_and_step(
            policy, batched_step, env_params, params, norm_state, carry.obs, carry.env_state, key
        )
        done = transition.terminated | transition.truncated
        episode, finished = advance_episode(carry.episode, transition.reward, info, done)
        return RolloutCarry(env_state, obs, episode), (transition, finished)

    def rollout(params, norm_state, carry: RolloutCarry, key: jax.Array):
        keys = jax.random.split(key, unroll_length)
        carry, (steps, finished) = jax.lax.scan(
            lambda c, k: step(params, norm_state, c, k), carry, keys
        )
        last_value = policy.value(params, norm_state, carry.obs)
        trajectory = steps._replace(last_value=last_value)
        totals = jax.tree.map(lambda x: jnp.sum(x, axis=0), finished)
        return carry, trajectory, totals

    return init_carry, rollout


def advance_episode(
    running: EpisodeRunning, reward: jax.Array, info: dict, done: jax.Array
) -> tuple[EpisodeRunning, EpisodeTotals]:
    """Add one step to the running sums; emit the totals of episodes that ended (done [B])."""
    total = EpisodeRunning(
        reward=running.reward + reward,
        length=running.length + 1.0,
        info={k: running.info[k] + info[k].astype(jnp.float32) for k in running.info},
    )
    done_f = done.astype(jnp.float32)
    finished = EpisodeTotals(
        finished=jnp.sum(done.astype(jnp.int32)),
        return_sum=jnp.sum(total.reward * done_f[:, None], axis=0),
        length_sum=jnp.sum(total.length * done_f),
        info_sums={k: jnp.sum(v * done_f) for k, v in total.info.items()},
    )
    keep = 1.0 - done_f
    running = EpisodeRunning(
        reward=total.reward * keep[:, None],
        length=total.length * keep,
        info={k: v * keep for k, v in total.info.items()},
    )
    return running, finished
