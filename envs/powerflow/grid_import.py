"""Grid models kept in pandapower or PyPSA, as :class:`envs.powerflow.case.Case` data (``io`` extra).

    case = from_pandapower(net)          # a pandapowerNet
    case = from_pypsa(network)           # a pypsa.Network
    envs.powerflow.matpower.write_matpower(case.to_matpower(), "my_grid.m")   # then env.case=my_grid.m

``env.case`` also takes the saved files directly: ``net.json`` (``pandapower.to_json``) and
``network.nc`` (``Network.export_to_netcdf``). Either way the result goes through the MATPOWER
reader's checks (:func:`envs.powerflow.matpower.parse_matpower` of the written text), so an imported grid
is exactly the case data a ``.m`` file with the same numbers gives.

pandapower: :func:`pandapower.converter.matpower.to_mpc.to_mpc`, pandapower's own converter,
builds the MATPOWER arrays (its power-flow model: external grids become generators, static
generators and loads become bus load, closed bus-bus switches fuse buses; lines come before
transformers). Bus numbers are pandapower bus indices + 1 (the smallest, where buses fused).

PyPSA: written here from the static component data, per unit on ``BASE_MVA``: buses (type 3
for the bus of the ``Slack`` generator, 2 for ``PV`` generators; with neither, the first
generator's bus is the slack, as PyPSA chooses), lines and transformers (``x_pu`` ×
``BASE_MVA``, tap ratio at ``bus0``, phase shift in degrees, ``s_nom × s_max_pu`` as rateA),
generators (``p_nom × p_max_pu`` as Pmax, ``p_set`` as dispatch, ±``p_nom`` as reactive limits,
``marginal_cost`` and ``marginal_cost_quadratic`` as a polynomial cost, ``carrier`` as fuel),
loads (``p_set``, ``q_set``) and shunt impedances (``g_pu``, ``b_pu``). Time series, links,
storage units and stores are not imported. Buses are numbered 1.. in ``network.buses`` order.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from envs.powerflow import matpower
from envs.powerflow.case_data import Case, CaseError, one_line

BASE_MVA = 100.0  # per-unit base of a PyPSA import (PyPSA's own per unit is on 1 MVA)
DEFAULT_VMAX, DEFAULT_VMIN = 1.1, 0.9  # where PyPSA leaves voltage limits open (inf / 0)
MW_PER_MIN_PER_HOUR = 60.0
_log = logging.getLogger(__name__)


def _require(module: str):
    try:
        return __import__(module)
    except ImportError:
        raise CaseError(
            f"importing a {module} grid needs {module}: install the io extra "
            "(pip install 'gridpod[io]' or uv sync --extra io)"
        ) from None


def load_pandapower_json(path: str | Path) -> Case:
    """A pandapower network saved with ``pandapower.to_json``."""
    pandapower = _require("pandapower")
    try:
        net = pandapower.from_json(str(path))
    except Exception as error:  # pandapower wraps JSON, file and version errors its own ways
        raise CaseError(
            f"case file {str(path)!r} is not a pandapower network: {one_line(error)}"
        ) from None
    return from_pandapower(net, name=Path(path).stem)


def load_pypsa_netcdf(path: str | Path) -> Case:
    """A PyPSA network saved with ``Network.export_to_netcdf``."""
    pypsa = _require("pypsa")
    try:
        network = pypsa.Network(str(path))
    except Exception as error:  # xarray and the netCDF engines raise many types
        raise CaseError(
            f"case file {str(path)!r} is not a PyPSA network: {one_line(error)}"
        ) from None
    return from_pypsa(network, name=Path(path).stem)


def _checked(data: matpower.MatpowerData, name: str) -> Case:
    """The case a ``.m`` file of ``data`` gives (the reader's checks included)."""
    text = matpower.format_matpower(data, name="imported")
    return Case.from_matpower(matpower.parse_matpower(text, source=name), name=name)


# ------------------------------------------------------------------------------------------
# pandapower
# ------------------------------------------------------------------------------------------


def from_pandapower(net, name: str = "pandapower") -> Case:
    """The MATPOWER case data of a pandapower network (pandapower's converter)."""
    _require("pandapower")
    from pandapower.converter.matpower.to_mpc import to_mpc

    try:
        mpc = to_mpc(net, init="flat")["mpc"]
    except Exception as error:  # pandapower raises many types for a net it cannot convert
        raise CaseError(f"pandapower cannot convert {name}: {one_line(error)}") from None
    bus = np.array(mpc["bus"][:, : matpower.BUS_COLUMNS], dtype=np.float64)
    gen = np.array(mpc["gen"][:, : matpower.GEN_COLUMNS], dtype=np.float64)
    branch = np.array(mpc["branch"][:, : matpower.BRANCH_COLUMNS], dtype=np.float64)
    gen[:, 6] = np.where(np.isfinite(gen[:, 6]), gen[:, 6], mpc["baseMVA"])  # MBASE
    numbers = _pandapower_bus_numbers(net, len(bus))
    renumber = np.vectorize(lambda n: numbers[int(n) - 1])
    bus[:, 0] = numbers
    gen[:, 0] = renumber(gen[:, 0])
    branch[:, :2] = renumber(branch[:, :2])
    gencost = mpc.get("gencost")
    data = matpower.MatpowerData(
        base_mva=float(mpc["baseMVA"]),
        bus=_nan_to_zero(bus),
        gen=_nan_to_zero(gen),
        branch=_nan_to_zero(branch),
        gencost=None if gencost is None or len(gencost) == 0 else np.asarray(gencost, float),
    )
    return _checked(data, name)


def _nan_to_zero(array: np.ndarray) -> np.ndarray:
    """pandapower leaves columns it does not model (e.g. ramp rates) as NaN; MATPOWER has 0."""
    return np.where(np.isnan(array), 0.0, array)


def _pandapower_bus_numbers(net, n_ppc_bus: int) -> np.ndarray:
    """pandapower bus index + 1 for every converted bus (the smallest of fused buses)."""
    lookup = np.asarray(net._pd2ppc_lookups["bus"])
    numbers = np.full(n_ppc_bus, np.inf)
    for pp_index in net.bus.index:
        ppc_index = lookup[pp_index] if pp_index < len(lookup) else -1
        if 0 <= ppc_index < n_ppc_bus:
            numbers[ppc_index] = min(numbers[ppc_index], pp_index + 1)
    if not np.all(np.isfinite(numbers)):
        raise CaseError("pandapower conversion produced buses without a pandapower bus")
    return numbers


# ------------------------------------------------------------------------------------------
# PyPSA
# ------------------------------------------------------------------------------------------


def from_pypsa(network, name: str = "pypsa") -> Case:
    """The MATPOWER case data of a PyPSA network's static components (see module doc)."""
    _require("pypsa")
    network.calculate_dependent_values()
    buses = network.buses
    if len(buses) == 0:
        raise CaseError(f"PyPSA network {name} has no buses")
    number = {bus_name: i + 1 for i, bus_name in enumerate(buses.index)}
    gens = _active(network.generators)
    if len(gens) == 0:
        raise CaseError(f"PyPSA network {name} has no active generator")
    bus = _pypsa_buses(network, number, gens)
    gen, gencost, fuel = _pypsa_generators(gens, buses, number)
    branch = np.concatenate(
        [_pypsa_lines(network, number), _pypsa_transformers(network, number, name)]
    )
    if len(branch) == 0:
        raise CaseError(f"PyPSA network {name} has no lines or transformers")
    data = matpower.MatpowerData(
        base_mva=BASE_MVA, bus=bus, gen=gen, branch=branch, gencost=gencost, gen_fuel=fuel
    )
    return _checked(data, name)


def _active(frame):
    return frame[frame["active"]] if "active" in frame else frame


def _pypsa_buses(network, number: dict, gens) -> np.ndarray:
    buses = network.buses
    bus = np.zeros((len(buses), matpower.BUS_COLUMNS))
    bus[:, 0] = np.arange(1, len(buses) + 1)
    bus[:, 1] = 1
    loads = _active(network.loads)
    shunts = _active(network.shunt_impedances)
    for column, frame, field, scale in (
        (2, loads, "p_set", 1.0),
        (3, loads, "q_set", 1.0),
        (4, shunts, "g_pu", 1.0),
        (5, shunts, "b_pu", 1.0),
    ):
        rows = [number[b] - 1 for b in frame["bus"]]
        np.add.at(bus[:, column], rows, scale * frame[field].to_numpy(dtype=float))
    bus[:, 6] = 1  # area
    bus[:, 7] = buses["v_mag_pu_set"].to_numpy(dtype=float)
    bus[:, 9] = buses["v_nom"].to_numpy(dtype=float)
    bus[:, 10] = 1  # zone
    vmax = buses["v_mag_pu_max"].to_numpy(dtype=float)
    vmin = buses["v_mag_pu_min"].to_numpy(dtype=float)
    bus[:, 11] = np.where(np.isfinite(vmax), vmax, DEFAULT_VMAX)
    bus[:, 12] = np.where(vmin > 0, vmin, DEFAULT_VMIN)
    control = gens["control"].to_numpy()
    for kind, bus_type in (("PV", 2), ("Slack", 3)):
        bus[[number[b] - 1 for b in gens["bus"][control == kind]], 1] = bus_type
    if not np.any(bus[:, 1] > 1):
        slack_bus = gens["bus"].iloc[0]
        bus[number[slack_bus] - 1, 1] = 3
        _log.info("PyPSA network has no Slack or PV generator: bus %s is the slack", slack_bus)
    return bus


def _pypsa_generators(gens, buses, number: dict):
    p_nom = gens["p_nom"].to_numpy(dtype=float)
    gen = np.zeros((len(gens), matpower.GEN_COLUMNS))
    gen[:, 0] = [number[b] for b in gens["bus"]]
    gen[:, 1] = gens["p_set"].to_numpy(dtype=float)
    gen[:, 2] = gens["q_set"].to_numpy(dtype=float)
    gen[:, 3], gen[:, 4] = p_nom, -p_nom
    gen[:, 5] = buses.loc[gens["bus"], "v_mag_pu_set"].to_numpy(dtype=float)
    gen[:, 6] = BASE_MVA
    gen[:, 7] = 1
    gen[:, 8] = p_nom * gens["p_max_pu"].to_numpy(dtype=float)
    gen[:, 9] = p_nom * gens["p_min_pu"].to_numpy(dtype=float)
    ramp = gens["ramp_limit_up"].to_numpy(dtype=float) * p_nom / MW_PER_MIN_PER_HOUR
    gen[:, 16] = np.where(np.isfinite(ramp), ramp, 0.0)  # RAMP_AGC, MW/min
    quadratic = (
        gens["marginal_cost_quadratic"].to_numpy(dtype=float)
        if "marginal_cost_quadratic" in gens
        else np.zeros(len(gens))
    )
    linear = gens["marginal_cost"].to_numpy(dtype=float)
    zeros = np.zeros(len(gens))
    # MATPOWER polynomial rows: model 2, no start-up/shut-down cost, 3 coefficients c2 c1 c0.
    gencost = np.stack([zeros + 2.0, zeros, zeros, zeros + 3.0, quadratic, linear, zeros], axis=1)
    fuel = tuple(str(c).strip().lower() for c in gens["carrier"])
    return gen, gencost, fuel


def _branch_rows(frame, number: dict) -> np.ndarray:
    rows = np.zeros((len(frame), matpower.BRANCH_COLUMNS))
    rows[:, 0] = [number[b] for b in frame["bus0"]]
    rows[:, 1] = [number[b] for b in frame["bus1"]]
    rows[:, 2] = frame["r_pu"].to_numpy(dtype=float) * BASE_MVA
    rows[:, 3] = frame["x_pu"].to_numpy(dtype=float) * BASE_MVA
    rows[:, 4] = frame["b_pu"].to_numpy(dtype=float) / BASE_MVA
    rows[:, 5] = frame["s_nom"].to_numpy(dtype=float) * frame["s_max_pu"].to_numpy(dtype=float)
    rows[:, 10] = 1
    rows[:, 11], rows[:, 12] = -360, 360
    return rows


def _pypsa_lines(network, number: dict) -> np.ndarray:
    return _branch_rows(_active(network.lines), number)


def _pypsa_transformers(network, number: dict, name: str) -> np.ndarray:
    frame = _active(network.transformers)
    rows = _branch_rows(frame, number)
    tap = frame["tap_ratio"].to_numpy(dtype=float)
    on_bus1 = (frame["tap_side"].to_numpy() != 0) & (tap != 1)
    if np.any(on_bus1):
        raise CaseError(
            f"PyPSA network {name}: transformer {frame.index[on_bus1][0]} has its tap on bus1 "
            "(tap_side=1), which MATPOWER's branch model cannot hold"
        )
    rows[:, 8] = tap
    rows[:, 9] = frame["phase_shift"].to_numpy(dtype=float)
    return rows
