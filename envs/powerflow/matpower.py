"""Reader for MATPOWER case files (``mpc.`` syntax, format version 2).

Only the data MATPOWER's power flow needs is kept: ``mpc.baseMVA``, ``mpc.bus``,
``mpc.gen``, ``mpc.branch`` and ``mpc.gencost``, plus the optional ``mpc.genfuel`` cell
array of fuel names (MATPOWER's extension used by the ACTIVSg cases: 'coal', 'wind',
'solar', ...), which says which units are renewable. Other fields (``mpc.version``,
``mpc.areas``, ``mpc.bus_name`` cell arrays, ...) are read past and ignored.
:func:`write_matpower` writes the same subset back.

The grammar handled is the subset real case files use: ``%`` comments, ``...``
line continuations, matrix rows separated by ``;`` or new lines, elements by
blanks or commas. Every malformed input raises :class:`MatpowerFormatError`
naming the file, the line and what is wrong.
"""

from __future__ import annotations

import dataclasses
import math
import re
from pathlib import Path

import numpy as np

# MATPOWER column indices (0-based).
BUS_I, BUS_TYPE, PD, QD, GS, BS, VM, VA, VMAX, VMIN = 0, 1, 2, 3, 4, 5, 7, 8, 11, 12
F_BUS, T_BUS, BR_R, BR_X, BR_B, RATE_A, TAP, SHIFT, BR_STATUS = 0, 1, 2, 3, 4, 5, 8, 9, 10
GEN_BUS, PG, QG, QMAX, QMIN, VG, GEN_STATUS, PMAX, PMIN, RAMP_AGC = 0, 1, 2, 3, 4, 5, 7, 8, 9, 16
BUS_COLUMNS = 13  # bus_i type Pd Qd Gs Bs area Vm Va baseKV zone Vmax Vmin
GEN_COLUMNS = 21  # MATPOWER v2 generator columns (v1 files have 10; padded with zeros)
GEN_MIN_COLUMNS = 10
BRANCH_COLUMNS = 13  # fbus tbus r x b rateA rateB rateC ratio angle status angmin angmax
BRANCH_MIN_COLUMNS = 11
GENCOST_MIN_COLUMNS = 4  # model startup shutdown n, then the cost data
GENCOST_PWL = 1
GENCOST_POLY = 2

_MATRIX_FIELDS = ("bus", "gen", "branch", "gencost")
_ASSIGNMENT = re.compile(r"^\s*mpc\.(\w+)\s*=\s*(.*)$")
_NUMBER_WORDS = {"inf": math.inf, "+inf": math.inf, "-inf": -math.inf}
_QUOTED = re.compile(r"'([^']*)'")


class MatpowerFormatError(ValueError):
    """A MATPOWER case file that cannot be read; the message names file and line."""


@dataclasses.dataclass(frozen=True)
class MatpowerData:
    """Raw numeric content of a case file, columns as in the file (padded to v2 widths)."""

    base_mva: float
    bus: np.ndarray
    gen: np.ndarray
    branch: np.ndarray
    gencost: np.ndarray | None
    gen_fuel: tuple[str, ...] | None = None  # mpc.genfuel, one lower-case name per gen row


@dataclasses.dataclass
class _Matrix:
    name: str
    start_line: int
    rows: list[tuple[int, list[float]]] = dataclasses.field(default_factory=list)


