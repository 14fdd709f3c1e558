"""One acting step shared by every rollout: policy, batched env step, transition record.

Both the distributed actors (``actors/rollout.py``) and the single-process loop
(``learner/train_loop.py``) scan this step, so the bootstrap rules live in one place.
"""

from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp

from learner.types import Trajectory

FINAL_OBS = "final_obs"


def act_and_step(
    policy, batched_step: Callable, env_params, params, norm_state, obs, env_state: Any, key
) -> tuple[Trajectory, Any, Any, dict]:
    """``(transition, next_obs, next_env_state, info)`` for one step of a batch of grids.

    The environment receives ``policy.env_action`` of the sampled action (its action prior);
    the transition records the sampled action, whose log-prob PPO uses.

    ``truncation_value`` is ``V(info["final_obs"])`` where an episode was cut by its time
    limit (and not terminated), else 0; the value network runs on the final observations
    only when some grid in the batch needs it. ``last_value`` is a placeholder that the
    caller replaces with ``V`` of the observation after the last step.
    """
    key_act, key_env = jax.random.split(key)
    action, log_prob, value = policy.act(params, norm_state, obs, key_act)
    env_keys = jax.random.split(key_env, action.shape[0])
    next_obs, env_state, reward, terminated, truncated, info = batched_step(
        env_keys, env_state, policy.env_action(action, env_state, env_params), env_params
    )
    bootstrap = truncated & ~terminated
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
        last_value=value,
    )
    return transition, next_obs, env_state, info
