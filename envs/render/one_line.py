"""One-line diagrams of a grid state: a still picture and an animated GIF (matplotlib).

Everything is drawn from :class:`OneLineData`, plain NumPy arrays of one grid at one step, made
by :func:`from_state` (an ``EnvState`` and its ``EnvParams``) or :func:`from_arrays` (the same
quantities taken out of a recorded rollout). Buses carry their 1-based number in file order
(the MATPOWER numbers of the shipped IEEE cases); generators and loads sit beside their bus as
markers whose area is proportional to MW; branches are coloured by loading |flow| / rating and
out-of-service branches are drawn dashed grey with a red cross. ``envs.render.one_line_html`` draws
the same data as an interactive plotly page.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from matplotlib import animation, colors
from matplotlib.collections import LineCollection
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from envs.render.figures import new_figure

LOADING_CMAP = "RdYlGn_r"  # green when lightly loaded, red at and above the rating
LOADING_MAX_PERCENT = 120.0  # top of the colour scale: anything above is as red as it gets
LOADING_LABEL_PERCENT = 90.0  # branches at least this loaded get their loading written on them
MAX_MARKER_AREA = 700.0  # pt², the largest MW quantity in the picture
MAX_BUS_LABELS = 200  # above this many buses the numbers would only be ink
GEN_COLOURS = {"conventional": "tab:blue", "wind": "tab:green", "solar": "gold"}
STORAGE_COLOUR, LOAD_COLOUR, SHED_COLOUR = "tab:purple", "tab:orange", "red"


@dataclasses.dataclass(frozen=True)
class OneLineData:
    """One grid at one step, in NumPy (N buses, L branches, G generators, S batteries)."""

    bus_xy: np.ndarray  # [N, 2] drawing coordinates
    bus_number: np.ndarray  # [N] int, shown on the diagram
    energised: np.ndarray  # [N] bool, connected to the slack bus
    load_mw: np.ndarray  # [N] demand before shedding
    shed_mw: np.ndarray  # [N] demand shed
    branch_from: np.ndarray  # [L] bus index
    branch_to: np.ndarray  # [L] bus index
    flow_mw: np.ndarray  # [L] from-end flow (sign = direction)
    rating_mw: np.ndarray  # [L] thermal rating
    in_service: np.ndarray  # [L] bool
    gen_bus: np.ndarray  # [G] bus index
    gen_mw: np.ndarray  # [G] output
    gen_kind: tuple[str, ...]  # [G] a key of GEN_COLOURS
    storage_bus: np.ndarray  # [S] bus index
    storage_mw: np.ndarray  # [S] + discharge, - charge
    step: int
    cost: float | None  # $ of this step, or None
    cost_label: str = "step cost"  # what ``cost`` is, in the title
    cost_unit: str = ""  # after the dollar figure: "" for $ of the step, "/h" for a rate

    @property
    def loading_percent(self) -> np.ndarray:
        """[L] 100 · |flow| / rating."""
        return 100.0 * np.abs(self.flow_mw) / np.maximum(self.rating_mw, 1e-9)

    def generation_at_buses(self) -> np.ndarray:
        """[N] MW generated at each bus (batteries not included)."""
        return np.bincount(self.gen_bus, self.gen_mw, minlength=len(self.bus_xy))

    def storage_at_buses(self) -> np.ndarray:
        """[N] MW batteries deliver at each bus (+ discharge, - charge)."""
        return np.bincount(self.storage_bus, self.storage_mw, minlength=len(self.bus_xy))

    def title(self, prefix: str = "") -> str:
        cost = "" if self.cost is None else f", {self.cost_label} ${self.cost:,.0f}{self.cost_unit}"
        return f"{prefix + ': ' if prefix else ''}step {self.step}{cost}"


def _gen_kinds(devices) -> tuple[str, ...]:
    wind, solar = np.asarray(devices.is_wind), np.asarray(devices.is_solar)
    return tuple(
        "wind" if w else "solar" if s else "conventional" for w, s in zip(wind, solar, strict=True)
    )


def from_arrays(
    params,
    step,
    pg,
    storage_p,
    demand,
    shed,
    flow,
    in_service,
    energised,
    cost=None,
    cost_label="step cost",
    cost_unit="",
) -> OneLineData:
    """A :class:`OneLineData` from one step's arrays ([G], [S], [N], [N], [L], [L], [N])."""
    grid, devices = params.grid, params.devices
    arrays = [np.asarray(x) for x in (pg, storage_p, demand, shed, flow, in_service, energised)]
    names = ("pg", "storage_p", "demand", "shed", "flow", "in_service", "energised")
    n_bus, n_branch = grid.n_bus, grid.n_branch
    shapes = (grid.n_gen, len(devices.storage_bus), n_bus, n_bus, n_branch, n_branch, n_bus)
    for name, array, size in zip(names, arrays, shapes, strict=True):
        if array.shape != (size,):
            raise ValueError(f"{name} must have shape ({size},) for this grid, got {array.shape}")
    return OneLineData(
        bus_xy=np.asarray(grid.bus_xy, float),
        bus_number=np.arange(1, grid.n_bus + 1),
        energised=arrays[6].astype(bool),
        load_mw=arrays[2].astype(float),
        shed_mw=arrays[3].astype(float),
        branch_from=np.asarray(grid.branch_from),
        branch_to=np.asarray(grid.branch_to),
        flow_mw=arrays[4].astype(float),
        rating_mw=np.asarray(grid.branch_rating, float),
        in_service=arrays[5].astype(bool),
        gen_bus=np.asarray(grid.gen_bus),
        gen_mw=arrays[0].astype(float),
        gen_kind=_gen_kinds(devices),
        storage_bus=np.asarray(devices.storage_bus),
        storage_mw=arrays[1].astype(float),
        step=int(step),
        cost=None if cost is None else float(cost),
        cost_label=cost_label,
        cost_unit=cost_unit,
    )


