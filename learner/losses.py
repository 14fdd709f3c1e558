"""PPO maths as small pure functions (rlax style): no config, shapes in docstrings.

Every function works element-wise over arbitrary trailing shapes so the caller
can weight by agent masks and agent types; reductions are the caller's job.
"""

import chex
import jax
import jax.numpy as jnp
import optax


def generalized_advantage_estimation(
    reward: jax.Array,
    value: jax.Array,
    last_value: jax.Array,
    terminated: jax.Array,
    truncated: jax.Array,
    truncation_value: jax.Array,
    gamma: jax.Array,
    lambda_: jax.Array,
) -> tuple[jax.Array, jax.Array]:
    """GAE(gamma, lambda) with terminal and time-limit episode ends.

    For ``t = T-1 .. 0`` (``v_T = last_value``)::

        next_v_t = truncation_value_t   if truncated_t else v_{t+1}
        delta_t  = r_t + gamma * (1 - terminated_t) * next_v_t - v_t
        A_t      = delta_t + gamma * lambda * (1 - done_t) * A_{t+1},  done = terminated | truncated

    A terminated step bootstraps nothing; a truncated step bootstraps from the
    value of the state it was cut at; neither lets advantages leak across the
    episode boundary (the next step belongs to a fresh episode).

    Args:
      reward, value, truncation_value: ``[T, N]``.
      last_value: ``[N]``, value of the observation after step ``T-1``.
      terminated, truncated: ``[T, N]`` bool.
      gamma, lambda_: ``[N]`` per-column discount and GAE lambda.
    Returns:
      ``(advantage [T, N], value_target [T, N])`` with ``value_target = advantage + value``.
    """
    chex.assert_rank([reward, last_value, gamma, lambda_], [2, 1, 1, 1])
    chex.assert_equal_shape([reward, value, terminated, truncated, truncation_value])
    chex.assert_equal_shape([last_value, gamma, lambda_, reward[0]])
    dtype = reward.dtype
    terminated = terminated.astype(dtype)
    truncated_bool = truncated.astype(bool)
    next_value = jnp.concatenate([value[1:], last_value[None]], axis=0)
    next_value = jnp.where(truncated_bool, truncation_value, next_value)
    delta = reward + gamma[None] * (1.0 - terminated) * next_value - value
    continues = 1.0 - jnp.maximum(terminated, truncated_bool.astype(dtype))

    def backward(carry, inputs):
        delta_t, continues_t = inputs
        advantage = delta_t + gamma * lambda_ * continues_t * carry
        return advantage, advantage

    _, advantage = jax.lax.scan(
        backward, jnp.zeros_like(last_value), (delta, continues), reverse=True
    )
    return advantage, advantage + value


def clipped_surrogate_loss(
    log_prob: jax.Array, old_log_prob: jax.Array, advantage: jax.Array, clip_eps: float
) -> jax.Array:
    """PPO policy loss (to minimise), element-wise.

    ``ratio = exp(log_prob - old_log_prob)``;
    ``loss = -min(ratio * A, clip(ratio, 1 - eps, 1 + eps) * A)``.

    Args: ``log_prob, old_log_prob, advantage`` of one shape ``[...]``. Returns ``[...]``.
    """
    chex.assert_equal_shape([log_prob, old_log_prob, advantage])
    ratio = jnp.exp(log_prob - old_log_prob)
    clipped = jnp.clip(ratio, 1.0 - clip_eps, 1.0 + clip_eps)
    return -jnp.minimum(ratio * advantage, clipped * advantage)


def clipped_value_loss(
    value: jax.Array, old_value: jax.Array, target: jax.Array, clip_eps: float
) -> jax.Array:
    """Clipped value loss (PPO2 style), element-wise.

    ``v_clip = old_value + clip(value - old_value, -eps, eps)``;
    ``loss = 0.5 * max((value - target)^2, (v_clip - target)^2)``.

    Args: ``value, old_value, target`` of one shape ``[...]``. Returns ``[...]``.
    """
    chex.assert_equal_shape([value, old_value, target])
    value_clipped = old_value + jnp.clip(value - old_value, -clip_eps, clip_eps)
    return 0.5 * jnp.maximum(jnp.square(value - target), jnp.square(value_clipped - target))


