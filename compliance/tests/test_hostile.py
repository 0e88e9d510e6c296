"""Malformed and hostile input: never a traceback, always exit code 1 or 2 with a clear line."""

from __future__ import annotations

import json
import os
import random
import socket
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from compliance.synth import write_log

from .conftest import run_cli


@pytest.fixture(scope="module")
def base_log(tmp_path_factory) -> bytes:
    """A short valid training-0.7.0 resnet log, as bytes, to break in many ways."""
    return write_log(tmp_path_factory.mktemp("base") / "base.txt", "training-0.7.0", "resnet").read_bytes()


def _lines(base: bytes) -> list[bytes]:
    return base.splitlines(keepends=True)


def _replace_event(base: bytes, key: str, change) -> bytes:
    """Apply `change(event_dict) -> str line body` to the first event with this key."""
    out, done = [], False
    for line in _lines(base):
        if not done and f'"key": "{key}"'.encode() in line:
            try:
                event = json.loads(line.split(b":::MLLOG ", 1)[1])
            except ValueError:
                continue
            if not isinstance(event, dict):
                continue
            body = change(event)
            line = b":::MLLOG " + (body.encode() if isinstance(body, str) else body) + b"\n"
            done = True
        out.append(line)
    assert done, key
    return b"".join(out)


def _dump(event: dict) -> str:
    return json.dumps(event)


def _without(field: str):
    return lambda e: _dump({k: v for k, v in e.items() if k != field})


def _with(**fields):
    return lambda e: _dump({**e, **fields})


