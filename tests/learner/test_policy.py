"""Policy: shapes under every network option, masking, and squashed-Gaussian maths."""

import math

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from envs.types import Observation
from learner.policy import (
    correlated_noise,
    log_one_minus_tanh_squared,
    make_policy,
    squashed_gaussian_entropy,
    squashed_gaussian_log_prob,
)
from tests.learner.fixtures import random_observation, small_config, tiny_spec

OPTIONS = [
    ("shared", "mappo"),
    ("shared", "ippo"),
    ("independent", "mappo"),
    ("independent", "ippo"),
]


@pytest.mark.parametrize(("sharing", "critic"), OPTIONS)
def test_act_value_mode_shapes_and_bounds(sharing, critic):
    spec = tiny_spec()
    policy = make_policy(small_config(parameter_sharing=sharing, critic=critic), spec)
    params = policy.init(jax.random.key(0))
    norm_state = policy.init_norm_state()
    obs = random_observation(jax.random.key(1), spec, batch=4)

    @jax.jit
    def everything(params, norm_state, obs, key):  # one compile per option
        return (
            policy.act(params, norm_state, obs, key),
            policy.mode(params, norm_state, obs),
            policy.value(params, norm_state, obs),
        )

    (action, log_prob, value), mode, value_only = everything(
        params, norm_state, obs, jax.random.key(2)
    )
    chex.assert_shape([action, mode], (4, 3, 2))
    chex.assert_shape([log_prob, value], (4, 3))
    chex.assert_tree_all_finite((action, log_prob, value, mode))
    assert float(jnp.max(jnp.abs(action))) <= 1.0
    assert float(jnp.max(jnp.abs(mode))) <= 1.0
    np.testing.assert_allclose(value_only, value, atol=1e-5)


def test_correlated_noise_keeps_a_standard_normal_and_the_asked_correlation():
    # 4,000 chains from a standard normal, one step each: the result is still N(0, 1) and
    # correlates with where it came from by c; at c = 0 it forgets it.
    previous = jax.random.normal(jax.random.key(0), (4000,))
    for c in (0.0, 0.9):
        after = np.asarray(correlated_noise(jax.random.key(1), previous, c))
        assert abs(np.mean(after)) < 0.06 and abs(np.std(after) - 1.0) < 0.04
        assert abs(np.corrcoef(previous, after)[0, 1] - c) < 0.05


def test_act_with_given_noise_is_act_with_that_draw():
    spec = tiny_spec()
    policy = make_policy(small_config(), spec)
    params, norm_state = policy.init(jax.random.key(0)), policy.init_norm_state()
    obs = random_observation(jax.random.key(1), spec, batch=4)
    key = jax.random.key(2)
    drawn = jax.random.normal(key, (4 * spec.num_agents * 2,)).reshape(4, spec.num_agents, 2)
    for got, want in zip(
        policy.act(params, norm_state, obs, jax.random.key(9), noise=drawn),
        policy.act(params, norm_state, obs, key),
        strict=True,
    ):
        np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-6)
    assert policy.init_noise(key, 4) is None  # independent draws carry nothing
    correlated = make_policy(small_config(exploration_noise_correlation=0.9), spec)
    chex.assert_shape(correlated.init_noise(key, 4), (4, spec.num_agents, 2))
    with pytest.raises(ValueError, match=r"exploration_noise_correlation=1\.0 is invalid"):
        make_policy(small_config(exploration_noise_correlation=1.0), spec)


@pytest.mark.parametrize(("sharing", "critic"), [OPTIONS[0], OPTIONS[3]])
def test_a_batch_is_its_grids_evaluated_one_by_one(sharing, critic):
    # The networks run per-agent layers on [grids x agents, features] rows and pick each
    # agent's head columns by a selection matmul: no grid may see another grid's rows.
    spec = tiny_spec()
    policy = make_policy(small_config(parameter_sharing=sharing, critic=critic), spec)
    params = policy.init(jax.random.key(0))
    norm_state = policy.init_norm_state()
    obs = random_observation(jax.random.key(1), spec, batch=3)
    action = jnp.tanh(jax.random.normal(jax.random.key(2), (3, spec.num_agents, 2)))
    evaluate = jax.jit(policy.evaluate)
    batched = evaluate(params, norm_state, obs, action)
    for grid in range(3):
        one = Observation(obs.agent_obs[grid : grid + 1], obs.global_state[grid : grid + 1])
        single = evaluate(params, norm_state, one, action[grid : grid + 1])
        for got, want in zip(single, batched, strict=True):
            np.testing.assert_allclose(got[0], want[grid], rtol=1e-5, atol=1e-6)
    # The grids differ, so equal rows above are not an artefact of identical inputs.
    assert float(jnp.max(jnp.abs(batched[2][0] - batched[2][1]))) > 1e-4


