"""The one-line diagram as an interactive HTML page (plotly, the optional ``viz`` extra).

The same picture as ``envs.render.one_line.plot_one_line``; hovering the middle of a branch shows
its buses, flow, rating and loading, hovering a bus its load, generation, battery and shed MW.
plotly is imported when a page is made, so the simulator runs without it.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from matplotlib import colormaps, colors

from envs.render.one_line import (
    GEN_COLOURS,
    LOAD_COLOUR,
    LOADING_CMAP,
    LOADING_MAX_PERCENT,
    STORAGE_COLOUR,
    OneLineData,
    device_positions,
    generator_kind_of_bus,
    mw_of_largest_marker,
)


class PlotlyMissingError(ImportError):
    """plotly is an optional dependency (the ``viz`` extra)."""


def _plotly():
    try:
        import plotly.graph_objects as go
    except ImportError as err:
        raise PlotlyMissingError(
            "interactive one-line diagrams need plotly: install the viz extra "
            "(uv sync --extra viz, or pip install 'gridpod[viz]')"
        ) from err
    return go


def branch_hover_texts(data: OneLineData) -> list[str]:
    """One hover text per branch: from–to buses, flow, rating, loading (or out of service)."""
    texts = []
    for k in range(len(data.flow_mw)):
        head = (
            f"branch {k + 1}: from bus {data.bus_number[data.branch_from[k]]} "
            f"to bus {data.bus_number[data.branch_to[k]]}"
        )
        state = "" if data.in_service[k] else "<br>OUT OF SERVICE"
        texts.append(
            f"{head}<br>flow {data.flow_mw[k]:.1f} MW<br>rating "
            f"{data.rating_mw[k]:.1f} MW<br>loading {data.loading_percent[k]:.1f} %"
            f"{state}"
        )
    return texts


def bus_hover_texts(data: OneLineData) -> list[str]:
    """One hover text per bus: load, generation, battery, shed MW and whether it is energised."""
    generation, storage = data.generation_at_buses(), data.storage_at_buses()
    texts = []
    for n in range(len(data.bus_xy)):
        battery = f"<br>battery {storage[n]:+.1f} MW" if n in set(data.storage_bus.tolist()) else ""
        dark = "" if data.energised[n] else "<br>NOT ENERGISED"
        texts.append(
            f"bus {data.bus_number[n]}<br>load {data.load_mw[n]:.1f} MW<br>generation "
            f"{generation[n]:.1f} MW{battery}<br>shed {data.shed_mw[n]:.1f} MW{dark}"
        )
    return texts


def _loading_colour(percent: float) -> str:
    rgba = colormaps[LOADING_CMAP](min(percent / LOADING_MAX_PERCENT, 1.0))
    return colors.to_hex(rgba)


def _plotly_size(mw: np.ndarray, scale: float) -> np.ndarray:
    """Marker diameters in px with area ∝ |MW| (a unit drawing a little power shows as small)."""
    return 4.0 + 40.0 * np.sqrt(np.abs(mw) / scale)


def _add_branches(fig, go, data: OneLineData) -> None:
    """One line per branch (no hover) and one hover marker in the middle of each."""
    xy, loading = data.bus_xy, data.loading_percent
    for k in range(len(data.flow_mw)):
        ends = xy[[data.branch_from[k], data.branch_to[k]]]
        style = (
            {"color": _loading_colour(loading[k]), "width": 4}
            if data.in_service[k]
            else {"color": "grey", "width": 2, "dash": "dash"}
        )
        fig.add_trace(
            go.Scatter(
                x=ends[:, 0],
                y=ends[:, 1],
                mode="lines",
                line=style,
                hoverinfo="skip",
                showlegend=False,
            )
        )
    middle = (xy[data.branch_from] + xy[data.branch_to]) / 2
    fig.add_trace(
        go.Scatter(
            x=middle[:, 0],
            y=middle[:, 1],
            mode="markers",
            name="branches (hover the middle)",
            hovertext=branch_hover_texts(data),
            hoverinfo="text",
            marker={
                "size": np.where(data.in_service, 10, 12),
                "symbol": np.where(data.in_service, "circle", "x"),
                "color": np.where(data.in_service, loading, 0.0),
                "colorscale": "RdYlGn",
                "reversescale": True,
                "cmin": 0.0,
                "cmax": LOADING_MAX_PERCENT,
                "line": {"width": 1, "color": "black"},
                "colorbar": {"title": {"text": "loading (%)"}},
            },
        )
    )


def _add_devices(fig, go, data: OneLineData) -> None:
    """Generators, loads and batteries beside their buses, marker area ∝ MW."""
    generation = data.generation_at_buses()
    scale = mw_of_largest_marker(data)
    gen_xy, load_xy = device_positions(data)
    kinds = generator_kind_of_bus(data)
    gens = np.array(sorted(kinds), dtype=int)
    fig.add_trace(
        go.Scatter(
            x=gen_xy[gens, 0],
            y=gen_xy[gens, 1],
            mode="markers",
            name="generation (area ∝ MW)",
            hoverinfo="text",
            hovertext=[
                f"generation at bus {data.bus_number[b]}: {generation[b]:.1f} MW" for b in gens
            ],
            marker={
                "size": _plotly_size(generation[gens], scale),
                "color": [colors.to_hex(GEN_COLOURS[kinds[b]]) for b in gens],
                "line": {"width": 1, "color": "black"},
            },
        )
    )
    loads = np.flatnonzero(data.load_mw > 1e-3)
    fig.add_trace(
        go.Scatter(
            x=load_xy[loads, 0],
            y=load_xy[loads, 1],
            mode="markers",
            name="load (area ∝ MW)",
            hoverinfo="text",
            hovertext=[
                f"load at bus {data.bus_number[b]}: {data.load_mw[b]:.1f}"
                f" MW, shed {data.shed_mw[b]:.1f} MW"
                for b in loads
            ],
            marker={
                "size": _plotly_size(data.load_mw[loads], scale),
                "symbol": "triangle-down",
                "color": colors.to_hex(LOAD_COLOUR),
                "line": {"width": 1, "color": "black"},
            },
        )
    )
    batteries = np.unique(data.storage_bus)
    if len(batteries):
        storage, battery_xy = data.storage_at_buses(), (gen_xy + load_xy) / 2
        fig.add_trace(
            go.Scatter(
                x=battery_xy[batteries, 0],
                y=battery_xy[batteries, 1],
                mode="markers",
                name="battery (area ∝ MW)",
                hoverinfo="text",
                hovertext=[
                    f"battery at bus {data.bus_number[b]}: {storage[b]:+.1f} MW (+ discharge)"
                    for b in batteries
                ],
                marker={
                    "size": _plotly_size(storage[batteries], scale),
                    "symbol": "square",
                    "color": colors.to_hex(STORAGE_COLOUR),
                },
            )
        )


def one_line_plotly(data: OneLineData, title: str = ""):
    """A ``plotly.graph_objects.Figure`` of the diagram with hover texts on branches and buses."""
    go = _plotly()
    fig = go.Figure()
    _add_branches(fig, go, data)
    _add_devices(fig, go, data)
    xy = data.bus_xy
    fig.add_trace(
        go.Scatter(
            x=xy[:, 0],
            y=xy[:, 1],
            mode="markers+text",
            name="buses",
            text=[str(n) for n in data.bus_number],
            textposition="top right",
            hovertext=bus_hover_texts(data),
            hoverinfo="text",
            marker={
                "size": 11,
                "symbol": "square",
                "color": np.where(data.energised, "black", "white"),
                "line": {"width": 1, "color": "black"},
            },
        )
    )
    fig.update_layout(
        title=data.title(title),
        template="plotly_white",
        hovermode="closest",
        legend={"orientation": "h", "y": -0.05},
        width=1000,
        height=750,
    )
    fig.update_xaxes(visible=False)
    fig.update_yaxes(visible=False, scaleanchor="x", scaleratio=1)
    return fig


def write_one_line_html(path: str | Path, data: OneLineData, title: str = "") -> Path:
    """A self-contained HTML page (plotly.js inlined, works offline) of the diagram."""
    fig = one_line_plotly(data, title)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.write_html(path, include_plotlyjs=True, full_html=True)
    return path
