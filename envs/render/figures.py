"""Pictures of episodes and evaluations (matplotlib, Agg canvas; no GUI backend is ever selected).

Every ``plot_*`` function takes plain arrays and returns a ``matplotlib.figure.Figure``;
``save_figure`` writes it as a PNG. The grid itself is drawn by ``envs.render.one_line``.
``read_scalars`` reads the training curves out of TensorBoard event files with tensorboardX's
protos (no TensorFlow needed).
"""

from __future__ import annotations

import struct
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
from matplotlib import ticker
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

SPREAD_LABEL = "whiskers: min–max over episodes"
GAP_FLOOR_PERCENT = 0.01  # a log axis has no zero: smaller (and negative) gaps are drawn here


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
    ax.set_ylabel("power (MW)")
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


def _readable(name: str) -> str:
    return name.replace("_", " ")


def _spread(values) -> tuple[float, float, float]:
    """(mean, min, max) of per-episode values; NaN for none."""
    array = np.atleast_1d(np.asarray([] if values is None else values, dtype=float))
    array = array[np.isfinite(array)]
    if array.size == 0:
        return np.nan, np.nan, np.nan
    return float(array.mean()), float(array.min()), float(array.max())


def grouped_bars(ax, table, methods: Sequence[str], key: str, colours, floor: float | None = None):
    """One bar per method and scenario: the mean over episodes, with min–max whiskers where a
    cell holds more than one episode. ``table[scenario][method][key]`` is a value or a sequence
    of per-episode values; ``floor`` clips bars and whiskers from below (for log axes)."""
    scenarios = list(table)
    width = 0.8 / max(len(methods), 1)
    x = np.arange(len(scenarios))
    for i, method in enumerate(methods):
        cells = [_spread(table[s].get(method, {}).get(key)) for s in scenarios]
        mean, low, high = (np.array(column) for column in zip(*cells, strict=True))
        if floor is not None:
            mean, low, high = (np.maximum(v, floor) for v in (mean, low, high))
        centres = x + (i - (len(methods) - 1) / 2) * width
        ax.bar(centres, mean, width, label=method, color=colours[method])
        spread = np.isfinite(mean) & (high > low)
        counts = [np.size(table[s].get(method, {}).get(key)) for s in scenarios]
        spread &= np.array(counts) > 1
        if spread.any():
            ax.errorbar(
                centres[spread],
                mean[spread],
                yerr=[mean[spread] - low[spread], high[spread] - mean[spread]],
                fmt="none",
                ecolor="black",
                elinewidth=0.9,
                capsize=2.0,
            )
    ax.set_xticks(x, [_readable(s) for s in scenarios], rotation=20, ha="right")
    ax.grid(axis="y", alpha=0.3)


def method_colours(methods: Sequence[str]) -> dict[str, str]:
    """A fixed colour per method, the same in every evaluation figure."""
    return {m: f"C{i % 10}" for i, m in enumerate(methods)}


def plot_scenario_bars(table: Mapping[str, Mapping[str, Mapping]], n_episodes: int) -> Figure:
    """Episode cost ($, log) and optimality gap (%, log) per scenario, one bar per method.

    Args: table[scenario][method] = {"cost": [E] $, "gap_percent": [E] % or None}; per-episode
    values (a single number draws a bar without whiskers). A method whose gap is None (the
    oracle, 0 by definition) has an empty slot in the gap panel.
    """
    methods = list(dict.fromkeys(m for s in table for m in table[s]))
    colours = method_colours(methods)
    fig = new_figure(12.0, 8.0)
    cost_ax, gap_ax = fig.subplots(2, 1, sharex=True)
    grouped_bars(cost_ax, table, methods, "cost", colours)
    # Every method keeps its slot in both panels; a method without a gap leaves its slot empty.
    grouped_bars(gap_ax, table, methods, "gap_percent", colours, floor=GAP_FLOOR_PERCENT)
    for ax in (cost_ax, gap_ax):
        ax.set_yscale("log")
    gap_ax.set_ylim(bottom=GAP_FLOOR_PERCENT / 2)
    cost_ax.set_ylabel("episode cost ($, log scale)")
    gap_ax.set_ylabel("gap to oracle (%, log scale)")
    gap_ax.set_xlabel("scenario")
    cost_ax.set_title("episode cost per scenario")
    gap_ax.set_title(
        f"optimality gap = cost / oracle cost − 1 (gaps ≤ {GAP_FLOOR_PERCENT:g} % "
        f"drawn at {GAP_FLOOR_PERCENT:g} %)"
    )
    fig.legend(*cost_ax.get_legend_handles_labels(), loc="outside right upper", title="method")
    fig.suptitle(f"bars: mean over {n_episodes} held-out episodes; {SPREAD_LABEL}")
    return fig


