"""The processes a run starts: tagging them, finding them, and reaping them when the run dies.

A single-machine run marks its environment with ``RUN_TAG_ENV`` before it starts anything.
Every process it starts inherits the tag (Ray's GCS server, raylet, agents and workers
included), so the run's processes can be found from ``/proc`` whatever their parentage.
A small reaper process, in its own session, watches the launcher: when the launcher is gone,
by a normal exit or ``kill -9``, it ends every process that still carries the tag. Ray's own
clean-up runs at the driver's exit and cannot run after SIGKILL; without the reaper its
dashboard and runtime-env agents outlive the run.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid

RUN_TAG_ENV = "GRIDPOD_RUN_TAG"
GRACE_S = 3.0  # between SIGTERM and SIGKILL for what the launcher left behind


def tag_this_run() -> str:
    """A fresh tag in this process's environment (inherited by all it starts)."""
    tag = uuid.uuid4().hex
    os.environ[RUN_TAG_ENV] = tag
    return tag


def processes_of_run(tag: str) -> list[int]:
    """Pids of the live processes whose environment carries ``tag`` (this one excluded)."""
    needle = f"{RUN_TAG_ENV}={tag}".encode()
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == os.getpid():
            continue
        try:
            with open(f"/proc/{entry}/environ", "rb") as handle:
                if needle in handle.read().split(b"\0"):
                    found.append(int(entry))
        except OSError:  # gone, or not ours to read
            continue
    return found


def end_processes(pids: list[int], grace_s: float = GRACE_S) -> None:
    """SIGTERM, then SIGKILL whatever is still alive after ``grace_s``."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        for pid in pids:
            try:
                os.kill(pid, sig)
            except (ProcessLookupError, PermissionError):
                pass
        deadline = time.monotonic() + grace_s
        while sig == signal.SIGTERM and time.monotonic() < deadline:
            if not any(_alive(pid) for pid in pids):
                return
            time.sleep(0.1)


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as handle:
            return handle.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def start_reaper(tag: str) -> subprocess.Popen | None:
    """Start the reaper for this process's run (Linux only: it reads ``/proc``)."""
    if not os.path.isdir("/proc"):
        return None
    env = {k: v for k, v in os.environ.items() if k != RUN_TAG_ENV}
    return subprocess.Popen(
        [sys.executable, "-m", "launch.processes", str(os.getpid()), tag],
        env=env,
        stdin=subprocess.DEVNULL,
        start_new_session=True,  # a signal to the launcher's process group spares it
    )


def reap_after(launcher_pid: int, tag: str, poll_s: float = 0.5) -> None:
    """Wait for ``launcher_pid`` to end, then end every process that carries ``tag``."""
    while _alive(launcher_pid):
        time.sleep(poll_s)
    time.sleep(poll_s)  # let a clean shutdown finish on its own first
    leftover = processes_of_run(tag)
    if leftover:
        end_processes(leftover)


if __name__ == "__main__":
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the launcher's to handle
    reap_after(int(sys.argv[1]), sys.argv[2])
