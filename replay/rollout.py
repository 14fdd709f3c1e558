"""The one rollout: ``lax.scan`` over T steps of a batched acting step, in one compiled call.

Everything that steps a batch of grids for T steps builds on ``rollout`` and
``batched_env_step``: the actors (``actors/rollout.py``), the single-process loop
(``learner/train_loop.py``) and ``benchmarks/env_throughput.py``. ``make_acting_step`` is a
policy's acting step (sample, step the grids, record the transition with its bootstrap
value) and ``make_trajectory_rollout`` its T-step rollout, so the bootstrap rules live in one
place. They live in ``replay``, beside the ``Trajectory`` they produce, because actors and
learner both import ``replay`` and never each other.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from replay.types import ActingPolicy, Trajectory

FINAL_OBS = "final_obs"  # the env's info entry: the observation an auto-reset episode ended on
SCENARIO = "scenario_id"  # the env's info entry: the scenario of the step's episode


def batched_env_step(env, env_params) -> Callable:
    """``step(key, env_state [B], action [B, ...])``: ``env.step`` on every grid of a batch.

    Each grid gets its own key, split from ``key``; returns ``env.step``'s outputs batched.
    """
    step = jax.vmap(env.step, in_axes=(0, 0, 0, None))

    def step_grids(key: jax.Array, env_state: Any, action: jax.Array):
        return step(jax.random.split(key, action.shape[0]), env_state, action, env_params)

    return step_grids


def rollout(step: Callable, carry: Any, key: jax.Array, length: int) -> tuple[Any, Any]:
    """``lax.scan`` of ``step(carry, key) -> (carry, output)`` over ``length`` keys split from
    ``key``: ``(final carry, outputs stacked along a leading T axis)``."""
    return jax.lax.scan(step, carry, jax.random.split(key, length))


def make_acting_step(policy: ActingPolicy, env, env_params) -> Callable:
    """``acting_step(params, norm_state, obs, env_state, key, noise=None) -> (transition,
    next_obs, next_env_state, info)`` for one step of a batch of grids.

    The environment receives the sampled action and applies its own action interface (bids
    are cleared inside ``env.step``); the transition records the sampled action, whose
    log-prob PPO uses. ``noise`` is the step's exploration noise where the rollout carries it
    (time-correlated exploration); None draws it from ``key``.

    The env's ``info`` carries ``scenario_id``, the scenario of the episode each step belongs
    to (before any auto-reset), which the transition records.

    ``truncation_value`` is ``V(info["final_obs"])`` where an episode was cut by its time
    limit (and not terminated), else 0; the value network runs on the final observations
    only when some grid in the batch needs it. An env whose ``bootstraps_time_limit(params)``
    is False ends its episodes at the time limit (it credits what is left in its last reward):
    nothing is bootstrapped there. ``last_value`` is a placeholder that the
    caller replaces with ``V`` of the observation after the last step.
    """
    step_grids = batched_env_step(env, env_params)
    bootstraps = getattr(env, "bootstraps_time_limit", lambda params: True)(env_params)

    def acting_step(params, norm_state, obs, env_state: Any, key: jax.Array, noise=None):
        key_act, key_env = jax.random.split(key)
        if noise is None:  # a policy without carried noise need not take the argument
            action, log_prob, value = policy.act(params, norm_state, obs, key_act)
        else:
            action, log_prob, value = policy.act(params, norm_state, obs, key_act, noise=noise)
        next_obs, env_state, reward, terminated, truncated, info = step_grids(
            key_env, env_state, action
        )
        bootstrap = truncated & ~terminated & bootstraps
        final_value = jax.lax.cond(
            jnp.any(bootstrap),
            lambda: policy.value(params, norm_state, info[FINAL_OBS]),
            lambda: jnp.zeros_like(value),
        )
        transition = Trajectory(
            obs=obs.agent_obs,
            global_state=obs.global_state,
            action=action,
            log_prob=log_prob,
            value=value,
            reward=reward,
            terminated=terminated,
            truncated=truncated,
            truncation_value=jnp.where(bootstrap[:, None], final_value, 0.0),
            scenario=jnp.asarray(info[SCENARIO], jnp.int32),
            last_value=value,
        )
        return transition, next_obs, env_state, info

    return acting_step


class RolloutCarry(NamedTuple):
    """What one rollout hands the next."""

    env_state: Any  # batched env state [B, ...]
    obs: Any  # batched Observation: agent_obs [B, A, O], global_state [B, S]
    extra: Any = None  # what the caller's ``on_step`` keeps between steps (None: nothing)
    # The exploration noise [B, A, U] carried between steps (``policy.init_noise``); None: the
    # policy draws fresh noise every step.
    noise: Any = None


def keep_transition(extra, transition: Trajectory, info: dict):
    """The default ``on_step``: the transition as recorded, nothing kept, nothing emitted."""
    del info
    return extra, transition, None


def make_trajectory_rollout(
    policy: ActingPolicy, env, env_params, unroll_length: int, on_step: Callable | None = None
) -> Callable:
    """``rollout(params, norm_state, carry, key) -> (carry, trajectory, outputs)``; jit it.

    ``trajectory`` is a ``Trajectory`` ``[T, B, A, ...]`` whose ``last_value`` is ``V`` of the
    observation after the last step. ``on_step(extra, transition, info) -> (extra,
    transition, output)`` runs after every step: it may rewrite the transition, keep sums in
    ``carry.extra`` and emit per-step ``outputs`` (stacked ``[T, ...]``).
    """
    acting_step = make_acting_step(policy, env, env_params)
    on_step = on_step or keep_transition

    def one_step(params, norm_state, carry: RolloutCarry, key: jax.Array):
        noise = carry.noise
        if noise is not None:
            key, key_noise = jax.random.split(key)
            noise = policy.next_noise(key_noise, noise)
        transition, obs, env_state, info = acting_step(
            params, norm_state, carry.obs, carry.env_state, key, noise
        )
        extra, transition, output = on_step(carry.extra, transition, info)
        return RolloutCarry(env_state, obs, extra, noise), (transition, output)

    def trajectory_rollout(params, norm_state, carry: RolloutCarry, key: jax.Array):
        carry, (steps, outputs) = rollout(
            lambda c, k: one_step(params, norm_state, c, k), carry, key, unroll_length
        )
        trajectory = steps._replace(last_value=policy.value(params, norm_state, carry.obs))
        return carry, trajectory, outputs

    return trajectory_rollout
