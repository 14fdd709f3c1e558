"""Action priors: what the environment receives for the policy's action."""

from functools import partial

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from envs.config import default_env_config
from envs.env import make_env
from envs.opf import baselines
from learner.prior import PRIOR_QP_ITERATIONS, make_env_action


@pytest.fixture(scope="module")
def batch():
    env, params = make_env(default_env_config())
    obs, state = jax.vmap(env.reset, in_axes=(0, None))(
        jax.random.split(jax.random.key(3), 3), params
    )
    spec = env.spec(params)
    return params, obs, state, (3, spec.num_agents, spec.action_dim)


def test_no_prior_passes_the_action_through(batch):
    params, _, state, shape = batch
    action = jax.random.uniform(jax.random.key(0), shape, minval=-1.0, maxval=1.0)
    np.testing.assert_array_equal(make_env_action("none", 2.0, 50.0)(action, state, params), action)


@pytest.mark.parametrize(
    ("prior", "baseline"),
    [
        ("merit_order", baselines.merit_order),
        ("step_opf", partial(baselines.step_opf_baseline, max_iter=PRIOR_QP_ITERATIONS)),
    ],
)
def test_a_zero_action_is_the_prior_baseline(batch, prior, baseline):
    params, obs, state, shape = batch
    env_action = make_env_action(prior, 2.0, 50.0)
    got = jax.jit(lambda s: env_action(jnp.zeros(shape), s, params))(state)
    want = baseline(params)(obs, state, None, None)
    np.testing.assert_allclose(got, want, atol=1e-5)


def test_a_battery_bidding_its_energy_up_holds_it(batch):
    """Zero bids discharge the batteries (the one-step view sees no later use for the energy);
    a high offer on a battery's energy keeps it from discharging."""
    params, _, state, shape = batch
    amap = baselines.action_map(params)
    n_gen = params.grid.n_gen
    bid = jnp.zeros(shape)
    for s in range(params.devices.storage_bus.shape[0]):
        bid = bid.at[:, amap.agent[n_gen + s], amap.dim[n_gen + s]].set(1.0)
    prior = make_env_action("step_opf", 2.0, 200.0)
    env_action = jax.jit(lambda a, s: prior(a, s, params))
    storage_of = lambda a: a[:, amap.agent[n_gen : n_gen + 2], amap.dim[n_gen : n_gen + 2]]  # noqa: E731
    greedy = storage_of(env_action(jnp.zeros(shape), state))
    held = storage_of(env_action(bid, state))
    assert np.all(np.asarray(greedy) > 0.05)
    assert np.all(np.asarray(held) <= 1e-3)


def test_an_unknown_prior_is_refused():
    with pytest.raises(ValueError, match="action_prior"):
        make_env_action("oracle", 2.0, 50.0)