class PolicyMaskingTest(chex.TestCase):
    @chex.variants(with_jit=True, without_jit=True)
    def test_padded_agents_and_dims_do_not_matter(self):
        spec = tiny_spec()
        # Un-jitted flax is slow op by op: the two extreme options cover both code paths.
        for sharing, critic in (OPTIONS[0], OPTIONS[3]):
            policy = make_policy(small_config(parameter_sharing=sharing, critic=critic), spec)
            params = policy.init(jax.random.key(0))
            norm_state = policy.init_norm_state()
            obs = random_observation(jax.random.key(1), spec, batch=2)
            action, log_prob, value = self.variant(policy.act)(
                params, norm_state, obs, jax.random.key(3)
            )
            # Padded agent (2) and padded dim (agent 1, dim 1) are zero and contribute 0.
            np.testing.assert_array_equal(action[:, 2], 0.0)
            np.testing.assert_array_equal(action[:, 1, 1], 0.0)
            np.testing.assert_array_equal(log_prob[:, 2], 0.0)
            np.testing.assert_array_equal(value[:, 2], 0.0)
            # Change what sits in padded slots: real agents' log-probs and entropies stay put.
            other_action = action.at[:, 2].set(0.7).at[:, 1, 1].set(-0.4)
            other_obs = Observation(obs.agent_obs.at[:, 2].set(5.0), obs.global_state)
            lp_a, ent_a, _, mode_a = self.variant(policy.evaluate)(params, norm_state, obs, action)
            lp_b, ent_b, _, _ = self.variant(policy.evaluate)(
                params, norm_state, other_obs, other_action
            )
            np.testing.assert_allclose(lp_a, lp_b, atol=1e-5)
            np.testing.assert_allclose(ent_a, ent_b, atol=1e-5)
            np.testing.assert_allclose(lp_a, log_prob, atol=1e-4)
            np.testing.assert_array_equal(ent_a[:, 2], 0.0)
            # The mode the teacher pull sees is zero where the spec pads.
            np.testing.assert_array_equal(mode_a[:, 2], 0.0)
            np.testing.assert_array_equal(mode_a[:, 1, 1], 0.0)


def test_real_agents_see_each_other_through_attention():
    spec = tiny_spec()
    policy = make_policy(small_config(), spec)
    params = policy.init(jax.random.key(0))
    norm_state = policy.init_norm_state()
    obs = random_observation(jax.random.key(1), spec, batch=1)
    changed = Observation(obs.agent_obs.at[:, 1].add(3.0), obs.global_state)
    # Agent 0's action mean must react to agent 1's observation (coordination layer).
    mode = jax.jit(policy.mode)
    mode_a = mode(params, norm_state, obs)[:, 0]
    mode_b = mode(params, norm_state, changed)[:, 0]
    assert float(jnp.max(jnp.abs(mode_a - mode_b))) > 1e-6


def test_squashed_log_prob_hand_value():
    # mean 0.3, std 0.5, a = 0.6: atanh(0.6) = 0.5 * ln(1.6 / 0.4) = ln 2.
    # log N(ln2; 0.3, 0.5) = -0.5 * ((ln2 - 0.3) / 0.5)^2 - ln 0.5 - 0.5 ln(2 pi)
    # change of variables: - ln(1 - 0.6^2) = - ln 0.64.
    z = (math.log(2.0) - 0.3) / 0.5
    expected = -0.5 * z * z - math.log(0.5) - 0.5 * math.log(2 * math.pi) - math.log(0.64)
    got = squashed_gaussian_log_prob(
        jnp.array([0.3, 9.0]),
        jnp.log(jnp.array([0.5, 1.0])),
        jnp.array([0.6, -0.9]),
        jnp.array([True, False]),  # second dim is padding: contributes 0
    )
    np.testing.assert_allclose(got, expected, rtol=1e-5)


def test_log_one_minus_tanh_squared_value_gradient_and_tails():
    # tanh(ln 2) = 0.6: log(1 - 0.36) = ln 0.64, derivative -2 tanh = -1.2 (odd in x).
    x = jnp.array([math.log(2.0), -math.log(2.0), 30.0, -30.0])
    got = log_one_minus_tanh_squared(x)
    np.testing.assert_allclose(got[:2], math.log(0.64), rtol=1e-6)
    # Far tails: 1 - tanh^2 underflows in float32, the log stays 2 (ln 2 - |x|).
    np.testing.assert_allclose(got[2:], 2 * (math.log(2.0) - 30.0), rtol=1e-6)
    grad = jax.vmap(jax.grad(log_one_minus_tanh_squared))(x)
    np.testing.assert_allclose(grad, [-1.2, 1.2, -2.0, 2.0], rtol=1e-5)


