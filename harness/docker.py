"""The Docker path: build a benchmark's image for one framework and run it, from the host.

`tasks.py` calls these (`invoke docker-build`, `invoke docker-run`); they are plain functions so a
test or a cluster script can call them too:

    download_wheelhouse(dest, frameworks, *, python, glibc, accelerator)   pip download, on the host,
                                                 the wheels an image needs
    build_image(benchmark, framework, *, base_image=None, wheelhouse=False, tag=None,
                accelerator=None) -> tag
    run_image(benchmark, framework, *, data_dir, results_dir="results", extra_args=()) -> exit code
    remove_images(benchmark)                     the images and their build stages (disk)

The convention they rely on (docker/README.md): `<benchmark>/Dockerfile`, build context the repo
root, `ARG BASE_IMAGE`, `ARG WHEELHOUSE`, `ARG ACCELERATOR` (cuda|cpu: which TensorFlow package the
image gets, chosen from the base image by `accelerator_for_base`), one target per framework (`--target pytorch|tensorflow`),
data mounted at /data, results at /results, entrypoint `invoke train <benchmark> --framework F`.
The Docker client is `docker` on PATH, or the command in MLBENCH_DOCKER (e.g. `podman`).
Every problem a user can fix is a one-line UserError.
"""

from __future__ import annotations

import json
import os
import runpy
import shlex
import shutil
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

from harness.benchmarks import FRAMEWORKS, REPO_ROOT, get_benchmark
from harness.errors import UserError
from harness.progress import info
from harness.provenance import IMAGE_LABEL, code_provenance

# The order of the framework stages in every Dockerfile. The legacy builder (Docker without
# BuildKit) builds every stage before the --target, so a pytorch build also runs the tensorflow
# stages, and an offline build needs their wheels too; BuildKit builds only what the target needs.
STAGE_ORDER = ("tensorflow", "pytorch")
# The local CPU base (docker/make_base_image.sh, labelled org.mlbench.accelerator=cpu); no registry
# holds it. Debian bookworm: Python 3.11, glibc 2.36.
CPU_BASE_IMAGE = "mlbench/debian-python:3.11"
# The Dockerfiles' default BASE_IMAGE, for GPUs: the Docker official Python image (Python 3.12 with
# venv and ensurepip; Debian bookworm, glibc 2.36). It needs no CUDA of its own: torch's PyPI wheels
# and tensorflow[and-cuda] bring the CUDA libraries as wheels, and the NVIDIA Container Toolkit mounts
# the host's driver (docker/README.md, "Base images"). NVIDIA's nvidia/cuda images have no Python.
GPU_BASE_IMAGE = "python:3.12-slim-bookworm"
WHEELHOUSE_DIR = REPO_ROOT / "wheelhouse"
# The Pythons pyproject.toml's requires-python allows; the Dockerfiles' base stage checks the same range.
SUPPORTED_PYTHONS = ("3.11", "3.12", "3.13")
# The TensorFlow an image gets (docker/install_requirements.py): cuda -> tensorflow[and-cuda],
# cpu -> tensorflow-cpu. PyTorch's PyPI wheels are the same for both.
ACCELERATORS = ("cuda", "cpu")
ACCELERATOR_LABEL = "org.mlbench.accelerator"
# What download_wheelhouse assumes when no base is named: the CPU base's Python and C library.
DEFAULT_IMAGE_PYTHON = "3.11"
DEFAULT_IMAGE_GLIBC = (2, 36)

_NO_ENGINE = "no Docker engine answers `docker info`: start one with docker/start_engine.sh (as root)"


def docker_client() -> list[str]:
    """The Docker client command: MLBENCH_DOCKER (e.g. `podman`, `/usr/bin/docker`) or `docker`."""
    return shlex.split(os.environ.get("MLBENCH_DOCKER", "docker"))


def engine_problem() -> str | None:
    """None when a Docker engine answers `docker info`, else why not, in one line."""
    client = docker_client()
    if shutil.which(client[0]) is None:
        return f"no Docker client `{client[0]}` on PATH: install Docker (Debian: docker/start_engine.sh)"
    try:
        answer = subprocess.run(client + ["info", "--format", "{{.ServerVersion}}"],
                                capture_output=True, text=True, timeout=60)
    except subprocess.TimeoutExpired:
        return "`docker info` did not answer within 60 s: is the engine stuck? (docker/start_engine.sh)"
    if answer.returncode != 0 or not answer.stdout.strip():
        return _NO_ENGINE
    return None


