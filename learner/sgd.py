"""The per-device body of the learner step (runs inside ``shard_map``; see learner/learner.py).

Everything here sees the device's shard of the batch (``B_local`` grids) and
talks to the other devices only through named collectives over
``statics.axis_name``. Gradients are averaged in one place: ``_sgd_step``.
"""

import dataclasses
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

from envs.types import Observation
from learner import losses, normalisation
from learner.types import LearnerState, Trajectory

ADV_EPS = 1e-8


@dataclasses.dataclass(frozen=True)
class StepStatics:
    """Compile-time constants of the step (built once by the Learner)."""

    policy: Any
    optimiser: optax.GradientTransformation
    geometry: Any  # learner.learner.BatchGeometry
    axis_name: str
    num_epochs: int
    gamma: np.ndarray  # [A]
    lambda_: np.ndarray  # [A]
    agent_mask: np.ndarray  # [A] bool
    type_onehot: np.ndarray  # [A, K], zero rows for padded agents
    reward_weight: np.ndarray  # [A, K], which agents feed each return statistic
    type_names: tuple[str, ...]
    scale_rewards: bool
    normalise_advantages: bool
    # Advantage groups per agent type: 1 (the whole minibatch) or one per scenario.
    num_advantage_groups: int
    clip_eps: float
    value_clip_eps: float
    entropy_coef: float
    entropy_decay_updates: int  # 0: a constant bonus
    learning_rate_decay_updates: int  # 0: a constant step size
    value_coef: float
    teacher_pull: float
    teacher_pull_anchor: np.ndarray | None  # [A, U], None: toward zero
    normalise_observations: bool


class Samples(NamedTuple):
    """Per-sample training data, ``[T, B_local, ...]`` (or ``[M_local, ...]`` in a minibatch)."""

    obs: jax.Array  # [..., A, O]
    global_state: jax.Array  # [..., S]
    action: jax.Array  # [..., A, U]
    log_prob: jax.Array  # [..., A]
    value: jax.Array  # [..., A]
    advantage: jax.Array  # [..., A]
    target: jax.Array  # [..., A]
    group: jax.Array  # [...] int32, the advantage normalisation group (0 where there is one)


def local_update(s: StepStatics, state: LearnerState, traj: Trajectory):
    """One learner update on this device's shard; returns the (replicated) new state and metrics."""
    batch_finite = _all_finite_everywhere(traj, s.axis_name)
    reward_stats = _updated_reward_stats(s, state.norm_state.reward, traj)
    scale = _per_agent_reward_scale(s, reward_stats)
    advantage, target = _advantages(s, traj, scale)
    group = jnp.clip(traj.scenario, 0, s.num_advantage_groups - 1)
    samples = Samples(
        traj.obs,
        traj.global_state,
        traj.action,
        traj.log_prob,
        traj.value,
        advantage,
        target,
        group,
    )
    key, key_epochs = jax.random.split(jax.random.wrap_key_data(state.key))
    entropy_coef = losses.linear_decay(s.entropy_coef, s.entropy_decay_updates, state.update_step)
    # Adam's step is linear in its learning rate, so scaling the step scales the rate and
    # leaves the optimiser's state (and every checkpoint's layout) as it was.
    step_scale = losses.linear_decay(1.0, s.learning_rate_decay_updates, state.update_step)
    (params, opt_state), sgd_metrics = _run_epochs(
        s, state, samples, key_epochs, entropy_coef, step_scale
    )
    norm_state = state.norm_state.replace(reward=reward_stats)
    if s.normalise_observations:
        t, b = traj.reward.shape[:2]
        norm_state = normalisation.update_observation_stats(
            norm_state,
            traj.obs.reshape((t * b, *traj.obs.shape[2:])),
            traj.global_state.reshape((t * b, traj.global_state.shape[-1])),
            s.axis_name,
        )
    trained = (params, opt_state, norm_state)
    previous = (state.params, state.opt_state, state.norm_state)
    params, opt_state, norm_state = jax.tree.map(
        lambda new, old: jnp.where(batch_finite, new, old), trained, previous
    )
    num_sgd = s.geometry.num_minibatches * s.num_epochs
    skipped = jnp.where(
        batch_finite,
        (opt_state.total_notfinite - state.opt_state.total_notfinite).astype(jnp.int32),
        jnp.int32(num_sgd),
    )
    new_state = LearnerState(
        params=params,
        opt_state=opt_state,
        norm_state=norm_state,
        key=jax.random.key_data(key),
        update_step=state.update_step + 1,
        skipped_updates=state.skipped_updates + skipped,
    )
    metrics = _summarise(s, sgd_metrics, traj, target, scale)
    metrics.update(
        skipped_updates=skipped,
        update_step=new_state.update_step,
        entropy_coef=entropy_coef,
        learning_rate_scale=step_scale,
    )
    return new_state, metrics


