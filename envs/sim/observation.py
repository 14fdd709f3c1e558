"""The feature vector (global state) and per-agent observations; block order in envs.sim.layouts."""

import jax
import jax.numpy as jnp

from envs.sim import profiles
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
    progress = state.t.astype(jnp.float32) / consts.horizon
    if not consts.observe_progress:  # env.observe_progress: a zero keeps the layout
        progress = jnp.zeros_like(progress)
    return jnp.stack(
        [
            state.freq_dev / consts.freq_band_hz,
            jnp.sin(angle),
            jnp.cos(angle),
            (day >= 5.0).astype(jnp.float32),
            state.served_fraction,
            jnp.sum(state.demand) / jnp.maximum(jnp.sum(params.grid.bus_pd), 1.0),
            reserve_margin(state, params, head),
            progress,
        ]
    )


def feature_vector(state, params) -> jax.Array:
    """[F] float32 global state in the block order of envs.sim.layouts.feature_blocks."""
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
    layout = params.layout
    agents, consts = layout.agent_const.shape
    # One table per grid: the features, the zero that pads ``obs_index`` (index F), and the
    # agents' constant features, so that a single gather builds every agent's observation.
    table = jnp.concatenate(
        [features, jnp.zeros((1,), features.dtype), layout.agent_const.reshape(-1)]
    )
    first_const = features.shape[0] + 1
    const_index = jnp.arange(first_const, first_const + agents * consts, dtype=jnp.int32)
    index = jnp.concatenate(
        [layout.obs_index.astype(jnp.int32), const_index.reshape(agents, consts)], axis=-1
    )
    return Observation(agent_obs=gather_per_grid(table, index), global_state=features)


def gather_per_grid(table: jax.Array, index: jax.Array) -> jax.Array:
    """``table[index]`` for one grid's table [T] and a shared index (any shape).

    Under ``jax.vmap`` over grids a custom rule gathers from the flattened batch, [B * T] at
    ``b * T + index``. XLA's own batching of the shared index gathered whole [B] feature
    columns and transposed them, a large share of a step on XLA:CPU; a per-grid copy of the
    index avoided that but made XLA hoist a [B, A, O, 2] int32 index out of the rollout's scan
    and read it every step, growing the rollout's temporaries (benchmarks/README.md).
    """

    @jax.custom_batching.custom_vmap
    def gathered(table, index):
        return table[index]

    @gathered.def_vmap
    def gathered_batched(axis_size, in_batched, table, index):
        table_batched, index_batched = in_batched
        too_wide = axis_size * table.shape[-1] >= 2**31  # the flat index would overflow int32
        if index_batched or not table_batched or too_wide:  # plain batching
            axes = (0 if table_batched else None, 0 if index_batched else None)
            return jax.vmap(lambda t, i: t[i], in_axes=axes)(table, index), True
        width = table.shape[-1]
        rows = jnp.arange(axis_size, dtype=index.dtype) * width + _opaque_zero(table[:, 0])
        flat_index = rows.reshape((axis_size,) + (1,) * index.ndim) + index[None]
        return table.reshape(-1)[flat_index], True

    return gathered(table, index)


def _opaque_zero(values: jax.Array) -> jax.Array:
    """[B] int32 zeros that XLA cannot prove are zero: an index built from them is computed
    inside the gather where it is used instead of hoisted out of the rollout's loop and
    materialised (the index is loop-invariant; the gathered table is not)."""
    bits = jax.lax.bitcast_convert_type(values.astype(jnp.float32), jnp.int32)
    return jnp.minimum(jnp.maximum(bits, 0), 0)