def require_engine() -> None:
    problem = engine_problem()
    if problem:
        raise UserError(problem)


def image_tag(benchmark: str, framework: str) -> str:
    """The default tag: mlbench/<benchmark folder>:<framework>, e.g. mlbench/recommendation:pytorch."""
    return f"mlbench/{get_benchmark(benchmark).slug}:{framework}"


def frameworks_for_wheelhouse(framework: str) -> tuple[str, ...]:
    """The frameworks whose wheels an offline build of `framework` needs (see STAGE_ORDER)."""
    _check_framework(framework)
    return STAGE_ORDER[:STAGE_ORDER.index(framework) + 1]


def requirements(framework: str, accelerator: str = "cpu", folder: str | None = None) -> list[str]:
    """What the image of `framework` installs for `accelerator`: `pip install .[framework]`'s pins
    (plus `.[folder]`, a benchmark folder's own extra, where `folder` names one), tensorflow-cpu
    swapped for tensorflow[and-cuda] on cuda, read from pyproject.toml by the same code the image
    build runs (docker/install_requirements.py), so the two never disagree."""
    _check_framework(framework)
    _check_accelerator(accelerator)
    script = runpy.run_path(str(REPO_ROOT / "docker" / "install_requirements.py"))
    groups = f"{framework},{folder}" if folder else framework
    return script["requirements"](REPO_ROOT / "pyproject.toml", groups, accelerator)


def accelerator_for_base(base_image: str | None, labels: Mapping[str, str] | None = None) -> str:
    """Which TensorFlow an image on `base_image` gets: "cpu" for a CPU base (one labelled
    org.mlbench.accelerator=cpu, as docker/make_base_image.sh labels its image, or the local CPU
    base by name), "cuda" for every other base, the Dockerfiles' default GPU base included (None).
    `labels`: the base image's labels, where it is present (`docker image inspect`)."""
    label = (labels or {}).get(ACCELERATOR_LABEL)
    if label:
        if label not in ACCELERATORS:
            raise UserError(f"base image {base_image}: label {ACCELERATOR_LABEL}={label}, expected one of "
                            f"{', '.join(ACCELERATORS)}")
        return label
    if base_image and _repository(base_image) == _repository(CPU_BASE_IMAGE):
        return "cpu"
    return "cuda"


def wheel_platform_arguments(python: str, glibc: tuple[int, int], machine: str) -> list[str]:
    """`pip download` arguments for an image's platform rather than the host's: CPython `python`,
    binary wheels only, manylinux tags up to the base's glibc, the CPU architecture `machine`."""
    if python not in SUPPORTED_PYTHONS:
        raise UserError(f"the base image has Python {python}; pyproject.toml supports {', '.join(SUPPORTED_PYTHONS)}")
    platforms = [f"manylinux_2_{minor}_{machine}" for minor in range(17, glibc[1] + 1)]
    # pip does not widen a --platform to the older manylinux tags, so they are listed; the legacy
    # aliases name the same glibc versions (PEP 600).
    platforms += [f"manylinux2014_{machine}", f"manylinux2010_{machine}", f"manylinux1_{machine}"]
    arguments = ["--only-binary=:all:", "--python-version", python, "--implementation", "cp",
                 "--abi", "cp" + python.replace(".", ""), "--abi", "abi3", "--abi", "none"]
    return arguments + [argument for platform in platforms for argument in ("--platform", platform)]


def base_platform(base_image: str) -> tuple[str, tuple[int, int]]:
    """(Python "3.12", glibc (2, 36)) of `base_image`, asked of the image itself (pulled if needed)."""
    probe = ("import platform, sys; print('%d.%d' % sys.version_info[:2], platform.libc_ver()[1])")
    answer = subprocess.run(docker_client() + ["run", "--rm", "--network", "none", "--entrypoint", "python3",
                                               base_image, "-c", probe], capture_output=True, text=True)
    fields = answer.stdout.split()
    if answer.returncode != 0 or len(fields) != 2 or fields[1].count(".") != 1:
        raise UserError(f"base image {base_image}: cannot run its python3 to learn its Python and glibc "
                        f"({(answer.stderr.strip().splitlines() or ['no output'])[-1]})")
    major, minor = fields[1].split(".")
    return fields[0], (int(major), int(minor))


