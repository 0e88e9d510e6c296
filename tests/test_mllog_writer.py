"""The log writer: byte-compatible with mlperf-logging, parseable by its parser, never kills a run."""

from __future__ import annotations

import json
import logging
import math
import subprocess
import sys

import numpy as np
import pytest
from mlperf_logging.compliance_checker.mlp_parser import ruleset_070
from mlperf_logging.mllog import mllog as reference_mllog

from compliance import mllog
from compliance.mllog import constants
from compliance.mllog.logger import MLLogger


@pytest.fixture
def logger(tmp_path):
    writer = MLLogger()
    writer.echo_stdout = False
    writer.add_file(str(tmp_path / "log.txt"))
    yield writer, tmp_path / "log.txt"
    writer.close()


def test_every_event_type_parses_with_mlperf_logging_parser(logger):
    writer, path = logger
    writer.event(key=constants.SUBMISSION_BENCHMARK, value="resnet")
    writer.start(key=constants.RUN_START)
    writer.event(key=constants.EVAL_ACCURACY, value=0.76, metadata={"epoch_num": 4})
    writer.event(key=constants.GLOBAL_BATCH_SIZE, value=np.int64(256))
    writer.event(key="values", value=[1, 2.5, None, True, "x", {"nested": [np.float32(0.5)]}])
    writer.end(key=constants.RUN_STOP, metadata={"status": "success"})
    lines, errors = ruleset_070.parse_file(str(path))
    assert errors == []
    assert [line.key for line in lines] == ["submission_benchmark", "run_start", "eval_accuracy",
                                            "global_batch_size", "values", "run_stop"]
    event_types = [json.loads(line.full_string[len(":::MLLOG "):])["event_type"] for line in lines]
    assert event_types == ["POINT_IN_TIME", "INTERVAL_START", "POINT_IN_TIME", "POINT_IN_TIME",
                           "POINT_IN_TIME", "INTERVAL_END"]
    assert lines[2].value == {"value": 0.76, "metadata": {"file": __file__, "lineno": lines[2].value["metadata"]["lineno"], "epoch_num": 4}}
    assert lines[5].value["metadata"]["status"] == "success"


def test_lines_are_identical_to_mllog_for_the_same_event(tmp_path):
    """Same key order, spacing and escaping as mlperf-logging, apart from the call site it reports."""
    reference_logger = logging.getLogger("mlbench_test_identical")
    reference_logger.propagate = False
    handler = logging.FileHandler(tmp_path / "theirs.txt")
    reference_logger.addHandler(handler)
    reference_logger.setLevel(logging.INFO)
    theirs = reference_mllog.MLLogger(logger=reference_logger)
    ours = MLLogger()
    ours.echo_stdout = False
    ours.add_file(str(tmp_path / "ours.txt"))
    for writer in (theirs, ours):
        writer.event(key="k\u00e9y", value={"a": [1, 2.0, "\u00fc"]}, metadata={"x": 1}, time_ms=123)  # same line
        writer.start(key="run_start", value=None, time_ms=124)  # same line
    handler.close()
    ours.close()
    theirs_lines = (tmp_path / "theirs.txt").read_text().splitlines()
    ours_lines = (tmp_path / "ours.txt").read_text().splitlines()
    assert len(ours_lines) == len(theirs_lines) == 2
    for mine, reference in zip(ours_lines, theirs_lines):
        assert mine == reference


def test_call_site_is_the_caller(logger):
    writer, path = logger
    writer.event(key="a", value=1); line = sys._getframe().f_lineno  # noqa: E702
    record = json.loads(path.read_text().split(":::MLLOG ", 1)[1])
    assert record["metadata"] == {"file": __file__, "lineno": line}


def test_unencodable_value_is_reported_and_the_run_goes_on(logger, capsys):
    writer, path = logger
    writer.event(key="bad", value=object())
    writer.event(key="circular", value=(circular := []).append(circular) or circular)
    writer.event(key="good", value=math.inf)
    err = capsys.readouterr().err
    assert "could not encode the value of 'bad'" in err and "run continues" in err
    assert "could not encode the value of 'circular'" in err
    keys = [json.loads(line[len(":::MLLOG "):])["key"] for line in path.read_text().splitlines()]
    assert keys == ["good"]
    assert '"value": Infinity' in path.read_text()  # as json.dumps and mllog write it


def test_non_dict_metadata_is_ignored_with_a_warning(logger, capsys):
    writer, path = logger
    writer.event(key="a", value=1, metadata=["not", "a", "dict"])
    assert "not a dict; ignored" in capsys.readouterr().err
    assert json.loads(path.read_text()[len(":::MLLOG "):])["metadata"]["file"] == __file__


def test_only_rank_zero_writes_unless_told(tmp_path, monkeypatch):
    monkeypatch.setenv("RANK", "1")
    writer = MLLogger()
    writer.echo_stdout = False
    writer.add_file(str(tmp_path / "rank1.txt"))
    writer.event(key="a", value=1)
    assert (tmp_path / "rank1.txt").read_text() == ""
    writer.all_ranks = True
    writer.event(key="b", value=2)
    assert '"key": "b"' in (tmp_path / "rank1.txt").read_text()
    writer.close()


def test_tf_config_chief_is_rank_zero(monkeypatch):
    from compliance.mllog.logger import detect_rank

    monkeypatch.delenv("RANK", raising=False)
    monkeypatch.setenv("TF_CONFIG", json.dumps({"cluster": {"worker": ["a:1", "b:2"]},
                                                "task": {"type": "worker", "index": 1}}))
    assert detect_rank() == 1
    monkeypatch.setenv("TF_CONFIG", "not json")
    assert detect_rank() == 0


def test_module_api_is_a_drop_in(tmp_path):
    """The module-level API of mlperf_logging.mllog: get_mllogger, config(filename=...), constants."""
    script = f"""
from compliance import mllog
mllog.config(filename={str(tmp_path / 'api.txt')!r}, default_namespace="worker0", default_stack_offset=1)
mllogger = mllog.get_mllogger()
mllogger.event(key=mllog.constants.SEED, value=7)
mllogger.start(mllog.constants.RUN_START)
mllogger.end(mllog.constants.RUN_STOP, metadata={{"status": mllog.constants.SUCCESS}})
"""
    completed = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    assert completed.stdout.count(":::MLLOG") == 3  # echoes to stdout by default, as mllog does
    lines, errors = ruleset_070.parse_file(str(tmp_path / "api.txt"))
    assert errors == [] and [line.key for line in lines] == ["seed", "run_start", "run_stop"]
    assert all(json.loads(l.full_string[9:])["namespace"] == "worker0" for l in lines)  # noqa: E741


def test_config_rejects_bad_options():
    with pytest.raises(ValueError, match="unknown mllog.config option"):
        mllog.config(colour="red")
    with pytest.raises(ValueError, match="'default_stack_offset' must be of type int"):
        mllog.config(default_stack_offset="2")


def test_constants_match_mlperf_logging():
    from mlperf_logging.mllog import constants as reference

    names = [name for name in dir(reference) if name.isupper()]
    assert names and all(getattr(constants, name) == getattr(reference, name) for name in names)
