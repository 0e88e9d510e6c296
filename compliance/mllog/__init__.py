"""Drop-in for `mlperf_logging.mllog`: `from compliance import mllog` and code written for it runs unchanged.

    from compliance import mllog
    mllog.config(filename="result_0.txt")
    mllogger = mllog.get_mllogger()
    mllogger.event(key=mllog.constants.SEED, value=1)

`config` accepts mllog's options (logger, filename, default_namespace, default_stack_offset,
default_clear_line, root_dir) and three of this suite's: `echo` (also print to stdout, mllog's
default), `all_ranks` (write on every rank, not only rank 0) and `rank` (set the rank explicitly).
"""

from __future__ import annotations

import logging
import threading

from compliance.mllog import constants
from compliance.mllog.logger import LOG_PREFIX, MLLogger, detect_rank

__all__ = ["constants", "config", "get_mllogger", "reset", "MLLogger", "LOG_PREFIX", "detect_rank"]

_lock = threading.RLock()
mllogger = MLLogger()


def get_mllogger() -> MLLogger:
    """The process-wide logger that `config` configures."""
    return mllogger


def config(**kwargs) -> None:
    """Configure the shared logger; unknown options are an error, as in mllog."""
    with _lock:
        logger = kwargs.pop("logger", None)
        if logger is not None:
            if not isinstance(logger, logging.Logger):
                raise ValueError("'logger' must be an instance of 'logging.Logger'.")
            mllogger.logger = logger
            mllogger.echo_stdout = False
        filename = kwargs.pop("filename", None)
        if filename is not None:
            if not isinstance(filename, str):
                raise ValueError("'filename' must be a string.")
            mllogger.add_file(filename)
        for name, expected in (("default_namespace", str), ("default_stack_offset", int),
                               ("default_clear_line", bool), ("root_dir", str),
                               ("all_ranks", bool), ("rank", int)):
            if name in kwargs:
                value = kwargs.pop(name)
                if not isinstance(value, expected):
                    raise ValueError(f"'{name}' must be of type {expected.__name__}.")
                setattr(mllogger, name, value)
        if "echo" in kwargs:
            mllogger.echo_stdout = bool(kwargs.pop("echo"))
        if kwargs:
            raise ValueError(f"unknown mllog.config option(s): {', '.join(sorted(kwargs))}")


def reset() -> None:
    """Close the log files and restore defaults (one process may train several runs in a row)."""
    with _lock:
        mllogger.close()
        fresh = MLLogger()
        mllogger.__dict__.update({k: v for k, v in fresh.__dict__.items() if k != "_files"})
