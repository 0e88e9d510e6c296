"""`python -m compliance rules --validate`: every ruleset loads, and its examples get their verdicts.

Loading validates the schema of every rule file (strict YAML, no duplicate keys, known fields and
types); then each `examples/<benchmark>.pass.txt` must be compliant and each `.fail.txt` must be
rejected for the key its first line names (`# expect: <key>`). The RCP files beside the rules
(`rcps/<benchmark>.json`) must load (schema, derived statistics) and fit their ruleset.
"""

from __future__ import annotations

from pathlib import Path

from compliance.checker import check_log
from compliance.rcp import RcpFileError, shipped_rcp
from compliance.ruleset import load_ruleset


def validate_ruleset(name: str) -> list[str]:
    """Problems with one ruleset's examples (the rule files themselves raise RuleFileError on load)."""
    rules = load_ruleset(name)
    folder = Path(rules.folder) / "examples"
    problems = []
    for benchmark in rules.benchmark_names:
        passing, failing = folder / f"{benchmark}.pass.txt", folder / f"{benchmark}.fail.txt"
        for path in (passing, failing):
            if not path.is_file():
                problems.append(f"{name}: no example {path.name}")
        if passing.is_file():
            result = check_log(str(passing), name)
            if not result.compliant:
                first = result.errors[0].format(passing.name) if result.errors else result.verdict()
                problems.append(f"{name}: {passing.name} should pass: {first}")
        if failing.is_file():
            first_line = failing.read_text(encoding="utf-8", errors="replace").split("\n", 1)[0]
            expected = first_line.split("expect: ", 1)[1].split()[0] if "expect: " in first_line else None
            result = check_log(str(failing), name)
            keys = {finding.key.split()[0] for finding in result.errors}
            if result.compliant or expected is None or expected not in keys:
                problems.append(f"{name}: {failing.name} should fail on {expected}: {result.verdict()}")
    for path in sorted((Path(rules.folder) / "rcps").glob("*.json")):
        if path.stem not in rules.benchmark_names:
            problems.append(f"{name}: rcps/{path.name}: '{path.stem}' is not a benchmark of {name}")
            continue
        try:
            shipped_rcp(name, path.stem)
        except RcpFileError as error:
            problems.append(f"{name}: {error}")
    return problems


__all__ = ["validate_ruleset"]