def _all_finite_everywhere(traj: Trajectory, axis_name: str) -> jax.Array:
    leaves = [x for x in jax.tree.leaves(traj) if jnp.issubdtype(x.dtype, jnp.floating)]
    finite = jnp.all(jnp.stack([jnp.all(jnp.isfinite(x)) for x in leaves]))
    return jax.lax.pmin(finite.astype(jnp.int32), axis_name) > 0


def _updated_reward_stats(s: StepStatics, stats, traj: Trajectory):
    if not s.scale_rewards:
        return stats
    t, b, a = traj.reward.shape
    done = jnp.broadcast_to((traj.terminated | traj.truncated)[..., None], (t, b, a))
    returns = normalisation.discounted_returns_forward(
        traj.reward.reshape((t, b * a)),
        done.reshape((t, b * a)),
        jnp.tile(jnp.asarray(s.gamma), b),
    )
    return normalisation.update_reward_stats(
        stats, returns.reshape((t * b, a)), jnp.asarray(s.reward_weight), s.axis_name
    )


def _per_agent_reward_scale(s: StepStatics, reward_stats) -> jax.Array:
    """``[A]`` divisor of each agent's reward (1 for padded agents or without scaling)."""
    if not s.scale_rewards:
        return jnp.ones(s.agent_mask.shape, jnp.float32)
    per_type = normalisation.reward_scale(reward_stats)  # [K]
    scale = jnp.asarray(s.type_onehot) @ per_type
    return jnp.where(jnp.asarray(s.agent_mask), scale, 1.0)


def _advantages(s: StepStatics, traj: Trajectory, scale: jax.Array):
    """GAE over ``[T, B_local * A]`` columns with each agent's gamma/lambda; ``([T,B,A], [T,B,A])``."""
    t, b, a = traj.reward.shape
    flat = (t, b * a)

    def per_agent(x):  # [T, B] -> [T, B * A]
        return jnp.broadcast_to(x[..., None], (t, b, a)).reshape(flat)

    advantage, target = losses.generalized_advantage_estimation(
        reward=(traj.reward / scale[None, None, :]).reshape(flat),
        value=traj.value.reshape(flat),
        last_value=traj.last_value.reshape((b * a,)),
        terminated=per_agent(traj.terminated),
        truncated=per_agent(traj.truncated),
        truncation_value=traj.truncation_value.reshape(flat),
        gamma=jnp.tile(jnp.asarray(s.gamma), b),
        lambda_=jnp.tile(jnp.asarray(s.lambda_), b),
    )
    return advantage.reshape((t, b, a)), target.reshape((t, b, a))