def read_matpower(path: str | Path) -> MatpowerData:
    """Reads a MATPOWER ``.m`` case file from disk."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"MATPOWER case file not found: {path}")
    return parse_matpower(path.read_text(encoding="utf-8", errors="replace"), source=str(path))


def parse_matpower(text: str, source: str = "<string>") -> MatpowerData:
    """Parses the text of a MATPOWER case file; ``source`` names it in error messages."""
    scalars, matrices, cells = _parse_statements(text, source)
    if "baseMVA" not in scalars:
        raise MatpowerFormatError(f"{source}: missing mpc.baseMVA")
    for required in ("bus", "gen", "branch"):
        if required not in matrices:
            raise MatpowerFormatError(f"{source}: missing mpc.{required}")
    base_mva = scalars["baseMVA"]
    if not base_mva > 0:
        raise MatpowerFormatError(f"{source}: mpc.baseMVA must be positive, got {base_mva}")
    bus = _to_array(matrices["bus"], source, BUS_COLUMNS, BUS_COLUMNS)
    gen = _to_array(matrices["gen"], source, GEN_MIN_COLUMNS, GEN_COLUMNS)
    branch = _to_array(matrices["branch"], source, BRANCH_MIN_COLUMNS, BRANCH_COLUMNS)
    gencost = None
    if "gencost" in matrices:
        gencost = _check_gencost(matrices["gencost"], source, n_gen=gen.shape[0])
    _check_references(source, matrices, bus, gen, branch)
    gen_fuel = None
    if "genfuel" in cells:
        gen_fuel = _check_genfuel(cells["genfuel"], source, n_gen=gen.shape[0])
    return MatpowerData(
        base_mva=base_mva, bus=bus, gen=gen, branch=branch, gencost=gencost, gen_fuel=gen_fuel
    )


def _logical_lines(text: str):
    """Yields (first line number, text without comments), joining ``...`` continuations."""
    pending, pending_line = "", 0
    for number, raw in enumerate(text.splitlines(), start=1):
        line = _strip_comment(raw)
        if not pending:
            pending_line = number
        if "..." in line:
            pending += line[: line.index("...")] + " "
            continue
        yield pending_line, pending + line
        pending = ""
    if pending:
        yield pending_line, pending


def _strip_comment(line: str) -> str:
    """Drops a ``%`` comment, ignoring ``%`` inside single-quoted strings."""
    in_string = False
    for index, char in enumerate(line):
        if char == "'":
            in_string = not in_string
        elif char == "%" and not in_string:
            return line[:index]
    return line


def _parse_statements(text: str, source: str):
    scalars: dict[str, float] = {}
    matrices: dict[str, _Matrix] = {}
    cells: dict[str, tuple[int, list[str]]] = {}
    open_matrix: _Matrix | None = None
    open_cell: tuple[str, int] | None = None
    for line_no, line in _logical_lines(text):
        if open_cell is not None:
            body, closed = _split_closing(line, "}")
            cells[open_cell[0]][1].extend(_QUOTED.findall(body))
            if closed:
                open_cell = None
            continue
        if open_matrix is not None:
            body, closed = _split_closing(line, "]")
            _add_rows(open_matrix, body, line_no, source)
            if closed:
                matrices[open_matrix.name] = open_matrix
                open_matrix = None
            continue
        match = _ASSIGNMENT.match(line)
        if match is None:
            continue  # function header, blank line or MATLAB code we do not model
        name, rest = match.group(1), match.group(2).strip()
        if rest.startswith("["):
            matrix = _Matrix(name, line_no)
            body, closed = _split_closing(rest[1:], "]")
            _add_rows(matrix, body, line_no, source)
            if closed:
                matrices[name] = matrix
            else:
                open_matrix = matrix
        elif rest.startswith("{"):
            body, closed = _split_closing(rest[1:], "}")
            cells[name] = (line_no, _QUOTED.findall(body))
            if not closed:
                open_cell = (name, line_no)
        elif name == "baseMVA":
            scalars[name] = _parse_number(rest.rstrip(";").strip(), source, line_no, "mpc.baseMVA")
    if open_matrix is not None:
        raise MatpowerFormatError(
            f"{source}:{open_matrix.start_line}: unterminated matrix mpc.{open_matrix.name} "
            "(no closing ']')"
        )
    if open_cell is not None:
        raise MatpowerFormatError(
            f"{source}:{open_cell[1]}: unterminated cell array mpc.{open_cell[0]} (no closing '}}')"
        )
    return scalars, {k: v for k, v in matrices.items() if k in _MATRIX_FIELDS}, cells


def _split_closing(text: str, closer: str) -> tuple[str, bool]:
    if closer in text:
        return text[: text.index(closer)], True
    return text, False


def _add_rows(matrix: _Matrix, body: str, line_no: int, source: str) -> None:
    for row_text in body.split(";"):
        tokens = row_text.replace(",", " ").split()
        if tokens:
            what = f"mpc.{matrix.name}"
            matrix.rows.append((line_no, [_parse_number(t, source, line_no, what) for t in tokens]))


def _parse_number(token: str, source: str, line_no: int, what: str) -> float:
    lowered = token.lower()
    if lowered in _NUMBER_WORDS:
        return _NUMBER_WORDS[lowered]
    try:
        value = float(token)
    except ValueError:
        raise MatpowerFormatError(
            f"{source}:{line_no}: non-numeric token {token!r} in {what}"
        ) from None
    if math.isnan(value):
        raise MatpowerFormatError(f"{source}:{line_no}: NaN in {what}")
    return value


def _to_array(matrix: _Matrix, source: str, min_cols: int, width: int) -> np.ndarray:
    """Checks the rows of a matrix are rectangular and pads them to the v2 width."""
    if not matrix.rows:
        raise MatpowerFormatError(f"{source}:{matrix.start_line}: mpc.{matrix.name} is empty")
    n_cols = len(matrix.rows[0][1])
    for line_no, row in matrix.rows:
        if len(row) != n_cols:
            raise MatpowerFormatError(
                f"{source}:{line_no}: mpc.{matrix.name} row has {len(row)} columns, "
                f"expected {n_cols} like its first row"
            )
    if n_cols < min_cols:
        raise MatpowerFormatError(
            f"{source}:{matrix.start_line}: mpc.{matrix.name} has {n_cols} columns, "
            f"needs at least {min_cols}"
        )
    data = np.array([row for _, row in matrix.rows], dtype=np.float64)
    if n_cols < width:
        data = np.concatenate([data, _padding(matrix.name, len(data), width - n_cols)], axis=1)
    return data


def _padding(name: str, n_rows: int, n_missing: int) -> np.ndarray:
    pad = np.zeros((n_rows, n_missing))
    if name == "branch" and n_missing <= 2:
        # Missing ANGMIN/ANGMAX mean "no angle limit", which MATPOWER writes as -360/360.
        pad[:, :] = np.array([-360.0, 360.0])[-n_missing:]
    return pad


def _check_gencost(matrix: _Matrix, source: str, n_gen: int) -> np.ndarray:
    if len(matrix.rows) not in (n_gen, 2 * n_gen):
        raise MatpowerFormatError(
            f"{source}:{matrix.start_line}: mpc.gencost has {len(matrix.rows)} rows but mpc.gen "
            f"has {n_gen} generators (expected {n_gen}, or {2 * n_gen} with reactive costs)"
        )
    width = max(len(row) for _, row in matrix.rows)
    for line_no, row in matrix.rows:
        _check_gencost_row(row, source, line_no)
    padded = [row + [0.0] * (width - len(row)) for _, row in matrix.rows[:n_gen]]
    return np.array(padded, dtype=np.float64)


def _check_gencost_row(row: list[float], source: str, line_no: int) -> None:
    if len(row) < GENCOST_MIN_COLUMNS:
        raise MatpowerFormatError(
            f"{source}:{line_no}: mpc.gencost row has {len(row)} columns, needs at least "
            f"{GENCOST_MIN_COLUMNS}"
        )
    model, n_cost = row[0], row[3]
    if model not in (GENCOST_PWL, GENCOST_POLY):
        raise MatpowerFormatError(
            f"{source}:{line_no}: mpc.gencost model {model:g} is neither 1 (piecewise linear) "
            "nor 2 (polynomial)"
        )
    if n_cost != int(n_cost) or n_cost < 1:
        raise MatpowerFormatError(f"{source}:{line_no}: mpc.gencost NCOST {n_cost:g} is invalid")
    needed = GENCOST_MIN_COLUMNS + int(n_cost) * (2 if model == GENCOST_PWL else 1)
    if len(row) < needed:
        raise MatpowerFormatError(
            f"{source}:{line_no}: mpc.gencost row has {len(row)} columns, model {model:g} with "
            f"NCOST={n_cost:g} needs {needed}"
        )
    if model == GENCOST_PWL and n_cost < 2:
        raise MatpowerFormatError(
            f"{source}:{line_no}: piecewise-linear mpc.gencost needs at least 2 points"
        )


def _check_genfuel(cell: tuple[int, list[str]], source: str, n_gen: int) -> tuple[str, ...]:
    line_no, names = cell
    if len(names) != n_gen:
        raise MatpowerFormatError(
            f"{source}:{line_no}: mpc.genfuel has {len(names)} entries but mpc.gen has {n_gen} "
            "generators"
        )
    return tuple(name.strip().lower() for name in names)


def _check_references(source, matrices, bus, gen, branch) -> None:
    """Bus numbers must be unique and every gen/branch must refer to an existing bus."""
    numbers = bus[:, 0]
    bus_rows = matrices["bus"].rows
    seen: set[float] = set()
    for (line_no, _), number in zip(bus_rows, numbers, strict=True):
        if number in seen:
            raise MatpowerFormatError(f"{source}:{line_no}: duplicate bus number {number:g}")
        if number != int(number) or number < 1:
            raise MatpowerFormatError(f"{source}:{line_no}: bus number {number:g} is not valid")
        seen.add(number)
        bus_type = bus[len(seen) - 1, 1]
        if bus_type not in (1, 2, 3, 4):
            raise MatpowerFormatError(f"{source}:{line_no}: bus type {bus_type:g} is not 1-4")
    for field, data, columns in (("gen", gen, (0,)), ("branch", branch, (0, 1))):
        for (line_no, _), row in zip(matrices[field].rows, data, strict=True):
            for column in columns:
                if row[column] not in seen:
                    raise MatpowerFormatError(
                        f"{source}:{line_no}: mpc.{field} refers to bus {row[column]:g}, "
                        "which is not in mpc.bus"
                    )


def format_matpower(data: MatpowerData, name: str = "case") -> str:
    """The text of a MATPOWER v2 case file holding ``data`` (what :func:`parse_matpower` reads).

    Numbers are written with ``repr`` precision, so reading the text back gives the same floats.
    """
    lines = [
        f"function mpc = {name}",
        "mpc.version = '2';",
        f"mpc.baseMVA = {data.base_mva!r};",
    ]
    matrices = {"bus": data.bus, "gen": data.gen, "branch": data.branch, "gencost": data.gencost}
    for field, matrix in matrices.items():
        if matrix is None:
            continue
        lines.append(f"mpc.{field} = [")
        lines.extend("\t" + "\t".join(_number_text(v) for v in row) + ";" for row in matrix)
        lines.append("];")
    if data.gen_fuel is not None:
        lines.append("mpc.genfuel = {")
        lines.extend(f"\t'{fuel}';" for fuel in data.gen_fuel)
        lines.append("};")
    return "\n".join(lines) + "\n"


def write_matpower(data: MatpowerData, path: str | Path) -> Path:
    """Writes ``data`` as a MATPOWER ``.m`` file (the function name is the file's stem)."""
    path = Path(path)
    path.write_text(format_matpower(data, name=re.sub(r"\W", "_", path.stem)), encoding="utf-8")
    return path


def _number_text(value: float) -> str:
    value = float(value)  # a NumPy scalar's repr names its type
    if math.isinf(value):
        return "Inf" if value > 0 else "-Inf"
    return repr(int(value)) if value.is_integer() and abs(value) < 1e15 else repr(value)
