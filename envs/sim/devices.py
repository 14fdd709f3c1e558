"""Agents, regions, renewables and batteries of a case: the tables of ``envs.config`` for the
shipped cases, a rule for any other.

The shipped cases take their devices and layout from ``envs.config.CASE_DEVICES``. Any
other case (a MATPOWER file, a pandapower or PyPSA network) gets them by this rule, unless
the config names them (``env.layout``, ``env.regions``, ``env.wind_buses``, ...):

* renewables: a generator whose fuel (MATPOWER's ``mpc.genfuel``, pandapower's static
  generator ``type``, PyPSA's ``carrier``) names wind or solar, if it is the first
  in-service unit of its bus (devices are named by bus number) and not at the slack bus
  (the slack unit must stay dispatchable); no fuel data, no renewables;
* regions: ``round(buses / BUSES_PER_REGION)``, at least 2 and at most ``MAX_REGIONS``
  (and at most the number of buses), by the spectral partition of ``envs.sim.layouts``;
* batteries: one per region, at the region's bus with the largest load;
* layout: ``per_node`` (one agent per bus with a load, a unit or a battery) while that is at
  most ``MAX_PER_NODE_AGENTS`` agents, ``hierarchical`` (strategic + one operational agent per
  region + safety) above.

The rule gives the shipped cases their tabled layout and region count.
``envs.case_setup.resolve_env_case`` writes the choice into the ``env`` config, so the run's
saved config records it.
"""

from __future__ import annotations

import ml_collections
import numpy as np

from envs.config import CASE_DEVICES
from envs.powerflow.case import Case
from envs.powerflow.matpower import BUS_I, BUS_TYPE, GEN_BUS, GEN_STATUS
from envs.sim.layouts import spectral_partition

BUSES_PER_REGION = 30
MAX_REGIONS = 8
MAX_PER_NODE_AGENTS = 32
WIND_FUELS = frozenset({"wind", "onwind", "offwind", "offwind-ac", "offwind-dc", "wp"})
SOLAR_FUELS = frozenset({"solar", "pv", "solar rooftop", "solar-hsat", "photovoltaic"})
DEVICE_BUS_FIELDS = ("wind_buses", "solar_buses", "storage_buses")  # config overrides


def automatic_devices(case: Case, grid) -> dict:
    """The device table (as in ``CASE_DEVICES``) the module's rule gives ``case``.

    ``grid`` is ``envs.powerflow.grid.build_grid(case)`` (its arrays are read with NumPy).
    """
    n_bus = grid.n_bus
    regions = int(np.clip(round(n_bus / BUSES_PER_REGION), 2, MAX_REGIONS))
    regions = max(1, min(regions, n_bus))
    wind, solar = _renewable_buses(case, slack_number=int(case.bus[grid.slack, BUS_I]))
    region_of_bus = _partition(grid, regions)
    storage = _storage_buses(case, np.asarray(grid.bus_pd, np.float64), region_of_bus, regions)
    has_device = np.asarray(grid.bus_pd) > 0
    has_device[np.asarray(grid.gen_bus)] = True
    has_device[[_index_of(case, b) for b in storage]] = True
    per_node_agents = int(has_device.sum())
    layout = "per_node" if per_node_agents <= MAX_PER_NODE_AGENTS else "hierarchical"
    return {
        "wind_buses": wind,
        "solar_buses": solar,
        "storage_buses": storage,
        "layout": layout,
        "regions": regions,
    }


def layout_before_the_grid(config: ml_collections.ConfigDict) -> str | None:
    """The layout's name where it is known before a grid is built: set in the env config, or
    the default of a shipped case; None for a grid of one's own under ``layout="auto"`` (the
    module's rule picks it from the grid, ``automatic_devices``)."""
    if config.layout != "auto":
        return str(config.layout)
    devices = CASE_DEVICES.get(str(config.case))
    return None if devices is None else str(devices["layout"])


def device_table(config: ml_collections.ConfigDict, case: Case, grid) -> dict:
    """The case's device table with the config's overrides applied (1-based bus numbers)."""
    if config.case in CASE_DEVICES:
        table = dict(CASE_DEVICES[config.case])
    else:
        table = automatic_devices(case, grid)
    for key in DEVICE_BUS_FIELDS:
        if len(config[key]) > 0:
            table[key] = tuple(int(b) for b in config[key])
    table["layout"] = layout_before_the_grid(config) or table["layout"]
    if config.regions > 0:
        table["regions"] = int(config.regions)
    return table


def _renewable_buses(case: Case, slack_number: int) -> tuple[tuple[int, ...], tuple[int, ...]]:
    if case.gen_fuel is None:
        return (), ()
    isolated = {int(n) for n, kind in case.bus[:, [BUS_I, BUS_TYPE]] if kind == 4}
    first_unit: dict[int, str] = {}
    for row, fuel in zip(case.gen, case.gen_fuel, strict=True):
        bus = int(row[GEN_BUS])
        if row[GEN_STATUS] > 0 and bus not in isolated and bus not in first_unit:
            first_unit[bus] = fuel
    first_unit.pop(slack_number, None)
    wind = tuple(b for b, fuel in first_unit.items() if fuel in WIND_FUELS)
    solar = tuple(b for b, fuel in first_unit.items() if fuel in SOLAR_FUELS)
    return wind, solar


def _partition(grid, regions: int) -> np.ndarray:
    return spectral_partition(
        grid.n_bus,
        np.asarray(grid.branch_from),
        np.asarray(grid.branch_to),
        np.asarray(grid.branch_x),
        regions,
    )


def _storage_buses(case: Case, bus_pd: np.ndarray, region_of_bus, regions: int) -> tuple:
    chosen = []
    for k in range(regions):
        members = np.flatnonzero((region_of_bus == k) & (bus_pd > 0))
        if members.size:
            chosen.append(int(case.bus[members[np.argmax(bus_pd[members])], BUS_I]))
    return tuple(sorted(chosen))


def _index_of(case: Case, bus_number: int) -> int:
    return int(np.flatnonzero(case.bus[:, BUS_I] == bus_number)[0])
