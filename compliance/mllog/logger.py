"""The standard-log writer: `:::MLLOG {json}` lines, byte-compatible with mlperf-logging's `mllog`.

Why not mlperf-logging itself: it resolves the call site with `inspect.getframeinfo`, which reads
source files on every event (about 44 us an event), and it routes each line through `logging`.
This writer takes the frame with `sys._getframe`, formats the JSON object by hand in mllog's key
order and writes straight to the file, so a training loop can log per step without paying for it.

Guarantees:
- Lines parse with mlperf-logging's own parser (`mlp_parser.parse_line`), keys in the same order.
- Only rank 0 writes in a distributed run, unless `config(all_ranks=True)`.
- A logging call never raises into the training loop: a value that cannot be encoded is reported
  on stderr in one line, and the run goes on.
"""

from __future__ import annotations

import json
import logging
import math
import os
import sys
import threading
import time
from typing import Any

from compliance.mllog import constants

LOG_PREFIX = ":::MLLOG "


def _to_json_compatible(obj: Any) -> Any:
    """Fallback for json.dumps: numpy and framework scalars/arrays become plain Python values."""
    item = getattr(obj, "item", None)
    shape = getattr(obj, "shape", None)
    if shape == () and callable(item):  # numpy / torch / tf scalars
        return item()
    tolist = getattr(obj, "tolist", None)
    if callable(tolist):  # numpy arrays, torch tensors
        return tolist()
    numpy_method = getattr(obj, "numpy", None)  # eager tf.Tensor
    if callable(numpy_method):
        return _to_json_compatible(numpy_method())
    if isinstance(obj, (set, frozenset, tuple)):
        return list(obj)
    raise TypeError(f"{type(obj).__name__} is not JSON serializable")


_encoder = json.JSONEncoder(default=_to_json_compatible)
_encode_string = json.encoder.encode_basestring_ascii  # what json.dumps uses (ensure_ascii=True)
_float_repr = float.__repr__


def _encode(value: Any) -> str:
    """json.dumps(value), with fast paths for the scalars that make up almost every event."""
    kind = type(value)
    if kind is str:
        return _encode_string(value)
    if kind is int:
        return int.__repr__(value)
    if kind is float:
        if value != value:
            return "NaN"
        if value in (math.inf, -math.inf):
            return "Infinity" if value > 0 else "-Infinity"
        return _float_repr(value)
    if value is None:
        return "null"
    if kind is bool:
        return "true" if value else "false"
    return _encoder.encode(value)


def detect_rank() -> int:
    """This process's rank from the launcher's environment (torchrun, Slurm, TF_CONFIG); 0 if none."""
    for variable in ("RANK", "SLURM_PROCID", "OMPI_COMM_WORLD_RANK"):
        value = os.environ.get(variable)
        if value is not None and value.strip().isdigit():
            return int(value)
    tf_config = os.environ.get("TF_CONFIG")
    if tf_config:
        try:
            task = json.loads(tf_config).get("task", {})
            return int(task.get("index", 0)) if task.get("type", "worker") in ("worker", "chief") else 1
        except (ValueError, AttributeError, TypeError):
            return 0
    return 0


