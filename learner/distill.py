"""A distilled policy: one network that proposes the bid policy's dispatch, no QP in its loop.

The bid policy decides by clearing its bids in the single-step OPF (``envs.action_interface``),
so it can decide no faster than one OPF solve. The student is trained by regression on the
dispatches that policy cleared: from the grid's global state (what the centralised critic
sees) to each unit's and battery's output, normalised by its range:

* conventional unit: ``(p - Pmin) / (Pmax - Pmin)``; renewable: ``p / available``;
* battery: ``p / Pmax`` (+ discharge).

A residual student learns that dispatch less the copper-plate clearing of zero offers (every
unit at one system price, no network: what ``envs.opf.ptdf_correction.copper_plate`` clears);
its output is added back to that clearing in MW (``dispatch_shift``) before the correction.

Its output, clipped to those ranges, goes through ``envs.opf.ptdf_correction`` (one linear
projection onto the worst branches' limits) before the env applies it. Decoding the student's
output is this module's; collecting the dataset and evaluating it is ``launch.distill``'s.
"""

from __future__ import annotations

from typing import NamedTuple

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax

from envs.types import EnvParams, EnvState

EPS = 1e-6


class Student(nn.Module):
    """Dense -> LayerNorm -> SiLU hidden layers, then a linear head of ``outputs``."""

    hidden: int
    layers: int
    outputs: int

    @nn.compact
    def __call__(self, x):
        for _ in range(self.layers):
            x = nn.silu(nn.LayerNorm()(nn.Dense(self.hidden)(x)))
        return nn.Dense(self.outputs)(x)


class StudentParams(NamedTuple):
    """What the distilled decision needs besides the env: the network and its input scaling."""

    network: dict
    feature_mean: jax.Array  # [F]
    feature_std: jax.Array  # [F]


def student_template(student: Student, n_features: int) -> StudentParams:
    """Freshly initialised ``StudentParams`` with identity scaling: the structure a saved
    student is read into, and what stands in for a student not fitted yet."""
    network = student.init(jax.random.PRNGKey(0), jnp.zeros((1, n_features)))
    return StudentParams(network, jnp.zeros(n_features), jnp.ones(n_features))


def normalised_dispatch(pg, storage, state: EnvState, params: EnvParams) -> jax.Array:
    """``[G + S]`` regression targets from MW outputs (module doc); one grid."""
    devices = params.devices
    span = jnp.maximum(devices.pmax - devices.pmin, EPS)
    conventional = (pg - devices.pmin) / span
    renewable = pg / jnp.maximum(state.available, EPS)
    renewable = jnp.where(state.available > EPS, renewable, 1.0)
    gen = jnp.where(devices.is_renewable, renewable, conventional)
    battery = storage / jnp.maximum(devices.storage_pmax, EPS)
    return jnp.concatenate([jnp.clip(gen, 0.0, 1.0), jnp.clip(battery, -1.0, 1.0)])


def dispatch_of(outputs, state: EnvState, params: EnvParams) -> tuple[jax.Array, jax.Array]:
    """``(pg [G], storage [S])`` MW from the student's outputs, each clipped to its range; the
    inverse of ``normalised_dispatch``; one grid."""
    devices = params.devices
    n_gen = devices.pmax.shape[0]
    gen = jnp.clip(outputs[:n_gen], 0.0, 1.0)
    conventional = devices.pmin + gen * (devices.pmax - devices.pmin)
    pg = jnp.where(devices.is_renewable, gen * state.available, conventional)
    pg = jnp.where(state.available > 0.0, pg, 0.0)  # offline units produce nothing
    storage = jnp.clip(outputs[n_gen:], -1.0, 1.0) * devices.storage_pmax
    return pg, storage


