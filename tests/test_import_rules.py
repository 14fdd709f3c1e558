"""The layering of DESIGN.md, read from the source: packages import downwards only
(``launch -> actors, learner, replay -> envs``); actors and learner meet only in ``launch``."""

import ast
import pathlib

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
PROJECT_PACKAGES = ("envs", "actors", "replay", "learner", "launch", "configs", "benchmarks")

# What each package must never import (anywhere in it, lazily inside functions included).
FORBIDDEN = {
    "actors": {"learner", "launch", "configs", "benchmarks"},
    "learner": {"actors", "launch", "configs", "benchmarks"},
    "replay": {"actors", "learner", "launch", "configs", "benchmarks"},
    "envs": set(PROJECT_PACKAGES) - {"envs"},
}


def imported_packages(source: str, filename: str = "<source>") -> list[tuple[int, str]]:
    """``(line, top-level package)`` of every absolute import in ``source``."""
    found = []
    for node in ast.walk(ast.parse(source, filename)):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name.split(".")[0]) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.append((node.lineno, node.module.split(".")[0]))
    return found


def violations(package: str) -> list[str]:
    out = []
    for path in sorted((ROOT / package).rglob("*.py")):
        relative = path.relative_to(ROOT)
        for line, imported in imported_packages(path.read_text(), str(relative)):
            if imported in FORBIDDEN[package]:
                out.append(f"{relative}:{line} imports {imported}")
    return out


@pytest.mark.parametrize("package", sorted(FORBIDDEN))
def test_package_imports_only_downwards(package):
    assert violations(package) == []


def test_imports_inside_functions_and_dotted_names_are_seen():
    source = (
        "import numpy as np\n"
        "from replay.types import Trajectory\n"
        "def build():\n"
        "    import learner.policy\n"
        "    from actors import actor\n"
        "    from . import sibling\n"
    )
    assert imported_packages(source) == [(1, "numpy"), (2, "replay"), (4, "learner"), (5, "actors")]
