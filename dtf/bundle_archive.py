"""Reading a bundle archive safely: limits first, every member checked, then unpacking.

The checks are dtf's own and do not depend on tarfile's ``data`` filter (absent on
Python 3.10.0-3.10.11 and 3.11.0-3.11.3); where the filter exists it runs as well,
as a second line. A bundle holds regular files, directories and relative symbolic
links that stay inside it, nothing else: no hard links, devices, FIFOs, absolute
names or ``..``, no member below a link or a file, no name twice.
"""

from __future__ import annotations

import copy
import gzip
import io
import os
import shutil
import stat
import tarfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

#: Bytes a tar stream may hold beyond its files' contents, per member (header,
#: a PAX header, padding): what bounds the decompression of a hostile archive.
_OVERHEAD_PER_MEMBER = 3 * 512
#: Links followed while resolving one link's target (as the kernel's ELOOP limit).
_MAX_LINK_HOPS = 40
#: tarfile's own refusals where its filters exist
_FILTER_ERRORS = getattr(tarfile, "FilterError", ())


class UnsafeBundle(Exception):
    """A bundle member would land outside the bundle (absolute path, ``..``, link out),
    or is not a file, a directory or a symbolic link."""


class BundleTooLarge(UnsafeBundle):
    """A bundle unpacks to more bytes or files than the worker's limits allow."""


@dataclass(frozen=True)
class Limits:
    """What one bundle may unpack to; ``max_bytes`` counts file contents."""

    max_bytes: int
    max_files: int

    @classmethod
    def from_env(cls) -> Limits:
        packed_mb = float(os.environ.get("DTF_BUNDLE_MAX_MB", "256"))
        unpacked_mb = float(os.environ.get("DTF_BUNDLE_MAX_UNPACKED_MB", 4 * packed_mb))
        files = int(os.environ.get("DTF_BUNDLE_MAX_FILES", "100000"))
        return cls(max_bytes=int(unpacked_mb * 2**20), max_files=files)

    def too_many_bytes(self, what: str) -> str:
        return (
            f"{what} unpacks to more than {self.max_bytes / 2**20:g} MB, the limit of "
            "DTF_BUNDLE_MAX_UNPACKED_MB"
        )

    def too_many_files(self, what: str) -> str:
        return f"{what} holds more than {self.max_files} files, the limit of DTF_BUNDLE_MAX_FILES"


def unpack(
    data: bytes, destination: Path, limits: Limits, *, only: set[str] | None = None
) -> list[str]:
    """Unpack ``data`` into ``destination`` once every member passed the checks; the
    members' names.

    ``only``: unpack just these members (a repair), replacing what lies at their
    paths; the other members are still checked."""
    with _opened(data, limits) as archive:
        members = checked(_listed(archive, limits))
        destination.mkdir(parents=True, exist_ok=True)
        safety = {"filter": "data"} if hasattr(tarfile, "data_filter") else {}
        for member in members:
            if only is None or member.name in only:
                _make_room(destination, member)
                try:
                    archive.extract(member, destination, set_attrs=True, **safety)
                except _FILTER_ERRORS as exc:  # the second line caught what ours let by
                    raise UnsafeBundle(f"bundle member {member.name!r}: {exc}") from exc
        return [m.name for m in members]


def checked(members: list[tarfile.TarInfo]) -> list[tarfile.TarInfo]:
    """Copies of ``members`` with normalized names and safe modes; raises UnsafeBundle."""
    result: list[tarfile.TarInfo] = []
    kinds: dict[str, str] = {}
    for member in members:
        name = _normalized(member.name)
        if name == "":
            if member.isdir():
                continue  # the archive's root directory ("./")
            raise UnsafeBundle(f"bundle member {member.name!r} has no name")
        if not (member.isreg() or member.isdir() or member.issym()):
            raise UnsafeBundle(
                f"bundle member {member.name!r} is not a file or directory "
                "(only files, directories and symbolic links are unpacked)"
            )
        if name in kinds:
            raise UnsafeBundle(f"bundle member {member.name!r} appears twice")
        kinds[name] = _kind(member)
        result.append(_safe_copy(member, name))
    links = {m.name: m.linkname for m in result if m.issym()}
    for member in result:
        for parent in PurePosixPath(member.name).parents:
            if kinds.get(str(parent), "dir") != "dir":
                raise UnsafeBundle(
                    f"bundle member {member.name!r} lies below {str(parent)!r}, which is "
                    f"a {kinds[str(parent)]}, not a directory"
                )
        if member.issym():
            _check_link(member.name, links)
    return result


def _kind(member: tarfile.TarInfo) -> str:
    return "dir" if member.isdir() else "link" if member.issym() else "file"


def _normalized(name: str) -> str:
    path = PurePosixPath(name)
    if path.is_absolute() or name.startswith("/") or ".." in path.parts:
        raise UnsafeBundle(f"bundle member {name!r} escapes the bundle")
    return "" if path.parts == () else path.as_posix()


def _safe_copy(member: tarfile.TarInfo, name: str) -> tarfile.TarInfo:
    """``member`` renamed to ``name``, without set-id bits, group/other write or owner."""
    safe = copy.copy(member)
    safe.name = name
    if member.isdir():
        safe.mode = 0o755
    elif member.isreg():
        mode = member.mode & 0o755
        safe.mode = (mode if mode & 0o100 else mode & ~0o111) | 0o600
    safe.uid, safe.gid, safe.uname, safe.gname = os.geteuid(), os.getegid(), "", ""
    return safe


