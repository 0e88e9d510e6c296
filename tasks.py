"""The front door: `invoke --list` shows every task. Tasks only orchestrate; the logic lives in
the `harness` and `compliance` libraries, so every task is also a plain `python -m` command."""

from __future__ import annotations

import os
import shlex
import sys

from invoke import Exit, task

PYTHON = shlex.quote(sys.executable)
PYTEST_DEFAULT = "-q -p no:randomly"
# The benchmark a task takes when none is named: none in the monorepo (name one: `invoke train ncf`);
# a fork made by `invoke fork` sets its own, so there `invoke train` is enough.
DEFAULT_BENCHMARK = None
# invoke has no optional positional arguments: in the monorepo the benchmark is positional and
# required (`invoke train ncf`); in a fork it is an option that defaults to the fork's own.
BENCH_POSITIONAL = ["bench"] if DEFAULT_BENCHMARK is None else []


def _benchmark(bench):
    if bench:
        return bench
    if DEFAULT_BENCHMARK:
        return DEFAULT_BENCHMARK
    raise Exit("error: name a benchmark, e.g. `invoke train ncf` (`python -m harness list` shows them)", code=2)


def _run(c, command: str, **kwargs):
    """Run and pass the exit code through (warn=True: we raise Exit ourselves, no invoke traceback)."""
    result = c.run(command, pty=False, warn=True, **kwargs)
    if result.exited != 0:
        raise Exit(code=result.exited)
    return result


def _sets(values) -> str:
    return " ".join(f"--set {shlex.quote(value)}" for value in values or [])


@task(positional=BENCH_POSITIONAL, help={"bench": "benchmark key (resnet, ncf, ...), folder or path",
            "tiny": "generate the small dataset instead of preparing the full one",
            "source": "folder holding the official downloads (full data)",
            "data_dir": "where to write the prepared dataset (default data/<bench>/tiny|full)"})
def data(c, bench=DEFAULT_BENCHMARK, tiny=False, source=None, data_dir=None):
    """Prepare a benchmark's dataset: the full one from its official files, or --tiny."""
    args = [f"{PYTHON} -m harness data {shlex.quote(_benchmark(bench))}"]
    if tiny:
        args.append("--tiny")
    if source:
        args.append(f"--source {shlex.quote(source)}")
    if data_dir:
        args.append(f"--data-dir {shlex.quote(data_dir)}")
    _run(c, " ".join(args))


@task(iterable=["set"], positional=BENCH_POSITIONAL, help={"bench": "benchmark key, folder or path", "framework": "pytorch or tensorflow",
                              "config": "smoke, reference, or a YAML path", "runs": "number of runs",
                              "seed": "seed of the first run (the others follow)",
                              "out": "write the submission layout under this folder",
                              "system": "system name in the submission layout",
                              "set": "override a config value, key=value (repeatable)"})
def train(c, bench=DEFAULT_BENCHMARK, framework="pytorch", config="smoke", runs=1, seed=None, out=None, system=None,
          set=None):  # noqa: A002 - the option is --set
    """Train a benchmark to its quality target, writing the standard log (and result_N.txt files)."""
    args = [f"{PYTHON} -m harness train {shlex.quote(_benchmark(bench))} --framework {framework}",
            f"--config {shlex.quote(config)} --runs {int(runs)}"]
    if seed is not None:
        args.append(f"--seed {int(seed)}")
    if out:
        args.append(f"--out {shlex.quote(out)}")
    if system:
        args.append(f"--system {shlex.quote(system)}")
    args.append(_sets(set))
    _run(c, " ".join(args))


@task(help={"path": "a log file or a folder of logs", "ruleset": "ruleset name (default: from the log)",
            "json": "machine-readable output"})
def check(c, path, ruleset=None, json=False):
    """Check logs against the rules (exit 0 compliant, 1 not compliant, 2 unusable input)."""
    args = f"{PYTHON} -m compliance check {shlex.quote(path)}"
    if ruleset:
        args += f" --ruleset {shlex.quote(ruleset)}"
    if json:
        args += " --json"
    _run(c, args)


@task(help={"path": "a submission tree (<org>/results/<system>/<benchmark>/result_N.txt)",
            "ruleset": "ruleset name (default: from the logs)", "out": "where to write CSV, JSON, plots"})
def summarize(c, path, ruleset=None, out=None):
    """Score a submission tree: time to train per run, olympic mean per benchmark, table and plots."""
    args = f"{PYTHON} -m compliance summarize {shlex.quote(path)}"
    if ruleset:
        args += f" --ruleset {shlex.quote(ruleset)}"
    if out:
        args += f" --out {shlex.quote(out)}"
    _run(c, args)


@task(help={"path": "a submission package folder"})
def package(c, path):
    """Check a submission package: layout, system files, result counts, compliance, seeds."""
    _run(c, f"{PYTHON} -m compliance package {shlex.quote(path)}")