# Each case: name -> (builder(base, tmp_path) -> path, allowed exit codes, text the report must contain)
CASES = {
    "empty file": (lambda b, t: _file(t, b""), {1}, "an empty file"),
    "binary garbage": (lambda b, t: _file(t, random.Random(1).randbytes(5000)), {1}, "event lines"),
    "text without events": (lambda b, t: _file(t, b"hello\nworld\n" * 50), {1}, "100 lines without one"),
    "NUL bytes": (lambda b, t: _file(t, b"\x00" * 4096 + b"\n" + b.replace(b'"key"', b'"k\x00ey"', 3)), {1}, "Invalid control character at column"),
    "truncated JSON line": (lambda b, t: _file(t, b[: b.index(b"run_start") + 20]), {1}, "not valid JSON"),
    "truncated log (no run_stop)": (lambda b, t: _file(t, b"".join(_lines(b)[:-1])), {1},
                                    "run_stop: wanted exactly one occurrence; found none"),
    "JSON array": (lambda b, t: _file(t, b":::MLLOG [1, 2, 3]\n" + b), {1}, "found a list"),
    "JSON string": (lambda b, t: _file(t, b':::MLLOG "run_start"\n' + b), {1}, "found a string"),
    "JSON null": (lambda b, t: _file(t, b":::MLLOG null\n" + b), {1}, "found a null"),
    "marker and nothing": (lambda b, t: _file(t, b":::MLLOG \n" + b), {1}, "not valid JSON"),
    "missing key": (lambda b, t: _file(t, _replace_event(b, "seed", _without("key"))), {1}, "no key"),
    "missing time_ms": (lambda b, t: _file(t, _replace_event(b, "seed", _without("time_ms"))), {1}, "no time_ms"),
    "time_s instead": (lambda b, t: _file(t, _replace_event(b, "seed", lambda e: _dump(
        {**{k: v for k, v in e.items() if k != "time_ms"}, "time_s": 1.0}))), {1}, "time_s instead of time_ms"),
    "missing event_type": (lambda b, t: _file(t, _replace_event(b, "seed", _without("event_type"))), {1},
                           "no event_type"),
    "invalid event_type": (lambda b, t: _file(t, _replace_event(b, "seed", _with(event_type="INSTANT"))), {1},
                           "event_type 'INSTANT'"),
    "missing value": (lambda b, t: _file(t, _replace_event(b, "seed", _without("value"))), {1}, "no value"),
    "missing metadata": (lambda b, t: _file(t, _replace_event(b, "seed", _without("metadata"))), {1}, "no metadata"),
    "metadata not an object": (lambda b, t: _file(t, _replace_event(b, "run_stop", _with(metadata="success"))),
                               {1}, "metadata string"),
    "key a number": (lambda b, t: _file(t, _replace_event(b, "seed", _with(key=7))), {1}, "key 7"),
    "key a list": (lambda b, t: _file(t, _replace_event(b, "seed", _with(key=["seed"]))), {1}, "key ['seed']"),
    "time_ms a string": (lambda b, t: _file(t, _replace_event(b, "seed", _with(time_ms="1700000000008"))), {1},
                         "time_ms '1700000000008'"),
    "time_ms negative": (lambda b, t: _file(t, _replace_event(b, "seed", _with(time_ms=-5))), {1}, "time_ms -5"),
    "time_ms boolean": (lambda b, t: _file(t, _replace_event(b, "seed", _with(time_ms=True))), {1}, "time_ms true"),
    "time_ms 300 digits": (lambda b, t: _file(t, _replace_event(b, "seed", lambda e: _dump(e).replace(
        str(e["time_ms"]), "9" * 300))), {1}, "seed: wanted a field time_ms"),
    "NaN value": (lambda b, t: _file(t, _replace_event(b, "eval_accuracy", lambda e: _dump(e).replace(
        str(e["value"]), "NaN"))), {1}, "NaN (not a finite number)"),
    "Infinity value": (lambda b, t: _file(t, _replace_event(b, "global_batch_size", lambda e: _dump(e).replace(
        '"value": 3072', '"value": Infinity'))), {1}, "Infinity (not a finite number)"),
    "-Infinity in metadata": (lambda b, t: _file(t, _replace_event(b, "epoch_start", lambda e: _dump(e).replace(
        '"epoch_num": 1', '"epoch_num": -Infinity'))), {1}, "-Infinity (not a finite number)"),
    "1e999 overflow": (lambda b, t: _file(t, _replace_event(b, "train_samples", lambda e: _dump(e).replace(
        "1281167", "1e999"))), {1}, "too large for a float"),
    "5000-digit integer": (lambda b, t: _file(t, _replace_event(b, "train_samples", lambda e: _dump(e).replace(
        "1281167", "7" * 5000))), {1}, "more than 4300 digits"),
    "deep nesting": (lambda b, t: _file(t, _replace_event(b, "global_batch_size", lambda e: _dump(e).replace(
        '"value": 3072', '"value": ' + "[" * 100_000 + "]" * 100_000))), {1}, "found [[[[...]]]]"),
    "duplicate JSON field": (lambda b, t: _file(t, _replace_event(b, "run_stop", lambda e: _dump(e)[:-1]
                                                               + ', "key": "run_start"}')), {1}, "field 'key' twice"),
    "key logged twice, two values": (lambda b, t: _file(t, b.replace(
        b"\n", b"\n" + _lines(b)[_find(b, "global_batch_size")].replace(b"3072", b"4096"), 1)), {1},
        "2 with different values"),
    "time going backwards": (lambda b, t: _file(t, _replace_event(b, "epoch_stop", _with(time_ms=1))), {1},
                             "time never goes backwards"),
    "event after run_stop, timed later": (lambda b, t: _file(t, b + _lines(b)[-1].replace(b'"run_stop"', b'"seed"')
                                                             .replace(b'"time_ms": 17', b'"time_ms": 18')), {1},
                                          "no event timed after run_stop"),
    "target only after run_stop": (lambda b, t: _file(t, _after_stop_target(b)), {1}, "before run_stop"),
    "unknown benchmark": (lambda b, t: _file(t, b.replace(b'"value": "resnet"', b'"value": "tetris"')), {1},
                          "found 'tetris'"),
    "unknown ruleset named in the log": (lambda b, t: _file(t, b.replace(b"\n", b"\n" + _lines(b)[_find(
        b, "seed")].replace(b'"seed", "value": 1', b'"submission_ruleset", "value": "mlbench-9"'), 1)), {1},
        "'mlbench-9' (an unknown ruleset)"),
    "status missing": (lambda b, t: _file(t, _replace_event(b, "run_stop", _with(metadata={}))), {1},
                       "a metadata field status"),
    "stop without start": (lambda b, t: _file(t, b.replace(_lines(b)[_find(b, "eval_start")], b"", 1)), {1},
                           "no open eval interval"),
    "invalid UTF-8 in JSON": (lambda b, t: _file(t, _replace_event(b, "seed", lambda e: _dump(e).encode()
                                                                   .replace(b'"value"', b'\xff"value"'))), {1},
                              "not valid JSON"),
    "quality never reached": (lambda b, t: _file(t, _replace_event(b, "eval_accuracy", _with(value=0.1))
                                                 .replace(b'"value": 0.759', b'"value": 0.7')), {1},
                              "eval_accuracy: wanted an evaluation reaching"),
    "a 50 MB truncated line": (lambda b, t: _file(t, b.replace(b"\n", b"\n:::MLLOG {\"key\": \"blob\", \"value\": \""
                                                               + b"x" * 50_000_000 + b"\n", 1)), {1},
                               "not valid JSON"),
    "missing file": (lambda b, t: t / "nope" / "result_1.txt", {2}, "unusable: no such file"),
    "a directory without logs": (lambda b, t: _mkdir(t / "empty"), {2}, "no log files"),
    "symlink loop": (lambda b, t: _loop(t), {2}, "unusable: symbolic link loop"),
    "broken symlink": (lambda b, t: _symlink(t / "dangling.txt", t / "missing.txt"), {2},
                       "unusable: broken symbolic link"),
    "a path through a file": (lambda b, t: _file(t, b) / "result_1.txt", {2}, "unusable: cannot read"),
    "a FIFO": (lambda b, t: _fifo(t), {2}, "unusable: not a regular file"),
    "a socket": (lambda b, t: _socket(t), {2}, "unusable: not a regular file"),
    "unreadable file": (lambda b, t: _unreadable(t, b), {2}, "unusable: cannot read"),
}


