"""Scenario library: each scenario's defining property, reproducibility, config validation."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from envs.config import default_env_config
from envs.env import make_env
from envs.sim import scenarios

N = 32


@pytest.fixture(scope="module")
def env_params():
    config = default_env_config()
    config.scenario = "peak_demand"
    return make_env(config)


@pytest.fixture(scope="module")
def episodes(env_params):
    """N sampled episodes per scenario name."""
    _, params = env_params
    consts, grid = params.consts, params.grid
    dims = (grid.n_branch, grid.n_gen, 1.0 / consts.step_hours)

    @jax.jit
    def sample(keys, scenario):
        return jax.vmap(
            lambda k: scenarios.sample_episode(
                k, params.scenarios.ranges, scenario, params.scenarios, dims, consts.horizon
            )
        )(keys)

    keys = jax.random.split(jax.random.PRNGKey(0), N)
    return {
        name: jax.tree_util.tree_map(np.asarray, sample(keys, scenarios.scenario_id(name)))
        for name in scenarios.scenario_names()
    }


def _line_events(ep):
    return (ep.event_kind == 1).sum(axis=1)


def _gen_events(ep):
    return (ep.event_kind == 2).sum(axis=1)


def test_normal_has_at_most_a_maintenance_window(episodes):
    ep = episodes["normal"]
    assert (_gen_events(ep) == 0).all() and (_line_events(ep) <= 1).all()
    assert (_line_events(ep) == 1).any()  # some episodes carry a maintenance outage
    windows = ep.event_duration[ep.event_kind == 1]
    assert ((windows >= 24) & (windows <= 72)).all()  # 2-6 hours of 5-minute steps


def test_peak_demand_loads_harder_and_starts_in_the_afternoon(episodes):
    peak, normal = episodes["peak_demand"], episodes["normal"]
    assert peak.load_scale.min() > normal.load_scale.max()
    hour = np.mod(peak.start_step / 12.0, 24.0)
    assert ((hour >= 14.0) & (hour <= 17.0)).all()
    assert (np.floor(peak.start_step / (12 * 24)) < 5).all()  # weekdays


def test_equipment_failure_takes_out_one_to_three_branches(env_params, episodes):
    _, params = env_params
    ep = episodes["equipment_failure"]
    lines = _line_events(ep)
    assert (lines >= 1).all() and (lines <= 3).all() and (lines > 1).any()
    for i in range(N):
        one = jax.tree_util.tree_map(lambda x, i=i: x[i], ep)
        late = int(ep.event_time[i][ep.event_kind[i] > 0].max())
        branch_out, _ = scenarios.active_outages(one, late, params.grid.n_branch, params.grid.n_gen)
        assert int(branch_out.sum()) >= 1


def test_renewable_intermittency_scales_capacity_and_volatility(episodes):
    ep, normal = episodes["renewable_intermittency"], episodes["normal"]
    assert ep.renewable_scale.min() >= 1.5 and normal.renewable_scale.max() == 1.0
    assert ep.wind_volatility.min() >= 2.0 and ep.cloud_volatility.min() >= 2.0


def test_cascading_failure_trips_the_most_loaded_branch_early_on_a_stressed_grid(
    env_params, episodes
):
    _, params = env_params
    ep = episodes["cascading_failure"]
    critical = int(params.scenarios.critical_branches[0])
    assert (ep.event_kind[:, 0] == 1).all() and (ep.event_index[:, 0] == critical).all()
    assert (ep.event_time[:, 0] <= 12).all() and ep.load_scale.min() >= 1.2


def test_emergency_response_loses_a_large_unit(env_params, episodes):
    _, params = env_params
    ep = episodes["emergency_response"]
    large = set(np.asarray(params.scenarios.large_gens).tolist())
    gens = ep.event_index[ep.event_kind == 2]
    assert len(gens) == N and set(gens.tolist()) <= large
    slack_units = np.flatnonzero(np.asarray(params.grid.gen_bus) == params.grid.slack)
    assert not set(slack_units.tolist()) & large


def test_resets_follow_the_configured_scenario_and_peak_serves_more(env_params):
    env, params = env_params
    keys = jax.random.split(jax.random.PRNGKey(3), 8)
    reset = jax.jit(jax.vmap(env.reset_to_scenario, in_axes=(0, None, None)))
    _, peak = reset(keys, params, scenarios.scenario_id("peak_demand"))
    _, normal = reset(keys, params, scenarios.scenario_id("normal"))
    assert float(jnp.sum(peak.demand)) > float(jnp.sum(normal.demand))
    _, drawn = jax.jit(jax.vmap(env.reset, in_axes=(0, None)))(keys, params)
    np.testing.assert_array_equal(drawn.episode.scenario_id, scenarios.scenario_id("peak_demand"))


def test_eval_keys_are_fixed_and_distinct_per_scenario():
    a = scenarios.eval_keys("normal", 4)
    np.testing.assert_array_equal(a, scenarios.eval_keys("normal", 4))
    assert not np.array_equal(a, scenarios.eval_keys("peak_demand", 4))


@pytest.mark.parametrize(
    ("field", "value", "allowed"),
    [
        ("case", "ieee9999", "ieee14"),
        ("layout", "ring", "hierarchical"),
        ("scenario", "meteor", "cascading_failure"),
        ("physics", "quantum", "dc"),
    ],
)
def test_bad_config_names_the_allowed_values(field, value, allowed):
    config = default_env_config()
    config[field] = value
    with pytest.raises(ValueError, match=allowed):
        make_env(config)
