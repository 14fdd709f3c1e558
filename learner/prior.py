"""Action priors: the rule a policy's action refines (residual policy learning).

``learner.action_prior`` picks how the policy's sampled action ``a [B, A, U]`` becomes the
action the environment receives (PPO's log-probs, entropy and ratios stay those of ``a``; the
rule is a deterministic function of the state, i.e. part of the environment from PPO's view,
and part of the policy at decision time: evaluation applies it too):

* ``none``: ``a`` itself.
* ``merit_order``: ``clip(merit(state) + residual_scale * a, -1, 1)``, a residual on the
  copper-plate economic dispatch of the latest demand (``envs.opf.baselines.merit_order_controls``).
* ``step_opf``: the agents bid. Each unit's and battery's channel of ``a`` (summed over the
  agents that drive it, as the env does) is a price offset of up to ``bid_scale`` $/MWh on
  that device's offer, and the single-step DC-OPF of the latest state (``envs.opf.step_qp``)
  clears the offers within the units' ramp bands, the batteries' energy and every branch
  limit. ``a = 0`` is the myopic OPF; a battery that bids its energy up holds it for later, a
  unit that bids down runs more. Whatever the policy bids, the dispatch it gets respects the
  network: the OPF is the safety layer, and violations fall to what the single-step model
  cannot foresee (demand moving within the step, outages).

Why: with setpoints drawn around the middle of each unit's range, the 13 per-node ieee14 agents
exploring on their own never found even plain economic dispatch (benchmarks/README.md,
"Learning"), and a residual on setpoints added after the OPF undid its branch limits
(renewable intermittency: 0.9 % above the oracle for the OPF, 990 % with a residual).
"""

from collections.abc import Callable

import jax
import jax.numpy as jnp

ACTION_PRIORS = ("none", "merit_order", "step_opf")
# Interior-point iterations of the prior's QP, run on every env step: ieee14 is solved by 16 in
# float32, and a grid that is not falls back to the merit order, which is still a fair prior
# (the baselines' reference solve runs envs.opf.step_qp.MAX_ITER).
PRIOR_QP_ITERATIONS = 16

EnvAction = Callable[[jax.Array, object, object], jax.Array]


def identity_env_action(action, env_state, env_params):
    del env_state, env_params
    return action


def make_env_action(prior: str, residual_scale: float, bid_scale: float) -> EnvAction:
    """``env_action(action [B,A,U], env_state [B,...], env_params) -> [B,A,U]``.

    ``env_params`` must be concrete (not traced): the action slots are laid out from it once
    per trace.
    """
    if prior == "none":
        return identity_env_action
    if prior == "merit_order":
        return _merit_residual(residual_scale)
    if prior == "step_opf":
        return _opf_bids(bid_scale)
    raise ValueError(f"learner.action_prior must be one of {ACTION_PRIORS}, got {prior!r}")


def _merit_residual(residual_scale: float) -> EnvAction:
    from envs.opf import baselines

    def env_action(action, env_state, env_params):
        amap = baselines.action_map(env_params)
        shape = env_params.layout.ctrl_index.shape

        def one(state):
            controls = baselines.merit_order_controls(state, env_params)
            return baselines.controls_to_action(amap, controls, shape)

        base = jax.vmap(one)(env_state)
        mask = jnp.asarray(env_params.layout.action_mask)
        return jnp.where(mask, jnp.clip(base + residual_scale * action, -1.0, 1.0), 0.0)

    return env_action


def _opf_bids(bid_scale: float) -> EnvAction:
    from envs.opf import baselines
    from envs.sim.dispatch import decode_controls

    def env_action(action, env_state, env_params):
        amap = baselines.action_map(env_params)
        layout, grid = env_params.layout, env_params.grid
        n_storage = env_params.devices.storage_bus.shape[0]
        margin = baselines.MYOPIC_RATING_MARGIN

        def one(a, state):
            ctrl = decode_controls(a, layout, grid.n_gen, n_storage, grid.n_bus)
            offers = bid_scale * jnp.concatenate([ctrl.gen, ctrl.storage])
            controls = baselines.step_opf_controls(
                state, env_params, margin, offers, max_iter=PRIOR_QP_ITERATIONS
            )
            return baselines.controls_to_action(amap, controls, a.shape)

        return jax.vmap(one)(action, env_state)

    return env_action