def _find(base: bytes, key: str) -> int:
    return next(i for i, line in enumerate(_lines(base)) if f'"key": "{key}"'.encode() in line)


def _file(tmp: Path, data: bytes) -> Path:
    path = tmp / "result_1.txt"
    path.write_bytes(data)
    return path


def _mkdir(path: Path) -> Path:
    path.mkdir()
    return path


def _symlink(link: Path, target: Path) -> Path:
    link.symlink_to(target)
    return link


def _loop(tmp: Path) -> Path:
    (tmp / "a.txt").symlink_to(tmp / "b.txt")
    (tmp / "b.txt").symlink_to(tmp / "a.txt")
    return tmp / "a.txt"


def _fifo(tmp: Path) -> Path:
    os.mkfifo(tmp / "fifo.txt")
    return tmp / "fifo.txt"


def _socket(tmp: Path) -> Path:
    path = tmp / "sock.txt"
    server = socket.socket(socket.AF_UNIX)
    server.bind(str(path))
    return path


def _unreadable(tmp: Path, base: bytes) -> Path:
    if os.geteuid() == 0:
        pytest.skip("root reads any file: permissions cannot make one unreadable")
    path = _file(tmp, base)
    path.chmod(0)
    return path


def _after_stop_target(base: bytes) -> bytes:
    lines = _lines(base)
    last_eval = max(i for i, line in enumerate(lines) if b'"eval_accuracy"' in line)
    late = lines[last_eval]
    lines[last_eval] = late.replace(b'"value": 0.759', b'"value": 0.5')
    stop_time = json.loads(lines[-1].split(b":::MLLOG ", 1)[1])["time_ms"]
    event = json.loads(late.split(b":::MLLOG ", 1)[1])
    lines.append(b":::MLLOG " + json.dumps({**event, "time_ms": stop_time}).encode() + b"\n")
    return b"".join(lines)


