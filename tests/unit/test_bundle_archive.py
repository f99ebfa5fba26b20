"""Unpacking a bundle: dtf's own checks refuse what could land outside it, with or
without tarfile's ``data`` filter, and limits stop a decompression bomb (issue 16, item 7)."""

from __future__ import annotations

import io
import tarfile
from pathlib import Path

import pytest

from dtf.bundle_archive import BundleTooLarge, Limits, UnsafeBundle, unpack
from dtf.bundles import extract

LIMITS = Limits(max_bytes=10 * 2**20, max_files=1000)


def archive(*members: tuple[tarfile.TarInfo, bytes | None], pax: bool = False) -> bytes:
    buffer = io.BytesIO()
    fmt = tarfile.PAX_FORMAT if pax else tarfile.GNU_FORMAT
    with tarfile.open(fileobj=buffer, mode="w:gz", format=fmt) as tar:
        for info, data in members:
            tar.addfile(info, io.BytesIO(data) if data is not None else None)
    return buffer.getvalue()


def file(name: str, data: bytes = b"x") -> tuple[tarfile.TarInfo, bytes]:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    return info, data


def link(name: str, target: str, kind: bytes = tarfile.SYMTYPE) -> tuple[tarfile.TarInfo, None]:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.linkname = target
    return info, None


def special(name: str, kind: bytes) -> tuple[tarfile.TarInfo, None]:
    info = tarfile.TarInfo(name)
    info.type = kind
    return info, None


@pytest.fixture(params=["with data filter", "without data filter"])
def tarfile_filter(request, monkeypatch) -> str:
    """Each check holds on Pythons whose tarfile has no ``data`` filter (3.10.0-3.10.11,
    3.11.0-3.11.3) as on those that have one."""
    if request.param == "without data filter" and hasattr(tarfile, "data_filter"):
        monkeypatch.delattr(tarfile, "data_filter")
    return request.param


REFUSED = {
    "symlink chain out (a -> b/.., b -> .)": [link("a", "b/.."), link("b", ".")],
    "link through a link (sub/x -> .., sub/y -> x/..)": [
        link("sub/x", ".."),
        link("sub/y", "x/.."),
    ],
    "symlink to an absolute path": [link("passwd", "/etc/passwd")],
    "symlink up and out": [link("a/b", "../../outside")],
    "a file written through a link to outside": [link("d", "/tmp"), file("d/evil")],
    "a file written through a link inside": [link("d", "."), file("d/evil")],
    "hard link out": [link("hard", "../outside", kind=tarfile.LNKTYPE)],
    "hard link inside": [file("real"), link("hard", "real", kind=tarfile.LNKTYPE)],
    "character device": [special("tty", tarfile.CHRTYPE)],
    "block device": [special("disk", tarfile.BLKTYPE)],
    "fifo": [special("pipe", tarfile.FIFOTYPE)],
    "absolute name": [file("/tmp/evil")],
    "dotdot name": [file("a/../../evil")],
    "a name twice (a file, then a link)": [file("a"), link("a", "/etc/passwd")],
    "a link loop": [link("a", "b"), link("b", "a")],
}


@pytest.mark.parametrize("members", REFUSED.values(), ids=REFUSED.keys())
def test_crafted_archives_are_refused_before_anything_is_written(members, tmp_path, tarfile_filter):
    destination = tmp_path / "out"
    with pytest.raises(UnsafeBundle):
        unpack(archive(*members), destination, LIMITS)
    assert not destination.exists() or list(destination.iterdir()) == []
    assert not (tmp_path / "evil").exists() and not (tmp_path / "outside").exists()


def test_links_that_stay_inside_are_unpacked_as_links(tmp_path, tarfile_filter):
    data = archive(
        file("a/real.txt"),
        link("a/alias.txt", "real.txt"),
        link("top.txt", "a/alias.txt"),  # a chain that stays inside
        link("here", "a/.."),
    )
    names = unpack(data, tmp_path / "out", LIMITS)
    assert names == ["a/real.txt", "a/alias.txt", "top.txt", "here"]
    assert (tmp_path / "out" / "top.txt").read_text() == "x"
    assert (tmp_path / "out" / "top.txt").is_symlink()


