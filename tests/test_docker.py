"""The Docker path: the Dockerfile convention (fast, no engine) and, marked `docker`, an image per
framework built with no network from a host wheelhouse, running the smoke config to a compliant log.

The end-to-end test needs a Docker engine (docker/start_engine.sh starts one) and is skipped,
with the reason, where `docker info` does not answer. Run it with
`python -m pytest tests/test_docker.py -m docker` (12-16 minutes on 2 cores with the vfs storage
driver, most of it copying layers; docker/README.md has the numbers). MLBENCH_DOCKER_KEEP=1 keeps
the images for a faster rerun.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from compliance.mllog import constants
from harness import docker
from harness.benchmarks import BENCHMARKS, FRAMEWORKS, REPO_ROOT
from harness.errors import UserError

DOCKER_BENCHMARK = "recommendation"  # the smallest images and the fastest smoke run
BENCHMARKS_WITH_DOCKERFILE = [b.name for b in BENCHMARKS.values() if (b.path / "Dockerfile").is_file()]


# ---- the convention, read from the Dockerfiles (no engine) ----------------------------------------

SYSTEM_PACKAGES = {"reinforcement": "gnugo"}  # folder -> the Debian package its image installs


@pytest.mark.parametrize("folder", BENCHMARKS_WITH_DOCKERFILE)
def test_dockerfile_follows_the_convention(folder):
    """`folder` is the benchmark's path: `recommendation`, or `translation/transformer` in a
    two-benchmark folder, whose image takes the folder's toolkit modules and its own subfolder,
    never the sibling benchmark (STYLE.md, "One folder, two benchmarks")."""
    text = (REPO_ROOT / folder / "Dockerfile").read_text().replace("\\\n", " ")  # join continued lines
    assert re.search(rf"^ARG BASE_IMAGE={re.escape(docker.GPU_BASE_IMAGE)}$", text, re.MULTILINE)
    assert re.search(r"^FROM \$\{BASE_IMAGE\} AS base$", text, re.MULTILINE)
    # no system package, so an air-gapped build works; the one exception is Minigo's GNU Go (the
    # reference evaluation's opponent), whose install may fail without a network and says so
    if folder in SYSTEM_PACKAGES:
        installs = re.findall(r"apt-get install -y --no-install-recommends ([\w\- ]+?) *&&", text)
        assert installs == [SYSTEM_PACKAGES[folder]] and "|| echo \"note:" in text
    else:
        assert "apt-get" not in text
    assert "python3 -m venv /opt/venv" in text
    lowest, highest = _supported_python_range()
    assert f"sys.exit(not {lowest} <= sys.version_info[:2] < {highest})" in text
    stages = re.findall(r"^FROM \S+ AS (\S+)$", text, re.MULTILINE)
    # the framework targets in harness.docker.STAGE_ORDER: the wheelhouse an offline legacy
    # build needs is chosen from that order
    assert [stage for stage in stages if stage in FRAMEWORKS] == list(docker.STAGE_ORDER)
    for framework in FRAMEWORKS:
        assert f"COPY ${{WHEELHOUSE}}/{framework}/ /wheels/" in text
        deps = re.search(rf"FROM base AS {framework}-deps\n((?:.*\n)*?)\n", text + "\n").group(1)
        assert "ARG ACCELERATOR=cuda\n" in deps  # the default base is the GPU one
        # the framework's packages and the benchmark folder's own extra (its field tools)
        assert deps.rstrip().endswith(f"install_requirements.py /tmp/build/pyproject.toml {framework},"
                                      f"{folder.split('/')[0]} /wheels ${{ACCELERATOR}}")
        entrypoint = re.search(rf"FROM base AS {framework}\n(?:.*\n)*?ENTRYPOINT (\[[^\]]*\])", text)
        assert entrypoint, f"{folder}/Dockerfile: no ENTRYPOINT in the {framework} stage"
        assert json.loads(entrypoint.group(1)) == [
            "invoke", "train", folder, "--framework", framework, "--set", "run.data_dir=/data",
            "--out", "/results"]
    assert f"COPY {folder}/ /workspace/{folder}/" in text
    if "/" in folder:  # the toolkit: the folder's own modules, not its other benchmark's subfolder
        toolkit = folder.split("/")[0]
        assert f"COPY {toolkit}/*.py /workspace/{toolkit}/" in text
        assert f"COPY {toolkit}/ " not in text


def _project() -> dict:
    import tomllib

    return tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["project"]


def _supported_python_range() -> tuple[tuple[int, int], tuple[int, int]]:
    """(lowest, first unsupported) minor version, read from pyproject.toml's requires-python."""
    from packaging.specifiers import SpecifierSet

    allowed = [(3, minor) for minor in range(6, 20) if f"3.{minor}" in SpecifierSet(_project()["requires-python"])]
    return allowed[0], (3, allowed[-1][1] + 1)