def test_the_corpus_has_at_least_40_kinds():
    assert len(CASES) >= 40


@pytest.mark.parametrize("name", sorted(CASES))
def test_hostile_log(tmp_path, base_log, name):
    build, codes, expected = CASES[name]
    path = build(base_log, tmp_path)
    code, out, err = run_cli("check", str(path), "--ruleset", "training-0.7.0")
    assert code in codes, (name, code, out[-500:], err)
    assert "Traceback" not in out + err
    assert expected in out, (name, out[-2000:])
    verdict = out.strip().splitlines()[-1]
    assert ("NOT compliant" in verdict) if code == 1 else ("unusable" in verdict), verdict
    assert all(len(line) < 2000 for line in out.splitlines())  # a 50 MB value is never echoed


def test_hostile_json_output(tmp_path, base_log):
    path = _file(tmp_path, _replace_event(base_log, "seed", _with(time_ms="soon")))
    code, out, _ = run_cli("check", "--json", str(path))
    report = json.loads(out)
    assert code == 1 and report["exit_code"] == 1 and report["results"][0]["compliant"] is False
    assert report["results"][0]["findings"][0] == {
        "severity": "error", "line": 8, "key": "seed",
        "wanted": "a field time_ms: milliseconds since the epoch, a number >= 0", "found": "time_ms 'soon'"}


# ----------------------------------------------------------------------------------------------
# Trees for summarize and package.
# ----------------------------------------------------------------------------------------------
def _org(tmp: Path, base: bytes, runs: int = 5, system_json: bytes | None = None) -> Path:
    org = tmp / "Org"
    (org / "systems").mkdir(parents=True)
    (org / "systems" / "sys.json").write_bytes(system_json if system_json is not None else json.dumps({
        "submitter": "Org", "division": "closed", "status": "onprem", "system_name": "sys", "number_of_nodes": "1",
        "host_processors_per_node": "2", "host_processor_model_name": "cpu", "accelerators_per_node": "0",
        "accelerator_model_name": "N/A", "framework": "x", "hw_notes": "", "sw_notes": ""}).encode())
    folder = org / "results" / "sys" / "resnet"
    folder.mkdir(parents=True)
    for index in range(runs):
        (folder / f"result_{index}.txt").write_bytes(base.replace(b'"value": 1, "metadata"', b'"value": %d, "metadata"'
                                                                  % (index + 1), 1))
    return org


TREES = {
    "not a folder": (lambda b, t: _file(t, b), {2}, "unusable: not a folder"),
    "missing folder": (lambda b, t: t / "nothing", {2}, "unusable: not a folder"),
    "no organisation": (lambda b, t: _mkdir(t / "empty"), {2}, "no organisation"),
    "system json not JSON": (lambda b, t: _org(t, b, system_json=b"{,}"), {1}, "not valid JSON"),
    "system json a list": (lambda b, t: _org(t, b, system_json=b"[]"), {1}, "not a JSON object"),
    "too few runs": (lambda b, t: _org(t, b, runs=3), {1}, "3 result files, 5 required"),
    "results without systems": (lambda b, t: _rm(_org(t, b), "systems/sys.json"), {1}, "no systems/sys.json"),
    "misplaced result": (lambda b, t: _move(_org(t, b), "results/sys/resnet/result_0.txt", "results/sys/result_0.txt"),
                         {1}, "result file outside results/<system>/<benchmark>/"),
    "unknown benchmark folder": (lambda b, t: _move(_org(t, b), "results/sys/resnet", "results/sys/tetris"), {1},
                                 "'tetris' is not a benchmark"),
    "symlink loop in the tree": (lambda b, t: _with_loop(_org(t, b)), {0, 1}, "package"),
    "two failed runs": (lambda b, t: _break_runs(_org(t, b), 2), {1}, "2 runs failed"),
}


