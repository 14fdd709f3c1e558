"""From actions to device outputs, secondary (AGC) and primary balancing, frequency.

Order within a step (all MW, ``dt`` = step length in hours):

1. Conventional unit g, online: target ``p*`` from its action (``setpoint``:
   ``Pmin + (a + 1) / 2 (Pmax - Pmin)``; ``delta``: ``p + a ramp``), clipped to the band
   reachable this step ``[max(Pmin, p - ramp), min(Pmax, p + ramp)]``. The clipped amount
   ``sum |p* - clip(p*)|`` is reported (``clipped_mw``). Offline units produce 0; a unit
   coming back resynchronises at Pmin.
2. Renewable unit: ``min(a + 1, 1)^+ x available`` (a >= 0: all of it; a = -1: all spilled).
3. Battery: ``a Pmax`` (+ discharge), limited by the energy it holds / can take:
   ``-min(Pmax, (E - soc) / (eta dt)) <= p <= min(Pmax, soc eta / dt)``;
   ``soc' = soc - dt (p^+ / eta - p^- eta)``.
4. Demand response: ``shed_n = max(a, 0) x shed_max x demand_n``.
5. AGC (secondary control): the expected imbalance
   ``dP = sum(served load) - sum(generation) - sum(battery)`` over energised buses is spread
   over online conventional units **in proportion to their remaining reachable headroom**
   in the needed direction (up-headroom for a shortfall, down-headroom for a surplus), so no
   unit leaves its band; what exceeds the total headroom stays as residual ``r``.
6. Primary response (governor droop): the residual ``r`` of the energised system (plus
   anything islands add) is picked up by the online, energised conventional units in
   proportion to Pmax with one common droop level ``lam`` (``dp_g = lam Pmax_g``), each unit
   **clipped to its own [Pmin, Pmax]** (the env's capped ``params.devices`` limits); ``lam``
   is found exactly on the piecewise-linear response curve. What remains once every unit
   sits at a limit is handled by frequency protection, not by the slack bus:

   * a deficit: automatic under-frequency load shedding (UFLS) drops the same share of
     the served load on every energised bus (``ufls_mw``; unserved energy priced at VOLL
     and counted in the safety term's unserved share);
   * a surplus: over-frequency protection first spills renewable output, then cuts battery
     discharge, then trips conventional generation (the same share of every producing
     unit, as if a share of each plant's units tripped) (``overfreq_mw``; renewable spill is
     priced as curtailment).

   The DC slack bus then only absorbs numerical residue (``slack_mw`` ~ 0); in AC mode it
   also covers the network losses. Either way its energy is priced on the slack unit's
   cost curve.
7. Frequency (quasi-steady state after primary response, droop R, load damping D)::

       df = -r_total / beta,   beta = sum_g Pmax_g / (R f0) + D P_load / f0   [MW/Hz]

   with ``r_total`` the shortfall of the energised system before primary response (what
   primary response, UFLS / over-frequency protection and the slack bus covered together),
   so a deficit large enough to need UFLS also shows as a deep frequency dip. ``|df|`` above
   ``freq_band_hz`` (0.2 Hz) is a violation; above ``freq_collapse_hz`` the system collapses
   (blackout).
"""

from typing import NamedTuple

import jax
import jax.numpy as jnp

from envs.batching import compute_where

EPS = 1e-6


class Controls(NamedTuple):
    gen: jax.Array  # [G] in [-1, 1]
    storage: jax.Array  # [S]
    shed: jax.Array  # [N]
    signals: jax.Array  # [K]


def decode_controls(action: jax.Array, layout, n_gen: int, n_storage: int, n_bus: int):
    """Sum agent actions [A, U] into the control vector and split it by channel.

    Each control slot gathers the action entries that drive it (``layout.ctrl_sources``, the
    inverse of ``ctrl_index``) instead of the actions scatter-adding into the slots: under vmap
    XLA:CPU runs the scatter as a slower kernel (benchmarks/README.md, "Design choices in the
    step").
    """
    n_device = n_gen + n_storage + n_bus
    n_group = layout.group_to_device.shape[0]
    total = n_device + n_group + layout.n_signals
    contribution = jnp.where(layout.action_mask, action, 0.0).reshape(-1)
    padded = jnp.concatenate([contribution, jnp.zeros((1,), action.dtype)])
    flat = jnp.sum(padded[layout.ctrl_sources], axis=-1)  # [C]
    device = flat[:n_device] + flat[n_device : n_device + n_group] @ layout.group_to_device
    device = jnp.clip(device, -1.0, 1.0)
    return Controls(
        gen=device[:n_gen],
        storage=device[n_gen : n_gen + n_storage],
        shed=device[n_gen + n_storage :],
        signals=jnp.clip(flat[n_device + n_group : total], -1.0, 1.0),
    )


