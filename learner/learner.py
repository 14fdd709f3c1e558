"""The data-parallel PPO/MAPPO learner: one compiled step per batch of trajectories.

``Learner(config, spec, devices)`` builds a 1-D mesh over ``devices`` (axis
``"learner_devices"``) and one ``jax.jit(jax.shard_map(...))`` step:

1. rewards are divided by the running std of discounted returns (per agent type);
2. GAE with each agent type's gamma/lambda (terminations vs truncations);
3. ``num_epochs`` x minibatches of PPO inside ``lax.scan``; each device holds its
   shard of every minibatch (see learner/config.py for the cell shuffle) and
   the gradients are averaged with ``lax.pmean`` in exactly one place;
4. observation and return statistics are merged over all devices (``psum``);
5. a batch holding any non-finite number changes nothing but the counters, and
   a non-finite gradient skips that minibatch (``optax.apply_if_finite``);
   both are counted in ``skipped_updates``.

The learner state is replicated over the mesh; trajectories are sharded along
their grid axis ``B``. ``update`` donates the learner state: do not reuse the
state passed in.
"""

import dataclasses
from collections.abc import Sequence

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
from jax.sharding import Mesh, NamedSharding
from jax.sharding import PartitionSpec as P

from envs.types import EnvSpec
from learner.config import (
    advantage_group_count,
    per_agent_type_values,
    validate_learner_config,
)
from learner.policy import make_policy, teacher_pull_anchor
from learner.sgd import StepStatics, local_update
from learner.types import LearnerState, Trajectory

AXIS = "learner_devices"


@dataclasses.dataclass(frozen=True)
class BatchGeometry:
    """How an update's ``T x B`` samples split into devices, cells and minibatches."""

    unroll_length: int  # T
    batch_size: int  # B, over all devices
    num_devices: int  # D
    shuffle_groups: int  # G, a cell is one (t, b % G) pair: B / G samples
    cells_per_minibatch: int
    num_minibatches: int

    @property
    def local_batch_size(self) -> int:
        return self.batch_size // self.num_devices