def test_the_supported_pythons_are_pyproject_s():
    lowest, highest = _supported_python_range()
    assert docker.SUPPORTED_PYTHONS == tuple(f"3.{minor}" for minor in range(lowest[1], highest[1]))
    assert "3.11" in docker.SUPPORTED_PYTHONS and "3.13" in docker.SUPPORTED_PYTHONS


def test_the_image_installs_what_pyproject_pins():
    project = _project()
    for framework in FRAMEWORKS:
        assert docker.requirements(framework) == (
            project["dependencies"] + project["optional-dependencies"][framework])


def test_a_cuda_image_gets_the_gpu_tensorflow_of_the_same_release():
    project = _project()
    (cpu_pin,) = [pin for pin in project["optional-dependencies"]["tensorflow"] if pin.startswith("tensorflow-cpu==")]
    version = cpu_pin.split("==")[1]
    cpu, cuda = docker.requirements("tensorflow", "cpu"), docker.requirements("tensorflow", "cuda")
    assert cpu_pin in cpu and f"tensorflow[and-cuda]=={version}" in cuda and cpu_pin not in cuda
    assert [pin for pin in cpu if pin != cpu_pin] == [pin for pin in cuda if not pin.startswith("tensorflow[")]
    # PyTorch's PyPI wheels are the same for both (a CUDA build that also runs on CPU)
    assert docker.requirements("pytorch", "cuda") == docker.requirements("pytorch", "cpu")
    with pytest.raises(UserError, match="accelerator 'rocm'"):
        docker.requirements("tensorflow", "rocm")


@pytest.mark.parametrize("base_image, labels, expected", [
    (None, None, "cuda"),  # the Dockerfiles' default: the GPU base
    (docker.GPU_BASE_IMAGE, None, "cuda"),
    ("nvcr.io/nvidia/cuda-dl-base:25.10-cuda13.0-runtime-ubuntu24.04", None, "cuda"),
    (docker.CPU_BASE_IMAGE, None, "cpu"),  # the local CPU base, also when made before it was labelled
    ("mlbench/debian-python:trixie", None, "cpu"),
    ("mycorp/python-base:1", {"org.mlbench.accelerator": "cpu"}, "cpu"),  # any base can say it is CPU-only
    (docker.CPU_BASE_IMAGE, {"org.mlbench.accelerator": "cpu", "other": "x"}, "cpu"),
    ("python:3.13-slim", {"maintainer": "someone"}, "cuda"),
])
def test_the_tensorflow_package_follows_the_base_image(base_image, labels, expected):
    assert docker.accelerator_for_base(base_image, labels) == expected


def test_a_wrong_accelerator_label_is_a_one_line_error():
    with pytest.raises(UserError, match="org.mlbench.accelerator=tpu"):
        docker.accelerator_for_base("mycorp/base:1", {"org.mlbench.accelerator": "tpu"})


@pytest.mark.parametrize("base_image, accelerator", [(None, "cuda"), (docker.CPU_BASE_IMAGE, "cpu")])
def test_the_build_passes_the_accelerator_and_the_base(base_image, accelerator):
    command = docker.build_command(REPO_ROOT / "recommendation" / "Dockerfile", "tensorflow", "t:1",
                                   base_image=base_image, accelerator=accelerator, wheelhouse=True)
    assert command[command.index("--target") + 1] == "tensorflow"
    build_args = [command[index + 1] for index, word in enumerate(command) if word == "--build-arg"]
    assert f"ACCELERATOR={accelerator}" in build_args
    assert ("BASE_IMAGE=" + base_image in build_args) if base_image else not any(
        arg.startswith("BASE_IMAGE=") for arg in build_args)
    assert "WHEELHOUSE=wheelhouse" in build_args and command[command.index("--network") + 1] == "none"


