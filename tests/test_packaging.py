"""The distribution: top-level packages, console scripts, and the simulator without the trainer."""

import importlib
import os
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
CONSOLE_SCRIPTS = ("gridpod-train", "gridpod-evaluate", "gridpod-distill", "gridpod-powerflow")
# What only the ``train`` extra brings (flax itself needs optax, orbax-checkpoint and rich, so
# a base install has them; the simulator must still not import them).
TRAINER_ONLY = ("ray", "optax", "orbax", "chex", "tensorboardX")
SIMULATOR_MODULES = ("envs", "envs.env", "envs.opf.step_qp", "envs.interop", "envs.interop.vector")


@pytest.mark.parametrize("name", ["envs", "actors", "replay", "learner", "launch", "configs"])
def test_top_level_packages_import(name):
    module = importlib.import_module(name)
    assert module.__doc__, f"package {name} has no docstring"


def test_x64_fixture_enables_float64(x64):
    import jax.numpy as jnp

    assert jnp.zeros(1).dtype == jnp.float64


def test_float32_is_default():
    import jax.numpy as jnp

    assert jnp.zeros(1).dtype == jnp.float32


def test_rank_promotion_raises():
    import jax.numpy as jnp

    with pytest.raises(ValueError):
        _ = jnp.ones((3, 1)) + jnp.ones(3)


def test_console_scripts_are_declared_and_resolve_to_callables():
    scripts = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["scripts"]
    assert set(CONSOLE_SCRIPTS) <= set(scripts)
    for name in CONSOLE_SCRIPTS:
        module_name, _, attribute = scripts[name].partition(":")
        target = getattr(importlib.import_module(module_name), attribute, None)
        assert callable(target), f"{name} -> {scripts[name]} is not a callable"


BLOCKED_IMPORT_PROBE = """
import importlib, sys

class TrainerBlocker:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in {blocked!r}:
            raise ImportError(f"{{name}} is not installed (trainer-only dependency)")
        return None

sys.meta_path.insert(0, TrainerBlocker())
for module in {modules!r}:
    importlib.import_module(module)
from envs.config import default_env_config
from envs.env import make_env
env, params = make_env(default_env_config())
env.spec(params)  # traces reset: imports made on first use count too
print("simulator ok")
"""


def test_simulator_imports_and_builds_without_the_trainer_dependencies():
    probe = BLOCKED_IMPORT_PROBE.format(blocked=TRAINER_ONLY, modules=SIMULATOR_MODULES)
    env = dict(os.environ, PYTHONPATH=str(REPO), JAX_PLATFORMS="cpu")
    result = subprocess.run(
        [sys.executable, "-c", probe], cwd=REPO, env=env, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.strip().endswith("simulator ok")
