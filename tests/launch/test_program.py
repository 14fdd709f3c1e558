import os
import subprocess
import sys

import pytest

from launch.devices import (
    CPU_CORES_ENV,
    DeviceConfigError,
    cpu_cores_of,
    node_cpu_xla_flags,
    process_env_vars,
    with_host_device_count,
)
from launch.program import ConfigError, build_program
from launch.run_dir import RunDirLock, RunDirLockedError
from tests.launch.tiny import tiny_config

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def program_for(**runtime):
    config = tiny_config()
    config.runtime.platform = "cpu"
    for key, value in runtime.items():
        config.runtime[key] = value
    return build_program(config, "unused")


def test_default_split_and_derived_numbers():
    program = program_for(actor_processes=2)
    assert [g.devices for g in program.actor_groups] == [(0,), (1,)]
    assert [g.first_actor_id for g in program.actor_groups] == [0, 1]
    assert program.learner_devices == (2, 3)
    # batch 8 = 2 items x 4 grids; 4 x 8 env steps per update; 256 steps -> 8 updates.
    assert program.plan.items_per_update == 2
    assert program.plan.env_steps_per_update == 32
    assert program.plan.total_updates == 8
    assert (program.queue_capacity, program.queue_min_fill) == (2, 2)


def test_the_checkpoint_cadence_is_the_learners():
    config = tiny_config()
    config.runtime.platform = "cpu"
    config.learner.checkpoint.save_every_updates = 7
    assert build_program(config, "unused").plan.checkpoint_every == 7


@pytest.mark.parametrize(
    "runtime, error, message",
    [
        ({"actor_devices": "0,1", "learner_devices": "1,2"}, DeviceConfigError, "overlap"),
        ({"learner_devices": "2,7"}, DeviceConfigError, "has 4 devices"),
        ({"actor_processes": 3}, DeviceConfigError, "split evenly"),
        ({"queue_capacity": 1}, ConfigError, "smaller than"),
        ({"queue_capacity": 4, "queue_min_fill": 5}, ConfigError, "exceeds"),
    ],
)
def test_impossible_settings_are_rejected(runtime, error, message):
    with pytest.raises(error, match=message):
        program_for(**runtime)


def test_batch_that_does_not_divide_is_rejected():
    config = tiny_config()
    config.actors.num_envs = 3
    with pytest.raises(ConfigError, match=r"multiple of actors\.num_envs"):
        build_program(config, "unused", host_devices=4)


def test_process_env_vars_pin_devices():
    assert process_env_vars("gpu", (2, 3))["CUDA_VISIBLE_DEVICES"] == "2,3"
    assert process_env_vars("tpu", (0, 1))["TPU_VISIBLE_CHIPS"] == "0,1"
    cpu = process_env_vars("cpu", (0, 1, 2))
    assert "--xla_force_host_platform_device_count=3" in cpu["XLA_FLAGS"]
    flags = with_host_device_count("--foo --xla_force_host_platform_device_count=4", 2)
    assert flags.split() == ["--foo", "--xla_force_host_platform_device_count=2"]


def test_learner_process_gets_its_cpu_flags_unless_the_shell_sets_them(monkeypatch):
    monkeypatch.setenv("XLA_FLAGS", "--foo")
    learner = process_env_vars("cpu", (0, 1), node_cpu_xla_flags("learner"))["XLA_FLAGS"]
    actor = process_env_vars("cpu", (0, 1), node_cpu_xla_flags("actors_0"))["XLA_FLAGS"]
    assert learner.split() == [
        "--foo",
        "--xla_cpu_experimental_ynn_fusion_type=",
        "--xla_force_host_platform_device_count=2",
    ]
    assert actor.split() == ["--foo", "--xla_force_host_platform_device_count=2"]
    monkeypatch.setenv("XLA_FLAGS", "--xla_cpu_experimental_ynn_fusion_type=dot")
    learner = process_env_vars("cpu", (0,), node_cpu_xla_flags("learner"))["XLA_FLAGS"]
    assert learner.count("ynn_fusion_type") == 1 and "ynn_fusion_type=dot" in learner


def test_emulated_devices_map_onto_disjoint_host_cores():
    assert cpu_cores_of((0, 1), 4, (0, 1)) == (0,)
    assert cpu_cores_of((2, 3), 4, (0, 1)) == (1,)
    assert cpu_cores_of((0,), 2, (0, 1, 2, 3)) == (0, 1)
    assert cpu_cores_of((1,), 2, (4, 5, 6, 7)) == (6, 7)  # the usable core ids, not 0..n-1
    assert cpu_cores_of((0, 1, 2, 3), 4, (0, 1)) == (0, 1)


def test_a_node_process_pins_all_its_threads_to_its_cores():
    core = min(os.sched_getaffinity(0))
    code = (
        "import os, threading\n"
        "t = threading.Thread(target=lambda: __import__('time').sleep(2)); t.start()\n"
        "from launch.backends import prepared_on_start\n"
        "class Node:\n"
        "    def __init__(self, x): self.x = x\n"
        "node = prepared_on_start(Node, pin=True)(3)\n"
        "tasks = os.listdir('/proc/self/task')\n"
        "print(node.x, type(node).__name__, len(tasks),"
        " {c for tid in tasks for c in os.sched_getaffinity(int(tid))})\n"
    )
    env = os.environ | {CPU_CORES_ENV: str(core)}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    value, name, threads, cores = out.stdout.split()
    assert (value, name, cores) == ("3", "Node", f"{{{core}}}")
    assert int(threads) >= 2  # the thread started before pinning is pinned too


def test_run_dir_lock_clears_stale_and_refuses_live(tmp_path):
    (tmp_path / ".lock").write_text("999999999")  # no such process: stale
    with RunDirLock(str(tmp_path)):
        assert (tmp_path / ".lock").read_text() == str(os.getpid())
        other = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
        try:
            (tmp_path / ".lock").write_text(str(other.pid))
            with pytest.raises(RunDirLockedError, match="in use"):
                RunDirLock(str(tmp_path)).__enter__()
        finally:
            other.kill()
            other.wait()
    assert not (tmp_path / ".lock").exists()


def _start_up_error(run_dir, *flags) -> str:
    """The launcher's one stderr line for a start-up error (exit status 2 asserted)."""
    result = subprocess.run(
        [sys.executable, "-m", "launch.local", f"--run_dir={run_dir}", *flags],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 2
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    return lines[0]


@pytest.mark.parametrize(
    "flags",
    [
        ["--actor_devices=0,1", "--learner_devices=1,2"],
        ["--learner_devices=2,3,4,5"],
        ["--config.actors.num_envs=3"],
    ],
    ids=["overlap", "too_many_devices", "batch_not_divisible"],
)
def test_launcher_start_up_errors_exit_nonzero_with_one_line(flags, tmp_path):
    _start_up_error(tmp_path, *flags)
    assert not os.path.exists(tmp_path / "checkpoints")


def test_a_fresh_run_refuses_a_run_dir_that_holds_checkpoints(tmp_path):
    old = tmp_path / "checkpoints" / "50"
    old.mkdir(parents=True)
    (old / "marker").write_text("the earlier run")
    assert "--resume" in _start_up_error(tmp_path)
    assert os.listdir(tmp_path / "checkpoints") == ["50"]
    assert (old / "marker").read_text() == "the earlier run"