def download_wheelhouse(dest: str | os.PathLike = WHEELHOUSE_DIR,
                        frameworks: Sequence[str] = FRAMEWORKS, *, python: str = DEFAULT_IMAGE_PYTHON,
                        glibc: tuple[int, int] = DEFAULT_IMAGE_GLIBC, accelerator: str = "cpu",
                        extra: str | None = None) -> list[Path]:
    """Download, on the host, every wheel the images of `frameworks` install, with the benchmark
    folder's own extra `extra` where it has one: dest/<framework>/.

    Uses the host's pip and its configuration (index, find-links), asking for the images'
    platform, not the host's: CPython `python`, manylinux up to `glibc`, this machine's CPU
    architecture, TensorFlow for `accelerator`. Binary wheels only, so the offline install never
    needs a compiler. A folder that already holds every wheel is used as it is, with no index asked
    (so the same command works on an air-gapped machine the wheelhouse was carried to); wheels for
    several Pythons or accelerators can share a folder, each install picks its own. Returns the
    per-framework folders.
    """
    dest = Path(dest)
    platform_arguments = wheel_platform_arguments(python, glibc, os.uname().machine)
    folders = []
    for framework in frameworks:
        folder = dest / framework
        folder.mkdir(parents=True, exist_ok=True)
        command = [sys.executable, "-m", "pip", "download", "--dest", str(folder), *platform_arguments,
                   "--progress-bar", "off", "--quiet", *requirements(framework, accelerator, extra)]
        started = time.monotonic()
        complete = subprocess.run(command + ["--no-index", "--find-links", str(folder)],
                                  capture_output=True).returncode == 0
        what = f"{framework} wheels (Python {python}, {accelerator})"
        if complete:
            info(f"{folder}: every one of the {what} is there already")
        else:
            info(f"downloading the {what} into {folder} ...")
        if not complete and subprocess.call(command) != 0:
            raise UserError(f"pip download of the {what} into {folder} failed "
                            "(its output is above): check the host's package index")
        wheels = list(folder.glob("*.whl"))
        size_gb = sum(wheel.stat().st_size for wheel in wheels) / 1e9
        info(f"  {len(wheels)} wheels, {size_gb:.1f} GB, in {time.monotonic() - started:.0f} s")
        folders.append(folder)
    return folders


def build_command(dockerfile: Path, framework: str, tag: str, *, base_image: str | None,
                  accelerator: str, wheelhouse: bool) -> list[str]:
    """The `docker build` command line (no engine needed: a test reads it)."""
    # the code the image is built from (harness/provenance.py), read back by run_image
    command = docker_client() + ["build", "--file", str(dockerfile), "--target", framework, "--tag", tag,
                                 "--label", f"{IMAGE_LABEL}={code_provenance()}",
                                 "--build-arg", f"ACCELERATOR={accelerator}"]
    if base_image:
        command += ["--build-arg", f"BASE_IMAGE={base_image}"]
    if wheelhouse:
        command += ["--build-arg", f"WHEELHOUSE={WHEELHOUSE_DIR.relative_to(REPO_ROOT)}", "--network", "none"]
    return command + [str(REPO_ROOT)]


