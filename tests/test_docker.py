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

@pytest.mark.parametrize("folder", BENCHMARKS_WITH_DOCKERFILE)
def test_dockerfile_follows_the_convention(folder):
    """`folder` is the benchmark's path: `recommendation`, or `translation/transformer` in a
    two-benchmark folder, whose image takes the folder's toolkit modules and its own subfolder,
    never the sibling benchmark (STYLE.md, "One folder, two benchmarks")."""
    text = (REPO_ROOT / folder / "Dockerfile").read_text().replace("\\\n", " ")  # join continued lines
    assert re.search(r"^ARG BASE_IMAGE=nvidia/cuda:\S+$", text, re.MULTILINE)
    assert re.search(r"^FROM \$\{BASE_IMAGE\} AS base$", text, re.MULTILINE)
    stages = re.findall(r"^FROM \S+ AS (\S+)$", text, re.MULTILINE)
    # the framework targets in harness.docker.STAGE_ORDER: the wheelhouse an offline legacy
    # build needs is chosen from that order
    assert [stage for stage in stages if stage in FRAMEWORKS] == list(docker.STAGE_ORDER)
    for framework in FRAMEWORKS:
        assert f"COPY ${{WHEELHOUSE}}/{framework}/ /wheels/" in text
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


def test_the_image_installs_what_pyproject_pins():
    import tomllib

    project = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["project"]
    for framework in FRAMEWORKS:
        assert docker.requirements(framework) == (
            project["dependencies"] + project["optional-dependencies"][framework])


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


def test_a_folder_with_its_own_tools_installs_its_extra_too():
    """reinforcement/ needs numba, sgfmill and open-spiel beside the framework: its images install
    `framework,reinforcement` and the wheelhouse downloads the same."""
    import tomllib

    project = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["project"]
    both = docker.requirements("pytorch", "reinforcement")
    assert both == project["dependencies"] + project["optional-dependencies"]["pytorch"] + \
        project["optional-dependencies"]["reinforcement"]
    assert docker._folder_extra(BENCHMARKS["minigo"]) == "reinforcement"
    assert docker._folder_extra(BENCHMARKS["ncf"]) is None  # an empty extra adds nothing
    text = (REPO_ROOT / "reinforcement" / "Dockerfile").read_text()
    for framework in FRAMEWORKS:
        assert f"install_requirements.py /tmp/build/pyproject.toml {framework},reinforcement /wheels" in text
