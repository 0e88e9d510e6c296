"""Read MLLOG lines one at a time: bounded memory, linear in the length of every line.

A log line is `<anything>:::MLLOG {json object}`. Like mlperf-logging's parser (which cuts with
`re.sub(".*:::MLLOG ", ...)`), the object starts after the *last* marker on the line, so a prefix
from a progress bar or a rank tag does not matter. The marker is found with `bytes.rfind`, never a
regex with a leading `.*`, and the rest goes to the C JSON decoder: a 50 MB line costs a few
hundred milliseconds, not minutes.

    with open_log(path) as handle:
        for lineno, event_or_problem in iter_events(handle):
            ...

`open_log` raises `UnusableInput` (missing, unreadable, not a regular file, symlink loop) with one
readable line; everything wrong *inside* a readable file is reported per line by the parser.
"""

from __future__ import annotations

import errno
import json
import math
import os
import stat
from collections.abc import Iterator
from typing import Any, BinaryIO

MARKER = b":::MLLOG "
MARKER_LENGTH = len(MARKER)
# A line longer than this is reported and skipped, so one pathological line cannot exhaust memory.
MAX_LINE_BYTES = 64 * 1024 * 1024
# Lines up to this length are decoded with a float hook that refuses overflow (1e999 -> inf);
# longer ones are decoded plainly and their floats checked afterwards (one C call per float is
# cheaper than one Python call per float when a line holds millions of them).
_HOOKED_FLOAT_LINE_BYTES = 1024 * 1024
LARGE_LINE_BYTES = _HOOKED_FLOAT_LINE_BYTES

EVENT_TYPES = frozenset(("POINT_IN_TIME", "INTERVAL_START", "INTERVAL_END"))


class UnusableInput(Exception):
    """The input cannot be checked at all (exit code 2): the message says why, in one line."""


class NonFiniteNumber(ValueError):
    """NaN, Infinity or a number too large for a float, somewhere in an event."""


def _refuse_constant(name: str) -> float:
    raise NonFiniteNumber(f"{name} (not a finite number)")


def _finite_float(text: str) -> float:
    number = float(text)
    if number - number != 0.0:  # inf (or nan): the literal overflows a double
        raise NonFiniteNumber(f"{text[:40]}{'...' if len(text) > 40 else ''} (too large for a float)")
    return number


_plain_decoder = json.JSONDecoder(parse_constant=_refuse_constant)
_hooked_decoder = json.JSONDecoder(parse_constant=_refuse_constant, parse_float=_finite_float)


def decode_event(text: str) -> Any:
    """json.loads for one event: NonFiniteNumber for NaN/Infinity/overflow, ValueError otherwise.

    RecursionError (a deeply nested value) is turned into ValueError, so callers catch one thing.
    """
    try:
        if len(text) <= _HOOKED_FLOAT_LINE_BYTES:
            return _hooked_decoder.decode(text)
        event = _plain_decoder.decode(text)
    except RecursionError:
        raise ValueError("nested too deeply") from None
    _refuse_infinite_floats(event)
    return event


_permissive_decoder = json.JSONDecoder()


def decode_event_permissive(text: str) -> Any:
    """json.loads as Python (and mlperf-logging) reads a line: NaN, Infinity and 1e999 become floats.

    For rulesets where non-finite numbers are only a warning; ValueError for anything else wrong.
    """
    try:
        return _permissive_decoder.decode(text)
    except RecursionError:
        raise ValueError("nested too deeply") from None


def _refuse_infinite_floats(value: Any) -> None:
    """NonFiniteNumber if any float in `value` is infinite (an overflowing literal), iteratively."""
    stack = [value]
    while stack:
        item = stack.pop()
        if type(item) is list:
            floats = [x for x in item if type(x) is float]
            # sum * 0 is 0 when every float is finite; inf or a sum that overflows make it nan,
            # and only then are the floats looked at one by one.
            if not math.isfinite(sum(floats) * 0.0) and any(map(math.isinf, floats)):
                raise NonFiniteNumber("a number too large for a float")
            stack.extend(x for x in item if type(x) is list or type(x) is dict)
        elif type(item) is dict:
            stack.extend(item.values())
        elif type(item) is float and math.isinf(item):
            raise NonFiniteNumber("a number too large for a float")


