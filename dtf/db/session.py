"""Engines and sessions, one engine per URL and process."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session, sessionmaker

from dtf.config import redact
from dtf.errors import InfrastructureError

_engines: dict[tuple[int, str], Engine] = {}


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
    return create_engine(url, pool_pre_ping=True, pool_size=2, max_overflow=4)


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
    """Turn a database that cannot be reached into a one-line InfrastructureError."""
    try:
        yield
    except DBAPIError as exc:
        if not exc.connection_invalidated and not _is_connection_error(exc):
            raise
        reason = str(exc.orig).strip().splitlines()[0] if exc.orig else type(exc).__name__
        raise InfrastructureError(
            f"cannot reach the database at {redact(url)}: {reason}; "
            "check DTF_DATABASE_URL and that the database server is running"
        ) from exc


def _is_connection_error(exc: DBAPIError) -> bool:
    text = str(exc.orig).lower()
    markers = (
        "could not connect",
        "connection refused",
        "unable to open database",
        "server closed the connection",
        "could not translate host",
        "timeout expired",
        "connection to server",
        "password authentication failed",
        "does not exist",
    )
    return any(m in text for m in markers)
