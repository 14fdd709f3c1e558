"""What stored energy is worth to a causal operator: the price its forecast expects ahead.

The single-step OPF gives stored energy no value, so it empties the batteries at the first
step whose price is above zero and has nothing left when a unit trips or the evening peak
comes. The look-ahead OPF values the energy left at its horizon's end at the price its
forecast expects there (``lookahead_qp.end_of_horizon_price``: the copper-plate system lambda
of the forecast net load 2 h 40 min ahead, met by the units online now). Offered at that
price in the single-step OPF, a battery discharges when this step's price is above the one
expected ahead and charges below it: the look-ahead's terminal value at the cost of the
single-step QP, with no multi-period solve. ``myopic_opf_valued`` (``envs.opf.baselines``)
is the myopic OPF with these offers; ``env.storage_bid_base="forecast_price"`` adds the
batteries' bids to them (``envs.action_interface``).

One price for both directions cycles a battery whenever this step's price wobbles around the
forecast's, and each cycle loses ``1 - eta^2`` of the energy (benchmarks/README.md, "A
round-trip band on the forecast's price"). Per MWh delivered at the horizon, stored energy is worth the forecast's price
when discharged now and ``eta^2`` times it when charged now (``lookahead_qp``'s end value), so
a battery should discharge above that price, charge below ``eta^2`` times it, and idle in
between. The clearing gives a battery one linear offer, so ``banded_offers`` offers the
present price clipped to that band (``present_price``, the copper-plate price of what is
measured now): outside the band the battery meets the band's edge, inside it the battery is
offered at about the price it would set, and stays near idle
(``env.storage_bid_base="forecast_band"``).
"""

import jax
import jax.numpy as jnp

from envs.opf import lookahead_qp
from envs.types import EnvParams, EnvState


def forecast_price(state: EnvState, params: EnvParams) -> jax.Array:
    """$/MWh (scalar): the price the operator's forecast expects at the look-ahead's horizon."""
    forecast = lookahead_qp.operator_forecast(state, params)
    return lookahead_qp.end_of_horizon_price(state, params, forecast)


def storage_offers(params: EnvParams, price: jax.Array) -> jax.Array:
    """[G + S] $/MWh: the units at cost (0), every battery's energy at ``price``."""
    n_gen, n_storage = params.grid.n_gen, params.devices.storage_bus.shape[0]
    return jnp.concatenate([jnp.zeros(n_gen), jnp.full(n_storage, price)])


def valued_offers(state: EnvState, params: EnvParams) -> jax.Array:
    """[G + S] $/MWh: every battery's energy at ``forecast_price``."""
    return storage_offers(params, forecast_price(state, params))


def present_price(state: EnvState, params: EnvParams) -> jax.Array:
    """$/MWh (scalar): the copper-plate price of the demand and availability measured now, met
    by the units online now (``end_of_horizon_price`` of a one-period persistence forecast)."""
    present = lookahead_qp.persistence_forecast(state, 1)
    return lookahead_qp.end_of_horizon_price(state, params, present)


def banded_offers(state: EnvState, params: EnvParams) -> jax.Array:
    """[G + S] $/MWh: every battery's energy at ``present_price``
    clipped to ``[eta^2, 1] x forecast_price`` (the module doc's band)."""
    ahead = forecast_price(state, params)
    eta = params.consts.storage_efficiency
    return storage_offers(params, jnp.clip(present_price(state, params), eta * eta * ahead, ahead))


def bid_base(state: EnvState, params: EnvParams) -> jax.Array:
    """[G + S] $/MWh the bids are added to under ``params.consts.storage_bid_base``."""
    if params.consts.storage_bid_base == "forecast_price":
        return valued_offers(state, params)
    if params.consts.storage_bid_base == "forecast_band":
        return banded_offers(state, params)
    return storage_offers(params, 0.0)
