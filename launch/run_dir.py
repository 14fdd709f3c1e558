"""The run directory: creation, and a lock file so two runs never write the same directory.

The lock holds the owner's pid; a lock whose pid is no longer alive (a killed run) is stale
and cleared, so a crash never leaves a run directory unusable.
"""

from __future__ import annotations

import datetime
import json
import os


class RunDirLockedError(RuntimeError):
    """Another live process is using the run directory."""


LOCK_NAME = ".lock"


def default_run_dir() -> str:
    return os.path.join("runs", datetime.datetime.now().strftime("%Y%m%d-%H%M%S"))


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class RunDirLock:
    """``with RunDirLock(run_dir):`` — exclusive use of ``run_dir`` by this process."""

    def __init__(self, run_dir: str):
        self.path = os.path.join(run_dir, LOCK_NAME)

    def __enter__(self):
        os.makedirs(os.path.dirname(self.path), exist_ok=True)
        for _ in range(2):
            try:
                fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
            except FileExistsError:
                self._clear_if_stale()
                continue
            with os.fdopen(fd, "w") as handle:
                handle.write(str(os.getpid()))
            return self
        raise RunDirLockedError(f"could not lock {self.path}")

    def _clear_if_stale(self) -> None:
        try:
            with open(self.path) as handle:
                owner = int(handle.read().strip() or -1)
        except (FileNotFoundError, ValueError):
            owner = -1
        if owner > 0 and owner != os.getpid() and pid_alive(owner):
            raise RunDirLockedError(
                f"run dir {os.path.dirname(self.path)} is in use by process {owner}"
            )
        try:
            os.remove(self.path)
        except FileNotFoundError:
            pass

    def __exit__(self, *exc) -> None:
        try:
            os.remove(self.path)
        except FileNotFoundError:
            pass


def write_json(run_dir: str, name: str, payload: dict) -> str:
    """Write atomically (readers polling the file never see half of it)."""
    path = os.path.join(run_dir, name)
    with open(path + ".tmp", "w") as handle:
        json.dump(payload, handle, indent=2, sort_keys=True, default=str)
    os.replace(path + ".tmp", path)
    return path
