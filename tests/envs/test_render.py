"""Every figure renders to a valid, non-blank PNG; event files and GIFs round-trip."""

import numpy as np
import pytest
from matplotlib import image as mpimg

from envs import render
from envs.case import Case, load_case
from envs.grid import build_grid

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def grid():
    try:
        case = load_case("ieee14")
    except (ValueError, FileNotFoundError):
        case = Case.from_ppc(pytest.importorskip("pypower.api").case14(), name="ieee14")
    return build_grid(case)


def assert_real_png(path):
    data = path.read_bytes()
    assert data[:8] == PNG_SIGNATURE
    assert len(data) > 5_000
    pixels = mpimg.imread(path)
    assert pixels.ndim == 3 and np.var(pixels[..., :3]) > 1e-4


def test_grid_picture_marks_tripped_branches(grid, tmp_path):
    rng = np.random.default_rng(0)
    in_service = np.ones(grid.n_branch, bool)
    in_service[[1, 5]] = False
    fig = render.plot_grid(np.asarray(grid.bus_xy), np.asarray(grid.branch_from),
                           np.asarray(grid.branch_to), rng.uniform(0, 1.3, grid.n_branch),
                           in_service, rng.normal(0, 0.1, grid.n_bus))  # fmt: skip
    ax = fig.axes[0]
    dashed = [c for c in ax.collections if c.get_linestyle()[0][1] is not None]
    assert sum(len(c.get_segments()) for c in dashed) == 2
    assert_real_png(render.save_figure(fig, tmp_path / "grid.png"))


def test_episode_figures_are_non_blank(tmp_path):
    steps = 48
    hours = np.linspace(0, 4, steps)
    load = 200 + 30 * np.sin(hours)
    figures = {
        "balance": render.plot_power_balance(
            0.25, load, {"thermal": load - 40, "wind": np.full(steps, 35.0)},
            storage_mw=5 * np.sin(3 * hours), shed_mw=np.full(steps, 5.0),
        ),
        "profile": render.plot_bus_profile(
            0.25, np.random.default_rng(1).normal(0, 0.1, (steps, 14)), "angle (rad)",
            frequency_hz=50 + 0.05 * np.sin(hours), frequency_band_hz=(49.8, 50.2),
        ),
        "actions": render.plot_action_heatmap(np.tanh(np.random.default_rng(2).normal(
            size=(steps, 5, 2))), [f"gen {i}" for i in range(5)]),
        "bars": render.plot_scenario_bars({
            "normal": {"policy": {"mean_cost": 10.0, "gap_percent": 5.0},
                       "oracle": {"mean_cost": 9.5, "gap_percent": 0.0}},
            "peak": {"policy": {"mean_cost": 14.0, "gap_percent": 8.0},
                     "oracle": {"mean_cost": 13.0, "gap_percent": 0.0}},
        }),
    }  # fmt: skip
    for name, fig in figures.items():
        assert_real_png(render.save_figure(fig, tmp_path / f"{name}.png"))


def test_heatmap_rejects_bad_shape():
    with pytest.raises(ValueError, match="actions"):
        render.plot_action_heatmap(np.zeros(5))


def test_training_curves_read_back_from_tensorboardx_events(tmp_path):
    tensorboardx = pytest.importorskip("tensorboardX")
    writer = tensorboardx.SummaryWriter(str(tmp_path / "run"))
    for step in range(5):
        writer.add_scalar("train/return", float(step * step), step)
        writer.add_scalar("loss/value", 1.0 / (step + 1), step)
    writer.close()
    scalars = render.read_scalars(tmp_path / "run")
    steps, values = scalars["train/return"]
    np.testing.assert_array_equal(steps, np.arange(5))
    np.testing.assert_allclose(values, np.arange(5) ** 2)
    assert set(scalars) == {"train/return", "loss/value"}
    assert_real_png(render.save_figure(render.plot_training_curves(scalars), tmp_path / "c.png"))


def test_episode_animation_is_a_gif(grid, tmp_path):
    steps = 4
    loading = np.linspace(0.2, 1.2, steps)[:, None] * np.ones((1, grid.n_branch))
    in_service = np.ones((steps, grid.n_branch), bool)
    in_service[2:, 3] = False
    path = render.animate_episode(tmp_path / "ep.gif", np.asarray(grid.bus_xy),
                                  np.asarray(grid.branch_from), np.asarray(grid.branch_to),
                                  loading, in_service, np.zeros((steps, grid.n_bus)))  # fmt: skip
    data = path.read_bytes()
    assert data[:6] in (b"GIF89a", b"GIF87a") and len(data) > 5_000
