"""Which island stays energised when outages split the grid (``env.island_rule``).

The DC model balances one system: primary response, under-frequency shedding and the frequency
deviation are the energised island's. When outages split the grid, one island is kept and the
rest go dark (their load is lost, their units produce nothing):

* ``"largest_load"`` (the default): of the islands that hold an online conventional unit, the
  one with the most demand (the slack's on a tie). It keeps the grid an operator would keep;
  the kept island then stands or falls by its own units' response;
* ``"slack"`` (the rule before, and the only one under AC physics): the island joined to the
  slack bus, whatever the others hold. The slack bus is a reference of the solve, not a
  device, so on ieee14 a trip that strands the slack's unit behind its two branches blacked
  out the 13 other buses with their units online (benchmarks/README.md, "What takes day 12 of
  set 2 down").

The env's step, the clearing OPF, the look-ahead OPF, the distilled policy's correction and the
perfect-foresight oracle all ask here (the oracle through ``envs.powerflow.connectivity``), so
the teacher, the team and the bound meet one rule.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from envs.powerflow.dc_outages import connected_buses
from envs.powerflow.dcpf import IslandChoice


def island_choice(params, demand_mw, conv_online) -> IslandChoice | None:
    """What ``params.consts.island_rule`` keeps: None for the slack's island, else the
    ``IslandChoice`` of ``demand_mw`` [N] and the online conventional units ``conv_online``
    [G] bool."""
    if params.consts.island_rule == "slack":
        return None
    if params.consts.physics != "dc":  # params built around the config's check
        raise ValueError(
            f"env.island_rule={params.consts.island_rule!r} needs env.physics='dc': set "
            "env.island_rule='slack' for AC"
        )
    grid = params.grid
    has_unit = jnp.matmul(grid.gen_to_bus, conv_online.astype(grid.gen_to_bus.dtype)) > 0
    return IslandChoice(demand_mw, has_unit)


def kept_buses(params, in_service, demand_mw, conv_online) -> jax.Array:
    """[N] bool: the buses of the island kept for the branches ``in_service`` [L] (see the
    module docstring); swept only where the outages may island."""
    choice = island_choice(params, demand_mw, conv_online)
    return connected_buses(params.grid, in_service, choice)


def state_kept_buses(state, params, in_service) -> jax.Array:
    """``kept_buses`` for an OPF that plans the step after ``state``: its demand, and the
    conventional units with capacity available."""
    online = (state.available > 0.0) & ~params.devices.is_renewable
    return kept_buses(params, in_service, state.demand, online)