class _Duplicate(ValueError):
    def __init__(self, name: str):
        super().__init__(name)
        self.name = name


def _refuse_duplicates(pairs: list) -> dict:
    seen = {}
    for name, value in pairs:
        if name in seen:
            raise _Duplicate(name)
        seen[name] = value
    return seen


_pairs_decoder = json.JSONDecoder(parse_constant=_refuse_constant, object_pairs_hook=_refuse_duplicates)


def duplicate_field(text: str) -> str | None:
    """The first field given twice in one JSON object of `text` (at any depth), or None.

    JSON parsers keep the last of two equal keys silently; a log line saying `"key"` twice is
    ambiguous, so the checker refuses it. Only lines the fast path flags are decoded this way.
    """
    try:
        _pairs_decoder.decode(text)
    except _Duplicate as duplicate:
        return duplicate.name
    except (ValueError, RecursionError):
        return None
    return None


def _stdlib_loads(data: bytes) -> Any:
    return decode_event(data.decode("utf-8"))


# The checker's fast path decodes each line with orjson when it is installed (about twice as fast
# as the standard library here); whatever orjson refuses (NaN, 1e999, bad UTF-8, bad JSON) is
# decoded again by the standard library path above, which explains the problem. Verdicts are the
# same either way; orjson only turns integers beyond 64 bits into floats.
try:
    import orjson as _orjson

    fast_loads = _orjson.loads
    FAST_JSON = f"orjson {_orjson.__version__}"
except ImportError:  # pragma: no cover - depends on the environment
    fast_loads = _stdlib_loads
    FAST_JSON = "json (standard library)"


# The checker's fastest path: msgspec decodes a well-formed event line straight into a typed record
# (a JSON object with exactly the six fields of the format, time_ms an integer or float in
# [0, 1e17], a valid event_type, a string key, an object as metadata), about a third quicker than
# a dict from orjson and checked in C. Anything else raises a ValueError (msgspec.DecodeError) and
# takes the orjson path, then the careful one. A repeated field keeps its last value, as
# json.loads does; the checker finds repeated fields by counting colons.
try:
    from typing import Annotated, Literal

    import msgspec as _msgspec

    class WellFormedEvent(_msgspec.Struct, forbid_unknown_fields=True):
        namespace: Any
        time_ms: Annotated[int, _msgspec.Meta(ge=0, le=10**17)] | Annotated[float, _msgspec.Meta(ge=0, le=1e17)]
        event_type: Literal["POINT_IN_TIME", "INTERVAL_START", "INTERVAL_END"]
        key: str
        value: Any
        metadata: dict

    WELL_FORMED_FIELDS = 6  # the fields of a WellFormedEvent: what its line's colons count
    decode_well_formed = _msgspec.json.Decoder(WellFormedEvent).decode
    well_formed_fields = _msgspec.structs.astuple  # (namespace, time_ms, event_type, key, value, metadata)
    FAST_JSON = f"msgspec {_msgspec.__version__}, {FAST_JSON}"
except ImportError:  # pragma: no cover - depends on the environment
    decode_well_formed = None
    well_formed_fields = None
    WELL_FORMED_FIELDS = 6


def json_error_text(error: Exception) -> str:
    """A short description of why a line is not an MLLOG JSON object."""
    if isinstance(error, NonFiniteNumber):
        return str(error)
    if isinstance(error, json.JSONDecodeError):
        return f"not valid JSON ({error.msg.removesuffix(' at')} at column {error.pos + MARKER_LENGTH + 1})"
    if isinstance(error, UnicodeDecodeError):
        return f"not valid UTF-8 (byte {error.start})"
    text = str(error)
    if "Exceeds the limit" in text:
        return "not valid JSON (an integer with more than 4300 digits)"
    return f"not valid JSON ({text[:80]})"


