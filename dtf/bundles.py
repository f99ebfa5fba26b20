"""Code bundles: a project directory packed into a content-addressed archive.

``dtf run --code bundle`` packs the directory it runs in (what git would
track, or what ``.gitignore`` files leave, when it is not a git checkout)
into a deterministic ``tar.gz`` named by its SHA-256 and stores it in the
database every worker already reaches. A worker fetches a bundle once,
caches it by hash (:mod:`dtf.bundle_cache`: checked before each batch, repaired when
a test changed it, removed after days unused) and runs the batch inside it. Every
member is checked before anything is unpacked (:mod:`dtf.bundle_archive`).

A symbolic link in the project is packed as a link when it points inside the
project; ``pack`` refuses a link that leads outside (it would ship a file that is
not the project's, or break on the workers). Rows of the ``bundles`` table unused
for ``DTF_BUNDLE_KEEP_DAYS`` (30) lose their archive (kept: hash, size, dates, for
the runs that name them), or go when no run names them.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import logging
import os
import stat
import subprocess
import tarfile
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pathspec
from sqlalchemy import delete, exists, func, select, update
from sqlalchemy.exc import IntegrityError, SQLAlchemyError

from dtf.bundle_archive import BundleTooLarge, Limits, UnsafeBundle, unpack
from dtf.bundle_cache import cached
from dtf.db.models import Bundle, Run
from dtf.db.session import session_scope
from dtf.errors import BadInput

__all__ = [
    "ALWAYS_EXCLUDED", "BundleTooLarge", "PackedBundle", "UnsafeBundle", "extract", "fetch",
    "pack", "project_files", "prune", "store",
]  # fmt: skip

#: Never packed: dtf's own state, version control, virtual environments.
ALWAYS_EXCLUDED = (".dtf/", ".git/", ".venv/", "venv/", "__pycache__/", "*.pyc")
_WHAT_TO_DO = "list large files in .gitignore or use --code path"

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class PackedBundle:
    sha256: str
    data: bytes
    files: int


def max_bundle_bytes() -> int:
    return int(float(os.environ.get("DTF_BUNDLE_MAX_MB", "256")) * 1024 * 1024)


def keep_days() -> float:
    return float(os.environ.get("DTF_BUNDLE_KEEP_DAYS", "30"))


def project_files(root: Path, limit: int | None = None) -> list[str]:
    """Files to pack, as posix paths relative to ``root``, sorted.

    ``limit``: a walk outside git stops once it has found more than this many files
    (the caller gives up on such a tree)."""
    listed = _git_files(root)
    if listed is None:
        listed = _walk_respecting_gitignore(root, limit)
    excluded = pathspec.PathSpec.from_lines("gitignore", ALWAYS_EXCLUDED)
    return sorted(p for p in listed if not excluded.match_file(p) and (root / p).is_file())


def _git_files(root: Path) -> list[str] | None:
    try:
        proc = subprocess.run(
            ["git", "ls-files", "--cached", "--others", "--exclude-standard", "-z"],
            cwd=root,
            capture_output=True,
            timeout=60,
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    if proc.returncode != 0:
        return None
    return [p for p in proc.stdout.decode("utf-8", "surrogateescape").split("\0") if p]


def _walk_respecting_gitignore(root: Path, limit: int | None = None) -> list[str]:
    files: list[str] = []
    specs: list[tuple[str, pathspec.PathSpec]] = []
    for directory, dirnames, filenames in os.walk(root):
        rel_dir = Path(directory).relative_to(root).as_posix()
        prefix = "" if rel_dir == "." else rel_dir + "/"
        ignore = Path(directory) / ".gitignore"
        if ignore.is_file():
            lines = ignore.read_text(errors="replace").splitlines()
            specs.append((prefix, pathspec.PathSpec.from_lines("gitignore", lines)))

        def ignored(rel: str) -> bool:
            return any(rel.startswith(base) and s.match_file(rel[len(base) :]) for base, s in specs)

        dirnames[:] = sorted(d for d in dirnames if not ignored(prefix + d + "/"))
        files.extend(prefix + f for f in filenames if not ignored(prefix + f))
        if limit is not None and len(files) > limit:
            break
    return files


def pack(root: Path) -> PackedBundle:
    """A deterministic archive of ``root``: the same files give the same hash.

    A symbolic link is packed as a link (to its target relative to it) when that
    target lies inside ``root``; one that leads outside is refused."""
    names = project_files(root)
    buffer = io.BytesIO()
    unpacked = 0
    # mtime=0 everywhere: no time in the gzip header or the tar entries.
    with (
        gzip.GzipFile(fileobj=buffer, mode="wb", compresslevel=6, mtime=0) as compressed,
        tarfile.open(fileobj=compressed, mode="w", format=tarfile.PAX_FORMAT) as archive,
    ):
        for name in names:
            path = root / name
            info = tarfile.TarInfo(name)
            if stat.S_ISLNK(path.lstat().st_mode):
                info.type = tarfile.SYMTYPE
                info.linkname = _link_inside(root, name)
                archive.addfile(info)
                continue
            info.size = path.stat().st_size
            info.mode = 0o755 if os.access(path, os.X_OK) else 0o644
            unpacked += info.size
            with path.open("rb") as handle:
                archive.addfile(info, handle)
    data = buffer.getvalue()
    if len(data) > max_bundle_bytes():
        raise BadInput(
            f"{root} packs to {len(data) / 2**20:.0f} MB, over the bundle limit of "
            f"{max_bundle_bytes() / 2**20:.0f} MB (DTF_BUNDLE_MAX_MB); {_WHAT_TO_DO}"
        )
    limits = Limits.from_env()  # what workers with the same settings would refuse
    if unpacked > limits.max_bytes:
        raise BadInput(f"{limits.too_many_bytes(str(root))}; {_WHAT_TO_DO}")
    if len(names) > limits.max_files:
        raise BadInput(f"{limits.too_many_files(str(root))}; {_WHAT_TO_DO}")
    return PackedBundle(hashlib.sha256(data).hexdigest(), data, len(names))


def _link_inside(root: Path, name: str) -> str:
    """The target of the link ``name``, relative to it; BadInput when it leaves ``root``."""
    link = root / name
    target = link.resolve()
    if not target.is_relative_to(root.resolve()):
        raise BadInput(
            f"{name} is a symbolic link to {os.readlink(link)}, outside {root}: a bundle "
            "holds only the project's own files; remove the link (or list it in .gitignore "
            "when git does not track it), or use --code path"
        )
    return os.path.relpath(target, link.parent.resolve())


def store(db_url: str, bundle: PackedBundle, *, now: datetime | None = None) -> None:
    """Keep the bundle where every worker can fetch it (once per hash), then prune."""
    now = now or datetime.now(timezone.utc)
    for attempt in range(2):
        try:
            with session_scope(db_url) as session:
                row = session.get(Bundle, bundle.sha256)
                if row is None:
                    session.add(
                        Bundle(
                            sha256=bundle.sha256, size=len(bundle.data), data=bundle.data,
                            created_at=now, last_used_at=now,
                        )
                    )  # fmt: skip
                else:
                    row.last_used_at = now
                    if row.pruned_at is not None:  # pruned, and packed again
                        row.data, row.pruned_at = bundle.data, None
            break
        except IntegrityError:  # another dtf stored the same bundle just now
            if attempt:
                raise
    try:
        prune(db_url, now=now)
    except SQLAlchemyError as exc:  # housekeeping: the next submission prunes
        logger.warning("could not prune old bundles: %s", exc)


def prune(db_url: str, *, days: float | None = None, now: datetime | None = None) -> None:
    """Drop the archives of bundles unused for ``days`` (``DTF_BUNDLE_KEEP_DAYS``) whose
    runs all ended (the row stays, for those runs), and the rows of such bundles that no
    run names."""
    from dtf.summary import TERMINAL_RUN_STATES

    now = now or datetime.now(timezone.utc)
    cutoff = now - timedelta(days=keep_days() if days is None else days)
    unused = func.coalesce(Bundle.last_used_at, Bundle.created_at) < cutoff
    named = exists().where(Run.bundle == Bundle.sha256)
    in_use = exists().where(
        Run.bundle == Bundle.sha256,
        Run.status.not_in(TERMINAL_RUN_STATES) | (Run.created_at >= cutoff),
    )
    quietly = {"synchronize_session": False}
    with session_scope(db_url) as session:
        session.execute(delete(Bundle).where(unused, ~named).execution_options(**quietly))
        session.execute(
            update(Bundle)
            .where(unused, ~in_use, Bundle.pruned_at.is_(None))
            .values(data=b"", pruned_at=now)
            .execution_options(**quietly)
        )


def fetch(db_url: str, sha256: str, cache_dir: Path) -> Path:
    """The unpacked bundle ``sha256``: fetched on first use, checked before each use
    and repaired when a test changed it."""

    def load() -> bytes:
        with session_scope(db_url) as session:
            row = session.scalars(select(Bundle).where(Bundle.sha256 == sha256)).first()
            if row is None:
                raise LookupError(f"bundle {sha256} is not in the database")
            if row.pruned_at is not None:
                raise LookupError(
                    f"bundle {sha256} was pruned from the database (unused for "
                    f"{keep_days():g} days, DTF_BUNDLE_KEEP_DAYS): submit the run again"
                )
            data = bytes(row.data)
        if hashlib.sha256(data).hexdigest() != sha256:
            raise UnsafeBundle(f"bundle {sha256} does not match its hash")
        return data

    return cached(cache_dir, sha256, load, Limits.from_env())


def extract(data: bytes, destination: Path) -> None:
    """Unpack ``data`` into ``destination`` once every member passed dtf's checks: no
    absolute paths, no ``..``, no links out, no hard links or devices, within the
    limits of ``DTF_BUNDLE_MAX_UNPACKED_MB`` and ``DTF_BUNDLE_MAX_FILES``."""
    unpack(data, destination, Limits.from_env())