def test_the_wheelhouse_is_for_the_base_image_s_python_and_glibc():
    arguments = docker.wheel_platform_arguments("3.12", (2, 36), "x86_64")
    assert arguments[arguments.index("--python-version") + 1] == "3.12" and "cp312" in arguments
    platforms = [arguments[index + 1] for index, word in enumerate(arguments) if word == "--platform"]
    assert "manylinux_2_36_x86_64" in platforms and "manylinux_2_17_x86_64" in platforms
    assert "manylinux_2_37_x86_64" not in platforms  # a wheel for a newer glibc would not load
    with pytest.raises(UserError, match="Python 3.10"):
        docker.wheel_platform_arguments("3.10", (2, 36), "x86_64")


def test_a_wheelhouse_means_no_index(tmp_path):
    script = __import__("runpy").run_path(str(REPO_ROOT / "docker" / "install_requirements.py"))
    online = script["pip_install_command"](["numpy==2.4.6"], tmp_path)
    assert "--no-index" not in online and online[-1] == "numpy==2.4.6"
    (tmp_path / "numpy-2.4.6-cp311-cp311-manylinux_2_28_x86_64.whl").write_bytes(b"")
    offline = script["pip_install_command"](["numpy==2.4.6"], tmp_path)
    assert offline[offline.index("--find-links") + 1] == str(tmp_path)
    assert "--no-index" in offline and "--only-binary=:all:" in offline


def test_an_offline_build_has_the_wheels_of_every_stage_before_its_target():
    assert docker.frameworks_for_wheelhouse("tensorflow") == ("tensorflow",)
    assert docker.frameworks_for_wheelhouse("pytorch") == ("tensorflow", "pytorch")


@pytest.mark.parametrize("call, fragments", [
    (lambda: docker.run_image("recommendation", "pytorch", data_dir=None), ["--data DIR", "/data"]),
    (lambda: docker.run_image("recommendation", "pytorch", data_dir="/nonexistent/ncf"),
     ["/nonexistent/ncf", "no such data folder"]),
    (lambda: docker.build_image("recommendation", "jax"), ["framework 'jax'"]),
    (lambda: docker.build_image("nosuch", "pytorch"), ["unknown benchmark 'nosuch'"]),
])
def test_user_errors_are_one_line(call, fragments):
    with pytest.raises(UserError) as error:
        call()
    message = str(error.value)
    assert "\n" not in message
    for fragment in fragments:
        assert fragment in message


def test_no_engine_is_a_one_line_error(monkeypatch):
    monkeypatch.setenv("MLBENCH_DOCKER", "/nonexistent/docker")
    assert "no Docker client" in docker.engine_problem()
    with pytest.raises(UserError, match="no Docker client"):
        docker.build_image("recommendation", "pytorch")


# ---- end to end, in a container ------------------------------------------------------------------

@pytest.fixture(scope="module")
def engine():
    problem = docker.engine_problem()
    if problem:
        pytest.skip(problem)
    if subprocess.run(docker.docker_client() + ["image", "inspect", docker.CPU_BASE_IMAGE],
                      capture_output=True).returncode != 0:
        # the local CPU base is part of the path under test: make it (root, debootstrap, a mirror)
        subprocess.run(["bash", str(REPO_ROOT / "docker" / "make_base_image.sh")], check=True)
    yield
    if not os.environ.get("MLBENCH_DOCKER_KEEP"):
        docker.remove_images(DOCKER_BENCHMARK)


def _tensorflow_version() -> str:
    (pin,) = [pin for pin in _project()["optional-dependencies"]["tensorflow"] if pin.startswith("tensorflow-cpu==")]
    return pin.split("==")[1]


def _events(log: Path) -> list[dict]:
    return [json.loads(line.split(":::MLLOG ", 1)[1]) for line in log.read_text().splitlines()
            if line.startswith(":::MLLOG ")]


