"""`invoke fork`: one benchmark as a standalone repository that builds, trains and tests on its own.

Every built benchmark is forked into a temporary folder, and everything after that runs inside the
fork only: a fresh process whose working directory is the fork, which then checks that each module
of harness/, compliance/ and the benchmark it loaded came from the fork, not from this repository.
The default suite runs the forks against the already installed environment: every benchmark's fork
makes its tiny data and imports its training code from itself; NCF's (the fastest) also trains its
smoke config to the target three times, and its log, verdict and summary are compared with the
monorepo's. Every fork's own smoke run to the target (up to 5 minutes each), its test collection,
and a fork installed into a virtual environment of its own are `slow` (`invoke test --all`).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from harness import fork as fork_module
from harness.benchmarks import BENCHMARKS, REPO_ROOT, built_benchmarks
from harness.errors import UserError
from harness.provenance import FORK_FILE

BUILT = [benchmark.key for benchmark in built_benchmarks()]
QUIET = {"MLBENCH_NO_PROGRESS": "1", "OMP_NUM_THREADS": "1", "TF_CPP_MIN_LOG_LEVEL": "2"}

# Runs inside the fork (cwd = the fork): the modules of harness, compliance and the benchmark that
# the commands imported must all come from the fork.
IMPORT_CHECK = """
import json, sys, importlib
from pathlib import Path
root = Path.cwd().resolve()
packages = sys.argv[1].split(",")
for name in packages:
    importlib.import_module(name)
strays = sorted(f"{name}: {module.__file__}" for name, module in sys.modules.items()
                if name.split(".")[0] in packages and getattr(module, "__file__", None)
                and not Path(module.__file__).resolve().is_relative_to(root))
print(json.dumps(strays))
"""


def run_in(folder: Path, *args: str, timeout: int = 900) -> subprocess.CompletedProcess:
    """A command in a fresh process whose working directory is `folder` (so its packages come first)."""
    environment = {**os.environ, **QUIET}
    environment.pop("PYTHONPATH", None)  # nothing but the folder itself and the installed packages
    return subprocess.run(list(args), cwd=folder, env=environment, capture_output=True, text=True,
                          timeout=timeout)


def python_in(folder: Path, *args: str, timeout: int = 900) -> subprocess.CompletedProcess:
    return run_in(folder, sys.executable, *args, timeout=timeout)


def make_fork(key: str, dest: Path) -> Path:
    # allow_uncommitted: a developer runs the tests on a working tree with changes; CI on a clean clone
    fork_module.fork_benchmark(key, dest, allow_uncommitted=True)
    return dest


def events(log: Path) -> list[dict]:
    return [json.loads(line.split(":::MLLOG ", 1)[1]) for line in log.read_text().splitlines()
            if line.startswith(":::MLLOG ")]


def comparable(log: Path) -> list[tuple]:
    """A log's events without what differs between two runs of the same code: clock, source file
    and line, and the provenance line's value (checked on its own)."""
    rows = []
    for event in events(log):
        metadata = {k: v for k, v in (event.get("metadata") or {}).items() if k not in ("file", "lineno")}
        value = None if event["key"] == "submission_upstream" else event.get("value")
        rows.append((event["key"], json.dumps(value, sort_keys=True), json.dumps(metadata, sort_keys=True)))
    return rows


# ---- what a fork holds ---------------------------------------------------------------------------

@pytest.fixture(scope="module")
def ncf_fork(tmp_path_factory) -> Path:
    return make_fork("ncf", tmp_path_factory.mktemp("forks") / "ncf")


def test_a_fork_holds_one_benchmark_and_the_shared_packages(ncf_fork):
    files = {path.relative_to(ncf_fork).as_posix() for path in ncf_fork.rglob("*")
             if path.is_file() and ".git" not in path.relative_to(ncf_fork).parts}
    assert {"pyproject.toml", "tasks.py", "README.md", FORK_FILE, ".ci/run", ".dockerignore",
            "recommendation/Dockerfile", "recommendation/configs/smoke.yaml", "harness/lifecycle.py",
            "compliance/rules/mlbench-1.0.0/ncf.yaml", "docker/install_requirements.py"} <= files
    assert not any(path.startswith(("image_classification/", "compliance/tests/")) for path in files)
    # the other benchmarks are known to the registry but absent: a clear line, not an ImportError
    listing = python_in(ncf_fork, "-m", "harness", "list")
    assert listing.returncode == 0, listing.stderr
    assert "resnet" in listing.stdout and "not in this checkout" in listing.stdout
    other = python_in(ncf_fork, "-m", "harness", "train", "resnet")
    assert other.returncode == 2 and other.stderr.strip().splitlines()[-1].startswith("error: benchmark 'resnet'")


