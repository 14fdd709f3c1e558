"""The look-ahead's value for stored energy: the end-of-horizon price and what it does."""

import jax
import jax.numpy as jnp
import numpy as np

from envs.config import default_env_config
from envs.env import make_env, reset_to_scenario
from envs.opf import lookahead_qp
from envs.opf.merit_order import marginal_cost_coefficients
from envs.sim import scenarios


def _state_and_params():
    params = make_env(default_env_config())[1]
    key = scenarios.eval_keys("normal", 1, seed=3)[0]
    return reset_to_scenario(key, params, scenarios.scenario_id("normal"))[1], params


def test_the_end_price_is_the_marginal_cost_of_the_forecast_net_load_or_voll_when_short():
    state, params = _state_and_params()
    forecast = lookahead_qp.operator_forecast(state, params)
    price = float(lookahead_qp.end_of_horizon_price(state, params, forecast))
    c2, c1 = (np.asarray(x) for x in marginal_cost_coefficients(params.grid))
    online = (np.asarray(state.available) > 0) & ~np.asarray(params.devices.is_renewable)
    pmax = np.asarray(params.devices.pmax)
    # between the cheapest unit's marginal cost at no output and the dearest's at Pmax
    assert c1[online].min() <= price <= (c1 + 2 * c2 * pmax)[online].max()
    short = forecast._replace(demand=forecast.demand * 100.0)
    assert float(lookahead_qp.end_of_horizon_price(state, params, short)) == params.consts.voll


def test_a_valued_horizon_keeps_a_full_battery_that_the_plain_one_empties():
    state, params = _state_and_params()
    full = state.replace(soc=params.devices.storage_emax)
    forecast = lookahead_qp.operator_forecast(full, params)

    plain, valued = jax.jit(
        lambda: [
            lookahead_qp.solve_lookahead(full, params, forecast, value_stored_energy=v)
            for v in (False, True)
        ]
    )()
    assert bool(plain.converged) and bool(valued.converged)
    # Zero value: the batteries discharge at once (free energy); valued at the end price, a
    # normal night's price below it keeps them from discharging.
    assert float(jnp.sum(plain.storage)) > 1.0
    assert float(jnp.sum(valued.storage)) < float(jnp.sum(plain.storage)) - 1.0