def plot_episode_counts(
    table: Mapping[str, Mapping[str, Mapping]],
    panels: Sequence[tuple[str, str, str]],
    n_episodes: int,
    horizon: int | None = None,
) -> Figure:
    """Per-episode counts (one panel each) per scenario and method, episode length beside them.

    Args: table[scenario][method][key] = per-episode values (or one mean); panels = (key,
    title, y label) in drawing order; the key ``"steps"`` (episode length) gets a dashed line
    at ``horizon``.
    """
    methods = list(dict.fromkeys(m for s in table for m in table[s]))
    colours = method_colours(methods)
    cols = min(3, len(panels))
    rows = -(-len(panels) // cols)
    fig = new_figure(5.0 * cols, 3.6 * rows + 0.6)
    axes = np.atleast_1d(fig.subplots(rows, cols, sharex=True, squeeze=False)).ravel()
    for ax, (key, title, label) in zip(axes, panels, strict=False):
        grouped_bars(ax, table, methods, key, colours)
        ax.set_title(title)
        ax.set_ylabel(label)
        if key == "steps" and horizon:
            ax.axhline(horizon, color="black", linestyle="dashed", linewidth=1.0, label="horizon")
            ax.set_ylim(0, horizon * 1.08)
    for ax in axes[len(panels) :]:
        ax.axis("off")
    fig.legend(*axes[0].get_legend_handles_labels(), loc="outside right upper", title="method")
    fig.suptitle(f"per episode: bars = mean over {n_episodes} episodes; {SPREAD_LABEL}")
    return fig


def _thousands(value: float, _position) -> str:
    return f"{value / 1000:g}k" if abs(value) >= 1000 else f"{value:g}"


def plot_training_curves(
    scalars: Mapping[str, tuple[np.ndarray, np.ndarray]],
    labels: Mapping[str, tuple[str, str]] | None = None,
    x_label: str = "env steps",
) -> Figure:
    """One panel per scalar tag, in the given order: value against step (``read_scalars``).

    ``labels[tag] = (title, y label with unit)``; other tags are titled with the tag itself.
    """
    labels = labels or {}
    tags = list(scalars)
    cols = min(3, max(len(tags), 1))
    rows = max(1, -(-len(tags) // cols))
    fig = new_figure(4.2 * cols, 2.9 * rows)
    axes = np.atleast_1d(fig.subplots(rows, cols, squeeze=False)).ravel()
    for ax, tag in zip(axes, tags, strict=False):
        steps, values = scalars[tag]
        title, y_label = labels.get(tag, (tag, ""))
        ax.plot(steps, values)
        ax.set_title(title, fontsize="medium")
        ax.set_ylabel(y_label, fontsize="small")
        ax.set_xlabel(x_label, fontsize="small")
        ax.xaxis.set_major_formatter(ticker.FuncFormatter(_thousands))
        ax.grid(alpha=0.3)
    for ax in axes[len(tags) :]:
        ax.axis("off")
    if not tags:
        axes[0].text(0.5, 0.5, "no training scalars found", ha="center", va="center")
    return fig


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