def test_the_fork_pyproject_needs_only_this_benchmark(ncf_fork):
    project = tomllib.loads((ncf_fork / "pyproject.toml").read_text())
    upstream = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())
    extras = project["project"]["optional-dependencies"]
    assert set(extras) == {"pytorch", "tensorflow", "dev", "recommendation", "all"}
    for name in ("pytorch", "tensorflow", "dev", "recommendation"):
        assert extras[name] == upstream["project"]["optional-dependencies"][name]
    assert project["project"]["dependencies"] == upstream["project"]["dependencies"]
    assert project["tool"]["setuptools"]["packages"]["find"]["include"] == ["harness*", "compliance*", "recommendation*"]
    assert project["tool"]["pytest"]["ini_options"]["testpaths"] == ["recommendation"]


def test_the_fork_records_its_upstream_and_is_a_git_repository(ncf_fork):
    record = json.loads((ncf_fork / FORK_FILE).read_text())
    assert record["benchmark"] == {"key": "ncf", "name": "recommendation", "title": BENCHMARKS["ncf"].title}
    head = subprocess.run(["git", "-C", str(REPO_ROOT), "rev-parse", "HEAD"], capture_output=True, text=True)
    assert record["upstream"]["commit"].split("+")[0] == head.stdout.strip()
    assert record["rules"]["rulesets"] == sorted(p.parent.name for p in (REPO_ROOT / "compliance/rules").glob("*/ruleset.yaml"))
    tags = subprocess.run(["git", "-C", str(ncf_fork), "tag"], capture_output=True, text=True).stdout.split()
    assert tags == [f"upstream-{record['upstream']['commit'][:12].replace('+', '-')}"]
    status = subprocess.run(["git", "-C", str(ncf_fork), "status", "--porcelain"], capture_output=True, text=True)
    assert status.stdout == ""  # everything written is committed


def test_the_fork_tasks_default_to_its_benchmark_and_leave_out_fork(ncf_fork):
    listing = python_in(ncf_fork, "-m", "invoke", "--list")
    assert listing.returncode == 0, listing.stderr
    tasks = {line.split()[0] for line in listing.stdout.splitlines()[1:] if line.strip() and line.startswith("  ") and not line.startswith("   ")}
    assert {"data", "train", "check", "summarize", "package", "bench", "test", "demo", "docker-build",
            "docker-run"} <= tasks
    assert "fork" not in tasks
    text = (ncf_fork / "tasks.py").read_text()
    assert 'DEFAULT_BENCHMARK = "ncf"' in text and "monorepo only" not in text
    # the benchmark is the fork's by default (invoke has no optional positional arguments)
    help_text = python_in(ncf_fork, "-m", "invoke", "--help", "train")
    assert "-b STRING, --bench=STRING" in help_text.stdout, help_text.stdout


# ---- refusals ------------------------------------------------------------------------------------

def test_refuses_a_folder_that_is_not_empty(tmp_path):
    (tmp_path / "mine.txt").write_text("a user's file")
    with pytest.raises(UserError, match="not an empty folder"):
        fork_module.fork_benchmark("ncf", tmp_path, allow_uncommitted=True)
    assert (tmp_path / "mine.txt").read_text() == "a user's file"  # nothing overwritten


def test_refuses_an_unknown_benchmark_in_one_line(tmp_path):
    completed = python_in(REPO_ROOT, "-m", "harness", "fork", "nosuch", str(tmp_path / "out"))
    assert completed.returncode == 2
    assert completed.stderr.strip().splitlines() == ["error: unknown benchmark 'nosuch' (built: " + ", ".join(BUILT) + ")"]
    assert not (tmp_path / "out").exists()


