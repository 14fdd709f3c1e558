"""What stored energy is worth to a causal operator: the price its forecast expects ahead.

The single-step OPF gives stored energy no value, so it empties the batteries at the first
step whose price is above zero and has nothing left when a unit trips or the evening peak
comes. The look-ahead OPF values the energy left at its horizon's end at the price its
forecast expects there (``lookahead_qp.end_of_horizon_price``: the copper-plate system lambda
of the forecast net load in its last period, 2 h ahead, met by the units online now). Offered
at that price in the single-step OPF, a battery discharges when this step's price is above the one
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

The day ends at the episode's horizon, and the evaluation credits the energy left then at
``stored_energy_value``, not at the price the forecast expects in the next day's night. Where
the step the forecast's price is taken at lies past the day's end, ``day_end_offers`` offers
the energy at that value instead (``env.storage_bid_base="forecast_to_day_end"``): in the
day's last two hours a battery discharges wherever the price is above it, and the day does not
end with energy bought for a morning the day never reaches.
"""

import jax
import jax.numpy as jnp
import numpy as np

from envs.opf import lookahead_qp
from envs.opf.merit_order import marginal_cost_coefficients
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


def day_end_offers(state: EnvState, params: EnvParams, end_value: float) -> jax.Array:
    """[G + S] $/MWh: ``valued_offers`` while the step the forecast's price is taken at lies
    within the day; past the day's end (``params.consts.horizon``), every battery's energy at
    ``end_value``, what the day's end pays for it (``stored_energy_value``, the evaluation's
    price). The module doc's price belongs to the next day's night there, and energy held for
    it is credited at the end value only."""
    past_the_end = state.t + lookahead_qp.priced_step_ahead() >= params.consts.horizon
    return storage_offers(params, jnp.where(past_the_end, end_value, forecast_price(state, params)))


def bid_base(state: EnvState, params: EnvParams) -> jax.Array:
    """[G + S] $/MWh the bids are added to under ``params.consts.storage_bid_base``."""
    base = params.consts.storage_bid_base
    if base == "forecast_price":
        return valued_offers(state, params)
    if base == "forecast_band":
        return banded_offers(state, params)
    if base == "forecast_to_day_end":
        return day_end_offers(state, params, params.consts.end_energy_value)
    return storage_offers(params, 0.0)


def stored_energy_value(params: EnvParams) -> float:
    """$/MWh at which the evaluation values energy in the batteries (what each method holds at
    the end of an episode against what it started with).

    Energy drawn from a battery is not free: it has to be put back before it is used again,
    and energy left in one displaces generation after the episode. Its worth is at least what
    the cheapest conventional unit's least marginal cost (at its minimum output) would make of
    it after the discharge losses: a floor, so that holding energy is never over-credited.
    """
    devices = params.devices
    c2, c1 = (np.asarray(c, np.float64) for c in marginal_cost_coefficients(params.grid))
    conventional = ~np.asarray(devices.is_renewable, bool)
    if devices.storage_bus.shape[0] == 0 or not conventional.any():
        return 0.0
    marginal = c1 + 2.0 * c2 * np.asarray(devices.pmin, np.float64)
    return float(np.min(marginal[conventional]) * params.consts.storage_efficiency)
