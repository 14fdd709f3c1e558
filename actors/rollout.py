"""The actor rollout: the shared trajectory rollout plus the sums of the episodes in progress.

``make_rollout`` returns pure functions; one compiled rollout produces a whole
``replay.types.Trajectory`` ``[T, B, A, ...]`` plus the totals of the episodes that finished
in it, so the host touches the data once per rollout. The scan and the acting step are
``replay.rollout``'s, shared with the learner's single-process loop.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import jax
import jax.numpy as jnp

from replay.rollout import FINAL_OBS, RolloutCarry, batched_env_step, make_trajectory_rollout
from replay.types import EpisodeTotals


class EpisodeRunning(NamedTuple):
    """Per-grid sums of the episode in progress (the rollout carry's ``extra``)."""

    reward: jax.Array  # [B, A]
    length: jax.Array  # [B]
    info: dict  # {key: [B]}


def scalar_info_keys(info: dict) -> tuple[str, ...]:
    """Info entries that are one number per grid (everything but the final observation)."""
    return tuple(sorted(k for k, v in info.items() if k != FINAL_OBS and jnp.ndim(v) == 1))


def make_rollout(env, env_params, policy, unroll_length: int) -> tuple[Callable, Callable]:
    """Build ``(init_carry(key, num_envs), rollout(params, norm_state, carry, key))``.

    ``policy`` is a ``replay.types.ActingPolicy``. ``rollout`` returns ``(carry, trajectory,
    episode_totals)``; jit it and place its inputs on the actor's device.
    """
    batched_reset = jax.vmap(env.reset, in_axes=(0, None))
    step_grids = batched_env_step(env, env_params)

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
        noise = policy.init_noise(jax.random.fold_in(key, 1), num_envs)
        return RolloutCarry(env_state, obs, episode, noise)

    def probe_info_keys(key, env_state, num_envs):
        spec = env.spec(env_params)
        action = jnp.zeros((num_envs, spec.num_agents, spec.action_dim), jnp.float32)
        return scalar_info_keys(jax.eval_shape(step_grids, key, env_state, action)[5])

    def count_episodes(running: EpisodeRunning, transition, info: dict):
        done = transition.terminated | transition.truncated
        running, finished = advance_episode(running, transition.reward, info, done)
        return running, transition, finished

    trajectory_rollout = make_trajectory_rollout(
        policy, env, env_params, unroll_length, on_step=count_episodes
    )

    def rollout(params, norm_state, carry: RolloutCarry, key: jax.Array):
        carry, trajectory, finished = trajectory_rollout(params, norm_state, carry, key)
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