def _rm(org: Path, relative: str) -> Path:
    (org / relative).unlink()
    return org


def _move(org: Path, source: str, target: str) -> Path:
    (org / source).rename(org / target)
    return org


def _with_loop(org: Path) -> Path:
    (org / "results" / "sys" / "loop").symlink_to(org / "results" / "sys")
    return org


def _break_runs(org: Path, count: int) -> Path:
    for index in range(count):
        path = org / "results" / "sys" / "resnet" / f"result_{index}.txt"
        path.write_bytes(path.read_bytes().replace(b'"submission_org"', b'"submission_orgx"'))
    return org


@pytest.mark.parametrize("name", sorted(TREES))
def test_hostile_tree_package(tmp_path, base_log, name):
    build, codes, expected = TREES[name]
    root = build(base_log, tmp_path)
    code, out, err = run_cli("package", str(root))
    assert code in codes and "Traceback" not in out + err, (code, out, err)
    assert expected in out, out


@pytest.mark.parametrize("name", sorted(TREES))
def test_hostile_tree_summarize(tmp_path, base_log, name):
    build, codes, expected = TREES[name]
    root = build(base_log, tmp_path)
    code, out, err = run_cli("summarize", str(root), "--out", str(tmp_path / "summary"), "--no-plots")
    assert code in {0, 1, 2} and "Traceback" not in out + err, (code, out, err)
    if 2 in codes:
        assert code == 2 and "unusable" in out


# ----------------------------------------------------------------------------------------------
# Property-based fuzzing: random bytes, and random damage to a valid log.
# ----------------------------------------------------------------------------------------------
FUZZ = settings(max_examples=int(os.environ.get("COMPLIANCE_FUZZ_EXAMPLES", "60")), deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                       HealthCheck.too_slow])

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True, allow_infinity=True) | st.text(max_size=20),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=12)


@FUZZ
@given(data=st.binary(max_size=3000))
def test_fuzz_random_bytes(tmp_path, data):
    path = tmp_path / "fuzz.txt"
    path.write_bytes(data)
    code, out, err = run_cli("check", str(path))
    assert code in (1, 2) and "Traceback" not in out + err
    assert out.strip().splitlines()[-1].startswith(str(path))


@FUZZ
@given(data=st.data())
def test_fuzz_damaged_log(tmp_path, base_log, data):
    lines = _lines(base_log)
    for _ in range(data.draw(st.integers(1, 4))):
        index = data.draw(st.integers(0, len(lines) - 1))
        damage = data.draw(st.sampled_from(["drop", "duplicate", "truncate", "flip", "value", "field", "swap"]))
        line = lines[index]
        if damage == "drop":
            del lines[index]
        elif damage == "duplicate":
            lines.insert(index, line)
        elif damage == "truncate":
            lines[index] = line[: data.draw(st.integers(0, len(line)))]
        elif damage == "flip" and line:
            position = data.draw(st.integers(0, len(line) - 1))
            lines[index] = line[:position] + bytes([data.draw(st.integers(0, 255))]) + line[position + 1:]
        elif damage == "swap":
            other = data.draw(st.integers(0, len(lines) - 1))
            lines[index], lines[other] = lines[other], lines[index]
        elif damage in ("value", "field") and b":::MLLOG " in line:
            try:
                event = json.loads(line.split(b":::MLLOG ", 1)[1])
            except ValueError:
                continue
            if not isinstance(event, dict):
                continue
            field = "value" if damage == "value" else data.draw(st.sampled_from(sorted(event) + ["metadata"]))
            try:
                event[field] = data.draw(json_values)
                text = json.dumps(event, allow_nan=True)
            except (ValueError, OverflowError):
                continue
            lines[index] = b":::MLLOG " + text.encode() + b"\n"
        if not lines:
            lines = [b""]
    path = tmp_path / "fuzz.txt"
    path.write_bytes(b"".join(lines))
    code, out, err = run_cli("check", str(path), "--ruleset", "training-0.7.0")
    assert code in (0, 1) and "Traceback" not in out + err
    last = out.strip().splitlines()[-1]
    assert last.startswith(str(path)) and ("NOT compliant" in last) == (code == 1)


