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
6. Primary response: the residual (plus anything islands add) is picked up by the online,
   energised conventional units **in proportion to Pmax** (governor droop), and the bus
   injections are balanced; what cannot be placed (no such unit) is absorbed by the slack
   bus of the DC power flow and reported as ``slack_mw``.
7. Frequency (quasi-steady state after primary response, droop R, load damping D)::

       df = -r_total / beta,   beta = sum_g Pmax_g / (R f0) + D P_load / f0   [MW/Hz]

   with ``r_total`` the total shortfall met by primary response and slack. ``|df|`` above
   ``freq_band_hz`` (0.2 Hz) is a violation; above ``freq_collapse_hz`` the system collapses
   (blackout).
"""

from typing import NamedTuple

import jax
import jax.numpy as jnp

EPS = 1e-6


class Controls(NamedTuple):
    gen: jax.Array  # [G] in [-1, 1]
    storage: jax.Array  # [S]
    shed: jax.Array  # [N]
    signals: jax.Array  # [K]


def decode_controls(action: jax.Array, layout, n_gen: int, n_storage: int, n_bus: int):
    """Scatter-add agent actions [A, U] into the control vector and split it by channel."""
    n_device = n_gen + n_storage + n_bus
    n_group = layout.group_to_device.shape[0]
    total = n_device + n_group + layout.n_signals
    contribution = jnp.where(layout.action_mask, action, 0.0).reshape(-1)
    flat = jnp.zeros(total + 1, action.dtype).at[layout.ctrl_index.reshape(-1)].add(contribution)
    device = flat[:n_device] + flat[n_device : n_device + n_group] @ layout.group_to_device
    device = jnp.clip(device, -1.0, 1.0)
    return Controls(
        gen=device[:n_gen],
        storage=device[n_gen : n_gen + n_storage],
        shed=device[n_gen + n_storage :],
        signals=jnp.clip(flat[n_device + n_group : total], -1.0, 1.0),
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
    served: jax.Array  # [N] MW load served (demand - shed on energised buses)
    residual: jax.Array  # [] MW shortfall met by primary response (before the slack's share)


def injections(energised, pg, p_storage, net_load, primary_weight, grid, devices):
    """Bus injections with devices on de-energised buses removed and primary response added."""
    gen_live = energised[grid.gen_bus]
    gen = jnp.where(gen_live, pg, 0.0)
    storage = jnp.where(energised[devices.storage_bus], p_storage, 0.0)
    served = jnp.where(energised, net_load, 0.0)
    shunt = jnp.sum(jnp.where(energised, grid.bus_gs, 0.0))
    residual = jnp.sum(served) + shunt - jnp.sum(gen) - jnp.sum(storage)
    weight = jnp.where(gen_live, primary_weight, 0.0)
    gen = gen + residual * weight / jnp.maximum(jnp.sum(weight), EPS)
    p_bus = grid.gen_to_bus @ gen - served
    p_bus = p_bus.at[devices.storage_bus].add(storage)
    return Injections(p_bus, gen, storage, served, residual)


def frequency_deviation(shortfall, droop_capacity, served_load, consts):
    """Quasi-steady-state df (Hz) for a shortfall (MW) met by primary response."""
    beta = droop_capacity / (consts.droop * consts.nominal_hz)
    beta = beta + consts.load_damping * served_load / consts.nominal_hz
    return -shortfall / jnp.maximum(beta, EPS)
