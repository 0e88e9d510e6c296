"""What machine a measurement ran on, for every bench's output: a speed figure names its machine.

`describe()` is the signature a bench prints and stores next to its numbers: CPU model, cores this
process may use, the load average (a 2-core machine shared with other jobs gives pessimistic times:
the load says how shared it was), Python and OS. Devices (GPU names) are each framework's business.
"""

from __future__ import annotations

import os
import platform


def cpu_name() -> str:
    try:
        with open("/proc/cpuinfo") as cpuinfo:
            for line in cpuinfo:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def load_average() -> tuple[float, float, float] | None:
    try:
        return tuple(round(value, 2) for value in os.getloadavg())
    except OSError:  # not every platform has one
        return None


def describe() -> dict:
    """CPU model, usable cores, load average (1, 5, 15 min), Python, OS."""
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return {"cpu": cpu_name(), "cores": usable, "load_average": load_average(),
            "python": platform.python_version(), "os": platform.platform(terse=True)}


def one_line(machine: dict) -> str:
    load = machine.get("load_average")
    shown = "/".join(f"{value:.1f}" for value in load) if load else "n/a"
    return f"{machine['cores']} cores of {machine['cpu']}, load average {shown} (1/5/15 min), Python {machine['python']}"
