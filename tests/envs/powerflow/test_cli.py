"""python -m envs.powerflow: JSON output against PYPOWER, report, and bad input."""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from envs.powerflow.case import load_case
from tests.envs.powerflow.test_matpower import ODD_CASE

REPO = Path(__file__).resolve().parents[3]


def _run(*args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "JAX_PLATFORMS": "cpu"}
    env.pop("XLA_FLAGS", None)
    return subprocess.run(
        [sys.executable, "-m", "envs.powerflow", *args],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def _pypower(ppc: dict, mode: str) -> dict:
    from pypower.api import ppoption, rundcpf, runpf

    options = ppoption(VERBOSE=0, OUT_ALL=0, ENFORCE_Q_LIMS=0, PF_TOL=1e-11)
    result, success = (rundcpf if mode == "dc" else runpf)(ppc, options)
    assert success
    return result


def test_json_for_a_shipped_case_matches_runpf():
    completed = _run("--case=ieee14", "--mode=ac", "--json")
    assert completed.returncode == 0, completed.stderr
    solution = json.loads(completed.stdout)
    result = _pypower(load_case("ieee14").to_ppc(), "ac")
    assert solution["converged"] is True
    np.testing.assert_allclose(solution["vm"], result["bus"][:, 7], atol=1e-6)
    np.testing.assert_allclose(solution["va"], result["bus"][:, 8], atol=1e-5)
    np.testing.assert_allclose(solution["pf"], result["branch"][:, 13], atol=1e-4)


def test_json_for_a_user_file_lists_in_service_branches_in_file_order(tmp_path):
    path = tmp_path / "odd.m"
    path.write_text(ODD_CASE)
    completed = _run(f"--case={path}", "--mode=dc", "--json")
    assert completed.returncode == 0, completed.stderr
    solution = json.loads(completed.stdout)
    case = load_case(path)
    result = _pypower(case.to_ppc(), "dc")
    in_service = case.branch[:, 10] != 0
    assert len(solution["pf"]) == int(in_service.sum()) == 8
    np.testing.assert_allclose(solution["pf"], result["branch"][in_service, 13], atol=1e-4)
    np.testing.assert_allclose(solution["va"], result["bus"][:, 8], atol=1e-5)


def test_report_lists_the_ten_most_loaded_branches():
    completed = _run("--case=ieee30", "--mode=ac")
    assert completed.returncode == 0, completed.stderr
    out = completed.stdout
    assert "converged in" in out and "Vm range" in out and "max mismatch" in out
    table = out.split("most loaded branches")[1].strip().splitlines()[2:]
    assert len(table) == 10
    loadings = [float(line.split()[-1].rstrip("%")) for line in table]
    assert loadings == sorted(loadings, reverse=True)


@pytest.mark.parametrize("bad", ["unknown", "malformed"])
def test_bad_input_is_one_line_on_stderr_with_exit_2(tmp_path, bad):
    if bad == "unknown":
        case, expected = "ieee9999", "unknown case 'ieee9999'"
    else:
        path = tmp_path / "broken.m"
        path.write_text(ODD_CASE.replace("\t99\t1\t25\t5", "\t99\t1\t25x\t5"))
        case, expected = str(path), f"{path}:"
    completed = _run(f"--case={case}")
    assert completed.returncode == 2
    lines = [line for line in completed.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, completed.stderr
    assert lines[0].startswith("powerflow: error: ") and expected in lines[0]
    assert "Traceback" not in completed.stderr and completed.stdout == ""
