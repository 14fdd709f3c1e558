"""Load, check and set up a case before a run starts: one-line errors, and the choice of
devices and layout for a case the tables of ``envs.config`` do not know (``envs.sim.devices``)
written into the ``env`` config, so the run's saved config records it.
"""

from __future__ import annotations

import logging

import ml_collections

from envs.config import CASE_DEVICES
from envs.powerflow.case import load_case
from envs.powerflow.grid import build_grid, check_case, generation_cost
from envs.sim.devices import DEVICE_BUS_FIELDS, device_table
from envs.sim.params import build_params

_log = logging.getLogger(__name__)


def resolve_env_case(env_config: ml_collections.ConfigDict) -> tuple[str, ...]:
    """Loads and checks ``env_config.case`` and builds the environment's static data once, so
    every problem is a one-line ``ValueError`` (``envs.powerflow.case.CaseError`` for the case) here,
    before any process starts. For a case outside ``CASE_DEVICES`` the automatic choice is
    written into ``env_config`` (``layout``, ``regions``, ``wind_buses``, ``solar_buses``,
    ``storage_buses``). Returns one line per thing derived or chosen (also logged)."""
    case = load_case(env_config.case)
    notes = list(check_case(case))
    grid = build_grid(case)
    if env_config.case not in CASE_DEVICES:
        table = device_table(env_config, case, grid)
        for key in DEVICE_BUS_FIELDS:
            env_config[key] = tuple(table[key])
        env_config.layout, env_config.regions = table["layout"], int(table["regions"])
        notes.append(describe_choice(case.name, table))
    build_params(env_config, case, grid, generation_cost)
    for note in notes:
        _log.info("case %s: %s", case.name, note)
    return tuple(notes)


def describe_choice(name: str, table: dict) -> str:
    """One line naming the layout, regions and devices chosen for case ``name``."""

    def buses(key: str) -> str:
        return ", ".join(str(b) for b in table[key]) or "none"

    return (
        f"automatic setup of {name}: layout {table['layout']}, {table['regions']} regions, "
        f"wind at buses {buses('wind_buses')}, solar at buses {buses('solar_buses')}, "
        f"batteries at buses {buses('storage_buses')}"
    )
