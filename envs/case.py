"""Power-system case data: the shipped IEEE cases and any MATPOWER file.

A :class:`Case` holds NumPy arrays in MATPOWER v2 column layout exactly as in
the file (1-based external bus numbers, status columns, all rows). Turning it
into 0-based device arrays is :func:`envs.grid.build_grid`'s job.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
from scipy.sparse import csgraph, csr_matrix

from envs import matpower

CASES_DIR = Path(__file__).resolve().parent / "cases"
# Shipped name -> file stem in envs/cases (MATPOWER data; see envs/cases/RATINGS.md).
SHIPPED_CASES = {"ieee14": "case14", "ieee30": "case30", "ieee118": "case118"}


@dataclasses.dataclass(frozen=True, eq=False)
class Case:
    """A power-flow case in MATPOWER v2 layout.

    bus [nb, 13], gen [ng, 21], branch [nbr, 13], gencost [ng, k] or None,
    bus_xy [nb, 2] drawing coordinates or None.
    """

    name: str
    base_mva: float
    bus: np.ndarray
    gen: np.ndarray
    branch: np.ndarray
    gencost: np.ndarray | None = None
    bus_xy: np.ndarray | None = None

    @classmethod
    def from_ppc(cls, ppc: dict, name: str = "ppc") -> Case:
        """Builds a case from a PYPOWER-style dict (baseMVA, bus, gen, branch, gencost)."""
        gencost = ppc.get("gencost")
        return cls(
            name=name,
            base_mva=float(ppc["baseMVA"]),
            bus=np.array(ppc["bus"], dtype=np.float64),
            gen=np.array(ppc["gen"], dtype=np.float64),
            branch=np.array(ppc["branch"], dtype=np.float64),
            gencost=None if gencost is None else np.array(gencost, dtype=np.float64),
        )

    @classmethod
    def from_matpower(cls, data: matpower.MatpowerData, name: str) -> Case:
        return cls(
            name=name,
            base_mva=data.base_mva,
            bus=data.bus,
            gen=data.gen,
            branch=data.branch,
            gencost=data.gencost,
        )

    def to_ppc(self) -> dict:
        """A PYPOWER-style dict with copies of the arrays (for PYPOWER and tests)."""
        ppc = {
            "version": "2",
            "baseMVA": self.base_mva,
            "bus": self.bus.copy(),
            "gen": self.gen.copy(),
            "branch": self.branch.copy(),
        }
        if self.gencost is not None:
            ppc["gencost"] = self.gencost.copy()
        return ppc


def load_case(name_or_path: str | Path) -> Case:
    """Loads a shipped case ("ieee14", "ieee30", "ieee118") or a MATPOWER ``.m`` file.

    Raises ValueError for an unknown name, FileNotFoundError for a missing file and
    :class:`envs.matpower.MatpowerFormatError` (a ValueError) for a malformed one.
    """
    key = str(name_or_path)
    if key in SHIPPED_CASES:
        stem = SHIPPED_CASES[key]
        data = matpower.read_matpower(CASES_DIR / f"{stem}.m")
        case = Case.from_matpower(data, name=key)
        return dataclasses.replace(case, bus_xy=_read_layout(CASES_DIR / f"{stem}.json"))
    path = Path(key)
    if path.suffix != ".m" and not path.exists():
        shipped = ", ".join(sorted(SHIPPED_CASES))
        raise ValueError(f"unknown case {key!r}: use one of {shipped} or a path to a .m file")
    return Case.from_matpower(matpower.read_matpower(path), name=path.stem)


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
