"""Create and upgrade the schema with Alembic; check it before use."""

from __future__ import annotations

import contextlib
import fcntl
import re
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from dtf.config import redact
from dtf.db.session import database_errors, get_engine
from dtf.errors import BadInput

if TYPE_CHECKING:
    from alembic.config import Config

MIGRATIONS = Path(__file__).with_name("migrations")
_REVISION = re.compile(r"^revision\s*=\s*[\"']([^\"']+)[\"']", re.M)
_DOWN_REVISION = re.compile(r"^down_revision\s*=\s*(.+)$", re.M)


def alembic_config(url: str) -> Config:
    """An Alembic config for ``url`` that needs no alembic.ini on disk."""
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return config


def head_revision() -> str:
    """The newest revision; several heads (independent branches) read as "a, b"."""
    from alembic.script import ScriptDirectory

    heads = ScriptDirectory.from_config(alembic_config("sqlite://")).get_heads()
    return ", ".join(sorted(heads))


def current_revision(url: str) -> str | None:
    from alembic.runtime.migration import MigrationContext

    with database_errors(url), get_engine(url).connect() as connection:
        heads = MigrationContext.configure(connection).get_current_heads()
    return ", ".join(sorted(heads)) or None


def upgrade(url: str) -> str:
    """Bring the schema at ``url`` to the newest revision; returns that revision."""
    from alembic import command

    with database_errors(url):
        command.upgrade(alembic_config(url), "heads")
    return head_revision()


def ensure_schema(url: str, *, create: bool) -> None:
    """Upgrade when ``create``; otherwise fail with a line saying to run ``dtf init-db``."""
    if _schema_is_current(url) or current_revision(url) == head_revision():
        return
    if create:
        with _upgrade_lock(url):
            # Another dtf command (a `dtf status` beside the first `dtf run`) may have
            # upgraded it while this one waited: both creating the tables, one failed.
            if current_revision(url) != head_revision():
                upgrade(url)
        return
    raise BadInput(
        f"the database at {redact(url)} has no dtf schema or an old one; "
        "run `dtf init-db` to create or upgrade it"
    )


@contextlib.contextmanager
def _upgrade_lock(url: str) -> Iterator[None]:
    """One upgrade at a time of a SQLite file (a server database has its own locks:
    Alembic's version table is updated in the upgrade's transaction)."""
    path = sqlite_path(url)
    if path is None:
        yield
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(f"{path}.upgrade-lock", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def _schema_is_current(url: str) -> bool:
    """The quick check every command makes, without importing Alembic (half a second).

    False when unsure: the caller then asks Alembic.
    """
    revisions: set[str] = set()
    parents: set[str] = set()
    for path in (MIGRATIONS / "versions").glob("*.py"):
        source = path.read_text()
        revision, down = _REVISION.search(source), _DOWN_REVISION.search(source)
        if revision is None or down is None:
            return False
        revisions.add(revision.group(1))
        parents.update(re.findall(r"[\"']([^\"']+)[\"']", down.group(1)))
    try:
        with get_engine(url).connect() as connection:
            current = set(connection.scalars(text("SELECT version_num FROM alembic_version")))
    except DBAPIError:
        return False  # no schema yet, or no database: Alembic's path says which
    return bool(current) and current == revisions - parents


def sqlite_path(url: str) -> Path | None:
    """The file of a ``sqlite:///`` URL, None for other databases."""
    return Path(url.removeprefix("sqlite:///")) if url.startswith("sqlite:///") else None


def database_exists(url: str) -> bool:
    """False only for a SQLite file that was never created (nothing ran yet)."""
    path = sqlite_path(url)
    return path is None or path.exists()


def ensure_readable(url: str) -> None:
    """Ready the schema for reading: SQLite (dtf's own file) is upgraded, a server is checked."""
    ensure_schema(url, create=sqlite_path(url) is not None)