def _minibatches(s: StepStatics, samples: Samples, key: jax.Array) -> Samples:
    """``[T, B_local, ...]`` -> ``[num_minibatches, M_local, ...]`` by permuting (t, b % G) cells.

    Local grid ``j`` is global grid ``d * B_local + j`` and ``G`` divides
    ``B_local``, so local cell ``(t, j % G)`` is this device's part of global
    cell ``(t, b % G)``; all devices use the same permutation of cells.
    """
    g = s.geometry
    groups = g.shuffle_groups
    num_cells = g.unroll_length * groups
    permutation = jax.random.permutation(key, num_cells)

    def split(x):
        t, b = x.shape[:2]
        rest = x.shape[2:]
        cells = x.reshape((t, b // groups, groups, *rest)).swapaxes(1, 2)
        cells = cells.reshape((num_cells, b // groups, *rest))[permutation]
        return cells.reshape((g.num_minibatches, -1, *rest))

    return jax.tree.map(split, samples)


def _run_epochs(
    s: StepStatics,
    state: LearnerState,
    samples: Samples,
    key: jax.Array,
    entropy_coef: jax.Array,
    step_scale: jax.Array,
):
    def epoch(carry, epoch_key):
        batches = _minibatches(s, samples, epoch_key)
        return jax.lax.scan(
            lambda c, mb: _sgd_step(s, state.norm_state, entropy_coef, step_scale, c, mb),
            carry,
            batches,
        )

    carry = (state.params, state.opt_state)
    return jax.lax.scan(epoch, carry, jax.random.split(key, s.num_epochs))


def _sgd_step(s: StepStatics, norm_state, entropy_coef, step_scale, carry, minibatch: Samples):
    params, opt_state = carry
    if s.normalise_advantages:
        minibatch = minibatch._replace(
            advantage=_normalised_advantage(s, minibatch.advantage, minibatch.group)
        )
    # Differentiate w.r.t. a device-varying copy: shard_map would otherwise psum the
    # gradient of replicated params implicitly, and the average must happen once, here.
    local_params = jax.lax.pcast(params, s.axis_name, to="varying")
    grads, metrics = jax.grad(_loss, has_aux=True)(
        local_params, s, norm_state, entropy_coef, minibatch
    )
    grads = jax.lax.pmean(grads, s.axis_name)  # the one place gradients are averaged
    updates, opt_state = s.optimiser.update(grads, opt_state, params)
    if s.learning_rate_decay_updates:  # a constant rate keeps the program as it was
        updates = jax.tree.map(lambda u: step_scale * u, updates)
    params = optax.apply_updates(params, updates)
    metrics = jax.lax.pmean(metrics, s.axis_name)
    metrics["grad_norm"] = optax.global_norm(grads)
    return (params, opt_state), metrics


def _normalised_advantage(s: StepStatics, advantage: jax.Array, group: jax.Array) -> jax.Array:
    """``(A - mean) / (std + eps)`` per agent type and advantage group, over the whole minibatch
    on all devices; ``advantage [M, A]``, ``group [M]``.

    With one group per scenario each scenario's samples weigh alike in the gradient, whatever
    its reward scale: the per-step reward spreads ~50 x wider on failure days than on quiet
    ones, and pooled, the failure days set the scale the quiet days' advantages are measured
    against.
    """
    onehot = jnp.asarray(s.type_onehot)  # [A, K]
    in_group = jax.nn.one_hot(group, s.num_advantage_groups, dtype=advantage.dtype)  # [M, G]
    agents = jnp.sum(onehot, axis=0)  # [K]
    count = jax.lax.psum(jnp.sum(in_group, axis=0)[:, None] * agents[None, :], s.axis_name)
    count = jnp.maximum(count, 1.0)  # [G, K]
    mean = jax.lax.psum(jnp.einsum("ma,mg,ak->gk", advantage, in_group, onehot), s.axis_name)
    mean = mean / count
    centred = advantage - jnp.einsum("mg,gk,ak->ma", in_group, mean, onehot)
    var = jax.lax.psum(
        jnp.einsum("ma,mg,ak->gk", jnp.square(centred), in_group, onehot), s.axis_name
    )
    # 0 for padded agents (their centred advantage is 0) and for groups absent from the minibatch
    std = jnp.einsum("mg,gk,ak->ma", in_group, jnp.sqrt(var / count), onehot)
    return centred / (std + ADV_EPS)


def _loss(params, s: StepStatics, norm_state, entropy_coef, mb: Samples):
    """Mean over real agents and local samples of
    ``pg + c_v * vf - c_e * entropy + c_t * teacher_pull``."""
    obs = Observation(mb.obs, mb.global_state)
    log_prob, entropy, value, mode = s.policy.evaluate(params, norm_state, obs, mb.action)
    policy_loss = losses.clipped_surrogate_loss(log_prob, mb.log_prob, mb.advantage, s.clip_eps)
    value_loss = losses.clipped_value_loss(value, mb.value, mb.target, s.value_clip_eps)
    pull = losses.teacher_pull(mode, s.teacher_pull_anchor)
    per_agent = (
        policy_loss + s.value_coef * value_loss - entropy_coef * entropy + s.teacher_pull * pull
    )
    mask = jnp.broadcast_to(jnp.asarray(s.agent_mask, per_agent.dtype), per_agent.shape)
    total = jnp.sum(per_agent * mask) / jnp.sum(mask)
    kl, clipped = losses.approx_kl_and_clip_fraction(log_prob, mb.log_prob, s.clip_eps)
    per_type = {
        "policy_loss": policy_loss,
        "value_loss": value_loss,
        "entropy": entropy,
        "teacher_pull": pull,
        "approx_kl": kl,
        "clip_fraction": clipped,
    }
    metrics = {name: _type_mean(x, s.type_onehot) for name, x in per_type.items()}
    metrics["total_loss"] = total
    return total, jax.lax.stop_gradient(metrics)


def _type_mean(x: jax.Array, type_onehot: np.ndarray) -> jax.Array:
    """``[M, A] -> [K]`` mean over samples and the agents of each type."""
    onehot = jnp.asarray(type_onehot)
    count = jnp.maximum(x.shape[0] * jnp.sum(onehot, axis=0), 1.0)
    return jnp.einsum("ma,ak->k", x, onehot) / count


def _summarise(s: StepStatics, sgd_metrics, traj: Trajectory, target, scale) -> dict:
    """Average over epochs x minibatches; split per-type arrays into ``"<type>/<name>"`` keys."""
    grad_norm = sgd_metrics.pop("grad_norm")
    finite = jnp.isfinite(grad_norm)
    out = {
        "grad_norm": jnp.sum(jnp.where(finite, grad_norm, 0.0)) / jnp.maximum(jnp.sum(finite), 1),
    }
    for name, value in sgd_metrics.items():
        mean = jnp.mean(value, axis=(0, 1))
        if mean.ndim == 0:
            out[name] = mean
            continue
        for k, type_name in enumerate(s.type_names):
            out[f"{type_name}/{name}"] = mean[k]
    for k, type_name in enumerate(s.type_names):
        weight = jnp.broadcast_to(jnp.asarray(s.type_onehot[:, k]), traj.value.shape)
        out[f"{type_name}/explained_variance"] = losses.explained_variance(
            traj.value, target, weight, axis_name=s.axis_name
        )
        out[f"{type_name}/reward_scale"] = jnp.max(jnp.where(s.type_onehot[:, k] > 0, scale, 0.0))
    return out