def from_state(state, params, cost: float | None = None) -> OneLineData:
    """The diagram data of one (unbatched) ``EnvState``; without ``cost``, the title shows the
    generation cost rate of the state's dispatch in $/h."""
    if np.ndim(state.t) != 0:
        raise ValueError(f"from_state takes one grid's state, got a batch of shape {state.t.shape}")
    label, unit = "step cost", ""
    if cost is None:
        from envs.powerflow.grid import generation_cost

        cost = float(np.sum(generation_cost(params.grid, state.pg)))
        label, unit = "generation cost", "/h"
    return from_arrays(
        params,
        state.t,
        state.pg,
        state.storage_p,
        state.demand,
        state.shed,
        state.flow,
        state.branch_in_service,
        state.energised,
        cost,
        label,
        unit,
    )


def device_positions(data: OneLineData) -> tuple[np.ndarray, np.ndarray]:
    """[N, 2] positions of each bus's generator and load markers, set off the bus away from its
    branches (towards where its neighbours are not), so markers do not sit on the lines."""
    xy = data.bus_xy
    span = float(np.max(np.ptp(xy, axis=0))) or 1.0
    away = np.zeros_like(xy)
    np.add.at(away, data.branch_from, xy[data.branch_from] - xy[data.branch_to])
    np.add.at(away, data.branch_to, xy[data.branch_to] - xy[data.branch_from])
    away += 1e-6 * (xy - xy.mean(axis=0))  # a bus whose pulls cancel goes outwards
    away /= np.maximum(np.linalg.norm(away, axis=1, keepdims=True), 1e-12)
    turn = np.deg2rad(40.0)

    def rotate(v, angle):
        c, s = np.cos(angle), np.sin(angle)
        return np.stack([c * v[:, 0] - s * v[:, 1], s * v[:, 0] + c * v[:, 1]], axis=1)

    reach = 0.055 * span
    return xy + reach * rotate(away, turn), xy + reach * rotate(away, -turn)


def _marker_area(mw: np.ndarray, mw_per_max_area: float) -> np.ndarray:
    return MAX_MARKER_AREA * np.abs(mw) / mw_per_max_area


def mw_of_largest_marker(data: OneLineData) -> float:
    """MW that gets the largest marker: the biggest generator, load or battery in the picture."""
    quantities = [data.generation_at_buses(), data.load_mw, np.abs(data.storage_at_buses())]
    return max(float(np.max(np.concatenate(quantities))), 1e-6)


