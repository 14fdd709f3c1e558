"""Hierarchical layout in the running env: held strategic signals, regional safety overrides."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from envs.config import default_env_config
from envs.env import make_env

PERIOD = 3


@pytest.fixture(scope="module")
def setup():
    config = default_env_config()
    config.layout = "hierarchical"
    config.strategic_period = PERIOD
    config.scenario = "normal"
    env, params = make_env(config)
    return env, params, env.spec(params), jax.jit(env.reset), jax.jit(env.step)


def test_spec_carries_the_per_type_horizons(setup):
    _, _, spec, _, _ = setup
    assert spec.agent_type_names == ("strategic", "operational", "safety")
    assert spec.agent_type_gamma == (0.99, 0.9, 0.0)
    assert spec.agent_type_lambda[2] == 0.0
    np.testing.assert_array_equal(spec.agent_type, [0, 1, 1, 2])


def test_strategic_signals_change_only_every_period(setup):
    _, params, spec, reset, step = setup
    _, state = reset(jax.random.PRNGKey(0), params)
    seen = []
    for i in range(2 * PERIOD):
        action = jnp.zeros((spec.num_agents, spec.action_dim))
        action = action.at[0, : params.layout.n_signals].set(0.1 * (i + 1))  # strategic dims
        decided_at = int(state.t)
        _, state, *_ = step(jax.random.PRNGKey(10 + i), state, action, params)
        seen.append((decided_at, float(state.signals[0])))
    for decided_at, signal in seen:
        held = 0.1 * (decided_at - decided_at % PERIOD + 1)
        assert signal == pytest.approx(held, abs=1e-6)


def test_safety_override_sheds_load_only_in_its_region(setup):
    _, params, spec, reset, step = setup
    _, state = reset(jax.random.PRNGKey(1), params)
    safety = spec.num_agents - 1
    action = jnp.zeros((spec.num_agents, spec.action_dim)).at[safety, 0].set(1.0)  # region 0 shed
    _, state, _, _, _, info = step(jax.random.PRNGKey(2), state, action, params)
    region = np.asarray(params.layout.region_of_bus)
    loads = np.asarray(params.grid.bus_pd) > 0
    shed_fraction = np.asarray(state.shed) / np.maximum(np.asarray(state.demand), 1e-6)
    np.testing.assert_allclose(shed_fraction[loads & (region == 0)], config_shed_max(params))
    assert (shed_fraction[region != 0] == 0.0).all()
    assert float(info["shed_mwh"]) > 0.0


def config_shed_max(params):
    return float(np.asarray(params.devices.shed_max).max())
