"""Pytrees of the learner: normaliser statistics and the learner state.

``flax.struct.dataclass`` for state that is ``.replace()``-d. The trajectory batch the learner
consumes (``Trajectory``, a ``NamedTuple`` ``[T, B, A, ...]``) is one of the actor-learner
contracts in ``replay.types``; it is re-exported here for the learner's modules.
"""

from typing import Any

import flax.struct
import jax
import jax.numpy as jnp

from replay.types import Trajectory

__all__ = ["LearnerState", "NormState", "RunningMoments", "Trajectory"]


@flax.struct.dataclass
class RunningMoments:
    """Running mean and (population) variance of a stream, merged batch by batch (Chan et al.).

    ``count`` starts at a tiny positive number so the first merge is a plain
    weighted average and nothing divides by zero.
    """

    count: jax.Array  # [] (or the shape of mean when counts differ per element) float32
    mean: jax.Array  # [...] float32
    var: jax.Array  # [...] float32

    @classmethod
    def zeros(cls, shape: tuple[int, ...], per_element_count: bool = False) -> "RunningMoments":
        count_shape = shape if per_element_count else ()
        return cls(
            count=jnp.full(count_shape, 1e-4, jnp.float32),
            mean=jnp.zeros(shape, jnp.float32),
            var=jnp.ones(shape, jnp.float32),
        )


@flax.struct.dataclass
class NormState:
    """Normaliser statistics: part of the checkpoint and an argument of every ``Policy`` call.

    ``agent_obs`` keeps one statistic per (agent, feature) because padded
    observation slots of different agents hold different quantities.
    ``reward`` holds, per agent type, the moments of the discounted return
    (with that type's gamma); rewards are divided by its standard deviation.
    """

    agent_obs: RunningMoments  # mean/var [A, O]
    global_state: RunningMoments  # mean/var [S]
    reward: RunningMoments  # count/mean/var [K] (K = number of agent types), of discounted returns


@flax.struct.dataclass
class LearnerState:
    """Everything the learner carries from one update to the next (and checkpoints)."""

    params: Any  # {"actor": ..., "critic": ...} flax parameter trees
    opt_state: Any  # optax state (wrapped in optax.apply_if_finite)
    norm_state: NormState
    key: jax.Array  # raw PRNG key data (jax.random.key_data) for minibatch shuffling
    update_step: jax.Array  # [] int32, completed calls of Learner.update
    skipped_updates: jax.Array  # [] int32, minibatch updates skipped for non-finite values
