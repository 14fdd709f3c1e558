"""The examples run as documented: the pure-JAX loop always, the SB3 one where it is installed.

Each example's ``main(argv)`` runs in this process with tiny sizes (``runpy``: the
examples are scripts, not a package) and its printed figures are checked.
"""

import re
import runpy
from pathlib import Path

import numpy as np
import pytest

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def run_example(name: str, argv: list[str], capsys) -> str:
    module = runpy.run_path(str(EXAMPLES / name), run_name=f"example_{Path(name).stem}")
    module["main"](argv)
    return capsys.readouterr().out


def number(pattern: str, text: str) -> float:
    match = re.search(pattern, text)
    assert match, f"{pattern!r} not in the output:\n{text}"
    return float(match.group(1).replace(",", ""))


def test_pure_jax_loop_reports_rate_reward_and_cost(capsys):
    argv = ["--case", "ieee14", "--num-envs", "2", "--steps", "3", "--policy", "do_nothing"]
    out = run_example("pure_jax_loop.py", argv, capsys)
    assert "2 grids x 3 steps" in out
    assert number(r"([\d,.]+) env steps/s", out) > 0
    assert -10.0 <= number(r"mean reward (-?[\d.]+)", out) <= 1.0  # the env's reward range
    assert number(r"mean step cost \$([\d,.]+)", out) > 0  # generation is never free
    assert number(r"episodes ended (\d+)", out) == 0  # 3 steps of a 288-step horizon


def test_pure_jax_loop_rejects_bad_sizes(capsys):
    with pytest.raises(SystemExit):
        run_example("pure_jax_loop.py", ["--num-envs", "0"], capsys)
    assert "--num-envs and --steps must be >= 1" in capsys.readouterr().err


def test_sb3_example_trains_and_compares_with_do_nothing(capsys):
    pytest.importorskip("stable_baselines3")
    argv = ["--horizon", "4", "--timesteps", "16", "--n-steps", "8", "--eval-episodes", "1"]
    out = run_example("sb3_single_agent.py", argv, capsys)
    ppo = number(r"mean episode cost \$([\d,.]+)", out)
    hold = number(r"do-nothing \$([\d,.]+)", out)
    assert ppo > 0 and hold > 0
    assert number(r"PPO / do-nothing ([\d.]+)", out) == pytest.approx(ppo / hold, rel=0.01)
    assert np.isfinite(ppo / hold)
