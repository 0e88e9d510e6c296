"""Where the code of a run comes from: which commit of which repository, and which rules.

Every run logs it once (`submission_upstream`, a `submission_*`-style key that mlperf-logging and
this suite's checker both accept), so a result can be traced to the code that produced it:

- in the monorepo: `mlbench-training@<commit>` (with `+dirty` when tracked files were changed);
- in a vendor fork (`invoke fork`, harness/fork.py): the upstream commit the fork was made from,
  read from the fork's `FORK.json`, and the fork's own commit, e.g.
  `mlbench-training@2a9299f0 fork recommendation@5d1c...`.

In a container there is no git: `invoke docker-build` labels the image with the provenance of the
checkout it was built from (`org.mlbench.provenance`) and `invoke docker-run` hands that label to
the run as MLBENCH_PROVENANCE, which wins over everything else here. Reading it never fails a run:
without any of these the commit is `unknown`.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import subprocess
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
PROJECT = "mlbench-training"
FORK_FILE = "FORK.json"
IMAGE_LABEL = "org.mlbench.provenance"


def git_commit(root: Path = REPO_ROOT) -> str | None:
    """The checked-out commit of the git repository at `root` (None without git or a repository),
    with `+dirty` when tracked files differ from it."""
    try:
        head = subprocess.run(["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True, text=True,
                              timeout=10)
        if head.returncode != 0:
            return None
        # only a repository whose top level is `root`: a fork copied inside another repository
        # must not report that repository's commit as its own
        top = subprocess.run(["git", "-C", str(root), "rev-parse", "--show-toplevel"], capture_output=True,
                             text=True, timeout=10)
        if top.returncode != 0 or Path(top.stdout.strip()).resolve() != root.resolve():
            return None
        dirty = subprocess.run(["git", "-C", str(root), "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return head.stdout.strip() + ("+dirty" if dirty.stdout.strip() else "")


def rules_digest(rules_folder: Path) -> str:
    """sha256 over every rule file (name and bytes), in name order: which rules a checker applies."""
    digest = hashlib.sha256()
    for path in sorted(rules_folder.rglob("*.yaml")) + sorted(rules_folder.rglob("*.json")):
        digest.update(path.relative_to(rules_folder).as_posix().encode())
        digest.update(b"\0")
        digest.update(path.read_bytes())
    return digest.hexdigest()


def read_fork_file(root: Path = REPO_ROOT) -> dict | None:
    path = root / FORK_FILE
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


@functools.lru_cache(maxsize=1)
def code_provenance() -> str:
    """One line for the log: `mlbench-training@<commit>`, plus ` fork <benchmark>@<commit>` in a fork."""
    if os.environ.get("MLBENCH_PROVENANCE"):
        return os.environ["MLBENCH_PROVENANCE"]
    fork = read_fork_file()
    own = git_commit() or "unknown"
    if fork is None:
        return f"{PROJECT}@{own}"
    upstream = fork.get("upstream", {})
    return (f"{upstream.get('project', PROJECT)}@{upstream.get('commit', 'unknown')} "
            f"fork {fork.get('benchmark', {}).get('name', '?')}@{own}")
