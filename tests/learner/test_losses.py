"""Hand-worked numbers for GAE, the clipped PPO losses and the diagnostics."""

import math

import jax.numpy as jnp
import numpy as np
import pytest

from learner import losses
from learner.config import default_learner_config, validate_learner_config

REWARD = [1.0, 2.0, 3.0]
VALUE = [0.5, 1.0, 1.5]


def _columns(rows):
    """List of per-column time series -> [T, N] array."""
    return jnp.asarray(np.array(rows, np.float32).T)


def test_gae_termination_truncation_and_per_column_discounts():
    # Four columns share rewards r = [1, 2, 3], values v = [0.5, 1, 1.5], last_value 2.
    # col 0: terminated at t=1, gamma 0.9, lambda 0.5
    #   t=2: delta = 3 + 0.9*2 - 1.5 = 3.3                       A2 = 3.3
    #   t=1: terminal, delta = 2 - 1 = 1.0, recursion cut        A1 = 1.0
    #   t=0: delta = 1 + 0.9*1 - 0.5 = 1.4; A0 = 1.4 + 0.45*1.0 = 1.85
    # col 1: truncated at t=1 with V(final_obs) = 4, gamma 0.9, lambda 0.5
    #   t=2: A2 = 3.3
    #   t=1: delta = 2 + 0.9*4 - 1 = 4.6, recursion cut         A1 = 4.6
    #   t=0: A0 = 1.4 + 0.45*4.6 = 3.47
    # col 2: no episode end, gamma 0.5, lambda 1 (Monte-Carlo return minus value)
    #   A2 = 3 + 0.5*2 - 1.5 = 2.5; A1 = 2 + 0.5*1.5 - 1 + 0.5*2.5 = 3.0
    #   A0 = 1 + 0.5*1 - 0.5 + 0.5*3 = 2.5 = (1 + 0.5*2 + 0.25*3 + 0.125*2) - 0.5
    # col 3: terminated and truncated at t=2 (terminal wins, truncation value 4 ignored)
    #   A2 = 3 - 1.5 = 1.5; A1 = 2 + 0.9*1.5 - 1 + 0.45*1.5 = 3.025
    #   A0 = 1.4 + 0.45*3.025 = 2.76125
    reward = _columns([REWARD] * 4)
    value = _columns([VALUE] * 4)
    terminated = _columns([[0, 1, 0], [0, 0, 0], [0, 0, 0], [0, 0, 1]]).astype(bool)
    truncated = _columns([[0, 0, 0], [0, 1, 0], [0, 0, 0], [0, 0, 1]]).astype(bool)
    truncation_value = _columns([[0, 0, 0], [0, 4, 0], [0, 0, 0], [0, 0, 4]])
    advantage, target = losses.generalized_advantage_estimation(
        reward,
        value,
        last_value=jnp.full((4,), 2.0),
        terminated=terminated,
        truncated=truncated,
        truncation_value=truncation_value,
        gamma=jnp.array([0.9, 0.9, 0.5, 0.9]),
        lambda_=jnp.array([0.5, 0.5, 1.0, 0.5]),
    )
    expected = _columns(
        [[1.85, 1.0, 3.3], [3.47, 4.6, 3.3], [2.5, 3.0, 2.5], [2.76125, 3.025, 1.5]]
    )
    np.testing.assert_allclose(advantage, expected, rtol=1e-6)
    np.testing.assert_allclose(target, expected + value, rtol=1e-6)


def test_clipped_surrogate_hand_values():
    # ratio 1.5, A=+2: min(3.0, 1.2*2) = 2.4 -> loss -2.4;  A=-2: min(-3.0, -2.4) -> loss 3.0
    # ratio 0.5, A=+2: min(1.0, 0.8*2) = 1.0 -> loss -1.0;  A=-2: min(-1.0, -1.6) -> loss 1.6
    log_ratio = jnp.log(jnp.array([1.5, 1.5, 0.5, 0.5]))
    old = jnp.array([-1.0, -2.0, -0.3, 0.7])
    loss = losses.clipped_surrogate_loss(
        old + log_ratio, old, jnp.array([2.0, -2.0, 2.0, -2.0]), clip_eps=0.2
    )
    np.testing.assert_allclose(loss, [-2.4, 3.0, -1.0, 1.6], rtol=1e-5)


