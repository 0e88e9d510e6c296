"""Install what `pip install .[FRAMEWORK]` would install, without the project itself.

    python install_requirements.py PYPROJECT FRAMEWORK[,EXTRA...] WHEEL_DIR

(a benchmark whose folder has field tools of its own names its extra too: `pytorch,reinforcement`).

Runs inside an image build (standard library only, Python 3.11 for tomllib). The requirement
list is read from pyproject.toml, so the image and a native install never disagree on a version.
If WHEEL_DIR holds wheels (`invoke docker-build --wheelhouse` put them there), the install is
`pip install --no-index --find-links WHEEL_DIR`: nothing is fetched, as air-gapped clusters need;
otherwise pip installs from its package index. The code itself is not installed: the images run
it from /workspace, as the repo is run from its root on the host.

harness/docker.py reads `requirements()` from this file to download the same wheels on the host.
"""

from __future__ import annotations

import subprocess
import sys
import tomllib
from pathlib import Path


def requirements(pyproject: str | Path, framework: str) -> list[str]:
    """The project's dependencies plus those of the `framework` extra (or of each group of a
    comma-separated list), exactly as pinned."""
    with open(pyproject, "rb") as file:
        project = tomllib.load(file)["project"]
    extras = project.get("optional-dependencies", {})
    packages = list(project["dependencies"])
    for group in framework.split(","):
        if group not in extras:
            raise SystemExit(f"error: {pyproject} has no optional dependency group '{group}' "
                             f"(has: {', '.join(sorted(extras))})")
        packages += [package for package in extras[group] if package not in packages]
    return packages


def pip_install_command(packages: list[str], wheel_dir: Path) -> list[str]:
    command = [sys.executable, "-m", "pip", "install", "--no-cache-dir"]
    if any(wheel_dir.glob("*.whl")):
        # --only-binary: a wheelhouse missing a wheel must fail here, not fall back to a source
        # build that would need a compiler and the network.
        command += ["--no-index", "--find-links", str(wheel_dir), "--only-binary=:all:"]
    return command + packages


def main(argv: list[str]) -> int:
    if len(argv) != 3:
        print("usage: install_requirements.py PYPROJECT FRAMEWORK WHEEL_DIR", file=sys.stderr)
        return 2
    pyproject, framework, wheel_dir = argv
    command = pip_install_command(requirements(pyproject, framework), Path(wheel_dir))
    print("+", " ".join(command), flush=True)
    return subprocess.call(command)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