def _draw_branches(ax, data: OneLineData):
    segments = np.stack([data.bus_xy[data.branch_from], data.bus_xy[data.branch_to]], axis=1)
    norm = colors.Normalize(0.0, LOADING_MAX_PERCENT)
    closed = data.in_service
    lines = LineCollection(segments[closed], cmap=LOADING_CMAP, norm=norm, linewidths=3.0, zorder=1)
    lines.set_array(data.loading_percent[closed])
    ax.add_collection(lines)
    tripped = segments[~closed]
    ax.add_collection(
        LineCollection(tripped, colors="grey", linestyles="dashed", linewidths=1.5, zorder=1)
    )
    middle = segments.mean(axis=1)
    ax.scatter(
        middle[~closed, 0], middle[~closed, 1], marker="x", c="red", s=70, linewidths=2, zorder=4
    )
    for k in np.flatnonzero(closed & (data.loading_percent >= LOADING_LABEL_PERCENT)):
        ax.annotate(
            f"{data.loading_percent[k]:.0f} %",
            middle[k],
            fontsize=7,
            ha="center",
            va="center",
            zorder=5,
            bbox={"boxstyle": "round,pad=0.15", "fc": "white", "ec": "none", "alpha": 0.8},
        )
    return lines


def generator_kind_of_bus(data: OneLineData) -> dict[int, str]:
    """{bus: generator kind} for buses with generators (mixed kinds count as conventional)."""
    kinds: dict[int, str] = {}
    for bus, kind in zip(data.gen_bus.tolist(), data.gen_kind, strict=True):
        kinds[bus] = kind if kinds.get(bus, kind) == kind else "conventional"
    return kinds


def _draw_devices(ax, data: OneLineData, scale: float) -> None:
    gen_xy, load_xy = device_positions(data)
    generation, storage = data.generation_at_buses(), data.storage_at_buses()
    stubs = []
    for bus, kind in generator_kind_of_bus(data).items():
        stubs.append([data.bus_xy[bus], gen_xy[bus]])
        area = max(float(_marker_area(generation[bus], scale)), 12.0)  # an idle unit stays visible
        ax.scatter(*gen_xy[bus], s=area, c=GEN_COLOURS[kind], edgecolors="black", zorder=3)
    battery_xy = (gen_xy + load_xy) / 2
    for bus in np.unique(data.storage_bus):  # idle batteries are drawn too, at the smallest size
        stubs.append([data.bus_xy[bus], battery_xy[bus]])
        ax.scatter(
            *battery_xy[bus],
            s=max(float(_marker_area(storage[bus], scale)), 25.0),
            marker="s",
            c=STORAGE_COLOUR if storage[bus] > 1e-3 else "white",
            edgecolors=STORAGE_COLOUR,
            linewidths=1.5,
            zorder=3,
        )
    loaded = np.flatnonzero(data.load_mw > 1e-3)
    stubs += [[data.bus_xy[b], load_xy[b]] for b in loaded]
    ax.scatter(
        load_xy[loaded, 0],
        load_xy[loaded, 1],
        s=_marker_area(data.load_mw[loaded], scale),
        marker="v",
        c=LOAD_COLOUR,
        edgecolors="black",
        zorder=3,
    )
    shed = np.flatnonzero(data.shed_mw > 1e-3)
    ax.scatter(
        load_xy[shed, 0],
        load_xy[shed, 1],
        s=_marker_area(data.shed_mw[shed], scale),
        marker="v",
        c=SHED_COLOUR,
        zorder=4,
    )
    ax.add_collection(LineCollection(stubs, colors="black", linewidths=0.6, zorder=2))


def _draw_buses(ax, data: OneLineData) -> None:
    live = data.energised
    ax.scatter(data.bus_xy[live, 0], data.bus_xy[live, 1], s=45, marker="s", c="black", zorder=4)
    ax.scatter(
        data.bus_xy[~live, 0],
        data.bus_xy[~live, 1],
        s=45,
        marker="s",
        c="white",
        edgecolors="grey",
        zorder=4,
    )
    if len(data.bus_xy) > MAX_BUS_LABELS:
        return
    span = float(np.max(np.ptp(data.bus_xy, axis=0))) or 1.0
    for xy, number in zip(data.bus_xy, data.bus_number, strict=True):
        ax.annotate(
            str(number),
            xy,
            xytext=(xy[0] + 0.018 * span, xy[1] + 0.018 * span),
            fontsize=8,
            fontweight="bold",
            zorder=6,
        )


