"""Engines and sessions, one engine per URL and process."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import Engine, create_engine, event, make_url
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session, sessionmaker

from dtf.config import redact
from dtf.errors import DatabaseUnreachable, InfrastructureError

_engines: dict[tuple[int, str], Engine] = {}
#: Seconds a new PostgreSQL connection may take (unless the URL sets connect_timeout).
CONNECT_TIMEOUT_S = 10


def get_engine(url: str) -> Engine:
    """The engine for ``url`` in this process (a forked worker child gets its own)."""
    key = (os.getpid(), url)
    engine = _engines.get(key)
    if engine is None:
        engine = _create_engine(url)
        _engines[key] = engine
    return engine


def _create_engine(url: str) -> Engine:
    try:
        return _engine_for(url)
    except ModuleNotFoundError as exc:
        raise InfrastructureError(
            f"the database {redact(url)} needs the Python package '{exc.name}', which is not "
            "installed: install it, or name a driver dtf has in the URL "
            "(postgresql+psycopg2://, sqlite:///)"
        ) from None


def _engine_for(url: str) -> Engine:
    if url.startswith("sqlite"):
        engine = create_engine(url, connect_args={"timeout": 60})
        event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    return create_engine(
        url, pool_pre_ping=True, pool_size=2, max_overflow=4, connect_args=_connect_args(url)
    )


def _connect_args(url: str) -> dict[str, object]:
    # libpq (psycopg2, psycopg): a server that went silent fails a connection attempt
    # after CONNECT_TIMEOUT_S instead of hanging it until the kernel gives up.
    parsed = make_url(url)
    libpq = parsed.get_backend_name() == "postgresql" and parsed.get_driver_name() in (
        "psycopg2",
        "psycopg",
    )
    if libpq and "connect_timeout" not in parsed.query:
        return {"connect_timeout": CONNECT_TIMEOUT_S}
    return {}


def _sqlite_pragmas(dbapi_connection, _record) -> None:
    # WAL lets the CLI read progress while workers write results.
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


@contextmanager
def session_scope(url: str) -> Iterator[Session]:
    """A session that commits on success, rolls back on error, and names an unreachable DB."""
    with database_errors(url):
        session = sessionmaker(get_engine(url), expire_on_commit=False)()
        try:
            yield session
            session.commit()
        except BaseException:
            session.rollback()
            raise
        finally:
            session.close()


@contextmanager
def database_errors(url: str) -> Iterator[None]:
    """Turn a database that cannot be reached into a one-line error: DatabaseUnreachable
    when it may pass (refused, reset, closed, timed out), InfrastructureError when it will
    not by waiting (a wrong password, no such database)."""
    try:
        yield
    except DBAPIError as exc:
        passing = exc.connection_invalidated or _is_transient(exc)
        if not passing and not _is_connection_error(exc):
            raise
        reason = str(exc.orig).strip().splitlines()[0] if exc.orig else type(exc).__name__
        message = (
            f"cannot reach the database at {redact(url)}: {reason}; "
            "check DTF_DATABASE_URL and that the database server is running"
        )
        if passing:
            raise DatabaseUnreachable(message, reason) from exc
        raise InfrastructureError(message) from exc


#: What a driver says when the server is away for now: it may answer again.
TRANSIENT_MARKERS = (
    "could not connect",
    "connection refused",
    "connection reset",
    "server closed the connection",
    "timeout expired",
    "timed out",
    "connection to server",
    "could not receive data from server",
    "could not send data to server",
    "no connection to the server",
    "connection already closed",
    "ssl connection has been closed unexpectedly",
    "ssl syscall error",
    "terminating connection due to administrator command",
    "the database system is starting up",
    "the database system is shutting down",
    "the database system is in recovery mode",
    "could not translate host",
)
#: ... and what it says when waiting will not help.
LASTING_MARKERS = (
    "unable to open database",
    "password authentication failed",
    "does not exist",
)


def _is_transient(exc: DBAPIError) -> bool:
    text = str(exc.orig).lower()
    if any(m in text for m in LASTING_MARKERS):
        return False
    return any(m in text for m in TRANSIENT_MARKERS)


def _is_connection_error(exc: DBAPIError) -> bool:
    text = str(exc.orig).lower()
    return any(m in text for m in TRANSIENT_MARKERS + LASTING_MARKERS)