def batch_geometry(config: ml_collections.ConfigDict, num_devices: int) -> BatchGeometry:
    """Check that the batch divides over devices, cells and minibatches; ValueError if not."""
    t, b, m = int(config.unroll_length), int(config.batch_size), int(config.minibatch_size)
    if num_devices < 1:
        raise ValueError("the learner needs at least one device")
    if b % num_devices:
        raise ValueError(
            f"learner.batch_size ({b}) must be divisible by the number of learner devices "
            f"({num_devices})"
        )
    groups = int(config.shuffle_groups) or b // num_devices
    if (b // num_devices) % groups:
        raise ValueError(
            f"learner.shuffle_groups ({groups}) must divide the per-device batch "
            f"({b} / {num_devices} = {b // num_devices})"
        )
    cell = b // groups
    if m % cell:
        raise ValueError(
            f"learner.minibatch_size ({m}) must be a multiple of the cell size "
            f"batch_size / shuffle_groups = {cell}"
        )
    if (t * groups) % (m // cell):
        raise ValueError(
            f"unroll_length * batch_size = {t * b} samples do not split into minibatches of "
            f"{m} samples"
        )
    return BatchGeometry(t, b, num_devices, groups, m // cell, t * groups // (m // cell))


def make_optimiser(config: ml_collections.ConfigDict) -> optax.GradientTransformation:
    """Adam after global-norm clipping; a non-finite gradient leaves params and moments as they were.

    ``optax.flatten`` runs the optimiser on one concatenated vector: the same maths,
    a few large kernels instead of several per parameter leaf (faster to compile and run).
    """
    inner = optax.flatten(
        optax.chain(
            optax.clip_by_global_norm(config.max_grad_norm),
            optax.adam(config.learning_rate, eps=config.adam_eps),
        )
    )
    # Never give up skipping: the default would apply a non-finite update after N in a row.
    return optax.apply_if_finite(inner, max_consecutive_errors=2**30)


def per_agent_discounts(config: ml_collections.ConfigDict, spec: EnvSpec) -> tuple[np.ndarray, ...]:
    """``(gamma [A], lambda [A])`` from the agent types (or the config's global values), with
    ``type_gamma``/``type_lambda`` overriding named types."""
    agent_type = np.asarray(spec.agent_type)
    if config.use_spec_discounts:
        gamma = np.asarray(spec.agent_type_gamma, np.float32)[agent_type]
        lambda_ = np.asarray(spec.agent_type_lambda, np.float32)[agent_type]
    else:
        gamma = np.full(spec.num_agents, config.gamma, np.float32)
        lambda_ = np.full(spec.num_agents, config.gae_lambda, np.float32)
    gamma = per_agent_type_values("type_gamma", config.type_gamma, spec, gamma)
    lambda_ = per_agent_type_values("type_lambda", config.type_lambda, spec, lambda_)
    return gamma, lambda_


def trajectory_partition() -> Trajectory:
    """Sharding of every Trajectory field: along the grid axis B."""
    time_major = P(None, AXIS)
    return Trajectory(*([time_major] * 10), last_value=P(AXIS))


class Learner:
    """Data-parallel PPO learner over ``devices`` (default: all local devices)."""

    def __init__(
        self,
        config: ml_collections.ConfigDict,
        spec: EnvSpec,
        devices: Sequence[jax.Device] | None = None,
    ):
        validate_learner_config(config)
        devices = list(devices) if devices is not None else jax.devices()
        self.config, self.spec = config, spec
        self.geometry = batch_geometry(config, len(devices))
        self.mesh = Mesh(np.asarray(devices), (AXIS,))
        self.policy = make_policy(config, spec)
        self.optimiser = make_optimiser(config)
        statics = _step_statics(config, spec, self.geometry, self.policy, self.optimiser)
        step = jax.shard_map(
            lambda state, traj: local_update(statics, state, traj),
            mesh=self.mesh,
            in_specs=(P(), trajectory_partition()),
            out_specs=(P(), P()),
        )
        # The state's buffers are reused for the new state; trajectory buffers cannot
        # alias any output, so donating them would only produce warnings.
        self._step = jax.jit(step, donate_argnums=0)
        self._traj_sharding = jax.tree.map(
            lambda spec: NamedSharding(self.mesh, spec), trajectory_partition()
        )
        self._init = jax.jit(self._fresh_state, out_shardings=NamedSharding(self.mesh, P()))

    def init(self, key: jax.Array) -> LearnerState:
        """Fresh parameters, optimiser state and identity normalisers, replicated on the mesh."""
        return self._init(key)

    def _fresh_state(self, key: jax.Array) -> LearnerState:
        key_params, key_learner = jax.random.split(key)
        params = self.policy.init(key_params)
        return LearnerState(
            params=params,
            opt_state=self.optimiser.init(params),
            norm_state=self.policy.init_norm_state(),
            key=jax.random.key_data(key_learner),
            update_step=jnp.zeros((), jnp.int32),
            skipped_updates=jnp.zeros((), jnp.int32),
        )

    def replicate(self, tree):
        """Place a host pytree (e.g. a restored LearnerState) on every learner device."""
        return jax.device_put(tree, NamedSharding(self.mesh, P()))

    def update(self, state: LearnerState, traj: Trajectory) -> tuple[LearnerState, dict]:
        """One PPO update on ``traj`` (``[T, B, ...]`` with the configured T and B).

        Returns the new state and a dict of scalar arrays (no host sync):
        ``"<type>/policy_loss"``, ``value_loss``, ``entropy``, ``approx_kl``,
        ``clip_fraction``, ``explained_variance``, ``reward_scale`` per agent type,
        plus ``total_loss``, ``grad_norm``, ``skipped_updates`` (this update) and
        ``update_step``.
        """
        self.check_trajectory(traj)
        # Explicit placement: the batch may be host NumPy or live on actor devices.
        return self._step(state, jax.device_put(traj, self._traj_sharding))

    def update_parts(
        self, state: LearnerState, parts: Sequence[Trajectory]
    ) -> tuple[LearnerState, dict]:
        """``update`` on the batch whose grids are those of ``parts`` in order (``[T, B_i, ...]``).

        When the parts split evenly over the learner devices (equal ``B_i``, their count a
        multiple of the devices), each device receives its own parts directly: no host-side
        concatenation of the whole batch and no second copy when it is sharded.
        """
        shards = _per_device_shards(list(parts), self.geometry.num_devices)
        if shards is None:
            return self.update(state, concat_trajectories(parts))
        for shard in shards:
            self.check_trajectory(shard, batch_size=self.geometry.local_batch_size)
        devices = list(self.mesh.devices.flat)
        placed = [
            jax.device_put(shard, device) for shard, device in zip(shards, devices, strict=True)
        ]
        fields = [
            _global_array([getattr(p, name) for p in placed], getattr(self._traj_sharding, name))
            for name in Trajectory._fields
        ]
        return self._step(state, Trajectory(*fields))

    def check_trajectory(self, traj: Trajectory, batch_size: int | None = None) -> None:
        """ValueError naming the first field whose shape does not match the config and spec."""
        s, g = self.spec, self.geometry
        t, b, a = g.unroll_length, batch_size or g.batch_size, s.num_agents
        expected = Trajectory(
            obs=(t, b, a, s.obs_dim),
            global_state=(t, b, s.global_dim),
            action=(t, b, a, s.action_dim),
            log_prob=(t, b, a),
            value=(t, b, a),
            reward=(t, b, a),
            terminated=(t, b),
            truncated=(t, b),
            truncation_value=(t, b, a),
            scenario=(t, b),
            last_value=(b, a),
        )
        for name, shape in zip(Trajectory._fields, expected, strict=True):
            got = tuple(np.shape(getattr(traj, name)))
            if got != shape:
                raise ValueError(
                    f"trajectory.{name} has shape {got}, expected {shape} "
                    f"(learner.unroll_length={t}, learner.batch_size={g.batch_size}"
                    f"{'' if batch_size is None else f', {b} grids per learner device'})"
                )


def _grid_axis(name: str) -> int:
    return 0 if name == "last_value" else 1


def concat_trajectories(parts: Sequence[Trajectory]) -> Trajectory:
    """Trajectories ``[T, B_i, ...]`` -> one ``[T, sum B_i, ...]`` (``last_value`` along axis 0)."""
    if len(parts) == 1:
        return parts[0]
    return Trajectory(
        *[
            np.concatenate([getattr(p, name) for p in parts], axis=_grid_axis(name))
            for name in Trajectory._fields
        ]
    )


def _per_device_shards(parts: list[Trajectory], num_devices: int) -> list[Trajectory] | None:
    """One trajectory per device from consecutive parts, or None if they do not split evenly."""
    sizes = {np.shape(p.reward)[1] if np.ndim(p.reward) == 3 else None for p in parts}
    if len(parts) % num_devices or len(sizes) != 1 or None in sizes:
        return None
    k = len(parts) // num_devices
    return [concat_trajectories(parts[d * k : (d + 1) * k]) for d in range(num_devices)]


def _global_array(shards: list[jax.Array], sharding: NamedSharding) -> jax.Array:
    """The array whose device ``d`` holds ``shards[d]`` (split along the sharded grid axis)."""
    axis = list(sharding.spec).index(AXIS)
    shape = list(shards[0].shape)
    shape[axis] *= len(shards)
    return jax.make_array_from_single_device_arrays(tuple(shape), sharding, shards)


def _step_statics(config, spec, geometry, policy, optimiser) -> StepStatics:
    gamma, lambda_ = per_agent_discounts(config, spec)
    agent_mask = np.asarray(spec.agent_mask, bool)
    type_onehot = np.eye(spec.num_agent_types, dtype=np.float32)[np.asarray(spec.agent_type)]
    type_onehot = type_onehot * agent_mask[:, None]
    if config.reward_scaling == "global":
        reward_weight = np.repeat(agent_mask[:, None], spec.num_agent_types, 1).astype(np.float32)
    else:
        reward_weight = type_onehot
    return StepStatics(
        policy=policy,
        optimiser=optimiser,
        geometry=geometry,
        axis_name=AXIS,
        num_epochs=int(config.num_epochs),
        gamma=gamma,
        lambda_=lambda_,
        agent_mask=agent_mask,
        type_onehot=type_onehot,
        reward_weight=reward_weight,
        type_names=tuple(spec.agent_type_names),
        scale_rewards=config.reward_scaling != "none",
        normalise_advantages=bool(config.normalise_advantages),
        num_advantage_groups=advantage_group_count(config),
        clip_eps=float(config.clip_eps),
        value_clip_eps=float(config.value_clip_eps),
        entropy_coef=float(config.entropy_coef),
        entropy_decay_updates=int(config.get("entropy_decay_updates", 0)),
        learning_rate_decay_updates=int(config.get("learning_rate_decay_updates", 0)),
        value_coef=float(config.value_coef),
        teacher_pull=float(config.get("teacher_pull", 0.0)),
        teacher_pull_anchor=teacher_pull_anchor(config, spec),
        normalise_observations=bool(config.normalise_observations),
    )