def open_log(path: str | os.PathLike) -> BinaryIO:
    """Open a log for reading in binary; UnusableInput if it cannot be read as a regular file."""
    name = os.fspath(path)
    try:
        info = os.stat(name)
    except FileNotFoundError:
        if os.path.islink(name):
            raise UnusableInput("broken symbolic link") from None
        raise UnusableInput("no such file") from None
    except OSError as error:
        if error.errno == errno.ELOOP:
            raise UnusableInput("symbolic link loop") from None
        raise UnusableInput(f"cannot read ({error.strerror or error})") from None
    if stat.S_ISDIR(info.st_mode):
        raise UnusableInput("is a directory, not a log file")
    if not stat.S_ISREG(info.st_mode):
        raise UnusableInput("not a regular file (device, pipe or socket)")
    try:
        return open(name, "rb")  # noqa: SIM115 - the caller closes it
    except OSError as error:
        raise UnusableInput(f"cannot read ({error.strerror or error})") from None


def iter_lines(handle: BinaryIO, max_line: int = MAX_LINE_BYTES) -> Iterator[tuple[int, bytes | None]]:
    """(line number, raw bytes) for every line; None for a line over `max_line` (skipped whole)."""
    readline = handle.readline
    lineno = 0
    while True:
        raw = readline(max_line)
        if not raw:
            return
        lineno += 1
        if len(raw) >= max_line and not raw.endswith(b"\n"):
            while True:  # drop the rest of the over-long line in bounded chunks
                chunk = readline(max_line)
                if not chunk or chunk.endswith(b"\n"):
                    break
            yield lineno, None
            continue
        yield lineno, raw


def event_text(raw: bytes) -> str | None:
    """The JSON text after the last MLLOG marker of a line, or None when there is no marker."""
    position = raw.rfind(MARKER)
    if position < 0:
        return None
    body = raw[position + MARKER_LENGTH:]
    try:
        return body.decode("utf-8")
    except UnicodeDecodeError:
        return body.decode("utf-8", "replace")


def iter_events(handle: BinaryIO) -> Iterator[tuple[int, dict | str]]:
    """(line number, event dict) for each MLLOG line, or (line number, problem text)."""
    for lineno, raw in iter_lines(handle):
        if raw is None:
            yield lineno, f"line longer than {MAX_LINE_BYTES // 2**20} MiB, skipped"
            continue
        text = event_text(raw)
        if text is None:
            continue
        try:
            event = decode_event(text)
        except ValueError as error:
            yield lineno, json_error_text(error)
            continue
        if type(event) is not dict:
            yield lineno, f"not a JSON object (a {type(event).__name__})"
            continue
        yield lineno, event


def finite_time(value: Any) -> float | None:
    """time_ms as a float when it is a usable timestamp (a finite number >= 0), else None."""
    if (type(value) is int or type(value) is float) and value >= 0:
        try:
            number = float(value)
        except OverflowError:
            return None
        if math.isfinite(number) and number < 1e17:
            return number
    return None


def float_time(value: Any) -> float | None:
    """time_ms as mlperf-logging reads it (`float(m['time_ms'])`: a numeric string, a boolean, any
    number), when that gives a finite float; None otherwise."""
    if not isinstance(value, (str, int, float)):
        return None
    try:
        number = float(value)
    except (ValueError, OverflowError):
        return None
    return number if math.isfinite(number) else None


__all__ = ["MARKER", "MAX_LINE_BYTES", "EVENT_TYPES", "UnusableInput", "NonFiniteNumber", "decode_event",
           "decode_event_permissive", "decode_well_formed", "well_formed_fields", "WELL_FORMED_FIELDS",
           "duplicate_field", "fast_loads", "FAST_JSON",
           "json_error_text", "open_log", "iter_lines", "event_text", "iter_events", "finite_time", "float_time"]
