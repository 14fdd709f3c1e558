"""pandapower and PyPSA networks become the same case data, and the same DC flows, as MATPOWER."""

import sys
import warnings

import numpy as np
import pytest

from envs.powerflow import grid_import
from envs.powerflow.case import CaseError, load_case
from envs.powerflow.grid import _dc_matrices, _network_numpy, dc_flows_numpy

pandapower = pytest.importorskip("pandapower")
pypsa = pytest.importorskip("pypsa")


def _dc_flows(case, order=None):
    """DC branch flows [L] MW at the case's own dispatch (every branch is in service)."""
    net = _network_numpy(case)
    net.update(_dc_matrices(net))
    injection = net["gen_to_bus"] @ net["gen_pg0"] - net["bus_pd"] - net["bus_gs"]
    return dc_flows_numpy(net, injection, case.base_mva)


def _matching_rows(case, reference):
    """Index of each of ``case``'s branches among ``reference``'s (same from and to bus)."""
    rows = {(int(f), int(t)): i for i, (f, t) in enumerate(reference.branch[:, :2])}
    return np.array([rows[(int(f), int(t))] for f, t in case.branch[:, :2]])


@pytest.fixture(scope="module")
def ieee14():
    return load_case("ieee14")


@pytest.fixture(scope="module")
def pandapower_case14():
    from pandapower import networks

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return networks.case14()


@pytest.fixture(scope="module")
def pypsa_case14(ieee14):
    network = pypsa.Network()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        network.import_from_pypower_ppc(ieee14.to_ppc())
    return network


def test_pandapower_network_gives_matpower_flows_and_its_own(ieee14, pandapower_case14):
    net = pandapower_case14
    case = grid_import.from_pandapower(net, name="pp14")
    assert case.bus.shape == ieee14.bus.shape and case.gen.shape[0] == ieee14.gen.shape[0]
    np.testing.assert_array_equal(case.bus[:, 0], np.arange(1, 15))  # pandapower index + 1
    flows = _dc_flows(case)
    np.testing.assert_allclose(flows, _dc_flows(ieee14)[_matching_rows(case, ieee14)], atol=1e-6)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        pandapower.rundcpp(net)
    own = np.concatenate([net.res_line.p_from_mw, net.res_trafo.p_hv_mw])  # lines, then trafos
    np.testing.assert_allclose(flows, own, atol=1e-6)


def test_pypsa_network_gives_matpower_flows_and_its_own(ieee14, pypsa_case14):
    network = pypsa_case14
    case = grid_import.from_pypsa(network, name="pypsa14")
    flows = _dc_flows(case)
    np.testing.assert_allclose(flows, _dc_flows(ieee14)[_matching_rows(case, ieee14)], atol=1e-6)
    np.testing.assert_allclose(case.bus[:, 2], ieee14.bus[:, 2])
    assert case.bus[0, 1] == 3 and case.gen_fuel == ("",) * 5
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        network.lpf()
    own = np.concatenate([network.lines_t.p0.iloc[0], network.transformers_t.p0.iloc[0]])
    np.testing.assert_allclose(flows, own, atol=1e-6)


def test_pypsa_carriers_become_renewables(pypsa_case14):
    network = pypsa_case14.copy()
    network.generators.loc[["G2", "G3"], "carrier"] = ["onwind", "Solar"]
    case = grid_import.from_pypsa(network, name="pypsa14")
    assert case.gen_fuel[2:4] == ("onwind", "solar")
    from envs.powerflow.grid import build_grid
    from envs.sim.devices import automatic_devices

    chosen = automatic_devices(case, build_grid(case))
    assert chosen["wind_buses"] == (3,) and chosen["solar_buses"] == (6,)


def test_saved_networks_load_as_env_cases(tmp_path, ieee14, pandapower_case14, pypsa_case14):
    json_path = tmp_path / "grid.json"
    pandapower.to_json(pandapower_case14, str(json_path))
    case = load_case(str(json_path))
    assert case.name == "grid" and case.bus.shape == ieee14.bus.shape
    nc_path = tmp_path / "grid.nc"
    try:
        pypsa_case14.export_to_netcdf(str(nc_path))
    except (ImportError, ValueError) as error:  # no netCDF engine in this environment
        pytest.skip(f"PyPSA cannot write netCDF here: {error}")
    case = load_case(str(nc_path))
    np.testing.assert_allclose(
        _dc_flows(case), _dc_flows(ieee14)[_matching_rows(case, ieee14)], atol=1e-6
    )


def test_a_missing_library_names_the_io_extra(monkeypatch, pypsa_case14):
    monkeypatch.setitem(sys.modules, "pypsa", None)  # import pypsa now raises ImportError
    with pytest.raises(CaseError, match="needs pypsa: install the io extra"):
        grid_import.from_pypsa(pypsa_case14)


def test_an_unreadable_saved_network_is_one_line(tmp_path):
    path = tmp_path / "broken.json"
    path.write_text("{not json")
    with pytest.raises(
        CaseError, match=r"case file .*broken\.json' is not a pandapower network"
    ) as caught:
        load_case(str(path))
    assert "\n" not in str(caught.value)