def approx_kl_and_clip_fraction(
    log_prob: jax.Array, old_log_prob: jax.Array, clip_eps: float
) -> tuple[jax.Array, jax.Array]:
    """Diagnostics, element-wise: ``kl ~ (ratio - 1) - log ratio`` (k3 estimator, >= 0)
    and ``clipped = |ratio - 1| > eps`` as float. Shapes ``[...]`` -> ``([...], [...])``.
    """
    chex.assert_equal_shape([log_prob, old_log_prob])
    log_ratio = log_prob - old_log_prob
    ratio = jnp.exp(log_ratio)
    kl = (ratio - 1.0) - log_ratio
    clipped = (jnp.abs(ratio - 1.0) > clip_eps).astype(log_prob.dtype)
    return kl, clipped


def linear_decay(base: float, decay_updates: int, update_step: jax.Array) -> jax.Array:
    """A learner weight at ``update_step``: ``base`` throughout when ``decay_updates`` is 0,
    else falling linearly from ``base`` to 0 over that many updates and 0 after.

    Used for the entropy bonus (explore early, when the savings under failures are found; left
    on, it keeps spreading the bids and the quiet-day premium grows) and for the step size
    (the classic PPO anneal: updates shrink once the gains are found, so the bids stop
    drifting where no signal holds them).
    """
    if decay_updates <= 0:
        return jnp.asarray(base, jnp.float32)
    # Compiled, the schedule's end can round to a hair below 0 (-2e-8 in a run's metrics): a
    # step size or bonus of the wrong sign, however small, is clipped away.
    return jnp.maximum(optax.linear_schedule(base, 0.0, decay_updates)(update_step), 0.0)


def teacher_pull(mode_action: jax.Array, anchor: jax.Array | None = None) -> jax.Array:
    """L2 pull of the policy's deterministic action toward the teacher's zero action, or
    toward ``anchor``.

    ``pull = sum_u (mode_u - anchor_u) ** 2`` over the last (action) axis, with
    ``mode = tanh(mean)`` already zero on masked dims (as ``anchor`` must be). Under the bids
    interface zero bids are the myopic OPF, so a loss ``+ c * pull`` keeps a bid at its teacher
    unless the advantage pays more than the pull; an anchor on the battery's plateau (its
    start) clears like zero bids too. Shapes ``[..., U]`` (``anchor`` broadcast) ``-> [...]``.
    """
    if anchor is not None:
        mode_action = mode_action - jnp.broadcast_to(anchor, mode_action.shape)
    return jnp.sum(jnp.square(mode_action), axis=-1)


def explained_variance(
    prediction: jax.Array, target: jax.Array, weight: jax.Array, axis_name: str | None = None
) -> jax.Array:
    """``1 - Var[target - prediction] / Var[target]`` over weighted elements (``weight`` 0/1).

    With ``axis_name`` the elements of all devices on that named axis count together.
    Args: three arrays of one shape ``[...]``. Returns a scalar (0 when ``Var[target]`` is 0).
    """
    chex.assert_equal_shape([prediction, target, weight])

    def total(x):
        x = jnp.sum(x)
        return x if axis_name is None else jax.lax.psum(x, axis_name)

    count = jnp.maximum(total(weight), 1.0)

    def variance(x):
        mean = total(weight * x) / count
        return total(weight * jnp.square(x - mean)) / count

    var_target = variance(target)
    ratio = variance(target - prediction) / jnp.where(var_target > 0, var_target, 1.0)
    return jnp.where(var_target > 0, 1.0 - ratio, 0.0)
