"""A node process started by Ray keeps the devices the launcher gives it.

The launcher's node actors ask Ray for no accelerator and pin themselves with
``CUDA_VISIBLE_DEVICES`` / ``TPU_VISIBLE_CHIPS`` in their runtime_env; Ray before 2.56 (and
any Ray with ``RAY_ACCEL_ENV_VAR_OVERRIDE_ON_ZERO=1``) blanks those in such an actor. A local
Ray started with that setting shows both: a bare actor loses its devices, an actor started
with ``launch.devices.process_env_vars`` keeps them. Ray runs in a child process so that no
Ray instance outlives the test or meets another test's.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("ray")

REPO = Path(__file__).resolve().parents[2]

PROBE = """
import json, os, ray
from launch.devices import process_env_vars

ray.init(address="local", num_cpus=1, include_dashboard=False, log_to_driver=False,
         runtime_env={"env_vars": {"RAY_ACCEL_ENV_VAR_OVERRIDE_ON_ZERO": "1"}})

@ray.remote(num_cpus=0)
class Probe:
    def visible(self):
        return [os.environ.get(k) for k in ("CUDA_VISIBLE_DEVICES", "TPU_VISIBLE_CHIPS")]

bare = {"CUDA_VISIBLE_DEVICES": "2,3", "TPU_VISIBLE_CHIPS": "1"}
launched = {**process_env_vars("gpu", (2, 3)), **process_env_vars("tpu", (1,))}
seen = {name: ray.get(Probe.options(runtime_env={"env_vars": env}).remote().visible.remote())
        for name, env in (("bare", bare), ("launched", launched))}
ray.shutdown()
print(json.dumps(seen))
"""


def test_node_actors_keep_their_visible_devices_where_ray_would_blank_them():
    env = dict(os.environ, RAY_USAGE_STATS_ENABLED="0", PYTHONPATH=str(REPO))
    command = [sys.executable, "-c", PROBE]
    result = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    seen = json.loads(result.stdout.strip().splitlines()[-1])
    assert seen["bare"][0] == ""  # the setting really blanks devices here
    assert seen["launched"] == ["2,3", "1"]
