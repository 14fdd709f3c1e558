"""The evaluation report's figures and data, from hand-made results and a hand-made rollout."""

import sys
from types import SimpleNamespace

import numpy as np
import pytest
from matplotlib.container import ErrorbarContainer

from envs.powerflow.case import load_case
from envs.powerflow.grid import build_grid
from envs.render import figures
from launch import report

RESULTS = {
    "episodes": 2,
    "horizon": 8,
    "scenarios": {
        "normal": {
            "policy": {
                "cost": 150.0,
                "episode_cost": [100.0, 200.0],
                "gap_percent": 50.0,
                "steps": 8.0,
                "overload_steps": 1.0,
                "blackouts": 0.0,
                "per_episode": {"overload_steps": [0.0, 2.0], "steps": [8.0, 8.0]},
            },
            "do_nothing": {
                "cost": 300.0,
                "episode_cost": [300.0, 300.0],
                "gap_percent": 200.0,
                "steps": 6.0,
                "overload_steps": 4.0,
                "blackouts": 0.5,
            },
            "oracle": {
                "cost": 90.0,
                "episode_cost": [80.0, 100.0],
                "gap_percent": 0.0,
                "steps": 8.0,
                "overload_steps": 0.0,
                "blackouts": 0.0,
            },
        },
    },
}


def test_gaps_per_episode_come_from_the_episode_costs():
    table = report.scenario_table(RESULTS)["normal"]
    np.testing.assert_allclose(table["policy"]["gap_percent"], [25.0, 100.0])
    np.testing.assert_allclose(table["do_nothing"]["gap_percent"], [275.0, 200.0])
    assert table["oracle"]["gap_percent"] is None
    np.testing.assert_allclose(table["policy"]["cost"], [100.0, 200.0])


def test_counts_use_per_episode_values_where_kept_and_leave_the_oracle_out():
    table = report.counts_table(RESULTS)["normal"]
    assert set(table) == {"policy", "do_nothing"}
    np.testing.assert_allclose(table["policy"]["overload_steps"], [0.0, 2.0])
    assert table["do_nothing"]["overload_steps"] == 4.0  # only the mean was stored
    assert table["do_nothing"]["blackout_percent"] == 50.0


def test_the_report_figures_have_units_log_gaps_and_whiskers():
    fig = figures.plot_scenario_bars(report.scenario_table(RESULTS), RESULTS["episodes"])
    gap_ax = fig.axes[1]
    assert gap_ax.get_yscale() == "log" and "%" in gap_ax.get_ylabel()
    assert sum(isinstance(c, ErrorbarContainer) for c in gap_ax.containers) == 2
    counts = figures.plot_episode_counts(
        report.counts_table(RESULTS), report.COUNT_PANELS, RESULTS["episodes"], horizon=8
    )
    titles = [ax.get_title() for ax in counts.axes[: len(report.COUNT_PANELS)]]
    assert titles.index("episode length (a blackout ends it)") == 2  # beside the counts
    assert all(ax.get_ylabel() for ax in counts.axes[: len(report.COUNT_PANELS)])


@pytest.fixture(scope="module")
def rollout():
    """Two episodes of 3 steps on IEEE 14: episode 1's step 2 has the most loaded branch."""
    grid = build_grid(load_case("ieee14"))
    params = SimpleNamespace(
        grid=grid,
        devices=SimpleNamespace(
            is_wind=np.zeros(grid.n_gen, bool),
            is_solar=np.zeros(grid.n_gen, bool),
            storage_bus=np.zeros(0, int),
        ),
    )
    steps, episodes = 3, 2
    rating = np.asarray(grid.branch_rating)
    flow = np.broadcast_to(0.3 * rating, (steps, episodes, grid.n_branch)).copy()
    flow[2, 1, 4] = -1.1 * rating[4]  # the most loaded: 110 %, flowing to the from bus
    flow[1, 1, 6] = 2.0 * rating[6]  # more loaded, but out of service: not counted
    in_service = np.ones((steps, episodes, grid.n_branch), bool)
    in_service[1, 1, 6] = False
    record = SimpleNamespace(
        alive=np.ones((steps, episodes), bool),
        flow=flow,
        branch_in_service=in_service,
        pg=np.full((steps, episodes, grid.n_gen), 50.0),
        storage_p=np.zeros((steps, episodes, 0)),
        demand=np.broadcast_to(np.asarray(grid.bus_pd), (steps, episodes, grid.n_bus)),
        shed=np.zeros((steps, episodes, grid.n_bus)),
        info={"cost": np.arange(steps * episodes, dtype=float).reshape(steps, episodes) * 100},
    )
    return params, record


def test_the_diagram_shows_the_most_loaded_step_of_the_episode(rollout):
    params, record = rollout
    assert report.most_loaded_step(params, record, 1) == 2
    data = report.one_line_at(params, record, 1, 2)
    assert data.step == 3 and data.cost == 500.0  # steps are counted from 1 after the reset
    assert data.loading_percent[4] == pytest.approx(110.0, rel=1e-5)
    assert report._one_line_figure(params, record, 1).axes[0].get_title().startswith("policy")


def test_the_interactive_diagram_is_written_or_skipped_without_plotly(
    rollout, tmp_path, monkeypatch
):
    pytest.importorskip("plotly")
    params, record = rollout
    page = report.write_interactive_one_line(tmp_path, params, record, 1)
    assert page.name == report.INTERACTIVE_ONE_LINE and "loading 110.0 %" in page.read_text()
    monkeypatch.setitem(sys.modules, "plotly", None)
    monkeypatch.setitem(sys.modules, "plotly.graph_objects", None)
    assert report.write_interactive_one_line(tmp_path / "none", params, record, 1) is None
    page = report._html_figures({"scenarios": "scenarios.png"}, None)
    assert "viz extra" in page and "min–max" in page


def test_training_panels_put_the_episode_length_beside_the_counts(tmp_path):
    tensorboardx = pytest.importorskip("tensorboardX")
    writer = tensorboardx.SummaryWriter(str(tmp_path / "tensorboard"))
    for tag in ("episode/trips", "episode/length", "episode/cost", "episode/n_overloaded"):
        writer.add_scalar(tag, 1.0, 0)
    writer.close()
    fig = report._training_figure(tmp_path)
    titles = [ax.get_title() for ax in fig.axes if ax.axison]
    assert titles == ["episode cost", "episode length", "overloaded branches", "protective trips"]
    assert [ax.get_ylabel() for ax in fig.axes[:2]] == ["$ per episode", "steps"]
