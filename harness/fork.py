"""`invoke fork BENCH DIR` / `python -m harness fork BENCH DIR`: one benchmark as a standalone repository.

Hardware vendors publish one benchmark per repository (every MLPerf submission repository has a
folder per benchmark per system, each with its own Dockerfile and scripts). A fork holds exactly
what one benchmark needs to build, train, check and test on its own:

    DIR/
      <folder>/                 the benchmark; in a two-benchmark folder (translation/,
                                object_detection/) the folder's toolkit (<folder>/*.py, its tests/)
                                and the one model's subfolder, never the other model
      harness/ compliance/      the shared packages it imports (compliance with its rule files,
                                without its 44 MB of test fixtures)
      docker/                   the image build helpers; the Dockerfile builds with DIR as context
      pyproject.toml            only this benchmark's dependencies (frameworks, its folder's extra, test tools)
      tasks.py                  the invoke tasks that make sense for one benchmark (no `fork`)
      .ci/run  README.md  FORK.json  .gitignore  .dockerignore  conftest.py

`FORK.json` records the upstream commit, the benchmark and the digest of the rule files; every
log the fork writes names the upstream commit and the fork's own (harness/provenance.py). The fork
is a git repository whose first commit is tagged `upstream-<commit>`: pulling a later upstream is
a three-way merge against that tag (the README written into the fork says how).
"""

from __future__ import annotations

import dataclasses
import datetime
import json
import os
import re
import shutil
import subprocess
import tomllib
from collections.abc import Iterable
from pathlib import Path, PurePosixPath

from harness.benchmarks import REPO_ROOT, Benchmark, get_benchmark
from harness.errors import UserError
from harness.provenance import FORK_FILE, PROJECT, git_commit, rules_digest

# Shared files every fork takes as they are (paths from the repo root; folders whole).
SHARED = ("harness/", "compliance/", "docker/", "conftest.py", ".gitignore", ".ci/run")
# ... except these: compliance's own tests read 44 MB of real MLPerf logs that a benchmark does not need.
EXCLUDED = ("compliance/tests/",)
# Written by the fork, not copied.
GENERATED = ("pyproject.toml", "tasks.py", "README.md", FORK_FILE, ".dockerignore")
# tasks.py marks the tasks that only make sense in the monorepo; the fork cuts them out.
MONOREPO_ONLY = re.compile(r"\n# >>> monorepo only.*?# <<< monorepo only\n", re.DOTALL)
DEFAULT_BENCHMARK_LINE = re.compile(r"^DEFAULT_BENCHMARK = None\b.*$", re.MULTILINE)


@dataclasses.dataclass(frozen=True)
class ForkResult:
    path: Path
    benchmark: Benchmark
    upstream_commit: str
    files: int


# ---- which files ----------------------------------------------------------------------------------

def benchmark_paths(benchmark: Benchmark) -> tuple[str, ...]:
    """The benchmark's own files, as path prefixes or globs from the repo root."""
    if not benchmark.subfolder:
        return (f"{benchmark.folder}/",)
    # the toolkit (flat modules, its tests) and this model's subfolder; not the sibling model
    return (f"{benchmark.folder}/*.py", f"{benchmark.folder}/tests/", f"{benchmark.name}/")


def _selected(path: str, patterns: Iterable[str]) -> bool:
    for pattern in patterns:
        if pattern.endswith("/"):
            if path.startswith(pattern):
                return True
        elif "*" in pattern:
            if PurePosixPath(path).match(pattern) and path.count("/") == pattern.count("/"):
                return True
        elif path == pattern:
            return True
    return False