def test_clipped_value_loss_hand_values():
    # old 1, new 3, target 2.5, eps 0.5: clipped value 1.5;
    #   max((3-2.5)^2, (1.5-2.5)^2) = 1 -> 0.5
    # old 1, new 1.2, target 2, eps 0.5: inside the clip -> 0.5 * 0.8^2 = 0.32
    loss = losses.clipped_value_loss(
        jnp.array([3.0, 1.2]), jnp.array([1.0, 1.0]), jnp.array([2.5, 2.0]), clip_eps=0.5
    )
    np.testing.assert_allclose(loss, [0.5, 0.32], rtol=1e-6)


def test_diagnostics_hand_values():
    # ratio 1.5: kl = 0.5 - ln 1.5, clipped (|0.5| > 0.2); ratio 1.1: kl = 0.1 - ln 1.1, not clipped
    kl, clipped = losses.approx_kl_and_clip_fraction(
        jnp.log(jnp.array([1.5, 1.1])), jnp.zeros(2), clip_eps=0.2
    )
    np.testing.assert_allclose(kl, [0.5 - math.log(1.5), 0.1 - math.log(1.1)], rtol=1e-4)
    np.testing.assert_array_equal(clipped, [1.0, 0.0])
    # prediction [1,2,3], target [1,2,4]: Var[residual] = 2/9, Var[target] = 14/9 -> 6/7.
    # The masked fourth element must not count.
    ev = losses.explained_variance(
        jnp.array([1.0, 2.0, 3.0, 100.0]),
        jnp.array([1.0, 2.0, 4.0, -100.0]),
        jnp.array([1.0, 1.0, 1.0, 0.0]),
    )
    np.testing.assert_allclose(ev, 6.0 / 7.0, rtol=1e-5)


def test_teacher_pull_is_the_squared_distance_of_the_action_from_zero_bids():
    # [0.5, -0.2] -> 0.25 + 0.04; a masked dim carries 0 and adds nothing.
    pull = losses.teacher_pull(jnp.array([[0.5, -0.2], [0.3, 0.0]]))
    np.testing.assert_allclose(pull, [0.29, 0.09], rtol=1e-6)


def test_teacher_pull_toward_an_anchor_is_the_squared_distance_from_it():
    # Anchored at each agent's start: [0.5, -0.2] from [0.1, 0.0] -> 0.16 + 0.04.
    mode = jnp.array([[0.5, -0.2], [0.1, 0.0]])
    pull = losses.teacher_pull(mode, jnp.array([[0.1, 0.0], [0.1, 0.0]]))
    np.testing.assert_allclose(pull, [0.2, 0.0], atol=1e-7)


def test_a_negative_teacher_pull_is_refused():
    # A negative coefficient would push the policy away from its teacher.
    config = default_learner_config()
    config.teacher_pull = -0.5
    with pytest.raises(ValueError, match=r"learner\.teacher_pull=-0\.5 is invalid"):
        validate_learner_config(config)


def test_a_decayed_weight_falls_linearly_to_zero():
    # base 0.01 over 4 updates: 0.01, 0.0075, 0.005, 0.0025, then 0 for good; 0 updates: constant.
    weights = [float(losses.linear_decay(0.01, 4, jnp.int32(n))) for n in range(6)]
    np.testing.assert_allclose(weights, [0.01, 0.0075, 0.005, 0.0025, 0.0, 0.0], atol=1e-9)
    assert float(losses.linear_decay(0.01, 0, jnp.int32(1000))) == pytest.approx(0.01)


@pytest.mark.parametrize("field", ["entropy_decay_updates", "learning_rate_decay_updates"])
def test_a_negative_decay_is_refused(field):
    config = default_learner_config()
    config[field] = -1
    with pytest.raises(ValueError, match=rf"learner\.{field}=-1 is invalid"):
        validate_learner_config(config)
