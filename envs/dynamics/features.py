"""The feature vector (global state) and per-agent observations; block order in envs.layouts."""

import jax
import jax.numpy as jnp

from envs import profiles
from envs.types import Observation


def gen_block(state, params):
    """[G, 4] generator features and the reachable upward headroom [G] MW."""
    devices = params.devices
    online = state.available > 0.0
    conv_head = jnp.minimum(devices.pmax, state.pg + devices.ramp) - state.pg
    head = jnp.where(devices.is_renewable, state.available - state.pg, conv_head)
    head = jnp.where(online, jnp.maximum(head, 0.0), 0.0)
    pmax = jnp.maximum(devices.pmax, 1e-3)
    block = jnp.stack([state.pg / pmax, head / pmax, state.available / pmax, online], axis=-1)
    return block, head


def region_aggregates(state, params, head):
    """[K, 5] demand, generation, headroom, renewable availability, net export (/ base load)."""
    layout, devices = params.layout, params.devices
    k = layout.n_regions
    by_bus = jax.ops.segment_sum(state.demand, layout.region_of_bus, k)
    by_gen = jax.ops.segment_sum(
        jnp.stack(
            [
                state.pg,
                jnp.where(devices.is_renewable, 0.0, head),
                jnp.where(devices.is_renewable, state.available, 0.0),
            ],
            axis=-1,
        ),
        layout.region_of_gen,
        k,
    )
    export = layout.boundary @ state.flow
    block = jnp.concatenate([by_bus[:, None], by_gen, export[:, None]], axis=-1)
    return block / jnp.maximum(jnp.sum(params.grid.bus_pd), 1.0)


def reserve_margin(state, params, head) -> jax.Array:
    conv = jnp.where(params.devices.is_renewable, 0.0, head)
    return jnp.sum(conv) / jnp.maximum(jnp.sum(state.demand), 1.0)


def _global_block(state, params, head):
    consts = params.consts
    hour, day = profiles.hour_and_day(state.episode.start_step + state.t, consts.step_hours)
    angle = 2.0 * jnp.pi * hour / 24.0
    return jnp.stack(
        [
            state.freq_dev / consts.freq_band_hz,
            jnp.sin(angle),
            jnp.cos(angle),
            (day >= 5.0).astype(jnp.float32),
            state.served_fraction,
            jnp.sum(state.demand) / jnp.maximum(jnp.sum(params.grid.bus_pd), 1.0),
            reserve_margin(state, params, head),
            state.t.astype(jnp.float32) / consts.horizon,
        ]
    )


def feature_vector(state, params) -> jax.Array:
    """[F] float32 global state in the block order of envs.layouts.feature_blocks."""
    grid, devices, consts = params.grid, params.devices, params.consts
    bus = jnp.stack(
        [
            state.demand / devices.load_ref,
            state.shed / jnp.maximum(state.demand, 1e-3),
            state.theta,
            state.energised.astype(jnp.float32),
            state.vm - 1.0,
        ],
        axis=-1,
    )
    branch = jnp.stack(
        [
            state.flow / grid.branch_rating,
            state.branch_in_service.astype(jnp.float32),
            state.overload_count.astype(jnp.float32) / consts.overload_steps_to_trip,
        ],
        axis=-1,
    )
    gen, head = gen_block(state, params)
    emax = jnp.maximum(devices.storage_emax, 1e-3)
    pmax = jnp.maximum(devices.storage_pmax, 1e-3)
    storage = jnp.stack([state.soc / emax, state.storage_p / pmax], axis=-1)
    parts = [
        bus.reshape(-1),
        branch.reshape(-1),
        gen.reshape(-1),
        storage.reshape(-1),
        region_aggregates(state, params, head).reshape(-1),
        state.signals,
        _global_block(state, params, head),
    ]
    return jnp.concatenate(parts).astype(jnp.float32)


def observe(state, params) -> Observation:
    features = feature_vector(state, params)
    padded = jnp.concatenate([features, jnp.zeros((1,), features.dtype)])
    layout = params.layout
    # The index made a per-grid value (plus a zero computed from the grid's state; a
    # ``zeros_like`` would stay shared): under vmap the gather then runs grid by grid. With
    # the shared index XLA gathered whole [B] feature columns and transposed them to
    # [B, A, O] (XLA:CPU: 45 % of an ieee14 step at B = 4096). DC env steps/s on one core,
    # shared -> per-grid index (four interleaved timings): ieee14 B = 4096 109-115k ->
    # 121-134k, B = 256 128-165k -> 147-204k; ieee118 B = 256 16.2-18.1k -> 16.8-18.5k.
    per_grid_zero = (state.t * 0).astype(layout.obs_index.dtype)
    gathered = padded[layout.obs_index + per_grid_zero]
    agent_obs = jnp.concatenate([gathered, layout.agent_const], axis=-1)
    return Observation(agent_obs=agent_obs, global_state=features)
