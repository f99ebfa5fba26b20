"""python_module_command: ``python -m MODULE`` in which ``dtf`` is dtf's own, whatever the
directory holds; the directory is on sys.path only where asked (as ``python -m`` has it)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from dtf.launch import python_module_command

SHOW = "import json, sys, dtf; print(json.dumps([dtf.__file__, sys.argv, sys.path[0]]))"


@pytest.mark.parametrize("keep_cwd", [False, True])
def test_a_dtf_module_in_the_directory_is_never_taken_for_dtf(tmp_path, keep_cwd):
    lib, project = tmp_path / "lib", tmp_path / "project"
    lib.mkdir()
    project.mkdir()
    (lib / "show_me.py").write_text(SHOW)
    (project / "dtf.py").write_text("raise SystemExit('the directory dtf.py was imported')\n")
    env = {**os.environ, "PYTHONPATH": str(lib)}

    ran = subprocess.run(
        python_module_command("show_me", "a", "--b", keep_cwd=keep_cwd),
        cwd=project, env=env, capture_output=True, text=True,
    )  # fmt: skip

    assert ran.returncode == 0, ran.stderr
    dtf_file, argv, first_on_path = json.loads(ran.stdout)
    assert dtf_file == sys.modules["dtf"].__file__
    assert argv == [str(lib / "show_me.py"), "a", "--b"]
    # As under `python -m`: the directory first, where it is kept.
    assert (first_on_path == str(project)) is keep_cwd
