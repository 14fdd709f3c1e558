"""Action priors: a rule the policy's own action is a residual on (residual policy learning).

With ``learner.action_prior = "merit_order"`` the action sent to the environment is

    env_action = clip(prior(state) + residual_scale * action, -1, 1)

where ``prior`` is the copper-plate economic dispatch of the latest demand
(``envs.baselines.merit_order_controls``) written into the agents' action slots and ``action``
is what the policy samples (its log-probs, entropy and PPO ratios are those of ``action``; the
prior is a deterministic function of the state, i.e. part of the environment from PPO's view).
A zero residual therefore already dispatches by merit order, and the agents learn what the
merit order misses: congestion, storage, contingencies. Why: with setpoints drawn around the
middle of each unit's range, 13 per-node agents exploring on their own never found even plain
economic dispatch on ieee14 (benchmarks/README.md, "Learning").

The prior counts as part of the policy at decision time (evaluation applies it too); it reads
only what the operator knows before the step (the state's latest demand, availability,
outputs and ramp bands).
"""

from collections.abc import Callable

import jax
import jax.numpy as jnp

ACTION_PRIORS = ("none", "merit_order", "step_opf")

EnvAction = Callable[[jax.Array, object, object], jax.Array]


def identity_env_action(action, env_state, env_params):
    del env_state, env_params
    return action


def make_env_action(prior: str, residual_scale: float) -> EnvAction:
    """``env_action(action [B,A,U], env_state [B,...], env_params) -> [B,A,U]``.

    ``env_params`` must be concrete (not traced): the action slots are laid out from it once
    per trace.
    """
    if prior == "none":
        return identity_env_action
    if prior not in ACTION_PRIORS:
        raise ValueError(f"learner.action_prior must be one of {ACTION_PRIORS}, got {prior!r}")
    from envs import baselines

    def controls_of(state, env_params):
        if prior == "merit_order":
            return baselines.merit_order_controls(state, env_params)
        margin = baselines.MYOPIC_RATING_MARGIN
        return baselines.step_opf_controls(state, env_params, margin)

    def env_action(action, env_state, env_params):
        amap = baselines.action_map(env_params)
        shape = env_params.layout.ctrl_index.shape

        def one(state):
            return baselines.controls_to_action(amap, controls_of(state, env_params), shape)

        base = jax.vmap(one)(env_state)
        mask = jnp.asarray(env_params.layout.action_mask)
        return jnp.where(mask, jnp.clip(base + residual_scale * action, -1.0, 1.0), 0.0)

    return env_action
