"""The layering of BUILD.md ("Architecture"), read from the source: packages import downwards only
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


# Inside envs/, each part imports only from its own layer and the layers before it (README of
# the package: envs/__init__.py).
ENVS_LAYERS = (
    ("envs.types", "envs.batching", "envs.config_fields", "envs.deprecation"),
    ("envs.powerflow",),
    ("envs.config",),
    ("envs.sim",),
    # The OPF solvers and the controls they produce sit below the env, which clears bids with
    # them (envs.action_interface); the baselines step the env, above it.
    (
        "envs.opf.lp",
        "envs.opf.dc_network",
        "envs.opf.topology_cache",
        "envs.opf.lp_rows",
        "envs.opf.cost_cuts",
        "envs.opf.dc_opf",
        "envs.opf.oracle",
        "envs.opf.merit_order",
        "envs.opf.box_qp",
        "envs.opf.step_qp",
        "envs.opf.ptdf_correction",
        "envs.opf.lookahead_qp",
        "envs.opf.storage_value",
        "envs.opf.controls",
        "envs.opf.highs_reference",
    ),
    ("envs.action_interface",),
    ("envs.env", "envs.case_setup"),
    ("envs.teacher_relative",),
    # The evaluation rollout and its metrics step the env for any policy; the baselines
    # (envs.opf.baselines) are written against them, and the suite runs both (envs.evaluation).
    ("envs.evaluation.rollout", "envs.evaluation.metrics"),
    ("envs.opf",),
    ("envs.evaluation",),
    ("envs.render",),
    ("envs.interop",),
)


def imported_modules(source: str, filename: str = "<source>") -> list[tuple[int, str]]:
    """``(line, dotted module)`` of every absolute import in ``source``; ``from a import b``
    gives ``a.b`` (``b`` may be a module or a name in ``a``)."""
    found = []
    for node in ast.walk(ast.parse(source, filename)):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found += [(node.lineno, f"{node.module}.{alias.name}") for alias in node.names]
    return found


def imported_packages(source: str, filename: str = "<source>") -> list[tuple[int, str]]:
    """``(line, top-level package)`` of every absolute import in ``source``."""
    return [(line, module.split(".")[0]) for line, module in imported_modules(source, filename)]


def envs_layer(module: str) -> int:
    """The index in ``ENVS_LAYERS`` of the part ``module`` (dotted, under envs) belongs to."""
    for index, parts in enumerate(ENVS_LAYERS):
        if any(module == part or module.startswith(part + ".") for part in parts):
            return index
    raise AssertionError(f"{module} is in no layer of ENVS_LAYERS: add it there")


def _module_name(path: pathlib.Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def envs_import_graph() -> dict[str, set[str]]:
    """Module -> the envs modules it imports (lazily inside functions included)."""
    modules = {_module_name(path): path for path in (ROOT / "envs").rglob("*.py")}
    graph = {}
    for name, path in modules.items():
        targets = set()
        for _, imported in imported_modules(path.read_text(), str(path)):
            while imported and imported not in modules:  # "envs.sim.reward.x" -> module
                imported = imported.rpartition(".")[0]
            if imported and imported != name:
                targets.add(imported)
        graph[name] = targets
    return graph


def upward_imports(graph: dict[str, set[str]]) -> list[str]:
    return sorted(
        f"{module} imports {target}"
        for module, targets in graph.items()
        if module != "envs"
        for target in targets
        if target != "envs" and envs_layer(target) > envs_layer(module)
    )


def import_cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Every cycle found by a depth-first walk (each reported once per entry point)."""
    cycles, state = [], {}

    def visit(node, path):
        state[node] = "open"
        for target in sorted(graph.get(node, ())):
            if state.get(target) == "open":
                cycles.append([*path[path.index(target) :], target])
            elif target not in state:
                visit(target, [*path, target])
        state[node] = "done"

    for node in sorted(graph):
        if node not in state:
            visit(node, [node])
    return cycles


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


def test_envs_parts_import_downwards_and_without_cycles():
    graph = envs_import_graph()
    assert "envs.sim.transition" in graph and "envs.powerflow.grid" in graph
    assert upward_imports(graph) == []
    assert import_cycles(graph) == []


def test_layer_and_cycle_checks_catch_violations():
    graph = {
        "envs.powerflow.grid": {"envs.powerflow.acpf", "envs.sim.params"},
        "envs.powerflow.acpf": {"envs.powerflow.dcpf"},
        "envs.powerflow.dcpf": {"envs.powerflow.grid"},
        "envs.sim.params": set(),
    }
    assert upward_imports(graph) == ["envs.powerflow.grid imports envs.sim.params"]
    assert import_cycles(graph) == [
        ["envs.powerflow.acpf", "envs.powerflow.dcpf", "envs.powerflow.grid", "envs.powerflow.acpf"]
    ]


def _defines_flags(source: str) -> bool:
    """Whether a module defines absl flags when imported (``flags.DEFINE_*`` at module level,
    or through a helper such as ``benchmarks.harness.define_once``)."""
    return any(
        isinstance(node, ast.Attribute) and node.attr.startswith("DEFINE_")
        for statement in ast.parse(source).body
        if not isinstance(statement, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef)
        for node in ast.walk(statement)
    )


def command_line_imports() -> list[str]:
    """Library modules (no flags of their own, not a ``__main__``) that import a command line
    (a module defining flags): its flags would land in every process importing the library."""
    modules = {
        _module_name(path): path
        for package in PROJECT_PACKAGES
        for path in (ROOT / package).rglob("*.py")
    }
    command_lines = {name for name, path in modules.items() if _defines_flags(path.read_text())}
    out = []
    for name, path in sorted(modules.items()):
        if name in command_lines or name.endswith("__main__"):
            continue
        for line, imported in imported_modules(path.read_text(), str(path)):
            while imported and imported not in modules:
                imported = imported.rpartition(".")[0]
            if imported in command_lines:
                out.append(f"{name}:{line} imports the command line {imported}")
    return out


def test_libraries_never_import_a_command_line():
    assert command_line_imports() == []


def test_the_evaluation_library_is_checked_and_below_its_command_line():
    graph = envs_import_graph()
    for module in ("rollout", "metrics", "registry", "suite"):
        assert f"envs.evaluation.{module}" in graph
    # The rollout sits below the baselines, which re-export it; the suite runs the baselines.
    assert envs_layer("envs.evaluation.rollout") < envs_layer("envs.opf.baselines")
    assert envs_layer("envs.opf.baselines") < envs_layer("envs.evaluation.suite")
    assert not _defines_flags((ROOT / "launch" / "evaluation.py").read_text())
    assert _defines_flags((ROOT / "launch" / "evaluate.py").read_text())


def test_the_learning_benchmark_defines_its_flags_in_its_command_line_only():
    parts = sorted((ROOT / "benchmarks" / "learning").glob("*.py"))
    assert {path.stem for path in parts} >= {"__main__", "train", "evaluation", "report"}
    for path in parts:
        assert _defines_flags(path.read_text()) == (path.stem == "__main__"), path.name
