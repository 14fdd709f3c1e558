"""End to end: the single-process PPO loop learns to operate the IEEE 14-bus grid."""

import jax
import numpy as np
import pytest

from learner.config import default_learner_config

env_module = pytest.importorskip("envs.env")
env_config_module = pytest.importorskip("envs.config")


def _training_config():
    config = default_learner_config()
    config.hidden_size = 32
    config.num_heads = 4
    config.num_encoder_layers = 1
    config.unroll_length = 16
    config.batch_size = 32
    config.minibatch_size = 128
    config.num_epochs = 4
    config.learning_rate = 1e-3  # a short run: larger steps than the 3e-4 default
    return config


def _shardings(tree):
    return jax.tree.map(lambda leaf: leaf.sharding, tree)


@pytest.mark.slow
def test_ppo_beats_a_random_policy_on_case14():
    from learner.policy import make_policy
    from learner.train_loop import make_evaluator, train

    env, env_params = env_module.make_env(env_config_module.default_env_config())
    config = _training_config()
    state, history = train(env, env_params, config, num_updates=30, key=jax.random.key(0))
    rewards = np.array([record["rollout/mean_reward"] for record in history])
    assert np.all(np.isfinite(rewards))
    assert all(record["skipped_updates"] == 0 for record in history)
    # Same episodes (same key) for an untrained, randomly initialised policy (Gaussian
    # around ~0 with std 0.6: a random policy) and the trained one. Observed on case14 after
    # 30 updates: random ~0.00, trained ~0.18 mean per-step reward (~0.3 after 50).
    policy = make_policy(config, env.spec(env_params))
    evaluate = make_evaluator(env, env_params, policy, batch_size=32, num_steps=48)
    key = jax.random.key(123)
    # Placed as the trained state is (the learner's mesh), so both calls share one compile.
    random_policy = jax.device_put(policy.init(jax.random.key(7)), _shardings(state.params))
    random_norm = jax.device_put(policy.init_norm_state(), _shardings(state.norm_state))
    random_reward = float(evaluate(random_policy, random_norm, key))
    trained_reward = float(evaluate(state.params, state.norm_state, key))
    assert trained_reward > random_reward + 0.1, (random_reward, trained_reward, rewards.round(3))


@pytest.mark.slow
def test_a_short_run_of_the_default_preset_beats_do_nothing_and_keeps_up_with_its_teacher():
    """A learning regression fails CI: the default preset's policy (bids into the one-step
    OPF, envs/action_interface.py) after a short PPO run costs clearly less than do-nothing on
    the first 8 hours of held-out normal days, and not clearly more than its teacher, the OPF
    that zero bids clear to (the batteries valued at the forecast's price, which these hours
    take whole: the day's end is further than the price looks ahead). Its teacher is 8 %
    below do-nothing over those 8 hours; over the first 4 it holds its stored energy through
    the night and was 2.5 % below, too close for "clearly"."""
    from configs.default import get_config
    from envs.evaluation.metrics import episode_metrics
    from envs.evaluation.rollout import rollout
    from envs.opf import baselines
    from envs.sim import scenarios
    from learner.policy import make_policy
    from learner.train_loop import train

    config = get_config()
    env, env_params = env_module.make_env(config.env)
    learner_config = config.learner
    learner_config.unroll_length, learner_config.batch_size = 16, 32
    learner_config.minibatch_size = 128
    state, history = train(env, env_params, learner_config, num_updates=12, key=jax.random.key(1))
    assert all(np.isfinite(record["rollout/mean_reward"]) for record in history)
    policy = make_policy(learner_config, env.spec(env_params))
    setpoints = jax.vmap(env.setpoints, in_axes=(0, 0, None))

    def bids(obs, env_state, key, args):
        """The trained policy's bids times ``args[2]``: 1 is the policy, 0 its teacher (what
        zero bids clear to), in one compiled clearing."""
        params, norm_state, scale = args
        return setpoints(scale * policy.mode(params, norm_state, obs), env_state, env_params)

    methods = (bids, baselines.do_nothing(env_params))
    keys = scenarios.eval_keys("normal", 2, seed=11)
    normal = jax.numpy.int32(scenarios.scenario_id("normal"))
    cost = [
        episode_metrics(
            rollout(
                env_params,
                methods,
                jax.numpy.int32(method),
                keys,
                normal,
                96,
                (state.params, state.norm_state, jax.numpy.float32(scale)),
            ),
            env_params,
        )["cost"].sum()
        for method, scale in ((0, 1.0), (1, 1.0), (0, 0.0))  # policy, do-nothing, teacher
    ]
    assert cost[0] < 0.95 * cost[1], cost  # clearly better than do-nothing
    assert cost[0] < 1.01 * cost[2], cost  # not clearly behind its teacher
