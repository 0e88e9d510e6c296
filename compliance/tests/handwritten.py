"""The hand-written logs of tests/data/handwritten/ and small edits of them, for the tests.

The logs are written by hand (values chosen from the rules documents, not taken from the rule
files), so a test that checks them checks the rule files and the checker from the outside. An
edit changes one thing in a log's text and leaves every other line as written.
"""

from __future__ import annotations

import json
from pathlib import Path

HANDWRITTEN = Path(__file__).resolve().parent / "data" / "handwritten"
MARKER = ":::MLLOG "


def lines(benchmark: str) -> list[str]:
    """The log's lines (comments included), each ending in a newline."""
    return (HANDWRITTEN / f"{benchmark}.txt").read_text().splitlines(keepends=True)


def event(line: str) -> dict:
    return json.loads(line.split(MARKER, 1)[1])


def line_of(event_dict: dict) -> str:
    return MARKER + json.dumps(event_dict) + "\n"


def index(log: list[str], key: str, nth: int = 0) -> int:
    """The position of the nth line (negative: from the end) whose event has this key."""
    found = [i for i, line in enumerate(log) if line.startswith(MARKER) and event(line).get("key") == key]
    return found[nth]


def write(path: Path, log: list[str]) -> Path:
    path.write_text("".join(log))
    return path


# -- edits: each takes the lines and returns new lines ------------------------------------------
def set_value(key: str, value, nth: int = 0):
    def edit(log):
        log = list(log)
        i = index(log, key, nth)
        log[i] = line_of({**event(log[i]), "value": value})
        return log
    return edit


def set_field(key: str, field: str, value, nth: int = 0):
    def edit(log):
        log = list(log)
        i = index(log, key, nth)
        log[i] = line_of({**event(log[i]), field: value})
        return log
    return edit


def set_meta(key: str, name: str, value, nth: int = 0):
    def edit(log):
        log = list(log)
        i = index(log, key, nth)
        e = event(log[i])
        log[i] = line_of({**e, "metadata": {**e["metadata"], name: value}})
        return log
    return edit


def drop_meta(key: str, name: str, nth: int = 0):
    def edit(log):
        log = list(log)
        i = index(log, key, nth)
        e = event(log[i])
        log[i] = line_of({**e, "metadata": {k: v for k, v in e["metadata"].items() if k != name}})
        return log
    return edit


def drop(*keys: str):
    """Remove every line of these keys."""
    def edit(log):
        return [line for line in log if not (line.startswith(MARKER) and event(line).get("key") in keys)]
    return edit


def add_before(key: str, new_event: dict, nth: int = 0):
    """Insert an event before the nth line of `key` (its time_ms defaults to that line's)."""
    def edit(log):
        log = list(log)
        i = index(log, key, nth)
        log.insert(i, line_of({"namespace": "", "time_ms": event(log[i])["time_ms"], "event_type": "POINT_IN_TIME",
                               "value": None, "metadata": {}, **new_event}))
        return log
    return edit


def move_after(key: str, other: str, nth: int = 0):
    """Move the first line of `key` to just after the nth line of `other` (time_ms taken from it)."""
    def edit(log):
        log = list(log)
        moved = event(log.pop(index(log, key)))
        j = index(log, other, nth)
        log.insert(j + 1, line_of({**moved, "time_ms": event(log[j])["time_ms"]}))
        return log
    return edit


def shift_times(from_key: str, delta_ms: int):
    """Add delta_ms to the time of the first `from_key` line and of every line after it."""
    def edit(log):
        log = list(log)
        start = index(log, from_key)
        for i in range(start, len(log)):
            if log[i].startswith(MARKER):
                log[i] = line_of({**event(log[i]), "time_ms": event(log[i])["time_ms"] + delta_ms})
        return log
    return edit


def chain(*edits):
    def edit(log):
        for one in edits:
            log = one(log)
        return log
    return edit