@pytest.mark.docker
@pytest.mark.timeout(3600)
@pytest.mark.parametrize("framework", docker.STAGE_ORDER)  # tensorflow first: pytorch reuses its layers
def test_container_trains_the_smoke_config_to_a_compliant_log(engine, framework, tiny_ncf_data, tmp_path):
    tag = docker.build_image(DOCKER_BENCHMARK, framework, base_image=docker.CPU_BASE_IMAGE,
                             wheelhouse=True)
    assert tag == f"mlbench/{DOCKER_BENCHMARK}:{framework}"
    if framework == "tensorflow":  # a CPU base: tensorflow-cpu, not the CUDA build
        installed = subprocess.run(docker.docker_client() + [
            "run", "--rm", "--network", "none", "--entrypoint", "python", tag, "-c",
            "import importlib.metadata as m; print(m.version('tensorflow-cpu'), 'tensorflow' in "
            "{d.metadata['Name'] for d in m.distributions()})"], capture_output=True, text=True)
        assert installed.stdout.split() == [_tensorflow_version(), "False"], installed.stdout + installed.stderr
    results = tmp_path / "results"
    exit_code = docker.run_image(DOCKER_BENCHMARK, framework, data_dir=tiny_ncf_data,
                                 results_dir=results, gpus="none",
                                 extra_args=["--config", "smoke", "--set", "run.progress=false"])
    assert exit_code == 0

    # `--out /results` inside: the submission layout, on the host
    logs = sorted(results.glob(f"*/results/*-{framework}/ncf/result_*.txt"))
    assert len(logs) == 1, sorted(str(path) for path in results.rglob("*"))
    check = subprocess.run([sys.executable, "-m", "compliance", "check", str(logs[0]),
                            "--ruleset", "mlbench-1.0.0-smoke"], cwd=REPO_ROOT,
                           capture_output=True, text=True)
    assert check.returncode == 0, check.stdout + check.stderr
    events = _events(logs[0])
    keys = [event["key"] for event in events]
    assert keys.count(constants.RUN_START) == 1 and keys.count(constants.RUN_STOP) == 1
    run_stop = next(event for event in events if event["key"] == constants.RUN_STOP)
    assert run_stop["metadata"][constants.STATUS] == "success"
    benchmark = next(event for event in events if event["key"] == constants.SUBMISSION_BENCHMARK)
    assert benchmark["value"] == "ncf"



OTHER_BUILT = [b.key for b in BENCHMARKS.values() if b.built and b.key != "ncf"]


@pytest.mark.docker
@pytest.mark.timeout(3600)
@pytest.mark.parametrize("framework", docker.STAGE_ORDER)
@pytest.mark.parametrize("key", OTHER_BUILT)
def test_each_benchmark_image_trains_its_smoke_config(engine, key, framework, tmp_path):
    """BENCHMARK_DONE point 10 for every other benchmark: its image, built offline (--wheelhouse) on the
    CPU base, trains the smoke config on freshly generated tiny data to the target, and the log it
    writes to the mounted results folder passes the smoke rules (NCF: the test above, in more detail)."""
    bench = BENCHMARKS[key]
    data = tmp_path / "data"
    made = subprocess.run([sys.executable, "-m", "harness", "data", key, "--tiny", "--data-dir", str(data)],
                          cwd=REPO_ROOT, capture_output=True, text=True)
    assert made.returncode == 0, made.stderr[-3000:]
    try:
        tag = docker.build_image(key, framework, base_image=docker.CPU_BASE_IMAGE, wheelhouse=True)
        results = tmp_path / "results"
        exit_code = docker.run_image(key, framework, data_dir=data, results_dir=results, gpus="none",
                                     extra_args=["--config", "smoke", "--set", "run.progress=false"])
        assert exit_code == 0, tag
        logs = sorted(results.glob(f"*/results/*-{framework}/{key}/result_*.txt"))
        assert len(logs) == 1, sorted(str(path) for path in results.rglob("*"))
        check = subprocess.run([sys.executable, "-m", "compliance", "check", str(logs[0]),
                                "--ruleset", "mlbench-1.0.0-smoke"], cwd=REPO_ROOT, capture_output=True, text=True)
        assert check.returncode == 0, check.stdout + check.stderr
    finally:
        docker.remove_images(bench.name)  # a vfs engine copies every layer: keep the disk for the next one

def test_a_folder_with_its_own_tools_installs_its_extra_too():
    """reinforcement/ needs numba, sgfmill and open-spiel beside the framework: its images install
    `framework,reinforcement` and the wheelhouse downloads the same."""
    import tomllib

    project = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["project"]
    both = docker.requirements("pytorch", folder="reinforcement")
    assert both == project["dependencies"] + project["optional-dependencies"]["pytorch"] + \
        project["optional-dependencies"]["reinforcement"]
    assert BENCHMARKS["minigo"].folder == "reinforcement"  # the extra build_image downloads with the framework's
    assert docker.requirements("pytorch", folder="recommendation") == docker.requirements("pytorch")  # an empty extra adds nothing
    text = (REPO_ROOT / "reinforcement" / "Dockerfile").read_text()
    for framework in FRAMEWORKS:
        assert f"install_requirements.py /tmp/build/pyproject.toml {framework},reinforcement /wheels ${{ACCELERATOR}}" in text