class MLLogger:
    """Writes MLLOG events. API-compatible with `mlperf_logging.mllog.MLLogger`."""

    def __init__(self, logger: logging.Logger | None = None,
                 default_namespace: str = constants.DEFAULT_NAMESPACE,
                 default_stack_offset: int = 1, default_clear_line: bool = False,
                 root_dir: str | None = None):
        if logger is not None and not isinstance(logger, logging.Logger):
            raise ValueError("logger must be a `logging.Logger` instance.")
        self.logger = logger
        self.default_namespace = default_namespace
        self.default_stack_offset = default_stack_offset
        self.default_clear_line = default_clear_line
        self.root_dir = root_dir
        self.echo_stdout = logger is None
        self.all_ranks = False
        self.rank: int | None = None
        self._files: list[int] = []
        self._lock = threading.Lock()

    # -- sinks ---------------------------------------------------------------------------------
    def add_file(self, filename: str) -> None:
        """Append every following line to `filename` (line-buffered: a killed run keeps its log)."""
        directory = os.path.dirname(os.path.abspath(filename))
        os.makedirs(directory, exist_ok=True)
        self._files.append(os.open(filename, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644))

    def close(self) -> None:
        with self._lock:
            for descriptor in self._files:
                os.close(descriptor)
            self._files.clear()

    def _is_rank_zero(self) -> bool:
        if self.rank is None:
            self.rank = detect_rank()
        return self.rank == 0

    def _emit(self, line: str) -> None:
        data = line.encode("utf-8")
        for descriptor in self._files:
            os.write(descriptor, data)  # one O_APPEND write a line: atomic, and kept if the run is killed
        if self.logger is not None:
            self.logger.info(line.rstrip("\n"))
        elif self.echo_stdout:
            sys.stdout.write(line)

    # -- encoding ------------------------------------------------------------------------------
    def _call_site(self, depth: int) -> tuple[str, int]:
        try:
            frame = sys._getframe(depth)
        except ValueError:  # called from shallower than the offset asks
            return "<unknown>", 0
        filename = frame.f_code.co_filename
        if self.root_dir and filename.startswith(self.root_dir.rstrip("/") + "/"):
            filename = filename[len(self.root_dir.rstrip("/")) + 1:]
        return filename, frame.f_lineno

    def _log(self, event_type: str, key: str, value: Any, metadata: Any, namespace: str | None,
             time_ms: float | None, stack_offset: int | None, clear_line: bool | None) -> None:
        if not (self.all_ranks or self._is_rank_zero()):
            return
        filename, lineno = self._call_site(
            2 + (self.default_stack_offset if stack_offset is None else stack_offset))
        try:
            # mllog's key order: namespace, time_ms, event_type, key, value, metadata{file, lineno, ...}
            line = "".join((
                LOG_PREFIX, '{"namespace": ',
                _encode(self.default_namespace if namespace is None else namespace),
                ', "time_ms": ', _encode(time.time_ns() // 1_000_000 if time_ms is None else time_ms),
                ', "event_type": "', event_type, '", "key": ', _encode(key),
                ', "value": ', _encode(value),
                ', "metadata": {"file": ', _encode_string(filename), ', "lineno": ', str(lineno),
                self._extra_metadata(key, metadata), "}}\n"))
        except (TypeError, ValueError, OverflowError, RecursionError) as error:
            _warn(f"could not encode the value of '{key}' ({type(value).__name__}: {error}); "
                  "event not logged, run continues")
            return
        if clear_line if clear_line is not None else self.default_clear_line:
            line = "\n" + line
        try:
            self._emit(line)
        except (OSError, ValueError) as error:  # disk full, closed file: report, never kill the run
            _warn(f"could not write '{key}' to the log: {error}")

    @staticmethod
    def _extra_metadata(key: str, metadata: Any) -> str:
        if not metadata:
            return ""
        if not isinstance(metadata, dict):
            _warn(f"metadata of '{key}' is a {type(metadata).__name__}, not a dict; ignored")
            return ""
        parts = []
        for name, item in metadata.items():
            if name in ("file", "lineno"):
                continue  # the call site wins, as a later key would in a JSON object anyway
            if type(name) is not str:
                name = str(name)
            parts.append(f", {_encode_string(name)}: {_encode(item)}")
        return "".join(parts)

    # -- the mllog API ---------------------------------------------------------------------------
    def start(self, key, value=None, metadata=None, namespace=None, time_ms=None,
              stack_offset=None, clear_line=None):
        """Open an interval (`INTERVAL_START`), e.g. `epoch_start`."""
        self._log(constants.INTERVAL_START, key, value, metadata, namespace, time_ms,
                  stack_offset, clear_line)

    def end(self, key, value=None, metadata=None, namespace=None, time_ms=None,
            stack_offset=None, clear_line=None):
        """Close an interval (`INTERVAL_END`), e.g. `epoch_stop`."""
        self._log(constants.INTERVAL_END, key, value, metadata, namespace, time_ms,
                  stack_offset, clear_line)

    def event(self, key, value=None, metadata=None, namespace=None, time_ms=None,
              stack_offset=None, clear_line=None):
        """A point-in-time event (`POINT_IN_TIME`), e.g. `eval_accuracy`."""
        self._log(constants.POINT_IN_TIME, key, value, metadata, namespace, time_ms,
                  stack_offset, clear_line)


def _warn(message: str) -> None:
    try:
        sys.stderr.write(f"mllog: warning: {message}\n")
    except (OSError, ValueError):
        pass
