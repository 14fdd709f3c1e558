"""Small synthetic EnvSpec / Observation / Trajectory builders shared by the learner tests."""

import functools

import jax
import jax.numpy as jnp
import numpy as np

from envs.types import EnvSpec, Observation
from learner.config import default_learner_config
from learner.learner import Learner
from learner.normalisation import init_norm_state
from learner.types import LearnerState, Trajectory

UNROLL, BATCH = 8, 4


def tiny_spec() -> EnvSpec:
    """3 agents of 2 types; agent 2 is padding, agent 1 has a padded action dim."""
    return EnvSpec(
        num_agents=3,
        obs_dim=5,
        global_dim=7,
        action_dim=2,
        num_agent_types=2,
        agent_type=np.array([0, 1, 1], np.int32),
        agent_mask=np.array([True, True, False]),
        action_mask=np.array([[True, True], [True, False], [False, False]]),
        agent_type_names=("strategic", "operational"),
        agent_type_gamma=(0.99, 0.9),
        agent_type_lambda=(0.95, 0.9),
    )


def small_config(**overrides):
    """A cheap network so tests compile fast."""
    config = default_learner_config()
    config.hidden_size = 16
    config.num_heads = 2
    config.num_encoder_layers = 1
    for name, value in overrides.items():
        config[name] = value
    return config


def random_observation(key: jax.Array, spec: EnvSpec, batch: int) -> Observation:
    key_obs, key_state = jax.random.split(key)
    return Observation(
        agent_obs=jax.random.normal(key_obs, (batch, spec.num_agents, spec.obs_dim)),
        global_state=jax.random.normal(key_state, (batch, spec.global_dim)),
    )


def random_trajectory(key: jax.Array, spec: EnvSpec, unroll: int, batch: int) -> Trajectory:
    """Plausible behaviour data: actions in (-1, 1), masked where the spec pads."""
    keys = jax.random.split(key, 8)
    a, u = spec.num_agents, spec.action_dim
    agent_mask = jnp.asarray(spec.agent_mask)
    mask = (jnp.asarray(spec.action_mask) & agent_mask[:, None])[None, None]
    real = agent_mask[None, None]  # [1, 1, A]
    action = jnp.tanh(jax.random.normal(keys[2], (unroll, batch, a, u)))
    per_agent = (unroll, batch, a)
    truncated = jax.random.bernoulli(keys[6], 0.05, (unroll, batch))
    return Trajectory(
        obs=jax.random.normal(keys[0], (unroll, batch, a, spec.obs_dim)),
        global_state=jax.random.normal(keys[1], (unroll, batch, spec.global_dim)),
        action=jnp.where(mask, action, 0.0),
        log_prob=jnp.where(real, jax.random.normal(keys[3], per_agent) - 1.0, 0.0),
        value=jnp.where(real, jax.random.normal(keys[4], per_agent), 0.0),
        reward=jnp.where(real, jax.random.normal(keys[5], per_agent), 0.0),
        terminated=jax.random.bernoulli(keys[7], 0.05, (unroll, batch)),
        truncated=truncated,
        truncation_value=jnp.where(truncated[..., None] & real, 0.5, 0.0),
        scenario=jnp.zeros((unroll, batch), jnp.int32),
        last_value=jnp.where(real[0], 0.25, 0.0) * jnp.ones((batch, a)),
    )


def step_config(**overrides):
    """Batch geometry for the learner-step tests; shuffle_groups fixed so the maths does not
    depend on the device count."""
    base = dict(
        unroll_length=UNROLL, batch_size=BATCH, minibatch_size=8, num_epochs=2, shuffle_groups=2
    )
    base.update(overrides)
    return small_config(**base)


@functools.cache
def tiny_learner(num_devices: int) -> Learner:
    """One learner per device count per test session (its step compiles once)."""
    return Learner(step_config(), tiny_spec(), jax.devices()[:num_devices])


def synthetic_state(step: int) -> LearnerState:
    """A small LearnerState without networks (for checkpoint mechanics)."""
    return LearnerState(
        params={"w": jnp.arange(6.0).reshape(2, 3) * step, "b": jnp.full((3,), float(step))},
        opt_state=(jnp.zeros((3,), jnp.int32) + step,),
        norm_state=init_norm_state(tiny_spec()),
        key=jnp.array([7, step], jnp.uint32),
        update_step=jnp.asarray(step, jnp.int32),
        skipped_updates=jnp.asarray(2 * step, jnp.int32),
    )