def test_refuses_uncommitted_changes_in_the_files_it_copies(tmp_path):
    """In a clone (never this checkout): a changed tracked file and a new file in the benchmark are
    refused; unless taken explicitly, and then FORK.json says +dirty. A change outside what the fork
    copies does not matter."""
    clone = tmp_path / "clone"
    subprocess.run(["git", "clone", "-q", str(REPO_ROOT), str(clone)], check=True)

    def fork_clone(dest: str, **options):
        return fork_module.fork_benchmark("ncf", tmp_path / dest, source=clone, **options)

    smoke = clone / "recommendation/configs/smoke.yaml"
    smoke.write_text(smoke.read_text() + "\n# a local change\n")
    with pytest.raises(UserError, match=r"^recommendation/configs/smoke.yaml: uncommitted changes"):
        fork_clone("fork1")
    assert not (tmp_path / "fork1").exists()
    subprocess.run(["git", "-C", str(clone), "checkout", "-q", "--", "."], check=True)
    (clone / "image_classification/scratch.py").write_text("x = 1\n")
    clean = fork_clone("fork2")
    assert not clean.upstream_commit.endswith("+dirty")
    (clone / "recommendation/scratch.py").write_text("x = 1\n")
    with pytest.raises(UserError, match=r"^recommendation/scratch.py: uncommitted changes"):
        fork_clone("fork3")
    taken = fork_clone("fork4", allow_uncommitted=True)
    assert (taken.path / "recommendation/scratch.py").is_file()
    assert json.loads((taken.path / FORK_FILE).read_text())["upstream"]["commit"].endswith("+dirty")


# ---- the fork works on its own --------------------------------------------------------------------

@pytest.mark.parametrize("key", BUILT)
def test_each_fork_makes_its_tiny_data_and_imports_only_itself(key, tmp_path):
    """Every built benchmark: fork, tiny data, and its training entry point imported, inside the fork."""
    benchmark = BENCHMARKS[key]
    fork = make_fork(key, tmp_path / "fork")
    data = python_in(fork, "-m", "harness", "data", key, "--tiny", "--data-dir", str(tmp_path / "data"))
    assert data.returncode == 0, f"{key}: {data.stderr[-2000:]}"
    assert (tmp_path / "data" / "MANIFEST.json").is_file()
    packages = ",".join(["harness", "harness.cli", "harness.runner", "compliance", "compliance.checker",
                         benchmark.package, f"{benchmark.package}.config", f"{benchmark.package}.pytorch.train"])
    strays = python_in(fork, "-c", IMPORT_CHECK, packages)
    assert strays.returncode == 0, strays.stderr[-2000:]
    assert json.loads(strays.stdout) == [], f"{key}: modules loaded from outside the fork"
    # the image's entrypoint is the fork's `invoke train`, which takes no benchmark argument
    entrypoints = re.findall(r'^ENTRYPOINT (\[.*?\])$', (fork / benchmark.name / "Dockerfile").read_text().replace("\\\n", ""),
                             re.MULTILINE | re.DOTALL)
    assert [json.loads(entry)[:3] for entry in entrypoints] == [["invoke", "train", "--framework"]] * 2


def test_the_ncf_fork_trains_to_target_and_matches_the_monorepo(ncf_fork, tmp_path):
    """Inside the fork: tiny data, three smoke runs to the target, check, summarize. The same seed in
    the monorepo writes the same events; the fork's checker and summarizer give the monorepo's
    verdict and scores on the same logs."""
    data = tmp_path / "data"
    assert python_in(ncf_fork, "-m", "harness", "data", "--tiny", "ncf", "--data-dir", str(data)).returncode == 0
    submission = tmp_path / "fork-submission"
    trained = python_in(ncf_fork, "-m", "harness", "train", "ncf", "--framework", "pytorch", "--config", "smoke",
                        "--runs", "3", "--out", str(submission), "--set", f"run.data_dir={data}")
    assert trained.returncode == 0, trained.stderr[-3000:]
    logs = sorted(submission.glob("*/results/*/ncf/result_*.txt"))
    assert len(logs) == 3
    # the fork's code, every module of it (the training imported them in this process)
    strays = python_in(ncf_fork, "-c", IMPORT_CHECK, "harness,compliance,recommendation,recommendation.pytorch.train")
    assert json.loads(strays.stdout) == []
    upstream_line = next(e for e in events(logs[0]) if e["key"] == "submission_upstream")["value"]
    record = json.loads((ncf_fork / FORK_FILE).read_text())
    assert upstream_line.startswith(f"mlbench-training@{record['upstream']['commit']} fork recommendation@")

    monorepo_run = tmp_path / "monorepo-run"
    again = python_in(REPO_ROOT, "-m", "harness", "train", "ncf", "--framework", "pytorch", "--config", "smoke",
                      "--set", f"run.data_dir={data}", "--set", f"run.out_dir={monorepo_run}")
    assert again.returncode == 0, again.stderr[-3000:]
    assert comparable(monorepo_run / "mllog.txt") == comparable(logs[0])  # seed 1 both

    for name, command in (("check", ["check", str(submission)]),
                          ("summarize", ["summarize", str(submission), "--no-plots", "--out"])):
        in_fork = python_in(ncf_fork, "-m", "compliance", *command, *([str(tmp_path / "fork-summary")] if name == "summarize" else []))
        in_monorepo = python_in(REPO_ROOT, "-m", "compliance", *command,
                                *([str(tmp_path / "monorepo-summary")] if name == "summarize" else []))
        assert in_fork.returncode == in_monorepo.returncode == 0, in_fork.stdout + in_fork.stderr
        assert in_fork.stdout.replace("fork-summary", "SUMMARY") == in_monorepo.stdout.replace("monorepo-summary", "SUMMARY")


