"""The env with its reward measured against the teacher's on the same weather and outages.

Under the ``bids`` (or ``merit_residual``) action interface a zero action is the teacher: the
single-step OPF's dispatch (or the merit order's). ``TeacherRelativeEnv`` steps a second copy
of each grid with the zero action, on the same keys, so both copies see the same demand,
weather and outage draws, and rewards the policy with the difference of the two rewards.

Why: demand and weather swing the cost of a step far more than a bid does, so a return
carries mostly noise about what the agents did. The teacher's reward on common random
numbers does not depend on the policy's actions, so subtracting it is an input-dependent
baseline (Mao et al., "Variance Reduction for Reinforcement Learning in Input-Driven
Environments", ICLR 2019): the policy gradient keeps its expectation and loses most of the
exogenous variance, and the critic learns the advantage over the teacher, which is near zero
where the policy is the teacher.

Episodes stay aligned: when the policy's episode ends, the teacher's copy restarts from the
policy's reset state (the env's auto-reset draws it from the same key). If the teacher's copy
ends first (a blackout the policy avoided), it contributes no reward until then. Each step's
``info`` carries the teacher's cost (``teacher_cost``) beside the policy's (``cost``), so a
run's episode sums show the cost ratio as training goes.

This costs a second env step (a second clearing QP under bids) per actor step; both copies
step as one batch of two, so it compiles once. It is for training: evaluation steps the plain
env.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

TEACHER_INTERFACES = ("bids", "merit_residual")


class TeacherPair(NamedTuple):
    """The state of one grid under the policy, and of its copy under the teacher."""

    policy: Any  # EnvState
    teacher: Any  # EnvState
    teacher_live: jax.Array  # [] bool: the teacher's copy is still in the policy's episode


class TeacherRelativeEnv:
    """``env`` with reward = policy reward - teacher (zero action) reward, per agent.

    Same API as ``GridEnv`` for the rollouts (``spec``, ``reset``, ``step``); its state is a
    ``TeacherPair``. ``env.step`` must auto-reset a finished episode, as ``GridEnv.step`` does.
    """

    def __init__(self, env, params):
        interface = params.consts.action_interface
        if interface not in TEACHER_INTERFACES:
            raise ValueError(
                f"learner.reward_baseline='teacher' needs env.action_interface in "
                f"{TEACHER_INTERFACES} (a zero action is then the teacher); got {interface!r}"
            )
        self.env = env

    def spec(self, params):
        return self.env.spec(params)

    def bootstraps_time_limit(self, params) -> bool:
        return self.env.bootstraps_time_limit(params)

    def observe(self, state: TeacherPair, params):
        return self.env.observe(state.policy, params)

    def reset(self, key: jax.Array, params):
        obs, state = self.env.reset(key, params)
        return obs, TeacherPair(state, state, jnp.asarray(True))

    def step(self, key: jax.Array, state: TeacherPair, action, params):
        # Both copies step as one batch of two, so the env step (and its clearing QP) is
        # traced and compiled once, not once per copy; each gets the same key.
        both = jax.tree.map(lambda p, t: jnp.stack([p, t]), state.policy, state.teacher)
        actions = jnp.stack([action, jnp.zeros_like(action)])
        keys = jnp.stack([key, key])
        stepped = jax.vmap(self.env.step, in_axes=(0, 0, 0, None))(keys, both, actions, params)
        policy_out = jax.tree.map(lambda x: x[0], stepped)
        teacher_out = jax.tree.map(lambda x: x[1], stepped)
        obs, policy, reward, terminated, truncated, info = policy_out
        _, teacher, teacher_reward, t_terminated, t_truncated, t_info = teacher_out
        live = state.teacher_live
        baseline = jnp.where(live, teacher_reward, 0.0)
        done = terminated | truncated
        restart = lambda a, b: jnp.where(done, a, b)  # noqa: E731
        next_pair = TeacherPair(
            policy=policy,
            teacher=jax.tree.map(restart, policy, teacher),
            teacher_live=done | (live & ~(t_terminated | t_truncated)),
        )
        info = dict(info)
        info["teacher_cost"] = jnp.where(live, t_info["cost"], 0.0)
        info["teacher_live"] = live.astype(jnp.float32)
        return obs, next_pair, reward - baseline, terminated, truncated, info
