"""``make_policy(config, spec) -> Policy``: the pure functions actors, evaluation and the learner call.

Every function takes a *batched* ``Observation`` (``agent_obs [B, A, O]``,
``global_state [B, S]``) in raw environment units plus the ``NormState``;
observation normalisation happens inside. Actions are bounded in [-1, 1]:
``action = tanh(u)``, ``u ~ Normal(mean, std)`` per dimension, and log-probs
are those of the squashed action (change of variables through tanh). Padded
action dims (``spec.action_mask`` False) and padded agents (``spec.agent_mask``
False) get action 0 and contribute 0 to log-prob and entropy; padded agents
also get value 0.

Exploration noise may be correlated in time (``learner.exploration_noise_correlation``): an
AR(1) process per grid, agent and action dim, carried between env steps by the rollout. Each
step's noise is still a standard normal, so the action's distribution at a step, and the
log-prob PPO weighs it by, are the ones above.
"""

from collections.abc import Callable
from typing import Any, NamedTuple

import chex
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from envs.types import EnvSpec, Observation
from learner import normalisation
from learner.config import per_agent_type_values, validate_learner_config
from learner.networks import Actor, Critic
from learner.types import NormState

# tanh saturates to exactly +-1 in float32 for |u| > ~9; log-probs are taken of
# actions clipped to this bound (the same in act and in the loss, so ratios stay exact).
ACTION_BOUND = 1.0 - 1e-6
# Gauss-Hermite (probabilists') nodes/weights for E_{eps~N(0,1)}[f(eps)] in the entropy.
_GH_NODES, _GH_WEIGHTS = np.polynomial.hermite_e.hermegauss(8)
_GH_WEIGHTS = _GH_WEIGHTS / np.sqrt(2.0 * np.pi)
_LOG2 = float(np.log(2.0))
_HALF_LOG_2PI = float(0.5 * np.log(2.0 * np.pi))

Params = Any


class Policy(NamedTuple):
    """Pure policy functions (jit them at the call site). Shapes: B grids, A agents, U action dims.

    - ``init(key) -> params``
    - ``act(params, norm_state, obs, key, noise=None) -> (action [B,A,U], log_prob [B,A],
      value [B,A])``: ``noise`` (standard normal ``[B,A,U]``) replaces the draw from ``key``
    - ``init_noise(key, num_grids) -> [B,A,U] | None``: the exploration noise a rollout
      starts from and carries, or None where it is drawn afresh every step
    - ``next_noise(key, noise) -> noise``: one step of the AR(1) exploration noise
    - ``value(params, norm_state, obs) -> [B,A]``
    - ``mode(params, norm_state, obs) -> action [B,A,U]`` (deterministic, tanh of the mean)
    - ``evaluate(params, norm_state, obs, action) -> (log_prob [B,A], entropy [B,A], value [B,A],
      mode [B,A,U])``: the mode is ``mode``'s action, for the teacher pull
      (used by the learner; entropy of the squashed distribution)
    - ``init_norm_state() -> NormState`` (identity statistics for this spec)

    What an action means (setpoints, a residual or bids) is the environment's
    ``env.action_interface``: the policy only samples it.
    """

    init: Callable[[jax.Array], Params]
    act: Callable[..., tuple[jax.Array, jax.Array, jax.Array]]
    init_noise: Callable[[jax.Array, int], jax.Array | None]
    next_noise: Callable[[jax.Array, jax.Array], jax.Array]
    value: Callable[..., jax.Array]
    mode: Callable[..., jax.Array]
    evaluate: Callable[..., tuple[jax.Array, jax.Array, jax.Array, jax.Array]]
    init_norm_state: Callable[[], NormState]


def log_one_minus_tanh_squared(x: jax.Array) -> jax.Array:
    """``log(1 - tanh(x)^2) = 2 * (log 2 - |x| - log1p(exp(-2|x|)))``, element-wise and stable.

    The log-Jacobian of the tanh squash. Written by hand (one ``exp`` and one ``log1p``, the
    derivative ``-2 tanh(x)`` built from the same ``exp``) because the generic softplus form
    costs several more transcendentals per element in the learner's hottest loop.
    """
    return _log_one_minus_tanh_squared(x)