def build_image(benchmark: str, framework: str, *, base_image: str | None = None,
                wheelhouse: bool = False, tag: str | None = None, accelerator: str | None = None) -> str:
    """Build `<benchmark>/Dockerfile --target <framework>`; return the image tag.

    - `base_image`: passed as `--build-arg BASE_IMAGE`; None keeps the Dockerfile's default, the
      GPU base (GPU_BASE_IMAGE). For CPU, `mlbench/debian-python:3.11` (docker/make_base_image.sh).
      Any base needs python3 3.11-3.13 with venv and ensurepip: the build installs no system package.
    - `accelerator`: "cuda" or "cpu", passed as `--build-arg ACCELERATOR`: the TensorFlow package
      (tensorflow[and-cuda] or tensorflow-cpu, same version). None: chosen from the base image
      (`accelerator_for_base`): cpu for the CPU base, cuda for the others.
    - `wheelhouse`: download the wheels on the host first (`download_wheelhouse` into wheelhouse/,
      for the base image's own Python and glibc, asked of the image), then build with `--network
      none`: the packages are installed with `pip --no-index` from those files, as on an
      air-gapped cluster.
    - `tag`: default `mlbench/<benchmark folder>:<framework>`.

    UserError (one line) if no engine answers, the local base image is missing or the build fails.
    """
    _check_framework(framework)
    if accelerator is not None:
        _check_accelerator(accelerator)
    bench = get_benchmark(benchmark)
    dockerfile = bench.path / "Dockerfile"
    if not dockerfile.is_file():
        raise UserError(f"{dockerfile.relative_to(REPO_ROOT)}: no Dockerfile for {bench.name} yet")
    require_engine()
    tag = tag or image_tag(benchmark, framework)
    if base_image and base_image.startswith("mlbench/") and not _image_exists(base_image):
        raise UserError(f"base image {base_image} not found: make it with docker/make_base_image.sh")
    base = base_image or GPU_BASE_IMAGE
    if accelerator is None:
        accelerator = accelerator_for_base(base_image, _labels(base) if _image_exists(base) else None)
    if wheelhouse:
        python, glibc = base_platform(base)
        download_wheelhouse(WHEELHOUSE_DIR, frameworks_for_wheelhouse(framework), python=python, glibc=glibc,
                            accelerator=accelerator, extra=bench.folder)
    command = build_command(dockerfile, framework, tag, base_image=base_image, accelerator=accelerator,
                            wheelhouse=wheelhouse)
    environment = _build_environment()
    builder = "BuildKit" if environment.get("DOCKER_BUILDKIT") == "1" else "the client's default builder"
    info(f"building {tag} ({accelerator}) with {builder}: {shlex.join(command)}")
    started = time.monotonic()
    if subprocess.call(command, cwd=REPO_ROOT, env=environment) != 0:
        raise UserError(f"docker build of {tag} failed (its output is above)")
    size_gb = int(_inspect(tag, "{{.Size}}")) / 1e9
    info(f"built {tag} in {time.monotonic() - started:.0f} s: {size_gb:.2f} GB")
    return tag


def run_image(benchmark: str, framework: str, *, data_dir: str | os.PathLike | None,
              results_dir: str | os.PathLike = "results", extra_args: Sequence[str] = (),
              tag: str | None = None, gpus: str = "auto") -> int:
    """Run the benchmark's image: `invoke train <benchmark> --framework F` inside; return its exit code.

    `data_dir` (a prepared dataset on the host) is mounted read-only at /data, `results_dir` at
    /results (created here, so it belongs to the calling user; the container runs as that user).
    `extra_args` follow the entrypoint, e.g. ["--config", "smoke", "--set", "run.threads=1"];
    none means the image's default, `--config smoke`. `gpus`: "auto" passes `--gpus all` when
    `nvidia-smi -L` lists a GPU on the host, "all" always, "none" never.

    UserError (one line) if no engine answers, the image or the data folder is missing.
    """
    _check_framework(framework)
    if gpus not in ("auto", "all", "none"):
        raise UserError(f"gpus '{gpus}': expected auto, all or none")
    bench = get_benchmark(benchmark)
    if data_dir is None:
        raise UserError(f"no data folder given: pass --data DIR, a prepared dataset mounted at /data "
                        f"(e.g. `invoke data {bench.key} --tiny` makes {bench.default_data_dir(True)})")
    data_path = Path(data_dir).resolve()
    if not data_path.is_dir():
        raise UserError(f"{data_dir}: no such data folder (make it with `invoke data {bench.key}`)")
    require_engine()
    tag = tag or image_tag(benchmark, framework)
    if not _image_exists(tag):
        raise UserError(f"no image {tag}: build it with `invoke docker-build {bench.key} "
                        f"--framework {framework}`")
    results_path = Path(results_dir).resolve()
    results_path.mkdir(parents=True, exist_ok=True)

    # --init: a real PID 1 forwards signals, so Ctrl-C stops the training; --ipc=host: PyTorch's
    # DataLoader workers and NCCL share memory beyond Docker's 64 MB /dev/shm (NVIDIA's advice).
    command = docker_client() + ["run", "--rm", "--init", "--ipc=host",
                                 "--volume", f"{data_path}:/data:ro",
                                 "--volume", f"{results_path}:/results"]
    if os.getuid() != 0:
        command += ["--user", f"{os.getuid()}:{os.getgid()}", "--env", "HOME=/tmp"]
    provenance = _inspect(tag, f'{{{{index .Config.Labels "{IMAGE_LABEL}"}}}}')
    if provenance and provenance != "<no value>":  # the code the image was built from (harness/provenance.py)
        command += ["--env", f"MLBENCH_PROVENANCE={provenance}"]
    if gpus == "all" or (gpus == "auto" and _host_has_gpu()):
        command += ["--gpus", "all"]
    if sys.stdout.isatty():
        command.append("--tty")
    command += [tag, *extra_args]
    info(f"running {tag}: {shlex.join(command)}")
    return subprocess.call(command)


