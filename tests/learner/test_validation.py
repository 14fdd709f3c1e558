"""The validation a run stores with its checkpoints (learner/validation.py)."""

import jax
import numpy as np
import pytest

from configs.default import get_config
from configs.validation import validate_config
from envs.sim import scenarios
from learner.policy import make_policy
from learner.validation import VALIDATION_SET, Validator, check_best_metric


def _validating_config(**checkpoint):
    config = get_config()
    config.learner.checkpoint.validation_episodes = 1
    for name, value in checkpoint.items():
        config.learner.checkpoint[name] = value
    return config


def test_a_validating_run_must_rank_by_a_metric_its_validation_reports():
    check_best_metric(_validating_config())  # the default: cost against the teacher
    with pytest.raises(ValueError, match="best_metric='eval/return' is not a validation metric"):
        validate_config(_validating_config(best_metric="eval/return"))
    no_teacher = _validating_config()
    no_teacher.env.action_interface = "setpoints"
    with pytest.raises(ValueError, match="one of validation/cost, validation/overload"):
        check_best_metric(no_teacher)
    no_teacher.learner.checkpoint.best_metric = "validation/cost"
    check_best_metric(no_teacher)
    unvalidated = _validating_config(validation_episodes=0, best_metric="eval/return")
    check_best_metric(unvalidated)  # nothing is ranked, nothing to check


def test_the_teachers_own_bids_validate_at_exactly_the_teachers_cost():
    config = _validating_config(validation_episodes=1)
    config.env.horizon = 8
    config.learner.hidden_size = 16
    config.learner.num_heads = 2
    config.learner.num_encoder_layers = 1
    # Zero parameters are the teacher's zero bids only without the preset's start (a battery
    # bid of 10 $/MWh clears like a zero bid, to within the QP's tolerance, not exactly).
    config.learner.type_init_action = ""
    validator = Validator(config)
    # one episode of each scenario, from a set that is neither the suite's nor the benchmark's
    names = scenarios.scenario_names()
    assert validator._keys.shape == (len(names), 2)
    for other in (0, 1):
        held_out = np.stack([scenarios.eval_keys(name, 1, seed=other)[0] for name in names])
        assert not np.any(np.all(np.asarray(validator._keys) == held_out, axis=1))
    assert VALIDATION_SET not in (0, 1)

    policy = make_policy(config.learner, validator_spec(config))
    params = policy.init(jax.random.key(0))
    zero_bids = jax.tree.map(np.zeros_like, params)  # every output 0: tanh(0) = 0, no bid
    teacher = validator(zero_bids, policy.init_norm_state())
    assert teacher["validation/cost_vs_teacher"] == pytest.approx(1.0, abs=1e-12)
    assert teacher["validation/cost"] > 0
    bidding = validator(params, policy.init_norm_state())
    assert bidding["validation/cost_vs_teacher"] != pytest.approx(1.0, abs=1e-9)
    per_scenario = {f"validation/cost_vs_teacher/{name}" for name in names}
    for metrics in (teacher, bidding):
        assert set(metrics) == {
            "validation/cost",
            "validation/cost_vs_teacher",
            "validation/overload_steps",
            "validation/blackouts",
            *per_scenario,
        }
        assert all(np.isfinite(value) for value in metrics.values())
        # one day per scenario here: the mean of the scenarios' ratios is the mean ratio
        scenario_mean = np.mean([metrics[key] for key in per_scenario])
        assert scenario_mean == pytest.approx(metrics["validation/cost_vs_teacher"], rel=1e-12)
    assert all(teacher[key] == pytest.approx(1.0, abs=1e-12) for key in per_scenario)


def validator_spec(config):
    from envs.env import make_env

    env, env_params = make_env(config.env)
    return env.spec(env_params)