def test_set_id_bits_and_group_write_are_dropped(tmp_path, tarfile_filter):
    info, data = file("tool")
    info.mode = 0o6777
    unpack(archive((info, data)), tmp_path / "out", LIMITS)
    assert (tmp_path / "out" / "tool").stat().st_mode & 0o7777 == 0o755


def test_a_gzip_bomb_stops_at_the_unpacked_limit_named_in_the_error(tmp_path, monkeypatch):
    monkeypatch.setenv("DTF_BUNDLE_MAX_UNPACKED_MB", "8")
    bomb = archive(*(file(f"zeros{i}", bytes(4 * 2**20)) for i in range(4)))  # 16 MiB
    assert len(bomb) < 100_000
    with pytest.raises(BundleTooLarge, match=r"more than 8 MB.*DTF_BUNDLE_MAX_UNPACKED_MB"):
        extract(bomb, tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_the_unpacked_limit_defaults_to_four_times_the_bundle_limit(monkeypatch):
    monkeypatch.delenv("DTF_BUNDLE_MAX_UNPACKED_MB", raising=False)
    monkeypatch.setenv("DTF_BUNDLE_MAX_MB", "2")
    assert Limits.from_env().max_bytes == 8 * 2**20
    monkeypatch.delenv("DTF_BUNDLE_MAX_MB")
    assert Limits.from_env() == Limits(max_bytes=1024 * 2**20, max_files=100_000)


def test_a_huge_pax_header_is_a_bomb_too(tmp_path):
    info, data = file("x", b"")
    info.pax_headers = {"comment": "A" * (12 * 2**20)}
    with pytest.raises(BundleTooLarge, match="DTF_BUNDLE_MAX_UNPACKED_MB"):
        unpack(archive((info, data), pax=True), tmp_path / "out", LIMITS)


def test_too_many_files_are_refused_naming_the_limit(tmp_path, monkeypatch):
    monkeypatch.setenv("DTF_BUNDLE_MAX_FILES", "10")
    many = archive(*(file(f"f{i}") for i in range(11)))
    with pytest.raises(BundleTooLarge, match=r"more than 10 files.*DTF_BUNDLE_MAX_FILES"):
        extract(many, tmp_path / "out")


def test_what_is_not_an_archive_is_refused(tmp_path):
    with pytest.raises(UnsafeBundle, match=r"not a readable tar\.gz"):
        unpack(b"not gzip at all", tmp_path / "out", LIMITS)


def test_a_repair_does_not_write_through_a_link_a_test_left(tmp_path, tarfile_filter):
    """Unpacking a member again replaces what lies at its path, a link to outside
    included, and makes the folders above it real folders again."""
    outside = tmp_path / "outside.txt"
    outside.write_text("not the bundle's")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    root = tmp_path / "out"
    data = archive(file("data.txt", b"bundle"), file("pkg/mod.py", b"code"))
    unpack(data, root, LIMITS)
    (root / "data.txt").unlink()
    (root / "data.txt").symlink_to(outside)
    (root / "pkg" / "mod.py").unlink()
    (root / "pkg").rmdir()
    (root / "pkg").symlink_to(elsewhere)

    unpack(data, root, LIMITS, only={"data.txt", "pkg/mod.py"})

    assert outside.read_text() == "not the bundle's"
    assert not (root / "data.txt").is_symlink() and (root / "data.txt").read_text() == "bundle"
    assert not (root / "pkg").is_symlink() and (root / "pkg" / "mod.py").read_text() == "code"
    assert list(elsewhere.iterdir()) == []


def test_extract_unpacks_a_plain_bundle(tmp_path: Path):
    extract(archive(file("a/b.txt")), tmp_path / "out")
    assert (tmp_path / "out" / "a" / "b.txt").read_text() == "x"
