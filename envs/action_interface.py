"""What an agent's action means to the environment: ``env.action_interface``.

``GridEnv.step`` turns the agents' action ``a [A, U]`` in [-1, 1] into device setpoints with
``setpoints(a, state, params)`` before the step's physics, so every caller of the env (the
actors, the evaluator, the Gymnasium, PettingZoo and vector adapters) gets the same
semantics and none of them can forget a step of it:

* ``setpoints``: ``a`` itself, the device controls of ``envs.sim.dispatch`` (unit setpoints or
  ramps, renewable curtailment, battery power, demand response).
* ``merit_residual``: ``clip(merit(state) + residual_scale * a, -1, 1)``, a residual on the
  copper-plate economic dispatch of the latest demand (``envs.opf.controls``).
* ``bids``: each unit's and battery's channel of ``a`` (summed over the agents that drive it,
  as ``decode_controls`` sums setpoints) is a price offset of up to ``bid_scale`` $/MWh on
  that device's offer, and the single-step DC-OPF of the latest state (``envs.opf.step_qp``)
  clears the offers within the units' ramp bands, the batteries' energy and every branch
  rating less ``MYOPIC_RATING_MARGIN``. ``a = 0`` is the myopic OPF; a battery that bids its
  energy up holds it for later, a unit that bids down runs more. Whatever is bid, the
  dispatch respects the network: the OPF is the safety layer, and violations fall to what the
  single-step model cannot foresee (demand moving within the step, outages). With
  ``env.alarm_margin`` the margin widens on the step after a branch ran above its rating
  (``clearing_margin``). Strategic signals pass through unchanged.

Why bids: with setpoints drawn around the middle of each unit's range, the 13 per-node ieee14
agents exploring on their own never found even plain economic dispatch (benchmarks/README.md,
"Learning"), and a residual on setpoints added after the OPF undid its branch limits.

A non-finite entry of ``a`` stays in the setpoints it maps to, so the env holds the channels
it feeds and counts it (``info["nonfinite_actions"]``); the market clears the other bids.
"""

import jax
import jax.numpy as jnp

from envs.config import ACTION_INTERFACES
from envs.opf import controls as opf_controls
from envs.opf import storage_value
from envs.sim.dispatch import action_map, controls_to_action, decode_controls
from envs.types import EnvParams, EnvState

# Interior-point iterations of the clearing QP run in every env step: ieee14 converges in 16
# in float32, and a grid that does not gets the best point found, still inside every box
# (the evaluation's myopic OPF runs envs.opf.step_qp.MAX_ITER).
BID_QP_ITERATIONS = 16


def setpoints(action: jax.Array, state: EnvState, params: EnvParams) -> jax.Array:
    """The setpoint action ``[A, U]`` the env applies for ``action`` under
    ``params.consts.action_interface`` (one grid; vmap for a batch)."""
    interface = params.consts.action_interface
    if interface == "setpoints":
        return action
    if interface == "merit_residual":
        return _merit_residual(action, state, params)
    if interface == "bids":
        return _cleared_bids(action, state, params)
    raise ValueError(f"env.action_interface={interface!r}: allowed one of {ACTION_INTERFACES}")


def _action_map(params: EnvParams):
    n_storage = params.devices.storage_bus.shape[0]
    return action_map(params.layout, params.grid.n_gen, n_storage, params.grid.n_bus)


def _merit_residual(action, state, params):
    amap = _action_map(params)
    base = controls_to_action(amap, opf_controls.merit_order_controls(state, params), action.shape)
    residual = base + params.consts.residual_scale * action
    return jnp.where(params.layout.action_mask, jnp.clip(residual, -1.0, 1.0), 0.0)


def clearing_margin(state: EnvState, params: EnvParams):
    """The rating margin the bids clear within: ``MYOPIC_RATING_MARGIN``, plus
    ``env.alarm_margin`` on the step after an overload (``opf_controls.alarm_rating_margin``),
    whatever the offers say."""
    return opf_controls.alarm_rating_margin(
        state, params.consts.alarm_margin, opf_controls.MYOPIC_RATING_MARGIN
    )


def offer_scales(params: EnvParams) -> jax.Array:
    """[G + S] $/MWh a bid of 1 moves each unit's and battery's offer by."""
    consts, n_storage = params.consts, params.devices.storage_bus.shape[0]
    return jnp.concatenate(
        [
            jnp.full(params.grid.n_gen, consts.bid_scale),
            jnp.full(n_storage, consts.storage_bid_scale),
        ]
    )


def device_bids(action: jax.Array, params: EnvParams) -> jax.Array:
    """[G + S] the bid ``action`` places on each unit's and battery's offer, its channels summed
    over the agents that drive it (non-finite and unchosen slots bid zero)."""
    grid, n_storage = params.grid, params.devices.storage_bus.shape[0]
    chosen = params.layout.chosen_mask  # a slot no agent chooses bids zero
    bids = decode_controls(
        jnp.where(jnp.isfinite(action) & chosen, action, 0.0),
        params.layout,
        grid.n_gen,
        n_storage,
        grid.n_bus,
    )
    return jnp.concatenate([bids.gen, bids.storage])


def price_offsets(action: jax.Array, params: EnvParams) -> jax.Array:
    """[G + S] $/MWh: the price offset ``action`` bids on each unit's and battery's offer
    (``device_bids`` in dollars)."""
    return offer_scales(params) * device_bids(action, params)


def offer_prices(action: jax.Array, state: EnvState, params: EnvParams) -> jax.Array:
    """[G + S] $/MWh the clearing offers each unit and battery at, over its cost: the bids
    (``price_offsets``) on the base of ``env.storage_bid_base`` (``storage_value.bid_base``)."""
    return price_offsets(action, params) + storage_value.bid_base(state, params)


def _cleared_bids(action, state, params):
    amap = _action_map(params)
    finite = jnp.isfinite(action)
    controls = opf_controls.myopic_opf_controls(
        state,
        params,
        clearing_margin(state, params),
        offer_prices(action, state, params),
        max_iter=BID_QP_ITERATIONS,
    )
    cleared = controls_to_action(amap, controls, action.shape)
    cleared = jnp.where(amap.signal_slots, action, cleared)
    return jnp.where(finite, cleared, action)
