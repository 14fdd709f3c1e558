"""Grid2Op / L2RPN-style chronics: per-step load and production time series from CSV.

A chronics directory holds ``load_p.csv`` and ``prod_p.csv`` (optionally ``.csv.bz2``):
``;``-separated, one header row of element names, one row per time step, values in MW.
``chronics_for_grid`` maps columns to the grid **by order**: load column j is the j-th bus
with positive base load (``Grid.bus_pd > 0``, bus file order), production column j is the
j-th in-service generator (file order). Only production columns of renewable units are
used (as their availability); conventional units are dispatched by the agents. With
``env.chronics_dir`` set, row ``(episode start step + t) mod T`` replaces the synthetic
profile (the AR(1) noise and the scenario's load/renewable scales still apply).
"""

import bz2
import io
from pathlib import Path
from typing import NamedTuple

import numpy as np


class Chronics(NamedTuple):
    load_p: np.ndarray  # [T, n_load] MW
    prod_p: np.ndarray  # [T, n_prod] MW
    load_names: tuple[str, ...]
    prod_names: tuple[str, ...]


def _find(directory: Path, stem: str) -> Path:
    for name in (f"{stem}.csv", f"{stem}.csv.bz2"):
        if (directory / name).is_file():
            return directory / name
    raise FileNotFoundError(f"chronics directory {directory} has no {stem}.csv(.bz2)")


def read_series(path: Path) -> tuple[np.ndarray, tuple[str, ...]]:
    """One ';'-separated CSV with a header row -> (values [T, C] float32, column names)."""
    raw = bz2.decompress(path.read_bytes()) if path.suffix == ".bz2" else path.read_bytes()
    text = raw.decode("utf-8")
    header, _, body = text.partition("\n")
    names = tuple(n.strip() for n in header.strip().split(";"))
    try:
        values = np.loadtxt(io.StringIO(body), delimiter=";", dtype=np.float32, ndmin=2)
    except ValueError as err:
        raise ValueError(f"{path}: not a ';'-separated numeric table ({err})") from err
    if values.shape[0] == 0 or values.shape[1] != len(names):
        raise ValueError(f"{path}: {values.shape[1]} value columns for {len(names)} names")
    if not np.isfinite(values).all():
        raise ValueError(f"{path}: contains non-finite values")
    return values, names


def load_chronics(directory: str | Path) -> Chronics:
    directory = Path(directory)
    if not directory.is_dir():
        raise FileNotFoundError(f"chronics directory {directory} does not exist")
    load_p, load_names = read_series(_find(directory, "load_p"))
    prod_p, prod_names = read_series(_find(directory, "prod_p"))
    if load_p.shape[0] != prod_p.shape[0]:
        raise ValueError(
            f"{directory}: load_p has {load_p.shape[0]} rows, prod_p {prod_p.shape[0]}"
        )
    return Chronics(load_p, prod_p, load_names, prod_names)


def chronics_for_grid(chronics: Chronics, grid) -> tuple[np.ndarray, np.ndarray]:
    """(load [T, N] MW per bus, production [T, G] MW per generator) mapped by column order."""
    load_buses = np.flatnonzero(np.asarray(grid.bus_pd) > 0)
    if chronics.load_p.shape[1] != load_buses.size:
        raise ValueError(
            f"load_p has {chronics.load_p.shape[1]} columns but {grid.name} has "
            f"{load_buses.size} load buses"
        )
    if chronics.prod_p.shape[1] != grid.n_gen:
        raise ValueError(
            f"prod_p has {chronics.prod_p.shape[1]} columns but {grid.name} has "
            f"{grid.n_gen} generators"
        )
    steps = chronics.load_p.shape[0]
    load = np.zeros((steps, grid.n_bus), np.float32)
    load[:, load_buses] = chronics.load_p
    return load, chronics.prod_p.astype(np.float32)
