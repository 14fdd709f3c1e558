"""One-line diagrams: what is drawn (read off the matplotlib objects) and the HTML hover texts."""

import re
import sys
from types import SimpleNamespace

import numpy as np
import pytest
from matplotlib.collections import LineCollection, PathCollection

from envs.powerflow.case import Case, load_case
from envs.powerflow.connectivity import energised_buses
from envs.powerflow.grid import build_grid
from envs.render import one_line, one_line_html

TRIPPED = (1, 5)


@pytest.fixture(scope="module")
def params():
    try:
        case = load_case("ieee14")
    except (ValueError, FileNotFoundError):
        case = Case.from_ppc(pytest.importorskip("pypower.api").case14(), name="ieee14")
    grid = build_grid(case)
    devices = SimpleNamespace(
        is_wind=np.arange(grid.n_gen) == 2,
        is_solar=np.arange(grid.n_gen) == 3,
        storage_bus=np.array([8]),
    )
    return SimpleNamespace(grid=grid, devices=devices)


@pytest.fixture(scope="module")
def state(params):
    """A DC state of the case's base load with two branches out (flows from the PTDF)."""
    grid = params.grid
    demand = np.asarray(grid.bus_pd, float)
    pg = np.asarray(grid.gen_pmax, float) * demand.sum() / float(np.sum(grid.gen_pmax))
    injection = np.asarray(grid.gen_to_bus) @ pg - demand
    flow = np.asarray(grid.ptdf, float) @ injection
    in_service = np.ones(grid.n_branch, bool)
    in_service[list(TRIPPED)] = False
    flow[~in_service] = 0.0
    shed = np.zeros(grid.n_bus)
    shed[3] = 12.5
    return SimpleNamespace(
        t=np.int32(7),
        pg=pg,
        storage_p=np.array([-4.0]),
        demand=demand,
        shed=shed,
        flow=flow,
        branch_in_service=in_service,
        energised=np.ones(grid.n_bus, bool),
    )


@pytest.fixture(scope="module")
def data(state, params):
    return one_line.from_state(state, params, cost=1234.0)


def test_diagram_colours_branches_by_loading_and_marks_tripped_ones(data):
    fig = one_line.plot_one_line(data, "test")
    ax = fig.axes[0]
    lines = [c for c in ax.collections if isinstance(c, LineCollection)]
    coloured = [c for c in lines if c.get_array() is not None]
    dashed = [c for c in lines if c.get_linestyle()[0][1] is not None]
    assert len(coloured) == 1 and len(dashed) == 1
    np.testing.assert_allclose(coloured[0].get_array(), data.loading_percent[data.in_service])
    assert len(dashed[0].get_segments()) == len(TRIPPED)
    crosses = [
        c
        for c in ax.collections
        if isinstance(c, PathCollection)
        and np.allclose(c.get_facecolor()[:, :3], (1, 0, 0))
        and len(c.get_offsets()) == 2
    ]
    middle = (data.bus_xy[data.branch_from] + data.bus_xy[data.branch_to])[list(TRIPPED)] / 2
    np.testing.assert_allclose(np.asarray(crosses[0].get_offsets()), middle)
    assert "%" in fig.axes[1].get_ylabel()  # the colour bar
    numbers = {t.get_text() for t in ax.texts}
    assert {str(n) for n in range(1, 15)} <= numbers
    assert ax.get_title() == "test: step 7, step cost $1,234"


def test_marker_area_is_proportional_to_mw(data):
    ax = one_line.plot_one_line(data).axes[0]
    loads = [
        c
        for c in ax.collections
        if isinstance(c, PathCollection) and len(c.get_offsets()) == np.sum(data.load_mw > 1e-3)
    ]
    sizes = loads[0].get_sizes()
    served = data.load_mw[data.load_mw > 1e-3]
    np.testing.assert_allclose(sizes / sizes.max(), served / served.max(), rtol=1e-6)


def _hover_entries(html_text: str, pattern: str) -> list[tuple[str, ...]]:
    text = html_text.replace("\\u003c", "<").replace("\\u003e", ">")
    return re.findall(pattern, text)


