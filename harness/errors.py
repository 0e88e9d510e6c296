"""Errors a user can cause (bad config, corrupt dataset, missing file) and how they are reported.

Internal bugs are not caught anywhere: they crash loudly in tests. `UserError`s are caught only at
the command-line edge by `exit_on_user_error`, which prints one line and exits 2.

Exit codes of `python -m harness train` / `invoke train` (README.md, "Exit codes"):
0 every run reached its quality target; 1 a crash or an unexpected error (Python's own code for an
uncaught exception); 2 a user error (one line on stderr); 3 the runs completed and wrote their logs,
but at least one ended without reaching the target (run_stop status "aborted").
"""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable
from typing import TypeVar

F = TypeVar("F", bound=Callable)

EXIT_USER_ERROR = 2
EXIT_TARGET_MISSED = 3


class UserError(Exception):
    """Something the user can fix: the message says what, where, and what to do."""


class ConfigError(UserError):
    """A config file or override that does not fit the config schema."""


class DatasetError(UserError):
    """A dataset that is missing, incomplete or corrupt."""


def exit_on_user_error(function: F) -> F:
    """Decorate a command-line `main`: a UserError becomes `error: <message>` and exit code 2."""

    @functools.wraps(function)
    def wrapper(*args, **kwargs):
        try:
            return function(*args, **kwargs)
        except UserError as error:
            print(f"error: {error}", file=sys.stderr)
            sys.exit(EXIT_USER_ERROR)
        except KeyboardInterrupt:
            print("interrupted", file=sys.stderr)
            sys.exit(130)

    return wrapper  # type: ignore[return-value]
