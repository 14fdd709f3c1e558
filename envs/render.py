"""Pictures of grids and episodes (matplotlib, Agg canvas; no GUI backend is ever selected).

Every ``plot_*`` function takes plain arrays and returns a ``matplotlib.figure.Figure``;
``save_figure`` writes it as a PNG. ``read_scalars`` reads the training curves out of
TensorBoard event files with tensorboardX's protos (no TensorFlow needed).
"""

from __future__ import annotations

import struct
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
from matplotlib import animation, colors
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.collections import LineCollection
from matplotlib.figure import Figure

LOADING_CMAP = "RdYlGn_r"  # green when lightly loaded, red at and above the rating
BUS_CMAP = "coolwarm"


def new_figure(width: float = 8.0, height: float = 5.0) -> Figure:
    """A figure on its own Agg canvas (safe in threads and without a display)."""
    fig = Figure(figsize=(width, height), layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def save_figure(fig: Figure, path: str | Path, dpi: int = 110) -> Path:
    """Writes ``fig`` as PNG (creating parent folders) and returns the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=dpi, format="png")
    return path


def _grid_artists(ax, bus_xy, branch_from, branch_to, loading, in_service, bus_value, label):
    """Draws branches (coloured by loading, outages dashed red with an X) and buses."""
    segments = np.stack([bus_xy[branch_from], bus_xy[branch_to]], axis=1)  # [L, 2, 2]
    norm = colors.Normalize(0.0, 1.2)
    lines = LineCollection(
        segments[in_service], cmap=LOADING_CMAP, norm=norm, linewidths=2.5, zorder=1
    )
    lines.set_array(loading[in_service])
    ax.add_collection(lines)
    tripped = segments[~in_service]
    ax.add_collection(
        LineCollection(tripped, colors="red", linestyles="dashed", linewidths=1.5, zorder=1)
    )
    middle = tripped.mean(axis=1)
    ax.scatter(middle[:, 0], middle[:, 1], marker="x", c="red", s=60, zorder=3)
    limit = max(float(np.max(np.abs(bus_value))), 1e-9)
    buses = ax.scatter(
        bus_xy[:, 0], bus_xy[:, 1], c=bus_value, cmap=BUS_CMAP, s=70, edgecolors="black",
        vmin=-limit if np.min(bus_value) < 0 else float(np.min(bus_value)), vmax=limit, zorder=2,
    )  # fmt: skip
    ax.set_aspect("equal")
    ax.margins(0.05)
    ax.set_xticks([])
    ax.set_yticks([])
    return lines, buses


def plot_grid(
    bus_xy: np.ndarray,
    branch_from: np.ndarray,
    branch_to: np.ndarray,
    branch_loading: np.ndarray,
    branch_in_service: np.ndarray | None = None,
    bus_value: np.ndarray | None = None,
    bus_label: str = "voltage angle (rad)",
    title: str = "",
) -> Figure:
    """The grid as a graph: branch colour = |flow| / rating, tripped branches dashed red.

    Args: bus_xy [N, 2]; branch_from/branch_to [L] bus indices; branch_loading [L] (1 = at the
    rating); branch_in_service [L] bool; bus_value [N] (angle for DC, |V| for AC).
    """
    bus_xy = np.asarray(bus_xy, dtype=float)
    n_branch = len(branch_from)
    in_service = np.ones(n_branch, bool) if branch_in_service is None else branch_in_service
    bus_value = np.zeros(len(bus_xy)) if bus_value is None else np.asarray(bus_value, float)
    if bus_xy.ndim != 2 or bus_xy.shape[1] != 2:
        raise ValueError(f"bus_xy must be [N, 2], got shape {bus_xy.shape}")
    fig = new_figure(7.0, 6.0)
    ax = fig.add_subplot()
    lines, buses = _grid_artists(
        ax, bus_xy, np.asarray(branch_from), np.asarray(branch_to),
        np.abs(np.asarray(branch_loading, float)), np.asarray(in_service, bool), bus_value, bus_label,
    )  # fmt: skip
    fig.colorbar(lines, ax=ax, label="branch loading |flow| / rating", shrink=0.7)
    fig.colorbar(buses, ax=ax, label=bus_label, shrink=0.7)
    ax.set_title(title or "grid state")
    return fig


def plot_power_balance(
    dt_hours: float,
    load_mw: np.ndarray,
    generation_mw: Mapping[str, np.ndarray],
    storage_mw: np.ndarray | None = None,
    shed_mw: np.ndarray | None = None,
) -> Figure:
    """Stacked supply (generation by type, storage discharge, shedding) against the load.

    Args: load_mw [T]; generation_mw {type name: [T]}; storage_mw [T] (+ discharge, - charge);
    shed_mw [T] (drawn on top as unserved load).
    """
    load = np.asarray(load_mw, dtype=float)
    hours = np.arange(load.shape[0]) * dt_hours
    layers = {name: np.asarray(v, float) for name, v in generation_mw.items()}
    if storage_mw is not None:
        layers["storage (discharge)"] = np.maximum(np.asarray(storage_mw, float), 0.0)
    if shed_mw is not None:
        layers["shed load"] = np.asarray(shed_mw, float)
    fig = new_figure(9.0, 4.5)
    ax = fig.add_subplot()
    ax.stackplot(hours, *layers.values(), labels=list(layers), alpha=0.85)
    if storage_mw is not None:
        charging = np.minimum(np.asarray(storage_mw, float), 0.0)
        ax.fill_between(hours, charging, 0.0, color="grey", alpha=0.5, label="storage (charge)")
    ax.plot(hours, load, color="black", linewidth=1.5, label="load")
    ax.set_xlabel("time (h)")
    ax.set_ylabel("MW")
    ax.set_title("power balance")
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize="small")
    return fig


def plot_bus_profile(
    dt_hours: float,
    bus_values: np.ndarray,
    label: str,
    frequency_hz: np.ndarray | None = None,
    frequency_band_hz: tuple[float, float] | None = None,
) -> Figure:
    """Spread of a bus quantity over time (min / median / max band) and the frequency.

    Args: bus_values [T, N] (|V| p.u. for AC, angle rad for DC); frequency_hz [T].
    """
    values = np.asarray(bus_values, dtype=float)
    hours = np.arange(values.shape[0]) * dt_hours
    fig = new_figure(9.0, 5.5)
    axes = fig.subplots(2 if frequency_hz is not None else 1, 1, sharex=True, squeeze=False)[:, 0]
    low, mid, high = np.percentile(values, [0, 50, 100], axis=1)
    axes[0].fill_between(hours, low, high, alpha=0.3, label="min–max over buses")
    axes[0].plot(hours, mid, label="median bus")
    axes[0].set_ylabel(label)
    axes[0].legend(fontsize="small")
    if frequency_hz is not None:
        axes[1].plot(hours, np.asarray(frequency_hz, float), color="tab:purple")
        for bound in frequency_band_hz or ():
            axes[1].axhline(bound, color="red", linestyle="dotted")
        axes[1].set_ylabel("frequency (Hz)")
    axes[-1].set_xlabel("time (h)")
    return fig


def plot_action_heatmap(
    actions: np.ndarray,
    agent_names: Sequence[str] | None = None,
    action_mask: np.ndarray | None = None,
) -> Figure:
    """Agents × time heat-map of actions in [-1, 1] (mean over each agent's used action dims).

    Args: actions [T, A] or [T, A, U]; action_mask [A, U] bool (padded dims left out).
    """
    acts = np.asarray(actions, dtype=float)
    if acts.ndim == 3:
        mask = np.ones(acts.shape[1:], bool) if action_mask is None else np.asarray(action_mask)
        used = np.maximum(mask.sum(axis=-1), 1)
        acts = np.where(mask[None], acts, 0.0).sum(axis=-1) / used[None]
    if acts.ndim != 2:
        raise ValueError(f"actions must be [T, A] or [T, A, U], got shape {np.shape(actions)}")
    fig = new_figure(9.0, 1.5 + 0.25 * acts.shape[1])
    ax = fig.add_subplot()
    image = ax.imshow(acts.T, aspect="auto", cmap="RdBu_r", vmin=-1, vmax=1, interpolation="none")
    ax.set_xlabel("step")
    ax.set_ylabel("agent")
    if agent_names is not None and len(agent_names) <= 40:
        ax.set_yticks(range(len(agent_names)), list(agent_names), fontsize="small")
    fig.colorbar(image, ax=ax, label="action")
    return fig


def plot_scenario_bars(table: Mapping[str, Mapping[str, Mapping[str, float]]]) -> Figure:
    """Mean episode cost and optimality gap per scenario, one bar per method.

    Args: table[scenario][method] = {"mean_cost": ..., "gap_percent": ...}.
    """
    scenarios = list(table)
    methods = list(dict.fromkeys(m for s in scenarios for m in table[s]))
    fig = new_figure(10.0, 4.5)
    axes = fig.subplots(1, 2)
    width = 0.8 / max(len(methods), 1)
    x = np.arange(len(scenarios))
    for i, method in enumerate(methods):
        for ax, key in zip(axes, ("mean_cost", "gap_percent"), strict=True):
            heights = [table[s].get(method, {}).get(key, np.nan) for s in scenarios]
            ax.bar(x + i * width, np.asarray(heights, float), width, label=method)
    for ax, title in zip(axes, ("mean episode cost ($)", "optimality gap (%)"), strict=True):
        ax.set_xticks(x + width * (len(methods) - 1) / 2, scenarios, rotation=20)
        ax.set_title(title)
    axes[0].legend(fontsize="small")
    return fig


def plot_training_curves(scalars: Mapping[str, tuple[np.ndarray, np.ndarray]]) -> Figure:
    """One panel per scalar tag, in the given order: value against step (``read_scalars``)."""
    tags = list(scalars)
    cols = min(3, max(len(tags), 1))
    rows = max(1, -(-len(tags) // cols))
    fig = new_figure(4.0 * cols, 2.8 * rows)
    axes = np.atleast_1d(fig.subplots(rows, cols, squeeze=False)).ravel()
    for ax, tag in zip(axes, tags, strict=False):
        steps, values = scalars[tag]
        ax.plot(steps, values)
        ax.set_title(tag, fontsize="small")
        ax.set_xlabel("step", fontsize="small")
    for ax in axes[len(tags) :]:
        ax.axis("off")
    if not tags:
        axes[0].text(0.5, 0.5, "no training scalars found", ha="center", va="center")
    return fig


def animate_episode(
    path: str | Path,
    bus_xy: np.ndarray,
    branch_from: np.ndarray,
    branch_to: np.ndarray,
    branch_loading: np.ndarray,
    branch_in_service: np.ndarray,
    bus_value: np.ndarray,
    fps: int = 4,
    max_frames: int = 60,
) -> Path:
    """Animated GIF of one episode's grid states (PillowWriter), at most ``max_frames`` frames.

    Args: branch_loading [T, L], branch_in_service [T, L] bool, bus_value [T, N].
    """
    loading = np.abs(np.asarray(branch_loading, float))
    n_steps = loading.shape[0]
    frames = np.unique(np.linspace(0, n_steps - 1, min(n_steps, max_frames)).astype(int))
    fig = new_figure(6.0, 5.5)
    ax = fig.add_subplot()

    def draw(t):
        ax.clear()
        _grid_artists(ax, np.asarray(bus_xy, float), np.asarray(branch_from),
                      np.asarray(branch_to), loading[t], np.asarray(branch_in_service[t], bool),
                      np.asarray(bus_value[t], float), "")  # fmt: skip
        ax.set_title(f"step {t}")
        return ()

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    movie = animation.FuncAnimation(fig, draw, frames=frames, blit=False)
    movie.save(path, writer=animation.PillowWriter(fps=fps))
    return path


def _tfrecords(data: bytes):
    """Payloads of a TFRecord stream: [u64 length][u32 crc][payload][u32 crc] repeated."""
    pos = 0
    while pos + 12 <= len(data):
        (length,) = struct.unpack("<Q", data[pos : pos + 8])
        start = pos + 12
        if start + length > len(data):
            return  # truncated tail of a file still being written
        yield data[start : start + length]
        pos = start + length + 4


def _scalar_of(value) -> float | None:
    if value.WhichOneof("value") == "simple_value":
        return float(value.simple_value)
    tensor = value.tensor if value.HasField("tensor") else None
    if tensor is not None and (tensor.float_val or tensor.double_val):
        return float((list(tensor.float_val) or list(tensor.double_val))[0])
    return None


def read_scalars(run_dir: str | Path) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """All scalar series {tag: (steps, values)} in the event files under ``run_dir``."""
    from tensorboardX.proto import event_pb2  # the protos tensorboardX writes with

    series: dict[str, list[tuple[int, float]]] = {}
    for event_file in sorted(Path(run_dir).rglob("events.out.tfevents*")):
        for record in _tfrecords(event_file.read_bytes()):
            event = event_pb2.Event.FromString(record)
            if not event.HasField("summary"):
                continue
            for value in event.summary.value:
                scalar = _scalar_of(value)
                if scalar is not None:
                    series.setdefault(value.tag, []).append((int(event.step), scalar))
    out = {}
    for tag, points in series.items():
        points.sort(key=lambda p: p[0])
        out[tag] = (np.array([p[0] for p in points]), np.array([p[1] for p in points]))
    return out