class ActionMap(NamedTuple):
    """The inverse of ``decode_controls`` for device channels: for each channel (gen [G] |
    storage [S] | shed [N]) the action slot that drives it, and which slots carry signals."""

    agent: jax.Array  # [C] int32 (A where no agent drives the channel: dropped)
    dim: jax.Array  # [C] int32
    covered: jax.Array  # [C] bool
    signal_slots: jax.Array  # [A, U] bool: the slot drives a strategic signal


def action_map(layout, n_gen: int, n_storage: int, n_bus: int) -> ActionMap:
    """First unmasked (agent, dim), in row-major order, whose control index is each device
    channel. Written with array operations, not a loop over the layout, because the env's
    params may be traced (the adapters jit the step with them as an argument)."""
    ctrl, mask = jnp.asarray(layout.ctrl_index), jnp.asarray(layout.action_mask, bool)
    n_agents, n_dims = ctrl.shape
    n_channels = n_gen + n_storage + n_bus
    drives = mask.reshape(-1)[None, :] & (
        ctrl.reshape(-1)[None, :] == jnp.arange(n_channels)[:, None]
    )
    first = jnp.argmax(drives, axis=1)  # [C] flat slot (0 where none)
    covered = jnp.any(drives, axis=1)
    agent = jnp.where(covered, first // n_dims, n_agents).astype(jnp.int32)
    dim = jnp.where(covered, first % n_dims, 0).astype(jnp.int32)
    first_signal = n_channels + layout.group_to_device.shape[0]
    signal_slots = mask & (ctrl >= first_signal) & (ctrl < first_signal + layout.n_signals)
    return ActionMap(agent, dim, covered, signal_slots)


def controls_to_action(amap: ActionMap, controls: jax.Array, action_shape) -> jax.Array:
    """Device controls [C] in [-1, 1] -> action [A, U]: each channel's value in the one slot
    that drives it, every other slot 0 (uncovered channels are dropped), so
    ``decode_controls`` of the result gives ``controls`` back."""
    action = jnp.zeros(action_shape, controls.dtype)
    return action.at[amap.agent, amap.dim].set(jnp.clip(controls, -1.0, 1.0), mode="drop")


def decode_finite_controls(action, layout, n_gen: int, n_storage: int, n_bus: int, hold):
    """``decode_controls`` that survives non-finite actions: returns (controls, count).

    Every control slot that a NaN or infinite action entry feeds takes its value from
    ``hold`` (the controls that keep the grid where it is) instead, so a bad action never
    reaches the state. ``count`` is the number of non-finite entries (``info``).
    """
    nonfinite = layout.action_mask & ~jnp.isfinite(action)
    ctrl = decode_controls(jnp.where(nonfinite, 0.0, action), layout, n_gen, n_storage, n_bus)
    n_device = n_gen + n_storage + n_bus
    n_group = layout.group_to_device.shape[0]
    flags = jnp.concatenate([nonfinite.reshape(-1), jnp.zeros((1,), bool)])
    tainted = jnp.any(flags[layout.ctrl_sources], axis=-1)  # [C]
    group = tainted[n_device : n_device + n_group].astype(jnp.float32)
    device = tainted[:n_device] | (group @ (layout.group_to_device != 0) > 0)
    slots = (
        device[:n_gen],
        device[n_gen : n_gen + n_storage],
        device[n_gen + n_storage :],
        tainted[n_device + n_group :],
    )
    safe = Controls(
        *(jnp.where(bad, kept, c) for bad, kept, c in zip(slots, hold, ctrl, strict=True))
    )
    return safe, jnp.sum(nonfinite)


def holding_controls(state, devices, gen_action: str, n_bus: int) -> Controls:
    """Controls that keep each conventional unit at its present output, renewables at what
    the weather gives, batteries idle, no shedding, and the strategic signals as they are."""
    span = jnp.maximum(devices.pmax - devices.pmin, EPS)
    if gen_action == "delta":
        conventional = jnp.zeros_like(state.pg)
    else:
        conventional = jnp.clip(2.0 * (state.pg - devices.pmin) / span - 1.0, -1.0, 1.0)
    gen = jnp.where(devices.is_renewable, 1.0, conventional)
    return Controls(
        gen=gen,
        storage=jnp.zeros_like(devices.storage_pmax),
        shed=jnp.zeros((n_bus,), state.pg.dtype),
        signals=state.signals,
    )


def reachable_band(pg, online, devices):
    """[lo, hi] MW each conventional unit can reach this step (0 when offline)."""
    lo = jnp.minimum(jnp.maximum(devices.pmin, pg - devices.ramp), devices.pmax)
    hi = jnp.maximum(jnp.minimum(devices.pmax, pg + devices.ramp), lo)
    return jnp.where(online, lo, 0.0), jnp.where(online, hi, 0.0)


def conventional_target(a, pg, devices, mode: str):
    if mode == "delta":
        return pg + a * devices.ramp
    return devices.pmin + 0.5 * (a + 1.0) * (devices.pmax - devices.pmin)


def renewable_output(a, available):
    return jnp.clip(a + 1.0, 0.0, 1.0) * available


def storage_output(a, soc, devices, efficiency: float, step_hours: float):
    discharge_max = jnp.minimum(devices.storage_pmax, soc * efficiency / step_hours)
    charge_max = jnp.minimum(
        devices.storage_pmax, (devices.storage_emax - soc) / (efficiency * step_hours)
    )
    return jnp.clip(a * devices.storage_pmax, -charge_max, discharge_max)


def initial_soc(devices) -> jax.Array:
    """[S] MWh every episode starts with: each battery half full."""
    return 0.5 * devices.storage_emax


def next_soc(soc, p, devices, efficiency: float, step_hours: float):
    drawn = jnp.where(p > 0, p / efficiency, p * efficiency) * step_hours
    return jnp.clip(soc - drawn, 0.0, devices.storage_emax)


def agc(pg, lo, hi, imbalance, participates):
    """Spread ``imbalance`` (shortfall > 0) over units by reachable headroom.

    Returns (new pg [G], residual the units could not cover []).
    """
    up = jnp.where(participates, hi - pg, 0.0)
    down = jnp.where(participates, pg - lo, 0.0)
    moved = jnp.clip(imbalance, -jnp.sum(down), jnp.sum(up))
    head = jnp.where(moved > 0, up, down)
    share = moved * head / jnp.maximum(jnp.sum(head), EPS)
    return pg + share, imbalance - moved


class Injections(NamedTuple):
    p_bus: jax.Array  # [N] MW net injection handed to the power flow
    gen: jax.Array  # [G] MW generator output incl. primary response (0 when not energised)
    storage: jax.Array  # [S] MW battery output on energised buses
    served: jax.Array  # [N] MW load served (demand - shed - UFLS on energised buses)
    residual: jax.Array  # [] MW shortfall before primary response (before the slack's share)
    ufls: jax.Array  # [] MW shed by under-frequency load shedding
    overfreq: jax.Array  # [] MW of generation removed by over-frequency protection
    spilled: jax.Array  # [] MW of renewable output spilled by over-frequency protection


# From this many units on, the exact kink walk (an O(G^2) evaluation of 2G + 1 kinks per
# grid) runs only for the grids where a unit reaches a limit. Below it the walk is cheaper
# than selecting those grids (benchmarks/README.md, "Design choices in the step").
SELECTIVE_KINK_WALK_UNITS = 16


def primary_response(pg, residual, weight, lo, hi):
    """Droop response ``clip(pg + lam w, lo, hi)`` with the common ``lam`` that covers
    ``residual`` (shortfall > 0) as far as the units' limits allow.

    Units with ``weight <= 0`` do not move. Returns (new pg [G], uncovered MW []: > 0 a
    deficit left for UFLS, < 0 a surplus left for over-frequency protection).
    """
    part = weight > 0
    lo = jnp.where(part, jnp.minimum(lo, pg), pg)
    hi = jnp.where(part, jnp.maximum(hi, pg), pg)
    w = jnp.where(part, weight, 0.0)
    covered = jnp.clip(residual, jnp.sum(lo - pg), jnp.sum(hi - pg))
    if pg.shape[-1] < SELECTIVE_KINK_WALK_UNITS:
        return response_at_kinks(pg, covered, w, lo, hi), residual - covered
    # Usually no unit reaches a limit (AGC has already balanced within the reachable bands,
    # so the residual is small): then lam = covered / sum(w) exactly, and only the grids where
    # some unit would leave its band walk the kinks (under vmap: ``compute_where``).
    lam = covered / jnp.maximum(jnp.sum(w), EPS)
    linear = pg + lam * w
    saturates = jnp.any((linear < lo) | (linear > hi))
    moved = compute_where(response_at_kinks, saturates, linear, pg, covered, w, lo, hi)
    return moved, residual - covered


def response_at_kinks(pg, covered, w, lo, hi):
    """``clip(pg + lam w, lo, hi)`` moving ``covered`` MW in total.

    The response is piecewise linear and nondecreasing in lam, with kinks where a unit reaches
    a limit: evaluate it at every kink (and 0), then interpolate between the highest kink at
    or below ``covered`` and the lowest above it. Those two are neighbours in sorted order, so
    no sort or search is needed: masked maxima and minima find them."""
    w = jnp.where(w > 0, w, 1.0)  # non-participants have lo = hi = pg: their kinks are 0
    kinks = jnp.concatenate([(lo - pg) / w, (hi - pg) / w, jnp.zeros(1, pg.dtype)])
    at_kink = pg[None, :] + kinks[:, None] * w[None, :]
    moved = jnp.sum(jnp.clip(at_kink, lo[None, :], hi[None, :]) - pg[None, :], axis=-1)
    below = moved <= covered
    # Where no kink lies on one side, both ends are the kink on the other: lam is that kink.
    lowest, highest = jnp.min(kinks), jnp.max(kinks)
    lam_lo = jnp.where(jnp.any(below), jnp.max(jnp.where(below, kinks, lowest)), lowest)
    lam_hi = jnp.where(jnp.all(below), highest, jnp.min(jnp.where(below, highest, kinks)))
    lam_lo = jnp.minimum(lam_lo, lam_hi)
    moved_lo = jnp.max(jnp.where(below, moved, -jnp.inf), initial=-jnp.inf)
    moved_hi = jnp.min(jnp.where(below, jnp.inf, moved), initial=jnp.inf)
    gap = moved_hi - moved_lo
    bracketed = jnp.isfinite(gap) & (gap > 0)
    frac = jnp.clip((covered - moved_lo) / jnp.where(bracketed, gap, 1.0), 0.0, 1.0)
    lam = lam_lo + jnp.where(bracketed, frac, 0.0) * (lam_hi - lam_lo)
    return jnp.clip(pg + lam * w, lo, hi)


def _cut(values, amount):
    """Scale non-negative ``values`` down by one common share to remove up to ``amount``.

    Returns (values after the cut, what could not be removed)."""
    total = jnp.sum(values)
    taken = jnp.clip(amount, 0.0, total)
    return values * (1.0 - taken / jnp.maximum(total, EPS)), amount - taken


def over_frequency_cut(gen, storage, surplus, is_renewable):
    """Spill renewables, then cut battery discharge, then trip conventional output.

    Returns (gen, storage, renewable MW spilled, MW left over)."""
    renewable, left = _cut(jnp.where(is_renewable, gen, 0.0), surplus)
    spilled = jnp.sum(jnp.where(is_renewable, gen, 0.0)) - jnp.sum(renewable)
    discharge, left = _cut(jnp.maximum(storage, 0.0), left)
    conventional, left = _cut(jnp.where(is_renewable, 0.0, jnp.maximum(gen, 0.0)), left)
    gen = jnp.where(is_renewable, renewable, jnp.where(gen > 0, conventional, gen))
    storage = jnp.where(storage > 0, discharge, storage)
    return gen, storage, spilled, left


def energised_residual(energised, pg, p_storage, net_load, grid, devices):
    """``(gen [G], storage [S], served [N], residual [])`` with devices on de-energised buses
    removed; ``residual`` is the shortfall of the energised system (shunts included)."""
    gen = jnp.where(energised[grid.gen_bus], pg, 0.0)
    storage = jnp.where(energised[devices.storage_bus], p_storage, 0.0)
    served = jnp.where(energised, net_load, 0.0)
    shunt = jnp.sum(jnp.where(energised, grid.bus_gs, 0.0))
    residual = jnp.sum(served) + shunt - jnp.sum(gen) - jnp.sum(storage)
    return gen, storage, served, residual


def injections(energised, pg, p_storage, net_load, primary_weight, grid, devices):
    """Bus injections with devices on de-energised buses removed, primary response within
    unit limits, and UFLS / over-frequency protection for what the units cannot cover."""
    gen, storage, served, residual = energised_residual(
        energised, pg, p_storage, net_load, grid, devices
    )
    weight = jnp.where(energised[grid.gen_bus], primary_weight, 0.0)
    gen, uncovered = primary_response(gen, residual, weight, devices.pmin, devices.pmax)
    served_pos, _ = _cut(jnp.maximum(served, 0.0), jnp.maximum(uncovered, 0.0))
    served = jnp.where(served > 0, served_pos, served)
    ufls = jnp.sum(jnp.where(energised, net_load, 0.0)) - jnp.sum(served)
    supply = jnp.sum(gen) + jnp.sum(storage)
    gen, storage, spilled, _ = over_frequency_cut(
        gen, storage, jnp.maximum(-uncovered, 0.0), devices.is_renewable
    )
    overfreq = supply - jnp.sum(gen) - jnp.sum(storage)
    p_bus = grid.gen_to_bus @ gen - served
    p_bus = p_bus.at[devices.storage_bus].add(storage)
    return Injections(p_bus, gen, storage, served, residual, ufls, overfreq, spilled)


def frequency_deviation(shortfall, droop_capacity, served_load, consts):
    """Quasi-steady-state df (Hz) for a shortfall (MW) met by primary response."""
    beta = droop_capacity / (consts.droop * consts.nominal_hz)
    beta = beta + consts.load_damping * served_load / consts.nominal_hz
    return -shortfall / jnp.maximum(beta, EPS)
