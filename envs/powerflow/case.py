"""Power-system case data: the shipped IEEE cases, any MATPOWER file, pandapower and PyPSA.

A :class:`Case` holds NumPy arrays in MATPOWER v2 column layout exactly as in
the file (1-based external bus numbers, status columns, all rows). Turning it
into 0-based device arrays is :func:`envs.powerflow.grid.build_grid`'s job.

``env.case`` (:func:`load_case`) is a shipped name, or a path to a MATPOWER ``.m`` file, a
pandapower network saved with ``pandapower.to_json`` (``.json``) or a PyPSA network saved
with ``Network.export_to_netcdf`` (``.nc``); the last two need the ``io`` extra and go
through :mod:`envs.powerflow.grid_import`. Every problem with the name or the file is one
:class:`CaseError` whose message is one line naming the case.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
from scipy.sparse import csgraph, csr_matrix

from envs.powerflow import matpower
from envs.powerflow.case_data import Case, CaseError, one_line

__all__ = ["Case", "CaseError", "check_case_source", "load_case", "one_line"]

CASES_DIR = Path(__file__).resolve().parent / "cases"
# Shipped name -> file stem in cases/ (MATPOWER data; see envs/powerflow/cases/RATINGS.md).
SHIPPED_CASES = {"ieee14": "case14", "ieee30": "case30", "ieee118": "case118"}
MATPOWER_SUFFIX = ".m"
PANDAPOWER_SUFFIX = ".json"
PYPSA_SUFFIX = ".nc"
CASE_FILE_SUFFIXES = (MATPOWER_SUFFIX, PANDAPOWER_SUFFIX, PYPSA_SUFFIX)


def case_choices() -> str:
    """What ``env.case`` may be, for error messages."""
    shipped = ", ".join(sorted(SHIPPED_CASES))
    return f"a shipped name ({shipped}) or a path to an existing .m, .json or .nc case file"


def check_case_source(name_or_path: str | Path) -> None:
    """Raises :class:`CaseError` unless ``name_or_path`` is a shipped name or an existing case
    file with a known suffix (cheap: the file is not read)."""
    key = str(name_or_path)
    if key in SHIPPED_CASES:
        return
    path = Path(key).expanduser()
    if path.suffix.lower() not in CASE_FILE_SUFFIXES:
        raise CaseError(f"unknown case {key!r}: use {case_choices()}")
    if not path.is_file():
        raise CaseError(f"case file {key!r} does not exist: use {case_choices()}")


def load_case(name_or_path: str | Path) -> Case:
    """Loads a shipped case ("ieee14", "ieee30", "ieee118") or a case file.

    A ``.m`` file is read with :func:`envs.powerflow.matpower.read_matpower`; ``.json`` (pandapower)
    and ``.nc`` (PyPSA) files are converted by :mod:`envs.powerflow.grid_import`. Raises
    :class:`CaseError` (a ValueError) with a one-line message for an unknown name, a
    missing file or a file that cannot be read.
    """
    key = str(name_or_path)
    if key in SHIPPED_CASES:
        stem = SHIPPED_CASES[key]
        data = matpower.read_matpower(CASES_DIR / f"{stem}.m")
        case = Case.from_matpower(data, name=key)
        return dataclasses.replace(case, bus_xy=_read_layout(CASES_DIR / f"{stem}.json"))
    check_case_source(key)
    path = Path(key).expanduser()
    suffix = path.suffix.lower()
    try:
        if suffix == MATPOWER_SUFFIX:
            return Case.from_matpower(matpower.read_matpower(path), name=path.stem)
        from envs.powerflow import grid_import

        if suffix == PANDAPOWER_SUFFIX:
            return grid_import.load_pandapower_json(path)
        return grid_import.load_pypsa_netcdf(path)
    except CaseError:
        raise
    except matpower.MatpowerFormatError as error:  # already names the file and the line
        raise CaseError(str(error)) from None
    except (ValueError, OSError, KeyError) as error:
        raise CaseError(f"case file {key!r} cannot be read: {one_line(error)}") from None


def _read_layout(path: Path) -> np.ndarray | None:
    if not path.is_file():
        return None
    return np.asarray(json.loads(path.read_text())["bus_xy"], dtype=np.float64)


def graph_layout(n_bus: int, from_bus: np.ndarray, to_bus: np.ndarray) -> np.ndarray:
    """Deterministic 2-D drawing coordinates in [0, 1]² for a bus graph.

    Classical multidimensional scaling of the hop-count distance matrix: the two
    leading eigenvectors of the double-centred squared distances. Buses that are
    close in the network land close on the page. Signs are fixed so that each
    axis's largest component is positive, which makes the result reproducible.
    """
    if n_bus == 1:
        return np.full((1, 2), 0.5)
    weights = np.ones(len(from_bus))
    adjacency = csr_matrix((weights, (from_bus, to_bus)), shape=(n_bus, n_bus))
    hops = csgraph.shortest_path(adjacency, directed=False, unweighted=True)
    finite = np.isfinite(hops)
    hops[~finite] = (hops[finite].max() if finite.any() else 0.0) + 1.0
    squared = hops**2
    centring = np.eye(n_bus) - 1.0 / n_bus
    gram = -0.5 * centring @ squared @ centring
    eigenvalues, eigenvectors = np.linalg.eigh(gram)
    order = np.argsort(eigenvalues)[::-1][:2]
    coords = eigenvectors[:, order] * np.sqrt(np.maximum(eigenvalues[order], 1e-12))
    if coords.shape[1] < 2:
        coords = np.concatenate([coords, np.zeros((n_bus, 1))], axis=1)
    signs = np.sign(coords[np.argmax(np.abs(coords), axis=0), np.arange(2)])
    coords = coords * np.where(signs == 0, 1.0, signs)
    span = coords.max(axis=0) - coords.min(axis=0)
    return (coords - coords.min(axis=0)) / np.where(span > 0, span, 1.0)