def remove_images(benchmark: str, frameworks: Sequence[str] = FRAMEWORKS) -> None:
    """Remove the benchmark's default-tagged images and the untagged build stages of this suite
    (label org.mlbench.project, shared by every benchmark's Dockerfile): on the vfs storage driver
    they hold several copies of the framework packages. Other images are left alone; the next
    build of any benchmark reinstalls its packages."""
    require_engine()
    tags = [image_tag(benchmark, framework) for framework in frameworks]
    present = [tag for tag in tags if _image_exists(tag)]
    if present:
        subprocess.run(docker_client() + ["image", "rm", *present], check=True, capture_output=True)
    subprocess.run(docker_client() + ["image", "prune", "--force", "--filter",
                                      "label=org.mlbench.project=mlbench-training"],
                   check=True, capture_output=True)
    info(f"removed {', '.join(present) or 'no tagged images'} and their build stages")


def _build_environment() -> dict[str, str]:
    """The environment of `docker build`: BuildKit where the client has it, since it builds only
    the stages the target needs and, measured on the vfs storage driver, 3x faster than the legacy
    builder (docker/README.md). Docker >= 23 uses BuildKit through the buildx plugin; older clients
    (Debian bookworm's docker.io is 20.10) have it built in behind DOCKER_BUILDKIT=1; a newer
    client without buildx only has the legacy builder. A DOCKER_BUILDKIT the user set wins."""
    environment = dict(os.environ)
    client = docker_client()
    if "DOCKER_BUILDKIT" in environment or Path(client[0]).name != "docker":
        return environment
    has_buildx = subprocess.run(client + ["buildx", "version"], capture_output=True).returncode == 0
    version = subprocess.run(client + ["version", "--format", "{{.Client.Version}}"],
                             capture_output=True, text=True).stdout.strip()
    major = int(version.split(".")[0]) if version.split(".")[0].isdigit() else 0
    if has_buildx or 18 <= major < 23:
        environment["DOCKER_BUILDKIT"] = "1"
    return environment


def _check_framework(framework: str) -> None:
    if framework not in FRAMEWORKS:
        raise UserError(f"framework '{framework}': expected one of {', '.join(FRAMEWORKS)}")


def _check_accelerator(accelerator: str) -> None:
    if accelerator not in ACCELERATORS:
        raise UserError(f"accelerator '{accelerator}': expected one of {', '.join(ACCELERATORS)}")


def _repository(image: str) -> str:
    """`mlbench/debian-python:3.11` -> `mlbench/debian-python` (a registry port's colon is kept)."""
    name = image.split("@", 1)[0]
    return name.rsplit(":", 1)[0] if ":" in name.rsplit("/", 1)[-1] else name


def _labels(image: str) -> dict[str, str]:
    return json.loads(_inspect(image, "{{json .Config.Labels}}") or "null") or {}


def _inspect(image: str, template: str) -> str:
    return subprocess.run(docker_client() + ["image", "inspect", "--format", template, image],
                          capture_output=True, text=True, check=True).stdout.strip()


def _image_exists(image: str) -> bool:
    return subprocess.run(docker_client() + ["image", "inspect", image],
                          capture_output=True).returncode == 0


def _host_has_gpu() -> bool:
    if shutil.which("nvidia-smi") is None:
        return False
    answer = subprocess.run(["nvidia-smi", "-L"], capture_output=True, text=True)
    return answer.returncode == 0 and "GPU" in answer.stdout
