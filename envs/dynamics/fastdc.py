"""DC power flow for batches of grids that mostly keep their topology (few outages, no islands).

``dc_flow(grid, p_bus, in_service)`` returns exactly what ``envs.dcpf.dc_power_flow`` returns
for a branch mask, but picks the cheap path per grid:

* up to ``OUTAGE_SLOTS`` branches out and every bus still energised: the intact-network
  flows (one matmul) compensated for the outages with a K x K solve on the branch PTDF
  (``f' = f + H[:, O] (I - H_OO)^-1 f_O``; the Woodbury identity);
* otherwise (islands, or more outages): the dense masked solve of ``envs.dcpf``.

Under ``jax.vmap`` (a ``custom_vmap`` rule) the batch computes the compensated flows for all
grids and the dense solve only for the grids that need it, gathered into a fixed-size block
(1/64, 1/16, 1/4 or 1/2 of the batch, the smallest that fits), solved and scattered back; if
more than half of the batch needs it, the whole batch takes the dense path. Grids the caller
marks inactive (``active=False``: a cascade that already stopped) never take the dense path.
A dense LU per grid costs O(N^3); the compensated path O(L K + N K + K^3), which is what makes a batch of
ieee118 grids with occasional outages cheap.
"""

import jax
import jax.numpy as jnp

from envs.dcpf import DCFlow, dc_power_flow, energised_buses, masked_flow

OUTAGE_SLOTS = 8
DENSE_SHARES = (64, 16, 4, 2)  # dense tiers: 1/64, 1/16, 1/4, 1/2 of the batch, then all


def _outage_slots(in_service):
    """[..., K] indices of out-of-service branches (-1 pads) and their count [...]."""
    out = ~in_service
    order = jnp.argsort(in_service, axis=-1, stable=True)[..., :OUTAGE_SLOTS]
    hit = jnp.take_along_axis(out, order, axis=-1)
    return jnp.where(hit, order, -1), jnp.sum(out, axis=-1)


def _compensated(grid, p_bus, in_service) -> DCFlow:
    base = dc_power_flow(grid, p_bus)
    slots, _ = _outage_slots(in_service)
    valid = slots >= 0
    index = jnp.where(valid, slots, 0)
    pair = valid[..., :, None] & valid[..., None, :]
    coupling = grid.branch_ptdf[index[..., :, None], index[..., None, :]]
    eye = jnp.broadcast_to(jnp.eye(OUTAGE_SLOTS, dtype=p_bus.dtype), pair.shape)
    system = eye - jnp.where(pair, coupling, 0.0)
    outaged = jnp.where(valid, jnp.take_along_axis(base.flow_mw, index, axis=-1), 0.0)
    transfer = jnp.linalg.solve(system, outaged[..., None])[..., 0]
    columns = jnp.moveaxis(grid.branch_ptdf[:, index], 0, -2)  # [..., L, K]
    flow = base.flow_mw + jnp.sum(columns * transfer[..., None, :], axis=-1)
    inject = jnp.sum(grid.branch_bus[index] * transfer[..., :, None], axis=-2)
    theta = base.theta + jnp.matmul(inject, grid.dc_bus_inverse) / grid.base_mva
    theta = jnp.where(base.bus_energised, theta, 0.0)
    return DCFlow(theta, jnp.where(in_service, flow, 0.0), base.islanded, base.bus_energised)


def _needs_dense(grid, in_service, energised):
    _, count = _outage_slots(in_service)
    intact = jnp.broadcast_to(grid.bus_energised0, energised.shape)
    return (count > OUTAGE_SLOTS) | jnp.any(energised != intact, axis=-1)


def dc_flow(grid, p_bus, in_service, active=None, energised=None) -> DCFlow:
    """One grid: p_bus [N] MW, in_service [L] bool.

    ``active`` (bool [], default True): False marks a grid whose result the caller discards
    (a finished cascade); under ``jax.vmap`` such grids skip the dense solve (their result
    is then unspecified, possibly non-finite). ``energised`` [N] bool: the buses
    ``energised_buses(grid, in_service)`` returns, when the caller has them already.
    """
    active = jnp.bool_(True) if active is None else jnp.asarray(active, bool)
    if energised is None:
        energised = energised_buses(grid, in_service)
    return _dc_flow(grid, p_bus, in_service, active, energised)


@jax.custom_batching.custom_vmap
def _dc_flow(grid, p_bus, in_service, active, energised) -> DCFlow:
    del active  # one grid: always solved exactly
    return jax.lax.cond(
        _needs_dense(grid, in_service, energised),
        lambda: masked_flow(grid, p_bus, in_service, energised),
        lambda: _compensated(grid, p_bus, in_service),
    )


@_dc_flow.def_vmap
def _dc_flow_batched(axis_size, in_batched, grid, p_bus, in_service, active, energised):
    grid_batched, p_batched, s_batched, a_batched, e_batched = in_batched
    if any(jax.tree_util.tree_leaves(grid_batched)):
        flow = jax.vmap(dc_power_flow)(grid, p_bus, in_service)
        return flow, DCFlow(True, True, True, True)
    if not p_batched:
        p_bus = jnp.broadcast_to(p_bus, (axis_size, *p_bus.shape))
    if not s_batched:
        in_service = jnp.broadcast_to(in_service, (axis_size, *in_service.shape))
    if not a_batched:
        active = jnp.broadcast_to(active, (axis_size,))
    if not e_batched:
        energised = jnp.broadcast_to(energised, (axis_size, *energised.shape))
    need = _needs_dense(grid, in_service, energised) & active
    compensated = _compensated(grid, p_bus, in_service)

    def dense_for(budget):
        def run():
            chosen = jnp.argsort(~need, stable=True)[:budget]
            dense = masked_flow(grid, p_bus[chosen], in_service[chosen], energised[chosen])
            return jax.tree_util.tree_map(lambda a, b: a.at[chosen].set(b), compensated, dense)

        return run

    def all_dense():
        return masked_flow(grid, p_bus, in_service, energised)

    # Branch on how many grids need the dense solve (1/64, 1/16, 1/4, 1/2 of the batch),
    # or more; only the chosen branch runs.
    budgets = sorted({max(1, axis_size // share) for share in DENSE_SHARES})
    branches = [dense_for(b) for b in budgets] + [all_dense]
    thresholds = jnp.asarray(budgets, jnp.int32)
    tier = jnp.sum(jnp.sum(need) > thresholds)
    flow = jax.lax.switch(tier, branches)
    return flow, DCFlow(True, True, True, True)