@jax.custom_jvp
def _log_one_minus_tanh_squared(x):
    magnitude = jnp.abs(x)
    return 2.0 * (_LOG2 - magnitude - jnp.log1p(jnp.exp(-2.0 * magnitude)))


@_log_one_minus_tanh_squared.defjvp
def _log_one_minus_tanh_squared_jvp(primals, tangents):
    (x,), (dx,) = primals, tangents
    magnitude = jnp.abs(x)
    decay = jnp.exp(-2.0 * magnitude)  # in (0, 1]
    value = 2.0 * (_LOG2 - magnitude - jnp.log1p(decay))
    tanh = jnp.sign(x) * (1.0 - decay) / (1.0 + decay)
    return value, -2.0 * tanh * dx


def correlated_noise(key: jax.Array, previous: jax.Array, correlation: float) -> jax.Array:
    """One AR(1) step: ``c * previous + sqrt(1 - c^2) * N(0, 1)``, element-wise.

    A standard normal ``previous`` gives a standard normal result, so the marginal of every
    step is the policy's Gaussian; consecutive steps are correlated by ``c``, and a deviation
    lasts about ``1 / (1 - c)`` steps. Why: holding battery energy against a trip hours ahead is
    a persistent deviation from zero bids, which independent per-step noise averages away.
    """
    fresh = standard_normal(key, previous.shape, previous.dtype)
    return correlation * previous + np.sqrt(1.0 - correlation**2) * fresh


def standard_normal(key: jax.Array, shape: tuple, dtype) -> jax.Array:
    """``N(0, 1)`` of ``shape``, drawn flat (the same numbers): with JAX's rolled threefry on
    XLA:CPU a [B, A, U] draw is slower than a flat one."""
    return jax.random.normal(key, (int(np.prod(shape)),), dtype).reshape(shape)


def squashed_gaussian_log_prob(
    mean: jax.Array, log_std: jax.Array, action: jax.Array, action_mask: jax.Array
) -> jax.Array:
    """``log pi(a) = sum_u mask_u * [log N(atanh a_u; mean_u, std_u) - log(1 - a_u^2)]``.

    Args: ``mean, log_std, action [..., U]`` (action in [-1, 1]), ``action_mask [..., U]`` bool.
    Returns ``[...]``.
    """
    chex.assert_equal_shape([mean, log_std, action, action_mask])
    mean, log_std, action = (_matrix(x) for x in (mean, log_std, action))
    action = jnp.clip(action, -ACTION_BOUND, ACTION_BOUND)
    pre_squash = jnp.arctanh(action)
    z = (pre_squash - mean) * jnp.exp(-log_std)
    gaussian = -0.5 * jnp.square(z) - log_std - _HALF_LOG_2PI
    per_dim = gaussian - jnp.log1p(-jnp.square(action))
    return _masked_sum_over_dims(per_dim, action_mask)


def squashed_gaussian_entropy(
    mean: jax.Array, log_std: jax.Array, action_mask: jax.Array
) -> jax.Array:
    """``H = sum_u mask_u * (H[N(mean_u, std_u)] + E_eps[log(1 - tanh(mean_u + std_u eps)^2)])``.

    The expectation (no closed form) is taken by 8-point Gauss–Hermite
    quadrature: deterministic, so the learner step needs no sampling key.
    Shapes as in ``squashed_gaussian_log_prob``; returns ``[...]``.
    """
    chex.assert_equal_shape([mean, log_std, action_mask])
    mean, log_std = _matrix(mean), _matrix(log_std)
    std = jnp.exp(log_std)
    per_dim = 0.5 + _HALF_LOG_2PI + log_std  # entropy of N(mean, std)
    # One elementwise term per node, not a trailing node axis (see _matrix).
    for node, weight in zip(_GH_NODES, _GH_WEIGHTS, strict=True):
        per_dim = per_dim + float(weight) * log_one_minus_tanh_squared(mean + std * float(node))
    return _masked_sum_over_dims(per_dim, action_mask)