@task(name="docker-build", positional=BENCH_POSITIONAL, help={"bench": "benchmark key, folder or path", "framework": "pytorch or tensorflow",
                                  "wheelhouse": "download wheels on the host; build with no network",
                                  "base_image": "base image (default: the Dockerfile's CUDA image)"})
def docker_build(c, bench=DEFAULT_BENCHMARK, framework="pytorch", wheelhouse=False, base_image=None):
    """Build a benchmark's container image for one framework (--target pytorch|tensorflow)."""
    from harness import docker
    from harness.errors import UserError

    try:
        docker.build_image(_benchmark(bench), framework, base_image=base_image, wheelhouse=wheelhouse)
    except UserError as error:
        raise Exit(f"error: {error}", code=2) from None


@task(name="docker-run", iterable=["set"], positional=BENCH_POSITIONAL,
      help={"bench": "benchmark folder", "framework": "pytorch or tensorflow",
            "data": "host folder mounted at /data", "results": "host folder mounted at /results",
            "config": "smoke or reference", "set": "config override key=value (repeatable)"})
def docker_run(c, bench=DEFAULT_BENCHMARK, framework="pytorch", data=None, results="results", config="smoke", set=None):  # noqa: A002
    """Run a benchmark's container: the same `invoke train` inside, data at /data, results at /results."""
    from harness import docker
    from harness.errors import UserError

    extra = ["--config", config] + [arg for value in set or [] for arg in ("--set", value)]
    try:
        exit_code = docker.run_image(_benchmark(bench), framework, data_dir=data, results_dir=results, extra_args=extra)
    except UserError as error:
        raise Exit(f"error: {error}", code=2) from None
    if exit_code != 0:  # a failed training inside the container fails the task too
        raise Exit(code=exit_code)


@task(positional=["name"], help={"name": "logger, checker, a benchmark (key, folder or path), or all"})
def bench(c, name):
    """Speed benchmarks: log writer, checker, each benchmark's throughput against its peer (`all`: every one)."""
    _run(c, f"{PYTHON} -m harness.bench {shlex.quote(name)}")


@task(help={"all": "also run the slow and docker tests", "k": "pytest -k expression"})
def test(c, all=False, k=None):  # noqa: A002
    """Run the test suite (default: the fast one CI runs; --all for everything)."""
    args = f"{PYTHON} -m pytest {PYTEST_DEFAULT}"
    if all:
        args += " -m ''"
    if k:
        args += f" -k {shlex.quote(k)}"
    _run(c, args)


@task
def lint(c):
    """Static checks: ruff (style, bugs) and the rule files' schema."""
    _run(c, f"{PYTHON} -m ruff check .")
    _run(c, f"{PYTHON} -m compliance rules --validate")


@task(help={"bench": "benchmark to demo (default: recommendation, the fastest; in a fork its own)",
            "framework": "pytorch or tensorflow", "out": "output folder"})
def demo(c, bench=None, framework="pytorch", out="demo_output"):
    """End to end on tiny data: make data, train to the smoke target, check the logs, summarize, and
    check the package, with the runs' convergence against the smoke RCP shipped with the rules (its
    verdict line; a benchmark without a shipped RCP is not checked for it)."""
    bench = bench or DEFAULT_BENCHMARK or "recommendation"
    data_dir = os.path.join(out, "data", bench)
    submission = os.path.join(out, "submission")
    _run(c, f"{PYTHON} -m harness data {bench} --tiny --data-dir {shlex.quote(data_dir)}")
    _run(c, f"{PYTHON} -m harness train {bench} --framework {framework} --config smoke --runs 3 "
            f"--out {shlex.quote(submission)} --set run.data_dir={shlex.quote(data_dir)}")
    _run(c, f"{PYTHON} -m compliance check {shlex.quote(submission)} --ruleset mlbench-1.0.0-smoke")
    _run(c, f"{PYTHON} -m compliance summarize {shlex.quote(submission)} --ruleset mlbench-1.0.0-smoke "
            f"--out {shlex.quote(os.path.join(out, 'summary'))}")
    _run(c, f"{PYTHON} -m compliance package {shlex.quote(submission)} --ruleset mlbench-1.0.0-smoke")


# >>> monorepo only: `invoke fork` leaves these tasks out of a fork's tasks.py
@task(positional=["bench", "dest"], help={
    "bench": "the benchmark to fork: key (ncf), folder or path (translation/transformer)",
    "dest": "a new or empty folder for the standalone repository",
    "allow_uncommitted": "take files with uncommitted changes as they are (FORK.json then says +dirty)"})
def fork(c, bench, dest, allow_uncommitted=False):
    """Write one benchmark as a standalone repository (its folder, harness, compliance, Docker, CI, README)."""
    args = f"{PYTHON} -m harness fork {shlex.quote(bench)} {shlex.quote(dest)}"
    if allow_uncommitted:
        args += " --allow-uncommitted"
    _run(c, args)
# <<< monorepo only