def dispatch_shift(outputs, state: EnvState, params: EnvParams) -> jax.Array:
    """``[G + S]`` MW of a residual student's outputs: each a share of its device's range as
    ``normalised_dispatch`` measures it (a difference of two normalised dispatches), so
    conventional units ``[-1, 1]`` of ``Pmax - Pmin``, renewables of what is available,
    batteries ``[-2, 2]`` of ``Pmax``; offline units are not moved; one grid."""
    devices = params.devices
    n_gen = devices.pmax.shape[0]
    gen = jnp.clip(outputs[:n_gen], -1.0, 1.0)
    scale = jnp.where(devices.is_renewable, state.available, devices.pmax - devices.pmin)
    gen = jnp.where(state.available > 0.0, gen * scale, 0.0)
    storage = jnp.clip(outputs[n_gen:], -2.0, 2.0) * devices.storage_pmax
    return jnp.concatenate([gen, storage])


def student_outputs(student: Student, params: StudentParams, features) -> jax.Array:
    """The network on features ``[..., F]`` scaled as at training."""
    lead = (1,) * (features.ndim - 1)
    mean = params.feature_mean.reshape(lead + params.feature_mean.shape)
    std = params.feature_std.reshape(lead + params.feature_std.shape)
    return student.apply(params.network, (features - mean) / std)


class FitResult(NamedTuple):
    params: StudentParams
    train_loss: list[float]  # mean squared error per epoch, training samples
    validation_loss: float  # on the held-back share


def fit(
    features: np.ndarray,
    targets: np.ndarray,
    student: Student,
    *,
    epochs: int,
    batch_size: int = 1024,
    learning_rate: float = 1e-3,
    validation_share: float = 0.1,
    seed: int = 0,
    progress=None,
) -> FitResult:
    """Mean-squared-error regression of ``targets [M, G + S]`` on ``features [M, F]`` (Adam,
    cosine-decayed step size); a random ``validation_share`` is held back and scored at the end."""
    features = np.asarray(features, np.float32)
    targets = np.asarray(targets, np.float32)
    if features.ndim != 2 or targets.ndim != 2 or len(features) != len(targets):
        raise ValueError(
            f"features [M, F] and targets [M, D] must pair up, got {features.shape} and "
            f"{targets.shape}"
        )
    if epochs < 1 or batch_size < 1:
        raise ValueError(f"epochs and batch_size must be >= 1, got {epochs} and {batch_size}")
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(features))
    held = int(len(order) * validation_share)
    valid, train = order[:held], order[held:]
    if len(train) < 1:
        raise ValueError(f"{len(features)} samples leave none to train on")
    mean = features[train].mean(axis=0, keepdims=True)  # [1, F]
    std = features[train].std(axis=0, keepdims=True) + 1e-3
    init = student.init(jax.random.PRNGKey(seed), jnp.zeros((1, features.shape[1])))
    steps_per_epoch = max(len(train) // batch_size, 1)
    schedule = optax.cosine_decay_schedule(learning_rate, epochs * steps_per_epoch)
    optimiser = optax.adam(schedule)

    def loss_of(network, x, y):
        scaled = (x - mean) / std
        return jnp.mean((student.apply(network, scaled) - y) ** 2)

    @jax.jit
    def update(network, state, x, y):
        loss, grads = jax.value_and_grad(loss_of)(network, x, y)
        updates, state = optimiser.update(grads, state, network)
        return optax.apply_updates(network, updates), state, loss

    network, state, history = init, optimiser.init(init), []
    for epoch in range(epochs):
        shuffled = rng.permutation(train)
        losses = []
        for step in range(steps_per_epoch):
            batch = shuffled[step * batch_size : (step + 1) * batch_size]
            network, state, loss = update(network, state, features[batch], targets[batch])
            losses.append(float(loss))
        history.append(float(np.mean(losses)))
        if progress is not None:
            progress(epoch, history[-1])
    validation = (
        float(jax.jit(loss_of)(network, features[valid], targets[valid])) if held else float("nan")
    )
    params = StudentParams(network, jnp.asarray(mean[0]), jnp.asarray(std[0]))
    return FitResult(params, history, validation)