def _legend(ax, data: OneLineData, scale: float) -> None:
    nice = [v for v in (1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000) if v <= scale]
    sizes = nice[-3:] if nice else [round(scale, 1)]
    handles = [
        Line2D([], [], marker="s", ls="", c="black", label="bus (number)"),
        *[
            Line2D([], [], marker="o", ls="", mfc=c, mec="black", label=f"{kind} generation")
            for kind, c in GEN_COLOURS.items()
            if kind in data.gen_kind
        ],
        Line2D([], [], marker="v", ls="", mfc=LOAD_COLOUR, mec="black", label="load (demand)"),
        Line2D([], [], marker="v", ls="", c=SHED_COLOUR, label="load shed"),
        *(
            [
                Line2D(
                    [],
                    [],
                    marker="s",
                    ls="",
                    mfc=STORAGE_COLOUR,
                    mec=STORAGE_COLOUR,
                    label="battery (filled: discharging)",
                )
            ]
            if len(data.storage_bus)
            else []
        ),
        Line2D([], [], c="grey", ls="--", marker="x", mec="red", label="out of service"),
        *[
            Line2D(
                [],
                [],
                marker="o",
                ls="",
                mfc="none",
                mec="grey",
                label=f"{v:g} MW",
                markersize=float(np.sqrt(_marker_area(v, scale))),
            )
            for v in sizes
        ],
    ]
    ax.figure.legend(
        handles=handles,
        loc="outside right upper",
        fontsize="small",
        labelspacing=1.1,
        borderpad=0.8,
        title="marker area ∝ MW",
    )


def draw_one_line(fig: Figure, data: OneLineData, title: str = "", mw_scale=None) -> None:
    """Draws the diagram on ``fig`` (cleared first): used for still pictures and GIF frames.

    ``mw_scale``: the MW drawn with the largest marker (default: the largest in ``data``); an
    animation passes one value for all its frames so that marker sizes compare across steps.
    """
    fig.clear()
    ax = fig.add_subplot()
    scale = mw_of_largest_marker(data) if mw_scale is None else float(mw_scale)
    lines = _draw_branches(ax, data)
    _draw_devices(ax, data, scale)
    _draw_buses(ax, data)
    fig.colorbar(
        lines, ax=ax, label="branch loading |flow| / rating (%)", shrink=0.8, extend="max", pad=0.02
    )
    _legend(ax, data, scale)
    ax.set_aspect("equal")
    ax.margins(0.08)
    ax.set_xticks([])
    ax.set_yticks([])
    ax.set_title(data.title(title))


def _figure_size(data: OneLineData) -> tuple[float, float]:
    """Inches: a page for the small IEEE cases, a poster for the large ones (ieee118)."""
    return (10.5, 7.0) if len(data.bus_xy) <= 40 else (17.0, 12.5)


def plot_one_line(data: OneLineData, title: str = "") -> Figure:
    """The one-line diagram as a figure (save it with ``envs.render.figures.save_figure``)."""
    fig = new_figure(*_figure_size(data))
    draw_one_line(fig, data, title)
    return fig


def animate_one_line(
    path: str | Path, frames: Sequence[OneLineData], title: str = "", fps: int = 4
) -> Path:
    """Animated GIF (PillowWriter), one one-line diagram per entry of ``frames``."""
    if not frames:
        raise ValueError("animate_one_line needs at least one frame")
    fig = new_figure(*_figure_size(frames[0]))
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    scale = max(mw_of_largest_marker(frame) for frame in frames)

    def draw(i):
        draw_one_line(fig, frames[i], title, scale)
        return ()

    movie = animation.FuncAnimation(fig, draw, frames=len(frames), blit=False)
    movie.save(path, writer=animation.PillowWriter(fps=fps), dpi=80)
    return path
