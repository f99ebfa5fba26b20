"""Errors the CLI turns into one line and an exit code, never a traceback."""

from __future__ import annotations

EXIT_PASSED = 0
EXIT_TEST_FAILURES = 1
EXIT_BAD_INPUT = 2
EXIT_INFRASTRUCTURE = 3


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
