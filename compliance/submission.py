"""The layout of a submission tree, read tolerantly (shared by the summarizer and package checker).

    <org>/systems/<system>.json                               the system description
    <org>/results/<system>/<benchmark>/result_<N>.txt         one log per run

`find_organisations(DIR)` accepts an organisation folder or a folder of them. Reading never raises
for what is in the tree: a missing or broken file becomes a `problem` string on the object.
"""

from __future__ import annotations

import difflib
import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

RESULT_NAME = re.compile(r"^result_(\d+)\.txt$")


def natural_key(text: str) -> list:
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", text)]


def _listdir(folder: Path) -> list[Path]:
    try:
        return sorted(folder.iterdir(), key=lambda p: natural_key(p.name))
    except OSError:
        return []


def _is_dir(path: Path) -> bool:
    try:
        return path.is_dir() and not path.is_symlink()
    except OSError:
        return False


def _is_file(path: Path) -> bool:
    try:
        return path.is_file()
    except OSError:
        return False


@dataclass
class SystemDescription:
    name: str
    path: Path
    fields: dict[str, Any] = field(default_factory=dict)
    problem: str | None = None  # unreadable / not JSON / not an object

    def get(self, name: str) -> tuple[Any, str | None]:
        """A field's value, and a note when it was found under a misspelt name (or None, None)."""
        if name in self.fields:
            return self.fields[name], None
        normalized = {re.sub(r"[\s\-]+", "_", key.strip().lower()): key for key in self.fields if isinstance(key, str)}
        if name in normalized:
            key = normalized[name]
            return self.fields[key], f"'{name}' read from '{key}'"
        close = difflib.get_close_matches(name, list(normalized), n=1, cutoff=0.85)
        if close:
            key = normalized[close[0]]
            return self.fields[key], f"'{name}' read from '{key}'"
        return None, None


@dataclass
class BenchmarkRuns:
    system: str
    benchmark: str
    folder: Path
    results: list[Path] = field(default_factory=list)
    other_files: list[Path] = field(default_factory=list)


@dataclass
class Organisation:
    name: str
    folder: Path
    systems: dict[str, SystemDescription] = field(default_factory=dict)
    benchmarks: list[BenchmarkRuns] = field(default_factory=list)
    misplaced: list[Path] = field(default_factory=list)  # result files outside <system>/<benchmark>/
    problems: list[str] = field(default_factory=list)  # layout problems


def read_system(path: Path) -> SystemDescription:
    description = SystemDescription(name=path.stem, path=path)
    try:
        with open(path, "rb") as handle:
            data = handle.read(16 * 1024 * 1024 + 1)
    except OSError as error:
        description.problem = f"cannot read ({error.strerror or error})"
        return description
    if len(data) > 16 * 1024 * 1024:
        description.problem = "larger than 16 MiB: not a system description"
        return description
    try:
        content = json.loads(data.decode("utf-8", "replace"))
    except json.JSONDecodeError as error:
        description.problem = f"not valid JSON ({error.msg} at line {error.lineno} column {error.colno})"
        return description
    except (ValueError, RecursionError) as error:
        description.problem = f"not valid JSON ({str(error)[:80]})"
        return description
    if not isinstance(content, dict):
        description.problem = f"not a JSON object (a {type(content).__name__})"
        return description
    description.fields = content
    return description


def root_problem(root: str) -> str | None:
    """Why a submission tree given on the command line cannot be read at all, or None if it can."""
    try:
        if not Path(root).is_dir():
            return "not a folder"
    except OSError as error:
        return str(error.strerror or error)
    return None


def is_organisation(folder: Path) -> bool:
    return _is_dir(folder / "results") or _is_dir(folder / "systems")


def find_organisations(root: str | os.PathLike) -> list[Organisation]:
    """The organisations under `root` (itself one, or a folder of them), read tolerantly."""
    root = Path(root)
    folders = [root] if is_organisation(root) else [p for p in _listdir(root) if _is_dir(p) and is_organisation(p)]
    return [read_organisation(folder) for folder in folders]


def read_organisation(folder: Path) -> Organisation:
    org = Organisation(name=folder.name, folder=folder)
    systems_folder, results_folder = folder / "systems", folder / "results"
    if not _is_dir(systems_folder):
        org.problems.append("no systems/ folder")
    else:
        for path in _listdir(systems_folder):
            if path.suffix == ".json" and _is_file(path):
                org.systems[path.stem] = read_system(path)
    if not _is_dir(results_folder):
        org.problems.append("no results/ folder")
        return org
    for system_folder in _listdir(results_folder):
        if not _is_dir(system_folder):
            if RESULT_NAME.match(system_folder.name):
                org.misplaced.append(system_folder)
            continue
        for entry in _listdir(system_folder):
            if _is_dir(entry):
                runs = BenchmarkRuns(system=system_folder.name, benchmark=entry.name, folder=entry)
                for item in _listdir(entry):
                    (runs.results if RESULT_NAME.match(item.name) and _is_file(item) else runs.other_files).append(item)
                org.benchmarks.append(runs)
            elif RESULT_NAME.match(entry.name):
                org.misplaced.append(entry)
    return org


__all__ = ["SystemDescription", "BenchmarkRuns", "Organisation", "find_organisations", "read_organisation",
           "read_system", "natural_key", "RESULT_NAME", "is_organisation"]
