"""``python -m envs.powerflow``: the power-flow command line (``envs.powerflow.cli``)."""

from envs.powerflow.cli import run

run()