def _git(source: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(["git", "-C", str(source), *args], capture_output=True, text=True)


def files_to_copy(benchmark: Benchmark, source: Path = REPO_ROOT, *, include_untracked: bool = False) -> list[str]:
    """Tracked files (and, when asked, untracked ones git does not ignore) that the fork takes."""
    listing = _git(source, "ls-files", "-z", "--cached", *(["--others", "--exclude-standard"] if include_untracked else []))
    if listing.returncode != 0:
        raise UserError(f"{source}: not a git checkout; `invoke fork` copies what git tracks "
                        "(clone the repository first)")
    patterns = SHARED + benchmark_paths(benchmark)
    files = sorted({path for path in listing.stdout.split("\0") if path
                    and _selected(path, patterns) and not _selected(path, EXCLUDED)
                    and "__pycache__" not in path and (source / path).is_file()})
    return files


def uncommitted(benchmark: Benchmark, source: Path = REPO_ROOT) -> list[str]:
    """Files the fork would copy whose working-tree state differs from the commit (or that git
    does not track yet): a fork made of them would not match the commit it names."""
    patterns = SHARED + benchmark_paths(benchmark)
    status = _git(source, "status", "--porcelain", "-z", "--untracked-files=all")
    changed = []
    for entry in status.stdout.split("\0"):
        if len(entry) > 3:
            path = entry[3:]
            if _selected(path, patterns) and not _selected(path, EXCLUDED) and "__pycache__" not in path:
                changed.append(path)
    return sorted(changed)


# ---- generated files ------------------------------------------------------------------------------

def fork_pyproject(benchmark: Benchmark, source: Path = REPO_ROOT) -> str:
    """The monorepo's pyproject.toml narrowed to one benchmark: its folder's extra and packages."""
    project_file = source / "pyproject.toml"
    data = tomllib.loads(project_file.read_text(encoding="utf-8"))
    project = data["project"]
    project["name"] = f"mlbench-{benchmark.slug}"
    project["description"] = f"{benchmark.title}: a standalone fork of {PROJECT} (see FORK.json)"
    extras = project.get("optional-dependencies", {})
    kept = [name for name in ("pytorch", "tensorflow", "dev", benchmark.folder) if name in extras]
    project["optional-dependencies"] = {name: extras[name] for name in kept}
    project["optional-dependencies"]["all"] = [f"{project['name']}[{','.join(kept)}]"]
    tool = data.setdefault("tool", {})
    tool["setuptools"]["packages"]["find"]["include"] = ["harness*", "compliance*", f"{benchmark.folder}*"]
    tool["pytest"]["ini_options"]["testpaths"] = [benchmark.folder]
    text = ("# Generated by `invoke fork` from the pyproject.toml of mlbench-training (see FORK.json):\n"
            "# only what this benchmark needs. Edit freely: a later fork update merges into your edits.\n\n"
            + dump_toml(data))
    assert tomllib.loads(text) == data, "the TOML writer lost something"  # an internal bug, not the user's
    return text


def fork_tasks(benchmark: Benchmark, source: Path = REPO_ROOT) -> str:
    text = (source / "tasks.py").read_text(encoding="utf-8")
    text = MONOREPO_ONLY.sub("\n", text)
    text, replaced = DEFAULT_BENCHMARK_LINE.subn(
        f'DEFAULT_BENCHMARK = "{benchmark.key}"  # this fork\'s benchmark (set by `invoke fork`)', text)
    assert replaced == 1, "tasks.py lost its DEFAULT_BENCHMARK line"
    return text


def fork_dockerfile(benchmark: Benchmark, source: Path = REPO_ROOT) -> str:
    """The benchmark's Dockerfile as the fork needs it: the fork's `invoke train` takes no benchmark
    argument (its tasks.py has the one benchmark as DEFAULT_BENCHMARK), so the entrypoints drop it."""
    text = (source / benchmark.name / "Dockerfile").read_text(encoding="utf-8")
    monorepo = f'ENTRYPOINT ["invoke", "train", "{benchmark.name}", '
    assert text.count(monorepo) == 2, f"{benchmark.name}/Dockerfile: not one entrypoint per framework"
    return text.replace(monorepo, 'ENTRYPOINT ["invoke", "train", ')


def fork_dockerignore(benchmark: Benchmark) -> str:
    allowed = ["pyproject.toml", "tasks.py", FORK_FILE, "harness/", "compliance/"]
    allowed += [pattern for pattern in benchmark_paths(benchmark) if not pattern.endswith("tests/")]
    allowed += ["docker/install_requirements.py", "docker/no-wheelhouse/", "wheelhouse/"]
    lines = ["# The build context is this repository's root; only what the image copies is let in.", "*"]
    lines += [f"!{pattern}" for pattern in allowed]
    lines += ["# The image trains; it does not run the tests.", "**/tests", "**/__pycache__", "**/*.pyc"]
    return "\n".join(lines) + "\n"


def fork_record(benchmark: Benchmark, source: Path, upstream_commit: str, files: list[str]) -> dict:
    remote = _git(source, "remote", "get-url", "origin")
    rules = source / "compliance" / "rules"
    return {
        "upstream": {"project": PROJECT, "commit": upstream_commit,
                     "repository": remote.stdout.strip() if remote.returncode == 0 else str(source)},
        "benchmark": {"key": benchmark.key, "name": benchmark.name, "title": benchmark.title},
        "rules": {"rulesets": sorted(path.name for path in rules.iterdir() if (path / "ruleset.yaml").is_file()),
                  "sha256": rules_digest(rules)},
        "created": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "files": len(files),
    }


def fork_readme(benchmark: Benchmark, record: dict) -> str:
    commit = record["upstream"]["commit"]
    short = commit[:12]
    return f"""# {benchmark.title}

A standalone fork of one benchmark of [{PROJECT}]({record['upstream']['repository']}), made by
`invoke fork {benchmark.key} DIR` from upstream commit `{commit}` on {record['created'][:10]}.
The benchmark's definition (task, data, model, target, hyperparameters, sources) is
[{benchmark.name}/README.md]({benchmark.name}/README.md). Rules: {', '.join(record['rules']['rulesets'])}
(sha256 `{record['rules']['sha256'][:16]}…` of `compliance/rules/`). `FORK.json` records this, and every
log a run writes names the upstream commit and this fork's own (`submission_upstream`).

## Quick start

On a fresh Debian (or any Linux) machine with Python 3.11 to 3.13, from a fresh clone:

```bash
python3 -m venv .venv && .venv/bin/pip install -e ".[all]" && .venv/bin/invoke demo
python3 -m venv .venv && .venv/bin/pip install -e ".[all]" && .venv/bin/invoke test
```

The first installs everything and runs the benchmark end to end on tiny data: it generates the data,
trains to the smoke target in three seeded runs, checks every log against the rules and prints the
scored summary. The second runs the test suite that CI runs (`.ci/run`). `invoke --list` shows the
other tasks (`invoke train --framework tensorflow --config reference`, `invoke docker-build`, ...);
each task takes this fork's benchmark when none is named.

## What is here

| path | what |
|---|---|
| `{benchmark.name}/` | the benchmark: config, both frameworks, dataset, bench, Dockerfile, tests |
| `harness/` | config, run lifecycle, seeding, devices, distributed setup, checkpoints, dataset checks |
| `compliance/` | the log writer, the rules (`compliance/rules/`), checker, summarizer, package checker |
| `docker/` | base image and wheelhouse helpers; `{benchmark.name}/Dockerfile` builds with this folder as context |

## Keeping up with upstream

The fork's first commit is tagged `upstream-{short}`: that tag is the pristine upstream. To take a later
upstream commit into your changed fork, fork it afresh and merge it onto that tag's line, so git
does a three-way merge that keeps your changes and upstream's:

```bash
# 1. in an upstream checkout at the new commit: a fresh fork, without its own history
invoke fork {benchmark.key} /tmp/fork-new && rm -rf /tmp/fork-new/.git
# 2. in this fork, with your changes committed
git checkout -b upstream-update upstream-{short}
git rm -rq . && cp -a /tmp/fork-new/. . && git add -A && git commit -m "upstream update"
git checkout main && git merge upstream-update
git tag upstream-<new commit, first 12 characters> upstream-update && git branch -d upstream-update
```

`FORK.json` then names the new upstream commit, and so does every log written after the merge.
"""


# ---- TOML writer (tomllib reads; the standard library has no writer) ------------------------------

_BARE_KEY = re.compile(r"^[A-Za-z0-9_-]+$")


def _key(name: str) -> str:
    return name if _BARE_KEY.match(name) else json.dumps(name)


def _value(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)  # a JSON string is a TOML basic string
    if isinstance(value, list):
        if len(value) > 3 and all(isinstance(item, str) for item in value):
            return "[\n" + "".join(f"    {_value(item)},\n" for item in value) + "]"
        return "[" + ", ".join(_value(item) for item in value) + "]"
    if isinstance(value, dict):
        return "{ " + ", ".join(f"{_key(k)} = {_value(v)}" for k, v in value.items()) + " }"
    raise TypeError(f"cannot write {type(value).__name__} as TOML")


def dump_toml(data: dict, prefix: tuple[str, ...] = ()) -> str:
    """Tables as [headers], everything else as `key = value` lines (enough for a pyproject.toml)."""
    scalars = {k: v for k, v in data.items() if not isinstance(v, dict)}
    tables = {k: v for k, v in data.items() if isinstance(v, dict)}
    out = []
    if prefix and (scalars or not tables):
        out.append("[" + ".".join(_key(part) for part in prefix) + "]")
    out += [f"{_key(k)} = {_value(v)}" for k, v in scalars.items()]
    text = "\n".join(out) + ("\n\n" if out else "")
    for name, table in tables.items():
        text += dump_toml(table, prefix + (name,))
    return text


# ---- the fork -------------------------------------------------------------------------------------

def fork_benchmark(name: str, dest: str | os.PathLike, *, allow_uncommitted: bool = False,
                   init_git: bool = True, source: str | os.PathLike = REPO_ROOT) -> ForkResult:
    """Write a standalone repository of benchmark `name` into the empty folder `dest`.

    UserError (one line) for an unknown benchmark, a `dest` that exists and is not empty, or
    uncommitted changes in the files the fork copies (unless `allow_uncommitted`: they are then
    taken as they are, and FORK.json says `+dirty`). `source`: the checkout to fork (this one).
    """
    benchmark = get_benchmark(name)
    source = Path(source)
    target = Path(dest)
    if target.exists() and (not target.is_dir() or any(target.iterdir())):
        raise UserError(f"{dest}: not an empty folder; a fork is written into a new or empty folder only")
    files = files_to_copy(benchmark, source, include_untracked=allow_uncommitted)
    changed = uncommitted(benchmark, source)
    if changed and not allow_uncommitted:
        more = f" (+{len(changed) - 1} more)" if len(changed) > 1 else ""
        raise UserError(f"{changed[0]}{more}: uncommitted changes in files the fork copies; commit them, "
                        "or pass --allow-uncommitted to take them as they are")
    upstream_commit = git_commit(source) or "unknown"
    if changed and not upstream_commit.endswith("+dirty"):  # new files the commit lacks count too
        upstream_commit += "+dirty"

    target.mkdir(parents=True, exist_ok=True)
    for path in files:
        destination = target / path
        destination.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(source / path, destination)
    record = fork_record(benchmark, source, upstream_commit, files)
    (target / "pyproject.toml").write_text(fork_pyproject(benchmark, source), encoding="utf-8")
    (target / "tasks.py").write_text(fork_tasks(benchmark, source), encoding="utf-8")
    (target / ".dockerignore").write_text(fork_dockerignore(benchmark), encoding="utf-8")
    (target / benchmark.name / "Dockerfile").write_text(fork_dockerfile(benchmark, source), encoding="utf-8")
    (target / FORK_FILE).write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")
    (target / "README.md").write_text(fork_readme(benchmark, record), encoding="utf-8")
    if init_git:
        _init_repository(target, benchmark, upstream_commit)
    return ForkResult(path=target, benchmark=benchmark, upstream_commit=upstream_commit,
                      files=len(files) + len(GENERATED))


def _init_repository(target: Path, benchmark: Benchmark, upstream_commit: str) -> None:
    """`git init`, one commit of the whole fork on `main`, tagged `upstream-<commit>`."""
    if shutil.which("git") is None:
        return
    environment = {**os.environ, "GIT_AUTHOR_NAME": os.environ.get("GIT_AUTHOR_NAME", "mlbench fork"),
                   "GIT_AUTHOR_EMAIL": os.environ.get("GIT_AUTHOR_EMAIL", "fork@mlbench.invalid"),
                   "GIT_COMMITTER_NAME": os.environ.get("GIT_COMMITTER_NAME", "mlbench fork"),
                   "GIT_COMMITTER_EMAIL": os.environ.get("GIT_COMMITTER_EMAIL", "fork@mlbench.invalid")}

    def git(*args: str) -> None:
        subprocess.run(["git", "-C", str(target), *args], check=True, capture_output=True, env=environment)

    git("init", "-q", "-b", "main")
    git("add", "-A")
    git("commit", "-q", "-m", f"Fork of {PROJECT}@{upstream_commit}: {benchmark.name}")
    git("tag", f"upstream-{upstream_commit[:12].replace('+', '-')}")
