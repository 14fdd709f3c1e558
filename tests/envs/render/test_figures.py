"""Every figure renders to a valid, non-blank PNG with labelled axes; event files round-trip."""

import numpy as np
import pytest
from matplotlib import image as mpimg
from matplotlib.container import ErrorbarContainer

from envs.render import figures

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def assert_real_png(path):
    data = path.read_bytes()
    assert data[:8] == PNG_SIGNATURE
    assert len(data) > 5_000
    pixels = mpimg.imread(path)
    assert pixels.ndim == 3 and np.var(pixels[..., :3]) > 1e-4


def test_episode_figures_are_non_blank(tmp_path):
    steps = 48
    hours = np.linspace(0, 4, steps)
    load = 200 + 30 * np.sin(hours)
    made = {
        "balance": figures.plot_power_balance(
            0.25,
            load,
            {"thermal": load - 40, "wind": np.full(steps, 35.0)},
            storage_mw=5 * np.sin(3 * hours),
            shed_mw=np.full(steps, 5.0),
        ),
        "profile": figures.plot_bus_profile(
            0.25,
            np.random.default_rng(1).normal(0, 0.1, (steps, 14)),
            "angle (rad)",
            frequency_hz=50 + 0.05 * np.sin(hours),
            frequency_band_hz=(49.8, 50.2),
        ),
        "actions": figures.plot_action_heatmap(
            np.tanh(np.random.default_rng(2).normal(size=(steps, 5, 2))),
            [f"gen {i}" for i in range(5)],
        ),
    }
    for name, fig in made.items():
        assert_real_png(figures.save_figure(fig, tmp_path / f"{name}.png"))


def test_heatmap_rejects_bad_shape():
    with pytest.raises(ValueError, match="actions"):
        figures.plot_action_heatmap(np.zeros(5))


def test_training_curves_read_back_from_tensorboardx_events(tmp_path):
    tensorboardx = pytest.importorskip("tensorboardX")
    writer = tensorboardx.SummaryWriter(str(tmp_path / "run"))
    for step in range(5):
        writer.add_scalar("train/return", float(step * step), step)
        writer.add_scalar("loss/value", 1.0 / (step + 1), step)
    writer.close()
    scalars = figures.read_scalars(tmp_path / "run")
    steps, values = scalars["train/return"]
    np.testing.assert_array_equal(steps, np.arange(5))
    np.testing.assert_allclose(values, np.arange(5) ** 2)
    assert set(scalars) == {"train/return", "loss/value"}
    assert_real_png(figures.save_figure(figures.plot_training_curves(scalars), tmp_path / "c.png"))


SCENARIO_TABLE = {  # per-episode values of 2 episodes; the oracle has no gap
    "normal": {
        "policy": {"cost": [1.0e4, 1.2e4], "gap_percent": [0.5, 0.7]},
        "do_nothing": {"cost": [2.0e4, 2.4e4], "gap_percent": [90.0, 110.0]},
        "oracle": {"cost": [0.99e4, 1.19e4], "gap_percent": None},
    },
    "peak_demand": {
        "policy": {"cost": [5.0e6, 6.0e6], "gap_percent": [-0.2, 15000.0]},
        "do_nothing": {"cost": [7.0e6, 7.0e6], "gap_percent": [20000.0, 20000.0]},
        "oracle": {"cost": [4.0e4, 4.5e4], "gap_percent": None},
    },
}


def _errorbars(ax):
    return [c for c in ax.containers if isinstance(c, ErrorbarContainer)]


def test_scenario_bars_use_log_axes_with_units_and_min_max_whiskers(tmp_path):
    fig = figures.plot_scenario_bars(SCENARIO_TABLE, n_episodes=2)
    cost_ax, gap_ax = fig.axes[:2]
    assert cost_ax.get_yscale() == gap_ax.get_yscale() == "log"
    assert "$" in cost_ax.get_ylabel() and "%" in gap_ax.get_ylabel()
    assert "min–max" in fig.get_suptitle()
    # Whiskers per method where episodes differ: 3 methods on cost, 2 on gap (no oracle gap);
    # do_nothing's two equal peak-demand gaps have no spread, so its gap whisker covers 1 bar.
    assert len(_errorbars(cost_ax)) == 3 and len(_errorbars(gap_ax)) == 2
    segments = [len(c.lines[2][0].get_segments()) for c in _errorbars(gap_ax)]
    assert segments == [2, 1]
    gap_bars = np.array([bar.get_height() for bar in gap_ax.patches])
    assert np.isnan(gap_bars).sum() == 2  # the oracle's empty slots
    # A negative episode is clipped to the floor, not lost.
    assert np.nanmin(gap_bars) >= figures.GAP_FLOOR_PERCENT
    labels = [t.get_text() for t in gap_ax.get_xticklabels()]
    assert labels == ["normal", "peak demand"]
    assert [t.get_text() for t in fig.legends[0].get_texts()] == ["policy", "do_nothing", "oracle"]
    assert_real_png(figures.save_figure(fig, tmp_path / "bars.png"))


def test_episode_counts_show_the_episode_length_beside_the_counts(tmp_path):
    table = {
        "normal": {
            "policy": {"overload_steps": [3.0, 5.0], "steps": [96.0, 96.0]},
            "do_nothing": {"overload_steps": 7.0, "steps": [40.0, 96.0]},
        },
    }
    panels = (
        ("overload_steps", "overload steps", "steps per episode"),
        ("steps", "episode length", "steps"),
    )
    fig = figures.plot_episode_counts(table, panels, n_episodes=2, horizon=96)
    counts_ax, length_ax = fig.axes[:2]
    assert [ax.get_ylabel() for ax in (counts_ax, length_ax)] == ["steps per episode", "steps"]
    assert len(_errorbars(counts_ax)) == 1  # do_nothing gave a mean only: no whisker
    assert len(_errorbars(length_ax)) == 1  # the policy never ended early: no spread
    horizon_lines = [line for line in length_ax.lines if line.get_linestyle() == "--"]
    assert len(horizon_lines) == 1 and horizon_lines[0].get_ydata()[0] == 96
    assert_real_png(figures.save_figure(fig, tmp_path / "counts.png"))


def test_training_curves_carry_titles_and_units():
    steps = np.arange(4)
    scalars = {"episode/cost": (steps, steps * 2.0), "custom/thing": (steps, steps * 1.0)}
    fig = figures.plot_training_curves(scalars, {"episode/cost": ("episode cost", "$")})
    cost_ax, other_ax = fig.axes[:2]
    assert (cost_ax.get_title(), cost_ax.get_ylabel()) == ("episode cost", "$")
    assert other_ax.get_title() == "custom/thing"
    assert cost_ax.get_xlabel() == "env steps"
