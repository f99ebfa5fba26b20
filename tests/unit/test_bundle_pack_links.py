"""``pack`` and symbolic links: one inside the project stays a link, one that leads
outside is refused, never followed (issue 16, item 7)."""

from __future__ import annotations

import io
import subprocess
import tarfile
from pathlib import Path

import pytest

from dtf.bundles import extract, pack
from dtf.errors import BadInput


@pytest.fixture
def project(tmp_path) -> Path:
    root = tmp_path / "project"
    (root / "data").mkdir(parents=True)
    (root / "data" / "real.txt").write_text("project data")
    (root / "test_a.py").write_text("def test_a():\n    pass\n")
    return root


def git_track_all(root: Path) -> None:
    subprocess.run(["git", "init", "-q"], cwd=root, check=True)
    subprocess.run(["git", "add", "-A"], cwd=root, check=True)


def members(data: bytes) -> dict[str, tarfile.TarInfo]:
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as archive:
        return {m.name: m for m in archive.getmembers()}


def test_a_tracked_link_to_a_file_outside_is_refused_naming_it(project, tmp_path):
    secret = tmp_path / "secret.txt"
    secret.write_text("not the project's")
    (project / "data" / "leak.txt").symlink_to(secret)
    git_track_all(project)
    with pytest.raises(BadInput, match=r"data/leak.txt is a symbolic link to .*secret.txt"):
        pack(project)


def test_a_relative_link_that_climbs_out_is_refused(project, tmp_path):
    (tmp_path / "shared.txt").write_text("outside")
    (project / "shared.txt").symlink_to("../shared.txt")
    with pytest.raises(BadInput, match="outside"):
        pack(project)


def test_a_link_inside_is_packed_as_a_link_and_unpacks_as_one(project, tmp_path):
    (project / "alias.txt").symlink_to("data/real.txt")
    (project / "absolute.txt").symlink_to(project / "data" / "real.txt")
    git_track_all(project)
    packed = pack(project)

    entries = members(packed.data)
    assert entries["alias.txt"].issym() and entries["alias.txt"].linkname == "data/real.txt"
    # an absolute target inside the project is stored relative to the link
    assert entries["absolute.txt"].linkname == "data/real.txt"

    out = tmp_path / "out"
    extract(packed.data, out)
    assert (out / "alias.txt").is_symlink()
    assert (out / "absolute.txt").read_text() == "project data"


def test_a_link_whose_chain_leaves_the_project_is_refused(project, tmp_path):
    (tmp_path / "outside.txt").write_text("outside")
    (project / "hop").symlink_to(tmp_path / "outside.txt")
    (project / "first.txt").symlink_to("hop")
    git_track_all(project)
    with pytest.raises(BadInput, match=r"first\.txt is a symbolic link"):
        pack(project)