def test_squashed_density_integrates_to_one_and_entropy_matches_monte_carlo():
    mean, log_std = jnp.array([0.4]), jnp.log(jnp.array([0.8]))
    grid = jnp.linspace(-1 + 1e-6, 1 - 1e-6, 40_001)[:, None]
    log_p = squashed_gaussian_log_prob(
        jnp.broadcast_to(mean, grid.shape),
        jnp.broadcast_to(log_std, grid.shape),
        grid,
        jnp.ones_like(grid, bool),
    )
    density = np.exp(np.asarray(log_p, np.float64))
    np.testing.assert_allclose(np.trapezoid(density, np.asarray(grid[:, 0])), 1.0, atol=2e-3)
    # Entropy: quadrature vs Monte Carlo -E[log p(a)].
    noise = jax.random.normal(jax.random.key(0), (100_000, 1))
    samples = jnp.tanh(mean[None] + jnp.exp(log_std)[None] * noise)
    mc = -jnp.mean(
        squashed_gaussian_log_prob(
            jnp.broadcast_to(mean, samples.shape),
            jnp.broadcast_to(log_std, samples.shape),
            samples,
            jnp.ones_like(samples, bool),
        )
    )
    quad = squashed_gaussian_entropy(mean, log_std, jnp.array([True]))
    np.testing.assert_allclose(quad, mc, atol=0.01)


def test_bad_observation_shape_is_rejected():
    spec = tiny_spec()
    policy = make_policy(small_config(), spec)
    params = policy.init(jax.random.key(0))
    obs = Observation(jnp.zeros((3, 5)), jnp.zeros((7,)))  # unbatched
    with pytest.raises(ValueError, match="agent_obs must be batched"):
        policy.value(params, policy.init_norm_state(), obs)


def test_bad_config_is_rejected():
    with pytest.raises(ValueError, match="critic"):
        make_policy(small_config(critic="qmix"), tiny_spec())


@pytest.mark.parametrize("sharing", ["shared", "independent"])
def test_a_type_starts_at_its_initial_action_and_samples_around_it(sharing):
    spec = tiny_spec()
    start = 0.6
    config = small_config(parameter_sharing=sharing, type_init_action=f"operational={start}")
    policy, plain = (
        make_policy(config, spec),
        make_policy(small_config(parameter_sharing=sharing), spec),
    )
    params = policy.init(jax.random.key(0))  # the same parameters for both
    norm_state = policy.init_norm_state()
    obs = random_observation(jax.random.key(1), spec, batch=4)
    mode, plain_mode = policy.mode(params, norm_state, obs), plain.mode(params, norm_state, obs)
    # Agent 1 (operational) starts at 0.6 in its one real slot, shifted by the same pre-tanh
    # amount from where it would start without the field; agent 0 is untouched; padding stays 0.
    np.testing.assert_allclose(
        np.arctanh(mode[:, 1, 0]) - np.arctanh(plain_mode[:, 1, 0]),
        math.atanh(start),
        rtol=1e-5,
    )
    np.testing.assert_allclose(mode[:, 1, 0], start, atol=0.05)
    np.testing.assert_array_equal(mode[:, 0], plain_mode[:, 0])
    assert (
        float(jnp.max(jnp.abs(mode[:, 1, 1]))) == 0.0 and float(jnp.max(jnp.abs(mode[:, 2]))) == 0.0
    )
    # Sampled actions centre on it, and their log-probs are the shifted Gaussian's.
    keys = jax.random.split(jax.random.key(2), 256)
    actions, log_probs, _ = jax.vmap(lambda k: policy.act(params, norm_state, obs, k))(keys)
    assert abs(float(jnp.median(actions[:, :, 1, 0])) - start) < 0.05
    again, _, _, _ = policy.evaluate(params, norm_state, obs, actions[0])
    np.testing.assert_allclose(again, log_probs[0], rtol=1e-5, atol=1e-5)
    # and the plain policy, centred elsewhere, finds them less likely on average
    unshifted = jax.vmap(lambda a: plain.evaluate(params, norm_state, obs, a)[0])(actions)
    assert float(jnp.mean(unshifted)) < float(jnp.mean(log_probs)) - 0.05


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ("operational=0.99", r"each value in \[-0.95, 0.95\]"),
        ("operational", r"type_init_action='operational' is invalid"),
        ("safety=0.1", r"names agent type 'safety'.*strategic, operational"),
    ],
)
def test_a_bad_initial_action_is_refused(text, match):
    with pytest.raises(ValueError, match=match):
        make_policy(small_config(type_init_action=text), tiny_spec())
