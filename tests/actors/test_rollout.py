import jax
import jax.numpy as jnp
import numpy as np

from actors.rollout import make_rollout
from learner.config import default_learner_config
from learner.policy import make_policy
from tests.actors.fake_env import NUM_AGENTS, SCENARIO, FakeEnv


def tiny_policy(spec, **overrides):
    config = default_learner_config()
    config.hidden_size, config.num_heads, config.num_encoder_layers = 8, 1, 1
    config.normalise_observations = False
    for name, value in overrides.items():
        config[name] = value
    return make_policy(config, spec)


def test_rollout_shapes_bootstrap_and_episode_totals():
    horizon, unroll, num_envs = 5, 12, 3
    env = FakeEnv(horizon)
    policy = tiny_policy(env.spec())
    params = policy.init(jax.random.PRNGKey(0))
    norm_state = policy.init_norm_state()
    init_carry, rollout = make_rollout(env, None, policy, unroll)
    carry = init_carry(jax.random.PRNGKey(1), num_envs)
    carry, traj, totals = jax.jit(rollout)(params, norm_state, carry, jax.random.PRNGKey(2))

    assert traj.obs.shape == (unroll, num_envs, NUM_AGENTS, 3)
    assert traj.action.shape == (unroll, num_envs, NUM_AGENTS, 2)
    assert traj.last_value.shape == (num_envs, NUM_AGENTS)
    # Each step is stamped with its episode's scenario (the learner may group advantages by it).
    assert traj.scenario.dtype == jnp.int32
    np.testing.assert_array_equal(traj.scenario, np.full((unroll, num_envs), SCENARIO))
    # Episodes end after steps 5 and 10 (indices 4 and 9): truncated, and bootstrapped from
    # the value of the observation they were cut at (t = horizon), not the reset one.
    truncated_steps = np.flatnonzero(np.asarray(traj.truncated[:, 0]))
    np.testing.assert_array_equal(truncated_steps, [4, 9])
    final_obs = env.observe(jnp.int32(horizon))
    batched = jax.tree.map(lambda x: jnp.broadcast_to(x, (num_envs, *x.shape)), final_obs)
    expected = policy.value(params, norm_state, batched)
    np.testing.assert_allclose(traj.truncation_value[4], expected, rtol=1e-4, atol=1e-6)
    assert float(jnp.abs(traj.truncation_value[5]).max()) == 0.0
    # The next rollout starts where this one stopped: t = 12 mod 5 = 2.
    assert float(carry.obs.global_state[0, 0]) == 2.0
    # Two finished episodes per grid; agent a earned (a + 1) per step for 5 steps.
    assert int(totals.finished) == 2 * num_envs
    np.testing.assert_allclose(totals.return_sum, [10.0 * num_envs, 20.0 * num_envs])
    np.testing.assert_allclose(totals.length_sum, 10.0 * num_envs)
    np.testing.assert_allclose(totals.info_sums["cost"], 2 * num_envs * 5 * 0.5)


class _DayEndsEnv(FakeEnv):
    """A fake env whose episodes end at the time limit (``env.episode_end="stored_energy"``)."""

    def bootstraps_time_limit(self, params) -> bool:
        return False


def test_an_env_that_ends_its_days_at_the_time_limit_bootstraps_nothing_there():
    horizon, unroll, num_envs = 5, 6, 2
    env = _DayEndsEnv(horizon)
    policy = tiny_policy(env.spec())
    params = policy.init(jax.random.PRNGKey(0))
    init_carry, rollout = make_rollout(env, None, policy, unroll)
    carry = init_carry(jax.random.PRNGKey(1), num_envs)
    _, traj, _ = jax.jit(rollout)(params, policy.init_norm_state(), carry, jax.random.PRNGKey(2))
    # The step is still a truncation (the learner ends the episode there), with no value after it.
    np.testing.assert_array_equal(np.flatnonzero(np.asarray(traj.truncated[:, 0])), [4])
    assert not np.asarray(traj.terminated).any()
    np.testing.assert_array_equal(np.asarray(traj.truncation_value), 0.0)
