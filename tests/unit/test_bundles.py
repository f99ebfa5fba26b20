"""Code bundles: deterministic, .gitignore-aware packing and safe extraction."""

import io
import subprocess
import tarfile

import pytest

from dtf.bundles import UnsafeBundle, extract, pack, project_files
from dtf.errors import BadInput


@pytest.fixture
def project(tmp_path):
    root = tmp_path / "project"
    (root / "tests").mkdir(parents=True)
    (root / "tests" / "test_a.py").write_text("def test_a():\n    pass\n")
    (root / "run.sh").write_text("#!/bin/sh\necho hi\n")
    (root / "run.sh").chmod(0o755)
    (root / "build").mkdir()
    (root / "build" / "big.bin").write_bytes(b"x" * 1000)
    (root / ".gitignore").write_text("build/\n*.log\n")
    (root / "debug.log").write_text("noise")
    (root / ".dtf").mkdir()
    (root / ".dtf" / "dtf.sqlite").write_text("state")
    return root


def test_gitignored_files_and_dtf_state_are_left_out(project):
    assert project_files(project) == [".gitignore", "run.sh", "tests/test_a.py"]


def test_in_a_git_checkout_git_decides(project):
    subprocess.run(["git", "init", "-q"], cwd=project, check=True)
    (project / "tests" / ".gitignore").write_text("test_a.py\n")
    assert project_files(project) == [".gitignore", "run.sh", "tests/.gitignore"]


def test_the_same_files_give_the_same_hash(project):
    first = pack(project)
    (project / "tests" / "test_a.py").touch()  # a new mtime changes nothing
    assert pack(project).sha256 == first.sha256
    (project / "tests" / "test_a.py").write_text("def test_a():\n    assert 1\n")
    assert pack(project).sha256 != first.sha256


def test_a_bundle_unpacks_to_the_same_files_with_their_modes(project, tmp_path):
    destination = tmp_path / "out"
    extract(pack(project).data, destination)
    assert (destination / "tests" / "test_a.py").read_text() == "def test_a():\n    pass\n"
    assert (destination / "run.sh").stat().st_mode & 0o111
    assert not (destination / "build").exists()


def test_an_oversized_project_is_refused_with_what_to_do(project, monkeypatch):
    monkeypatch.setenv("DTF_BUNDLE_MAX_MB", "0.0001")
    (project / "data.bin").write_bytes(bytes(range(256)) * 2000)
    with pytest.raises(BadInput, match="DTF_BUNDLE_MAX_MB"):
        pack(project)


def archive(*members: tarfile.TarInfo) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for member in members:
            tar.addfile(member, io.BytesIO(b"x" * member.size) if member.isfile() else None)
    return buffer.getvalue()


def file_member(name: str) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.size = 1
    return info


def link_member(name: str, target: str, kind=tarfile.SYMTYPE) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.linkname = target
    return info


@pytest.mark.parametrize(
    "member",
    [
        file_member("/etc/evil"),
        file_member("../evil"),
        file_member("a/../../evil"),
        link_member("escape", "../../etc/passwd"),
        link_member("abs", "/etc/passwd"),
        link_member("hard", "../outside", kind=tarfile.LNKTYPE),
    ],
    ids=["absolute", "dotdot", "nested-dotdot", "symlink-out", "symlink-absolute", "hardlink-out"],
)
def test_members_that_escape_the_bundle_are_rejected(member, tmp_path):
    destination = tmp_path / "out"
    destination.mkdir()
    with pytest.raises(UnsafeBundle):
        extract(archive(member), destination)
    assert not (tmp_path / "evil").exists()


def test_a_link_inside_the_bundle_is_fine(tmp_path):
    destination = tmp_path / "out"
    extract(archive(file_member("a/real.txt"), link_member("a/alias.txt", "real.txt")), destination)
    assert (destination / "a" / "alias.txt").read_text() == "x"


def test_device_files_are_rejected(tmp_path):
    device = tarfile.TarInfo("dev")
    device.type = tarfile.CHRTYPE
    with pytest.raises(UnsafeBundle, match="not a file"):
        extract(archive(device), tmp_path / "out")