@pytest.mark.slow
@pytest.mark.parametrize("key", BUILT)
def test_each_fork_trains_its_smoke_config_to_target(key, tmp_path):
    fork = make_fork(key, tmp_path / "fork")
    data = tmp_path / "data"
    assert python_in(fork, "-m", "harness", "data", key, "--tiny", "--data-dir", str(data)).returncode == 0
    trained = python_in(fork, "-m", "harness", "train", key, "--framework", "pytorch", "--config", "smoke",
                        "--set", f"run.data_dir={data}", "--set", f"run.out_dir={tmp_path / 'run'}", timeout=1800)
    assert trained.returncode == 0, trained.stderr[-3000:]
    checked = python_in(fork, "-m", "compliance", "check", str(tmp_path / "run" / "mllog.txt"))
    assert checked.returncode == 0, checked.stdout
    # the fork's own tests are found and import from the fork
    collected = python_in(fork, "-m", "pytest", "--collect-only", "-q", "-p", "no:cacheprovider")
    assert collected.returncode == 0, collected.stdout[-3000:]
    assert str(REPO_ROOT) not in collected.stdout.replace(str(fork), "")


@pytest.mark.slow
def test_a_fork_installs_and_runs_its_quick_start(ncf_fork, tmp_path):
    """The fork's own quick start in a virtual environment of its own. The packages come from this
    environment (a fresh install would download 6 GB): its site-packages folders are listed in a .pth
    of the new environment, whose .pth files are not read from there, so the monorepo's own editable
    install stays invisible (--system-site-packages would give the base interpreter's packages, not
    this environment's). The fork itself is installed editable, so its entry points, package data and
    tasks are what a user gets."""
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    (site_packages,) = venv.glob("lib/python*/site-packages")
    ours = [path for path in sys.path if path.endswith("site-packages")]
    (site_packages / "mlbench_test_packages.pth").write_text("\n".join(ours) + "\n")
    install = run_in(ncf_fork, str(venv / "bin/python"), "-m", "pip", "install", "--no-deps", "--no-build-isolation",
                     "-e", ".")
    assert install.returncode == 0, install.stdout[-3000:] + install.stderr[-3000:]
    demo = run_in(ncf_fork, str(venv / "bin/python"), "-m", "invoke", "demo", timeout=1800)
    assert demo.returncode == 0, demo.stdout[-3000:] + demo.stderr[-3000:]
    tests = run_in(ncf_fork, str(venv / "bin/python"), "-m", "invoke", "test", timeout=3600)
    assert tests.returncode == 0, tests.stdout[-3000:]
    assert " passed" in tests.stdout.splitlines()[-1]


@pytest.mark.docker
@pytest.mark.timeout(3600)
def test_the_fork_dockerfile_builds_with_the_fork_as_context(ncf_fork, tmp_path):
    """The fork's own `invoke docker-build` / `docker-run` (its harness, its root as build context)."""
    from harness import docker

    problem = docker.engine_problem()
    if problem:
        pytest.skip(problem)
    data = tmp_path / "data"
    assert python_in(ncf_fork, "-m", "harness", "data", "--tiny", "ncf", "--data-dir", str(data)).returncode == 0
    build = python_in(ncf_fork, "-m", "invoke", "docker-build", "--framework", "tensorflow", "--wheelhouse",
                      "--base-image", docker.CPU_BASE_IMAGE, timeout=3600)
    assert build.returncode == 0, build.stdout[-3000:] + build.stderr[-3000:]
    results = tmp_path / "results"
    run = python_in(ncf_fork, "-m", "invoke", "docker-run", "--framework", "tensorflow", "--data", str(data),
                    "--results", str(results), "--set", "run.progress=false", timeout=1800)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    logs = sorted(results.glob("*/results/*/ncf/result_*.txt"))
    assert len(logs) == 1
    upstream_line = next(e for e in events(logs[0]) if e["key"] == "submission_upstream")["value"]
    assert " fork recommendation@" in upstream_line  # the image's label, handed to the run
