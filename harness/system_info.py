"""A system description in the MLPerf `systems/<system>.json` format, read off this machine."""

from __future__ import annotations

import os
import platform
import sys
from importlib import metadata

from harness.machine import cpu_name


def _memory_gb() -> str:
    try:
        pages, page_size = os.sysconf("SC_PHYS_PAGES"), os.sysconf("SC_PAGE_SIZE")
        return f"{round(pages * page_size / 2**30)}GB"
    except (ValueError, OSError):
        return ""


def _version(package: str) -> str:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return ""


def _accelerators() -> tuple[int, str, str]:
    if "torch" in sys.modules:
        import torch

        if torch.cuda.is_available():
            props = torch.cuda.get_device_properties(0)
            return torch.cuda.device_count(), props.name, f"{round(props.total_memory / 2**30)}GB"
    return 0, "N/A", "N/A"


def describe_system(system_name: str, *, submitter: str, division: str, status: str,
                    framework: str) -> dict[str, str]:
    count, accelerator, accelerator_memory = _accelerators()
    framework_versions = {"pytorch": f"PyTorch {_version('torch')}",
                          "tensorflow": f"TensorFlow {_version('tensorflow-cpu') or _version('tensorflow')}"}
    return {
        "division": division, "submitter": submitter, "status": status, "system_name": system_name,
        "number_of_nodes": os.environ.get("SLURM_NNODES", "1"),
        "host_processor_model_name": cpu_name(), "host_processors_per_node": "1",
        "host_processor_core_count": str(os.cpu_count() or ""), "host_memory_capacity": _memory_gb(),
        "accelerators_per_node": str(count), "accelerator_model_name": accelerator,
        "accelerator_memory_capacity": accelerator_memory,
        "framework": framework_versions.get(framework, framework),
        "operating_system": platform.platform(),
        "other_software_stack": f"Python {platform.python_version()}",
        "sw_notes": "", "hw_notes": "",
    }
