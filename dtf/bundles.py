"""Code bundles: a project directory packed into a content-addressed archive.

``dtf run --code bundle`` packs the directory it runs in (what git would
track, or what ``.gitignore`` files leave, when it is not a git checkout)
into a deterministic ``tar.gz`` named by its SHA-256 and stores it in the
database every worker already reaches. A worker fetches a bundle once,
caches it by hash, and runs the batch inside it.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import os
import shutil
import subprocess
import tarfile
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

import pathspec

from dtf.db.models import Bundle
from dtf.db.session import session_scope
from dtf.errors import BadInput

#: Never packed: dtf's own state, version control, virtual environments.
ALWAYS_EXCLUDED = (".dtf/", ".git/", ".venv/", "venv/", "__pycache__/", "*.pyc")


class UnsafeBundle(Exception):
    """A bundle member would land outside the bundle (absolute path, ``..``, link out)."""


@dataclass(frozen=True)
class PackedBundle:
    sha256: str
    data: bytes
    files: int


def max_bundle_bytes() -> int:
    return int(float(os.environ.get("DTF_BUNDLE_MAX_MB", "256")) * 1024 * 1024)


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
    """A deterministic archive of ``root``: the same files give the same hash."""
    names = project_files(root)
    buffer = io.BytesIO()
    # mtime=0 everywhere: no time in the gzip header or the tar entries.
    with (
        gzip.GzipFile(fileobj=buffer, mode="wb", compresslevel=6, mtime=0) as compressed,
        tarfile.open(fileobj=compressed, mode="w", format=tarfile.PAX_FORMAT) as archive,
    ):
        for name in names:
            path = root / name
            info = tarfile.TarInfo(name)
            info.size = path.stat().st_size
            info.mode = 0o755 if os.access(path, os.X_OK) else 0o644
            with path.open("rb") as handle:
                archive.addfile(info, handle)
    data = buffer.getvalue()
    if len(data) > max_bundle_bytes():
        raise BadInput(
            f"{root} packs to {len(data) / 2**20:.0f} MB, over the bundle limit of "
            f"{max_bundle_bytes() / 2**20:.0f} MB (DTF_BUNDLE_MAX_MB); list large files in "
            ".gitignore or use --code path"
        )
    return PackedBundle(hashlib.sha256(data).hexdigest(), data, len(names))


def store(db_url: str, bundle: PackedBundle) -> None:
    """Keep the bundle where every worker can fetch it (once per hash)."""
    with session_scope(db_url) as session:
        if session.get(Bundle, bundle.sha256) is None:
            session.add(Bundle(sha256=bundle.sha256, size=len(bundle.data), data=bundle.data))


def fetch(db_url: str, sha256: str, cache_dir: Path) -> Path:
    """The extracted bundle ``sha256``, fetched and unpacked on first use only."""
    target = cache_dir / sha256
    if target.is_dir():
        return target
    with session_scope(db_url) as session:
        row = session.get(Bundle, sha256)
        data = bytes(row.data) if row is not None else None
    if data is None:
        raise LookupError(f"bundle {sha256} is not in the database")
    if hashlib.sha256(data).hexdigest() != sha256:
        raise UnsafeBundle(f"bundle {sha256} does not match its hash")
    cache_dir.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{sha256[:12]}-", dir=cache_dir))
    try:
        extract(data, staging)
        os.rename(staging, target)  # atomic: a concurrent fetch of the same hash loses cleanly
    except OSError:
        if not target.is_dir():
            raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return target


def extract(data: bytes, destination: Path) -> None:
    """Unpack safely: no absolute paths, no ``..``, no links out, no devices."""
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as archive:
        members = list(_checked(archive.getmembers(), destination))
        # The "data" filter (Python 3.10.12+, 3.11.4+) re-checks the same rules.
        safety = {"filter": "data"} if hasattr(tarfile, "data_filter") else {}
        archive.extractall(destination, members=members, **safety)


def _checked(members: list[tarfile.TarInfo], destination: Path) -> Iterator[tarfile.TarInfo]:
    root = destination.resolve()
    for member in members:
        name = PurePosixPath(member.name)
        if name.is_absolute() or ".." in name.parts:
            raise UnsafeBundle(f"bundle member {member.name!r} escapes the bundle")
        if not (member.isfile() or member.isdir() or member.issym() or member.islnk()):
            raise UnsafeBundle(f"bundle member {member.name!r} is not a file or directory")
        if member.issym() or member.islnk():
            base = root if member.islnk() else (root / name).parent
            target = (base / member.linkname).resolve()
            if not target.is_relative_to(root):
                raise UnsafeBundle(
                    f"bundle member {member.name!r} links outside the bundle ({member.linkname})"
                )
        yield member
