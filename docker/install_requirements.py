"""Install what `pip install .[FRAMEWORK]` would install, without the project itself.

    python install_requirements.py PYPROJECT FRAMEWORK WHEEL_DIR [ACCELERATOR]

Runs inside an image build (standard library only, Python >= 3.11 for tomllib). The requirement
list is read from pyproject.toml, so the image and a native install never disagree on a version.
ACCELERATOR (the Dockerfiles' `ARG ACCELERATOR`, set by `invoke docker-build` from the base image):
`cpu` (the default) installs the pins as they are; `cuda` swaps `tensorflow-cpu==V` for
`tensorflow[and-cuda]==V`, the same release with the GPU kernels and NVIDIA's CUDA libraries as
wheels (PyTorch's PyPI wheels carry CUDA already). If WHEEL_DIR holds wheels (`invoke docker-build
--wheelhouse` put them there), the install is `pip install --no-index --find-links WHEEL_DIR`:
nothing is fetched, as air-gapped clusters need; otherwise pip installs from its package index.
The code itself is not installed: the images run it from /workspace, as the repo is run from its
root on the host.

harness/docker.py reads `requirements()` from this file to download the same wheels on the host.
"""

from __future__ import annotations

import re
import subprocess
import sys
import tomllib
from pathlib import Path

ACCELERATORS = ("cpu", "cuda")
# tensorflow-cpu==V -> tensorflow[and-cuda]==V: TensorFlow's documented GPU install, same version
_TENSORFLOW_CPU = re.compile(r"^tensorflow-cpu(?=\s*(==|$))")

def for_accelerator(requirement: str, accelerator: str) -> str:
    """The requirement as the image for `accelerator` installs it (only TensorFlow differs)."""
    if accelerator not in ACCELERATORS:
        raise SystemExit(f"error: accelerator '{accelerator}': expected one of {', '.join(ACCELERATORS)}")
    return _TENSORFLOW_CPU.sub("tensorflow[and-cuda]", requirement) if accelerator == "cuda" else requirement


def requirements(pyproject: str | Path, framework: str, accelerator: str = "cpu") -> list[str]:
    """The project's dependencies plus those of the `framework` extra, exactly as pinned, for
    `accelerator` (cpu: as written; cuda: tensorflow-cpu becomes tensorflow[and-cuda]).

    `framework` may name several groups, comma-separated ("pytorch,speech_recognition"): a benchmark's
    image adds its folder's extra to the framework's."""
    with open(pyproject, "rb") as file:
        project = tomllib.load(file)["project"]
    extras = project.get("optional-dependencies", {})
    packages = list(project["dependencies"])
    for group in framework.split(","):
        if group not in extras:
            raise SystemExit(f"error: {pyproject} has no optional dependency group '{group}' "
                             f"(has: {', '.join(sorted(extras))})")
        packages += [package for package in extras[group] if package not in packages]
    return [for_accelerator(requirement, accelerator) for requirement in packages]


def pip_install_command(packages: list[str], wheel_dir: Path) -> list[str]:
    command = [sys.executable, "-m", "pip", "install", "--no-cache-dir"]
    if any(wheel_dir.glob("*.whl")):
        # --only-binary: a wheelhouse missing a wheel must fail here, not fall back to a source
        # build that would need a compiler and the network.
        command += ["--no-index", "--find-links", str(wheel_dir), "--only-binary=:all:"]
    return command + packages


def main(argv: list[str]) -> int:
    if len(argv) not in (3, 4):
        print("usage: install_requirements.py PYPROJECT FRAMEWORK WHEEL_DIR [cpu|cuda]", file=sys.stderr)
        return 2
    pyproject, framework, wheel_dir = argv[:3]
    accelerator = argv[3] if len(argv) == 4 else "cpu"
    command = pip_install_command(requirements(pyproject, framework, accelerator), Path(wheel_dir))
    print("+", " ".join(command), flush=True)
    return subprocess.call(command)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
