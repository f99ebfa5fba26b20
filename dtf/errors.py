"""Errors the CLI turns into one line and an exit code, never a traceback."""

from __future__ import annotations

import contextlib
import os
import sys
from typing import NoReturn

EXIT_PASSED = 0
EXIT_TEST_FAILURES = 1
EXIT_BAD_INPUT = 2
EXIT_INFRASTRUCTURE = 3
#: the run was cancelled (dtf cancel); Ctrl-C on the dtf run that started it exits 130
EXIT_CANCELLED = 4


class DtfError(Exception):
    """An error with a one-line message meant for the user, and the exit code it means."""

    exit_code = EXIT_INFRASTRUCTURE

    def __init__(self, message: str, exit_code: int | None = None) -> None:
        super().__init__(" ".join(str(message).split()))
        if exit_code is not None:
            self.exit_code = exit_code


class BadInput(DtfError):
    """The user asked for something that cannot be done as asked (exit 2)."""

    exit_code = EXIT_BAD_INPUT


class InfrastructureError(DtfError):
    """A broker, database or worker the run needs is not there (exit 3)."""

    exit_code = EXIT_INFRASTRUCTURE


class DatabaseUnreachable(InfrastructureError):
    """The database did not answer: refused, reset, closed or timed out, which may pass
    (exit 3, unless the command waits it out); ``reason`` is the driver's first line."""

    def __init__(self, message: str, reason: str) -> None:
        super().__init__(message)
        self.reason = reason


def system_exit_code(exc: SystemExit) -> int:
    """The status the interpreter would exit with for ``exc``: its code, 0 for None, else 1
    after printing the code (a message) to stderr, as ``sys.exit("message")`` does."""
    if exc.code is None:
        return 0
    if isinstance(exc.code, int):
        return exc.code
    with contextlib.suppress(BaseException):
        print(exc.code, file=sys.stderr)
    return 1


def exit_now(code: int) -> NoReturn:
    """Flush stdout and stderr and leave with ``os._exit``: no interpreter teardown (the
    caller has run what of it must happen, e.g. the atexit functions)."""
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(BaseException):
            stream.flush()
    os._exit(code)