def _matrix(x: jax.Array) -> jax.Array:
    """``[B, ..., U] -> [B, prod(...) * U]`` (``[U] -> [1, U]``): the elementwise maths' 2-D view.

    XLA:CPU vectorises a loop fusion over its innermost dimension only. On the learner's
    ``[M, A, U]`` arrays (U = 3 action dims), and on their ``[M * A, U]`` rows with the per-agent
    ``log_std`` broadcast into them, the transcendentals ran as scalar code, unlike on
    ``[M, A * U]``, where per-agent constants broadcast along rows.
    """
    return x.reshape((x.shape[0] if x.ndim > 1 else 1, -1))


def _masked_sum_over_dims(per_dim: jax.Array, action_mask: jax.Array) -> jax.Array:
    """``sum_u mask_u * per_dim_u`` of the ``_matrix`` view, shaped as ``action_mask[..., 0]``.

    The sum over each block of U columns is a constant matmul: a reduction fused into the
    elementwise producer would make it scalar code again (see ``_matrix``).
    """
    num_dims = action_mask.shape[-1]
    blocks = per_dim.shape[1] // num_dims
    block_sum = np.kron(np.eye(blocks, dtype=np.float32), np.ones((num_dims, 1), np.float32))
    masked = jnp.where(_matrix(action_mask), per_dim, 0.0)
    return (masked @ jnp.asarray(block_sum, per_dim.dtype)).reshape(action_mask.shape[:-1])


def build_networks(config: ml_collections.ConfigDict, spec: EnvSpec) -> tuple[Actor, Critic]:
    """The flax actor and critic for ``spec`` (see learner/networks.py)."""
    agent_type = tuple(int(t) for t in np.asarray(spec.agent_type))
    independent = config.parameter_sharing == "independent"
    actor = Actor(
        action_dim=spec.action_dim,
        agent_type=agent_type,
        num_types=spec.num_agent_types,
        independent=independent,
        hidden_size=config.hidden_size,
        num_encoder_layers=config.num_encoder_layers,
        num_attention_layers=config.num_attention_layers,
        num_heads=config.num_heads,
        init_log_std=config.init_log_std,
    )
    critic = Critic(
        centralised=config.critic == "mappo",
        agent_type=agent_type,
        num_types=spec.num_agent_types,
        independent=independent,
        hidden_size=config.hidden_size,
        num_encoder_layers=config.num_encoder_layers,
    )
    return actor, critic


def make_policy(config: ml_collections.ConfigDict, spec: EnvSpec) -> Policy:
    """Build the policy for ``spec`` from the learner sub-config (see learner/config.py)."""
    validate_learner_config(config)
    _validate_spec(spec)
    actor, critic = build_networks(config, spec)
    agent_mask = np.asarray(spec.agent_mask, bool)
    action_mask = np.asarray(spec.action_mask, bool) & agent_mask[:, None]
    normalise_on, obs_clip = bool(config.normalise_observations), float(config.obs_clip)
    # Each agent's initial mean action (``learner.type_init_action``), pre-tanh, added to the
    # actor's output: the head starts near zero (scale 0.01), so the policy starts there.
    init_action = start_action(config, spec)
    init_mean = jnp.asarray(np.arctanh(init_action)[None, :, None], jnp.float32)  # [1, A, 1]

    def init(key: jax.Array) -> Params:
        key_actor, key_critic = jax.random.split(key)
        obs = jnp.zeros((spec.num_agents, spec.obs_dim), jnp.float32)
        state = jnp.zeros((spec.global_dim,), jnp.float32)
        return {
            "actor": actor.init(key_actor, obs, jnp.asarray(agent_mask)),
            "critic": critic.init(key_critic, obs, state),
        }

    def forward(params, norm_state, obs):
        _check_obs(obs, spec)
        obs = normalisation.normalise_observation(obs, norm_state, obs_clip, normalise_on)
        mean, log_std = actor.apply(params["actor"], obs.agent_obs, jnp.asarray(agent_mask))
        if init_action.any():  # without one, the program has no extra op
            mean = mean + init_mean
        value = critic.apply(params["critic"], obs.agent_obs, obs.global_state)
        return mean, log_std, jnp.where(agent_mask[None], value, 0.0)

    correlation = float(config.get("exploration_noise_correlation", 0.0))

    def init_noise(key, num_grids):
        if correlation == 0.0:
            return None
        return standard_normal(key, (num_grids, spec.num_agents, spec.action_dim), jnp.float32)

    def next_noise(key, noise):
        return correlated_noise(key, noise, correlation)

    def act(params, norm_state, obs, key, noise=None):
        mean, log_std, value = forward(params, norm_state, obs)
        if noise is None:
            noise = standard_normal(key, mean.shape, mean.dtype)
        mask = jnp.broadcast_to(action_mask, mean.shape)
        action = jnp.where(mask, jnp.tanh(mean + jnp.exp(log_std) * noise), 0.0)
        log_prob = squashed_gaussian_log_prob(mean, log_std, action, mask)
        return action, log_prob, value

    def value_fn(params, norm_state, obs):
        return forward(params, norm_state, obs)[2]

    def mode(params, norm_state, obs):
        mean, _, _ = forward(params, norm_state, obs)
        return jnp.where(jnp.broadcast_to(action_mask, mean.shape), jnp.tanh(mean), 0.0)

    def evaluate(params, norm_state, obs, action):
        mean, log_std, value = forward(params, norm_state, obs)
        chex.assert_equal_shape([mean, action])
        mask = jnp.broadcast_to(action_mask, mean.shape)
        log_prob = squashed_gaussian_log_prob(mean, log_std, action, mask)
        entropy = squashed_gaussian_entropy(mean, log_std, mask)
        return log_prob, entropy, value, jnp.where(mask, jnp.tanh(mean), 0.0)

    return Policy(
        init=init,
        act=act,
        init_noise=init_noise,
        next_noise=next_noise,
        value=value_fn,
        mode=mode,
        evaluate=evaluate,
        init_norm_state=lambda: normalisation.init_norm_state(spec),
    )