def test_html_has_one_hover_entry_per_branch_with_its_flow_and_rating(data, tmp_path):
    pytest.importorskip("plotly")
    path = one_line_html.write_one_line_html(tmp_path / "one_line.html", data)
    page = path.read_text()
    assert "<html>" in page and "Plotly.newPlot" in page  # self-contained: plotly.js inlined
    entries = _hover_entries(
        page,
        r"branch (\d+): from bus (\d+) to bus (\d+)<br>flow "
        r"(-?[\d.]+) MW<br>rating ([\d.]+) MW<br>loading ([\d.]+) %"
        r"(<br>OUT OF SERVICE)?",
    )
    assert [int(e[0]) for e in entries] == list(range(1, len(data.flow_mw) + 1))
    for k, (_, frm, to, flow, rating, loading, out) in enumerate(entries):
        assert (int(frm), int(to)) == (data.branch_from[k] + 1, data.branch_to[k] + 1)
        assert float(flow) == pytest.approx(data.flow_mw[k], abs=0.051)
        assert float(rating) == pytest.approx(data.rating_mw[k], abs=0.051)
        assert float(loading) == pytest.approx(data.loading_percent[k], abs=0.051)
        assert bool(out) == (k in TRIPPED)
    buses = _hover_entries(
        page,
        r"bus (\d+)<br>load ([\d.]+) MW<br>generation ([\d.]+) MW"
        r"(?:<br>battery [-+\d.]+ MW)?<br>shed ([\d.]+) MW",
    )
    assert len(buses) == len(data.bus_xy)
    assert float(buses[3][3]) == 12.5 and float(buses[3][1]) == pytest.approx(data.load_mw[3], 0.01)


def test_missing_plotly_is_one_clear_error(data, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "plotly", None)
    monkeypatch.setitem(sys.modules, "plotly.graph_objects", None)
    with pytest.raises(one_line_html.PlotlyMissingError, match="viz extra"):
        one_line_html.write_one_line_html(tmp_path / "x.html", data)


def test_wrong_shapes_are_rejected(state, params):
    with pytest.raises(ValueError, match="flow must have shape"):
        one_line.from_arrays(
            params,
            0,
            state.pg,
            state.storage_p,
            state.demand,
            state.shed,
            state.flow[:-1],
            state.branch_in_service,
            state.energised,
        )
    with pytest.raises(ValueError, match="one grid"):
        one_line.from_state(SimpleNamespace(t=np.zeros(3)), params)


def test_cutting_the_only_branch_to_a_bus_de_energises_it(params):
    grid = params.grid
    in_service = np.ones(grid.n_branch, bool)
    to_bus_8 = np.flatnonzero(
        (np.asarray(grid.branch_to) == 7) | (np.asarray(grid.branch_from) == 7)
    )
    assert len(to_bus_8) == 1  # IEEE 14: bus 8 hangs on the branch 7-8
    in_service[to_bus_8] = False
    energised = energised_buses(grid, in_service)
    assert np.flatnonzero(~energised).tolist() == [7]


def test_episode_animation_is_a_gif(data, tmp_path):
    frames = [data, one_line.OneLineData(**{**data.__dict__, "step": 8})]
    path = one_line.animate_one_line(tmp_path / "ep.gif", frames, "test")
    raw = path.read_bytes()
    assert raw[:6] in (b"GIF89a", b"GIF87a") and len(raw) > 5_000


def test_html_accepts_a_unit_drawing_slightly_negative_power(data, tmp_path):
    pytest.importorskip("plotly")
    pg = data.gen_mw.copy()
    pg[0] = -1e-4  # solver residue on an idle unit
    nudged = one_line.OneLineData(**{**data.__dict__, "gen_mw": pg})
    page = one_line_html.write_one_line_html(tmp_path / "n.html", nudged).read_text()
    assert "battery at bus 9: -4.0 MW" in page


def test_a_shared_mw_scale_keeps_marker_sizes_comparable_across_frames(data):
    def load_sizes(fig):
        served = np.sum(data.load_mw > 1e-3)
        loads = [
            c
            for c in fig.axes[0].collections
            if isinstance(c, PathCollection) and len(c.get_offsets()) == served
        ]
        return loads[0].get_sizes()

    own = load_sizes(one_line.plot_one_line(data))
    fig = one_line.plot_one_line(data)
    one_line.draw_one_line(fig, data, mw_scale=2 * one_line.mw_of_largest_marker(data))
    np.testing.assert_allclose(load_sizes(fig), own / 2)
