"""What a single-machine run starts: found by its tag, on loopback only, gone after kill -9."""

import ipaddress
import os
import signal
import time

import pytest

from launch import processes
from tests.launch import proc_sockets
from tests.launch.test_local_runs import launch, read_json, wait_for


def test_listening_sockets_are_parsed_from_proc_net(tmp_path):
    import socket

    server = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    server.bind(("127.0.0.1", 0))
    server.listen()
    try:
        found = proc_sockets.listening_addresses([os.getpid()])
    finally:
        server.close()
    assert "127.0.0.1" in {address for _, address in found}, found


@pytest.mark.parametrize(
    ("address", "loopback"),
    [
        ("127.0.0.1", True),
        ("::1", True),
        ("::ffff:127.0.0.1", True),
        ("0.0.0.0", False),
        ("::", False),
        ("192.0.2.7", False),
        ("::ffff:192.0.2.7", False),
    ],
)
def test_is_loopback(address, loopback):
    assert proc_sockets.is_loopback(address) is loopback


def test_proc_address_words_are_little_endian():
    assert proc_sockets.proc_address("0100007F", 8) == "127.0.0.1"
    assert ipaddress.ip_address(
        proc_sockets.proc_address("0000000000000000FFFF00000100007F", 32)
    ) == (ipaddress.ip_address("::ffff:127.0.0.1"))


def _run_tag_of_children(parent: int) -> str:
    """The run tag in the environment of the launcher's children (the launcher sets it after
    it started, so its own /proc environ does not show it)."""
    needle = processes.RUN_TAG_ENV.encode() + b"="
    for entry in os.listdir("/proc"):
        try:
            with open(f"/proc/{entry}/stat") as handle:
                ppid = int(handle.read().rsplit(")", 1)[1].split()[1])
            if ppid != parent:
                continue
            with open(f"/proc/{entry}/environ", "rb") as handle:
                for item in handle.read().split(b"\0"):
                    if item.startswith(needle):
                        return item[len(needle) :].decode()
        except (OSError, ValueError, IndexError):
            continue
    raise AssertionError(f"no child of {parent} carries {processes.RUN_TAG_ENV}")


def nodes_started(run_dir) -> bool:
    nodes = read_json(run_dir / "nodes.json")
    return bool(nodes) and {"learner", "actor-0"} <= set(nodes)


def test_a_local_run_listens_on_loopback_only_and_kill_9_leaves_no_process(tmp_path):
    """The ShadowRay class of exposure (an unauthenticated Ray on a reachable address) and
    orphaned Ray agents after the launcher is killed (issue: security and clean kills)."""
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    launcher = launch(
        str(run_dir),
        tmp_path / "cache",
        "--total_env_steps=100000000",
        "--config.runtime.actor_processes=1",
    )
    try:
        # Every node process started (nodes.json lists them): Ray's servers and the nodes'
        # workers listen from then on; training itself is not needed.
        wait_for(lambda: nodes_started(run_dir), 300, launcher, "the node processes")
        tag = _run_tag_of_children(launcher.pid)
        pids = processes.processes_of_run(tag)
        assert len(pids) >= 4, pids  # GCS, raylet, learner and actor at least
        sockets = proc_sockets.listening_addresses(pids)
        assert sockets, "a Ray run listens on some port"
        exposed = [(pid, a) for pid, a in sockets if not proc_sockets.is_loopback(a)]
        assert not exposed, f"listening beyond loopback: {exposed}"
    finally:
        launcher.send_signal(signal.SIGKILL)
        launcher.wait()
    deadline = time.monotonic() + 30
    while processes.processes_of_run(tag) and time.monotonic() < deadline:
        time.sleep(0.5)
    left = processes.processes_of_run(tag)
    assert not left, f"processes of the killed run still alive: {left}"