def start_action(config: ml_collections.ConfigDict, spec: EnvSpec) -> np.ndarray:
    """Each agent's initial mean action after the tanh, ``[A]`` float32: its type's value in
    ``learner.type_init_action``, else 0 (the teacher under the bids interface)."""
    return per_agent_type_values(
        "type_init_action", config.get("type_init_action", ""), spec, np.zeros(spec.num_agents)
    )


def teacher_pull_anchor(config: ml_collections.ConfigDict, spec: EnvSpec) -> np.ndarray | None:
    """Where ``learner.teacher_pull`` draws the deterministic action: each agent's start
    (``learner.teacher_pull_toward="start"``), ``[A, U]`` float32 with 0 on masked slots as the
    mode has; None where that is zero everywhere (the loss then adds no op)."""
    if config.get("teacher_pull_toward", "zero") == "zero":
        return None
    action_mask = np.asarray(spec.action_mask, bool) & np.asarray(spec.agent_mask, bool)[:, None]
    anchor = np.where(action_mask, start_action(config, spec)[:, None], 0.0).astype(np.float32)
    return anchor if anchor.any() else None


def _validate_spec(spec: EnvSpec) -> None:
    agent_type = np.asarray(spec.agent_type)
    if agent_type.shape != (spec.num_agents,):
        raise ValueError(
            f"spec.agent_type must have shape [{spec.num_agents}], got {agent_type.shape}"
        )
    if agent_type.size and (agent_type.min() < 0 or agent_type.max() >= spec.num_agent_types):
        raise ValueError(f"spec.agent_type values must lie in [0, {spec.num_agent_types})")
    if np.asarray(spec.action_mask).shape != (spec.num_agents, spec.action_dim):
        raise ValueError(
            f"spec.action_mask must have shape [{spec.num_agents}, {spec.action_dim}], "
            f"got {np.asarray(spec.action_mask).shape}"
        )
    if not np.asarray(spec.agent_mask, bool).any():
        raise ValueError("spec.agent_mask masks out every agent")


def _check_obs(obs: Observation, spec: EnvSpec) -> None:
    if obs.agent_obs.ndim != 3 or obs.agent_obs.shape[1:] != (spec.num_agents, spec.obs_dim):
        raise ValueError(
            f"agent_obs must be batched [B, {spec.num_agents}, {spec.obs_dim}], "
            f"got {obs.agent_obs.shape}"
        )
    if obs.global_state.shape != (obs.agent_obs.shape[0], spec.global_dim):
        raise ValueError(
            f"global_state must be [B, {spec.global_dim}], got {obs.global_state.shape}"
        )
