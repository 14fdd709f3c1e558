"""The machine a benchmark ran on, for the header of its table."""

import os
import platform


def cpu_model() -> str:
    """The CPU's marketing name from /proc/cpuinfo (Linux), else what Python knows."""
    try:
        with open("/proc/cpuinfo") as cpuinfo:
            for line in cpuinfo:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def usable_cores() -> int:
    """Cores this process may run on (its affinity mask), not the machine's total."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def memory_gib() -> float | None:
    """Physical memory in GiB, where the OS reports it."""
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    except (AttributeError, ValueError, OSError):
        return None


def describe() -> dict:
    """The machine as one record: a measurement is only comparable on the same hardware,
    and other jobs on it (the load average) depress every wall-clock figure."""
    import jax

    device = jax.devices()[0]
    return {
        "cpu": cpu_model(),
        "usable_cores": usable_cores(),
        "memory_gib": memory_gib(),
        "load_average": list(os.getloadavg()) if hasattr(os, "getloadavg") else None,
        "jax": jax.__version__,
        "backend": jax.default_backend(),
        "device": f"{len(jax.devices())} x {device.device_kind}",
    }


def describe_line(record: dict) -> str:
    """``describe()`` as one header line."""
    memory = record.get("memory_gib")
    load = record.get("load_average")
    return (
        f"{record['cpu']}, {record['usable_cores']} cores usable"
        + (f", {memory:.0f} GiB" if memory else "")
        + (f", load average {load[0]:.1f}" if load else "")
        + f"; jax {record['jax']} on {record['device']} ({record['backend']})"
    )
