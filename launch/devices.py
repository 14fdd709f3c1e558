"""Device sets: parsing, validation and the per-process environment that pins a process to them.

Devices are *logical indices of one host*: GPUs as numbered by the driver, TPU chips, or on a
CPU host the N devices that ``--xla_force_host_platform_device_count=N`` emulates. A process
started for a device set sees only those devices, renumbered from 0.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

PLATFORMS = ("cpu", "gpu", "tpu")
# XLA:CPU's YNNPACK fusions (a dot plus its elementwise neighbours) slow the PPO update's chains
# of thin [N, 32] Dense + LayerNorm + SiLU layers but speed up the actors' rollouts
# (benchmarks/README.md, "Training throughput"): only learner processes turn them off.
LEARNER_CPU_XLA_FLAGS = ("--xla_cpu_experimental_ynn_fusion_type=",)


# Node processes are Ray actors that ask for no accelerator (num_gpus=0): the devices are
# chosen by the variables above, not by Ray's scheduler. Ray before 2.56 then sets the
# actor's CUDA_VISIBLE_DEVICES to "" (and unsets TPU_VISIBLE_CHIPS), hiding every device;
# 2.56 made keeping them the default, undone by RAY_ACCEL_ENV_VAR_OVERRIDE_ON_ZERO=1 on the
# cluster. Ray's per-accelerator NOSET switches keep them on every version, the explicit
# OVERRIDE_ON_ZERO=0 should those switches go.
RAY_KEEP_VISIBLE_DEVICES = {
    "gpu": {
        "RAY_EXPERIMENTAL_NOSET_CUDA_VISIBLE_DEVICES": "1",
        "RAY_ACCEL_ENV_VAR_OVERRIDE_ON_ZERO": "0",
    },
    "tpu": {
        "RAY_EXPERIMENTAL_NOSET_TPU_VISIBLE_CHIPS": "1",
        "RAY_ACCEL_ENV_VAR_OVERRIDE_ON_ZERO": "0",
    },
}

# Set by the launcher in a node process's environment when ``runtime.pin_cpu_cores`` is on.
CPU_CORES_ENV = "GRIDPOD_CPU_CORES"


class DeviceConfigError(ValueError):
    """An impossible device assignment (reported as a one-line start-up error)."""


def parse_devices(text: str | Sequence[int], what: str) -> tuple[int, ...]:
    """'0,1' or [0, 1] -> (0, 1); rejects empty, negative, or repeated indices."""
    if isinstance(text, str):
        parts = [p.strip() for p in text.split(",") if p.strip()]
        try:
            indices = tuple(int(p) for p in parts)
        except ValueError:
            raise DeviceConfigError(
                f"{what}={text!r} is not a comma-separated list of ints"
            ) from None
    else:
        indices = tuple(int(i) for i in text)
    if not indices:
        raise DeviceConfigError(f"{what} is empty: give at least one device index")
    if min(indices) < 0:
        raise DeviceConfigError(f"{what}={indices} has a negative device index")
    if len(set(indices)) != len(indices):
        raise DeviceConfigError(f"{what}={indices} repeats a device")
    return indices


def validate_device_sets(
    actor_devices: tuple[int, ...], learner_devices: tuple[int, ...], available: int
) -> None:
    overlap = sorted(set(actor_devices) & set(learner_devices))
    if overlap:
        raise DeviceConfigError(
            f"actor devices {actor_devices} and learner devices {learner_devices} overlap on "
            f"{overlap}: give them disjoint sets"
        )
    highest = max(actor_devices + learner_devices)
    if highest >= available:
        raise DeviceConfigError(
            f"device {highest} requested but this host has {available} devices "
            f"(indices 0..{available - 1})"
        )


def split_devices(devices: tuple[int, ...], groups: int, what: str) -> list[tuple[int, ...]]:
    """Split a device set evenly over ``groups`` processes."""
    if groups < 1 or len(devices) % groups:
        raise DeviceConfigError(
            f"{len(devices)} {what} devices cannot be split evenly over {groups} processes"
        )
    size = len(devices) // groups
    return [devices[i * size : (i + 1) * size] for i in range(groups)]


def node_cpu_xla_flags(node_name: str) -> tuple[str, ...]:
    """XLA:CPU flags for the process of one program node (tuned per role)."""
    return LEARNER_CPU_XLA_FLAGS if node_name == "learner" else ()


def process_env_vars(
    platform: str, devices: tuple[int, ...], cpu_xla_flags: tuple[str, ...] = ()
) -> dict[str, str]:
    """Environment variables that restrict a fresh process to ``devices`` of this host.

    On CPU, ``cpu_xla_flags`` are added to the launching shell's XLA_FLAGS unless it already
    sets the same flag (the shell wins).
    """
    visible = ",".join(str(d) for d in devices)
    if platform == "gpu":
        return {
            "CUDA_VISIBLE_DEVICES": visible,
            "XLA_PYTHON_CLIENT_PREALLOCATE": "false",
            **RAY_KEEP_VISIBLE_DEVICES["gpu"],
        }
    if platform == "tpu":
        return {
            "TPU_VISIBLE_CHIPS": visible,
            "TPU_CHIPS_PER_PROCESS_BOUNDS": f"1,{len(devices)},1",
            "TPU_PROCESS_BOUNDS": "1,1,1",
            **RAY_KEEP_VISIBLE_DEVICES["tpu"],
        }
    if platform == "cpu":
        return {
            "XLA_FLAGS": with_host_device_count(
                with_default_flags(os.environ.get("XLA_FLAGS", ""), cpu_xla_flags), len(devices)
            ),
            "JAX_PLATFORMS": "cpu",
        }
    raise DeviceConfigError(f"unknown platform {platform!r}; expected one of {PLATFORMS}")


def with_host_device_count(xla_flags: str, count: int) -> str:
    """XLA_FLAGS with the emulated CPU device count replaced by ``count``."""
    kept = [f for f in xla_flags.split() if "xla_force_host_platform_device_count" not in f]
    return " ".join([*kept, f"--xla_force_host_platform_device_count={count}"])


def with_default_flags(xla_flags: str, defaults: tuple[str, ...]) -> str:
    """XLA_FLAGS plus each of ``defaults`` whose flag name it does not set already."""
    present = {f.split("=", 1)[0] for f in xla_flags.split()}
    added = [d for d in defaults if d.split("=", 1)[0] not in present]
    return " ".join([*xla_flags.split(), *added])


def detect_platform(requested: str) -> str:
    """'auto' -> the accelerator this host has, judged without initialising JAX."""
    if requested != "auto":
        if requested not in PLATFORMS:
            raise DeviceConfigError(
                f"runtime.platform={requested!r}; expected auto or one of {PLATFORMS}"
            )
        return requested
    forced = os.environ.get("JAX_PLATFORMS", "").split(",")[0].strip()
    if forced in ("cuda", "gpu", "rocm"):
        return "gpu"
    if forced in PLATFORMS:
        return forced
    if os.path.exists("/dev/nvidia0") or os.path.exists("/dev/nvidiactl"):
        return "gpu"
    if os.path.exists("/dev/accel0") or os.path.exists("/dev/vfio/0"):
        return "tpu"
    return "cpu"


def count_host_devices(platform: str, emulated_cpu_devices: int) -> int:
    """How many devices of ``platform`` this host has (CPU: the number the launcher emulates)."""
    if platform == "cpu":
        return emulated_cpu_devices
    if platform == "gpu":
        return sum(1 for n in os.listdir("/dev") if n.startswith("nvidia") and n[6:].isdigit())
    return sum(1 for n in os.listdir("/dev") if n.startswith("accel") and n[5:].isdigit())


def cpu_cores_of(
    devices: tuple[int, ...], emulated: int, cores: tuple[int, ...]
) -> tuple[int, ...]:
    """Host cores behind emulated CPU devices: ``cores`` (the host's usable core ids) split
    evenly over the ``emulated`` devices in order (4 devices on cores (0, 1): devices 0,1 ->
    core 0, devices 2,3 -> core 1; more cores than devices: several cores per device)."""
    n = len(cores)
    chosen: set[int] = set()
    for d in devices:
        first = d * n // emulated
        chosen.update(cores[i] for i in range(first, max(first + 1, (d + 1) * n // emulated)))
    return tuple(sorted(chosen))


def pin_process_to_env_cores() -> None:
    """Restrict every thread of this process to the cores named in ``CPU_CORES_ENV`` (if set).

    Called before JAX starts in the process, so XLA's thread pools inherit the restriction.
    """
    text = os.environ.get(CPU_CORES_ENV, "")
    if not text:
        return
    cores = {int(c) for c in text.split(",")}
    for tid in os.listdir("/proc/self/task"):
        try:
            os.sched_setaffinity(int(tid), cores)
        except ProcessLookupError:  # a thread that ended meanwhile
            pass