def _check_link(name: str, links: dict[str, str]) -> None:
    """Resolve the link ``name`` through the bundle's own links; it must stay inside."""
    hops = [0]

    def resolve(base: list[str], target: str) -> list[str]:
        if not target or target.startswith("/"):
            raise UnsafeBundle(f"bundle member {name!r} links outside the bundle ({target})")
        parts = list(base)
        for part in PurePosixPath(target).parts:
            if part == "..":
                if not parts:
                    raise UnsafeBundle(
                        f"bundle member {name!r} links outside the bundle ({links[name]})"
                    )
                parts.pop()
                continue
            parts.append(part)
            through = links.get("/".join(parts))
            if through is not None:
                hops[0] += 1
                if hops[0] > _MAX_LINK_HOPS:
                    raise UnsafeBundle(f"bundle member {name!r}: too many levels of links")
                parts = resolve(parts[:-1], through)
        return parts

    resolve(list(PurePosixPath(name).parent.parts), links[name])


def _listed(archive: tarfile.TarFile, limits: Limits) -> list[tarfile.TarInfo]:
    """The members, read lazily: a bomb stops at the limit, not after inflating."""
    members: list[tarfile.TarInfo] = []
    total = 0
    try:
        for member in archive:
            members.append(member)
            total += member.size if member.isreg() else 0
            if len(members) > limits.max_files:
                raise BundleTooLarge(limits.too_many_files("the bundle"))
            if total > limits.max_bytes:
                raise BundleTooLarge(limits.too_many_bytes("the bundle"))
    except (tarfile.TarError, EOFError, gzip.BadGzipFile, OSError) as exc:
        raise UnsafeBundle(f"the bundle is not a readable tar.gz archive: {exc}") from exc
    return members


@contextmanager
def _opened(data: bytes, limits: Limits) -> Iterator[tarfile.TarFile]:
    cap = limits.max_bytes + (limits.max_files + 2) * _OVERHEAD_PER_MEMBER + 2 * 10240
    stream = _Capped(gzip.GzipFile(fileobj=io.BytesIO(data), mode="rb"), cap, limits)
    try:
        archive = tarfile.open(fileobj=stream, mode="r:")  # type: ignore[call-overload]  # noqa: SIM115
    except (tarfile.TarError, EOFError, gzip.BadGzipFile, OSError) as exc:
        raise UnsafeBundle(f"the bundle is not a readable tar.gz archive: {exc}") from exc
    with archive:
        yield archive


class _Capped:
    """A decompressed stream that refuses to go past ``cap`` bytes (huge PAX headers,
    long names: what the members' sizes do not show)."""

    def __init__(self, raw: gzip.GzipFile, cap: int, limits: Limits) -> None:
        self._raw, self._cap, self._limits = raw, cap, limits

    def _too_large(self) -> BundleTooLarge:
        return BundleTooLarge(self._limits.too_many_bytes("the bundle"))

    def read(self, size: int | None = -1) -> bytes:
        allowed = self._cap - self._raw.tell()
        want = allowed + 1 if size is None or size < 0 or size > allowed else size
        chunk = self._raw.read(want)
        if len(chunk) > allowed:
            raise self._too_large()
        return chunk

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        if whence == io.SEEK_SET and offset > self._cap:
            raise self._too_large()
        return self._raw.seek(offset, whence)

    def tell(self) -> int:
        return self._raw.tell()

    def close(self) -> None:
        self._raw.close()


def _make_room(root: Path, member: tarfile.TarInfo) -> None:
    """Real, writable directories above ``member``; nothing of another kind at its path.

    A test may have left a link, a file or a read-only directory where the bundle
    has something else: tarfile would write through a link, so it goes first."""
    current = root
    for part in PurePosixPath(member.name).parent.parts:
        current = current / part
        _ensure_directory(current)
    path = root / member.name
    try:
        st = path.lstat()
    except FileNotFoundError:
        return
    if stat.S_ISDIR(st.st_mode):
        if member.isdir():
            _ensure_directory(path)
        else:
            make_writable(path)
            shutil.rmtree(path)
    else:
        path.unlink()


def _ensure_directory(path: Path) -> None:
    try:
        st = path.lstat()
    except FileNotFoundError:
        path.mkdir()
        return
    if not stat.S_ISDIR(st.st_mode):
        path.unlink()
        path.mkdir()
    elif st.st_mode & 0o700 != 0o700:
        path.chmod(stat.S_IMODE(st.st_mode) | 0o700)


def make_writable(tree: Path) -> None:
    """Owner rwx on every directory of ``tree`` (links not followed), so it can be removed."""
    _owner_rwx(str(tree))
    for directory, dirnames, _files in os.walk(tree):
        for name in dirnames:
            _owner_rwx(os.path.join(directory, name))


def _owner_rwx(path: str) -> None:
    st = os.lstat(path)
    if stat.S_ISDIR(st.st_mode) and st.st_mode & 0o700 != 0o700:
        os.chmod(path, stat.S_IMODE(st.st_mode) | 0o700)