# ----------------------------------------------------------------------------------------------
# RCP files (`rcp check --rcp FILE`, `package` with a shipped one) and folders without enough runs
# (`rcp build`, `rcp check`): one clear line, exit 2, never a traceback.
# ----------------------------------------------------------------------------------------------
def _rcp_data() -> dict:
    return {"rcp_format": 1, "ruleset": "mlbench-1.0.0-smoke", "benchmark": "ncf",
            "convergence": {"unit": "epochs", "field": "epoch_num"},
            "statistics": {"submission_runs": 3},
            "points": [{"framework": "pytorch", "global_batch_size": 2048, "runs": 6,
                        "converged_at": [2, 2, 3, 3, 3, 4], "mean": 2.75, "stdev": 0.6871842709362768}]}


def _rcp_change(change):
    def build(tmp: Path) -> Path:
        data = _rcp_data()
        change(data)
        return _file(tmp, json.dumps(data).encode())
    return build


def _set(path: str, value):
    def change(data):
        *parents, last = path.split(".")
        node = data
        for part in parents:
            node = node[int(part)] if part.isdigit() else node[part]
        if value is _DELETE:
            del node[int(last) if last.isdigit() else last]
        else:
            node[int(last) if last.isdigit() else last] = value
    return change


_DELETE = object()
RCP_FILES = {
    "not JSON": (lambda t: _file(t, b"{'points': }"), "not valid JSON"),
    "empty file": (lambda t: _file(t, b""), "not valid JSON"),
    "binary": (lambda t: _file(t, bytes(range(256))), "not UTF-8"),
    "a JSON list": (lambda t: _file(t, b"[1, 2]"), "wanted an object, found a list"),
    "NaN mean": (lambda t: _file(t, json.dumps(_rcp_data()).replace("2.75", "NaN").encode()), "NaN is not a number JSON allows"),
    "key twice": (lambda t: _file(t, json.dumps(_rcp_data()).replace('"benchmark": "ncf"', '"benchmark": "ncf", "benchmark": "ssd"').encode()),
                  "key 'benchmark' given twice"),
    "deeply nested": (lambda t: _file(t, b"[" * 100000), "not valid JSON"),
    "missing file": (lambda t: t / "nope.json", "no such RCP file"),
    "a folder": (lambda t: _mkdir(t / "rcp.json"), "is a folder"),
    "wrong format version": (_rcp_change(_set("rcp_format", 2)), "rcp_format: wanted 1"),
    "unknown field": (_rcp_change(_set("points.0.note", "x")), "unknown field 'note'"),
    "missing points": (_rcp_change(_set("points", _DELETE)), "missing field 'points'"),
    "no points": (_rcp_change(_set("points", [])), "points: wanted a non-empty list"),
    "unknown unit": (_rcp_change(_set("convergence.unit", "hours")), "convergence.unit: wanted one of epochs, samples"),
    "unknown field to read": (_rcp_change(_set("convergence.field", "time_ms")), "convergence.field: wanted one of"),
    "bad first_passing": (_rcp_change(_set("convergence.first_passing", {"FID": {"near": 90}})), "unknown field 'near'"),
    "submission runs too few": (_rcp_change(_set("statistics.submission_runs", 2)), "statistics.submission_runs: wanted an integer >= 3"),
    "alpha 1": (_rcp_change(_set("statistics.alpha", 1)), "statistics.alpha: wanted a number between 0 and 1"),
    "failed runs beyond the drop": (_rcp_change(_set("statistics.max_failed_runs", 2)), "would enter the mean"),
    "negative batch": (_rcp_change(_set("points.0.global_batch_size", -8)), "global_batch_size: wanted an integer >= 1"),
    "string runs": (_rcp_change(_set("points.0.converged_at", "2,2,3")), "converged_at: wanted a list of numbers"),
    "zero epochs": (_rcp_change(_set("points.0.converged_at.0", 0)), "converged_at[0]: wanted a number > 0"),
    "too few converged runs": (_rcp_change(_set("points.0.converged_at", [2, 3, 3])), "3 converged runs; an RCP needs at least 4"),
    "fewer runs than converged": (_rcp_change(_set("points.0.runs", 5)), "runs: wanted an integer >= 6"),
    "edited mean": (_rcp_change(_set("points.0.mean", 2.5)), "is not the olympic mean of converged_at"),
    "edited stdev": (_rcp_change(_set("points.0.stdev", 0.1)), "is not the standard deviation of converged_at"),
    "same point twice": (_rcp_change(lambda d: d["points"].append(dict(d["points"][0]))), "a second point for pytorch at batch 2048"),
    "boolean batch": (_rcp_change(_set("points.0.global_batch_size", True)), "wanted an integer >= 1, found a boolean"),
}


def test_the_rcp_corpus_has_at_least_25_kinds():
    assert len(RCP_FILES) >= 25


@pytest.mark.parametrize("name", sorted(RCP_FILES))
def test_hostile_rcp_file(tmp_path, name):
    from .rcp_helpers import write_submission

    build, expected = RCP_FILES[name]
    rcp = build(tmp_path)
    write_submission(tmp_path / "sub", [2, 3, 3])
    code, out, err = run_cli("rcp", "check", str(tmp_path / "sub"), "--rcp", str(rcp))
    assert code == 2 and "Traceback" not in out + err, (name, code, out, err)
    assert len((out + err).strip().splitlines()) == 1 and expected in out, (name, out, err)


def test_a_broken_shipped_rcp_stops_package_with_one_line(tmp_path, monkeypatch):
    from compliance import rcp

    from .rcp_helpers import write_submission

    rules = tmp_path / "rules"
    (rules / "mlbench-1.0.0-smoke" / "rcps").mkdir(parents=True)
    (rules / "mlbench-1.0.0-smoke" / "rcps" / "ncf.json").write_text('{"rcp_format": 1}')
    monkeypatch.setattr(rcp, "RULES_DIR", rules)
    write_submission(tmp_path / "sub", [2, 3, 3])
    code, out, err = run_cli("package", str(tmp_path / "sub"))
    assert code == 2 and "Traceback" not in out + err
    assert err.strip().endswith("ncf.json: missing field 'ruleset'") and "broken RCP file" in err


RCP_FOLDERS = {
    # (runs: epochs to converge, None = failed), command, expected line
    "build: too few converged runs": ([2, 3, None, None, None, 3], "build", "3 converged runs of 6; an RCP needs at least 6"),
    "build: no logs at all": ([], "build", "no result_*.txt files below this folder"),
    "check: two runs": ([2, 3], "check", "2 runs; the olympic mean needs at least 3"),
    "check: no logs at all": ([], "check", "no result_*.txt here and no <org>/results/<system>/<benchmark>/ below"),
}


@pytest.mark.parametrize("name", sorted(RCP_FOLDERS))
def test_folders_without_enough_runs(tmp_path, name):
    from .rcp_helpers import write_submission

    epochs, command, expected = RCP_FOLDERS[name]
    if epochs:
        write_submission(tmp_path / "runs", epochs)
    else:
        (tmp_path / "runs").mkdir()
    args = ["--out", str(tmp_path / "rcps")] if command == "build" else ["--ruleset", "mlbench-1.0.0-smoke"]
    code, out, err = run_cli("rcp", command, str(tmp_path / "runs"), *args)
    assert code == 2 and "Traceback" not in out + err, (code, out, err)
    assert len(out.strip().splitlines()) == 1 and expected in out, out
    assert not (tmp_path / "rcps").exists()
