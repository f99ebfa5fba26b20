"""dtf inside a user's project, typed from anywhere in it: one ``.dtf/`` found as git finds
``.git`` (and ignored by git), and plugins that live in the project, loaded without
PYTHONPATH, whose output reaches the person running ``dtf run``. Real ``dtf`` commands
on the embedded default."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.processes import REPO, clean_env, run_dtf

pytestmark = pytest.mark.integration


def git(*args: str, cwd: Path) -> str:
    proc = subprocess.run(
        ["git", "-c", "user.name=dtf", "-c", "user.email=dtf@example.invalid", *args],
        cwd=cwd, capture_output=True, text=True, check=True,
    )  # fmt: skip
    return proc.stdout


def dtf_command(*args: str, env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess:
    """``dtf ARGS`` through the installed ``dtf`` script, whose sys.path holds no current
    directory (``python -m dtf`` would put it there); ``python -P`` where there is none."""
    script = Path(sys.executable).parent / "dtf"
    command = [str(script)] if script.exists() else [sys.executable, "-P", "-m", "dtf"]
    return subprocess.run(
        [*command, *args], env=env, cwd=cwd, capture_output=True, text=True, timeout=300
    )


def test_dtf_finds_one_home_per_project_from_any_folder_and_git_ignores_it(tmp_path):
    project = tmp_path / "project"
    suite = project / "examples" / "suite"
    suite.mkdir(parents=True)
    (suite / "test_one.py").write_text("def test_one():\n    pass\n")
    git("init", "-q", cwd=project)
    git("add", ".", cwd=project)
    git("commit", "-q", "-m", "tests", cwd=project)
    # Warm workers and a command server: every dtf process must agree on the home.
    env = clean_env(DTF_LOCAL_WORKERS_IDLE="120")
    try:
        ran = run_dtf("run", "suite", "--workers", "1", env=env, cwd=project / "examples")

        assert ran.returncode == 0, ran.stdout + ran.stderr
        run_id = re.search(r"\(run (\w+)\)", ran.stdout).group(1)
        assert (project / ".dtf" / "dtf.sqlite").exists()
        assert not (project / "examples" / ".dtf").exists()
        assert (project / ".dtf" / ".gitignore").read_text().splitlines()[-1] == "*"
        assert git("status", "--porcelain", "--untracked-files=all", cwd=project) == ""

        # From the root and from a folder below it: the same run, the same warm set-up.
        status = run_dtf("status", "--json", env=env, cwd=project)
        assert status.returncode == 0, status.stderr
        assert json.loads(status.stdout)["run_id"] == run_id
        served = (project / ".dtf" / "logs" / "command-server.log").read_text()
        assert f"dtf status in {project.resolve()}" in served  # the warm server ran it
        again = run_dtf("run", ".", "--workers", "1", env=env, cwd=suite)
        assert again.returncode == 0, again.stdout + again.stderr
        served = (project / ".dtf" / "logs" / "command-server.log").read_text()
        assert f"dtf run in {suite.resolve()}" in served
        assert len(list((project / ".dtf" / "logs").glob("worker-*.log"))) == 1  # taken over
        assert not (suite / ".dtf").exists()
    finally:
        stopped = run_dtf("stop-workers", env=env, cwd=suite)
    assert stopped.stdout.strip() == (
        "dtf: stopped 1 warm local worker(s) and 1 command server(s)"
    ), stopped.stdout

    # A .dtf/ of its own below the root wins for the commands typed below it.
    nested = project / "examples" / "nested"
    (nested / "deeper").mkdir(parents=True)
    (nested / ".dtf").mkdir()
    (nested / "deeper" / "test_two.py").write_text("def test_two():\n    pass\n")
    env = clean_env()
    inner = run_dtf("run", ".", "--workers", "1", env=env, cwd=nested / "deeper")
    assert inner.returncode == 0, inner.stdout + inner.stderr
    inner_id = re.search(r"\(run (\w+)\)", inner.stdout).group(1)
    assert (nested / ".dtf" / "dtf.sqlite").exists()
    inner_status = run_dtf("status", "--json", env=env, cwd=nested)
    assert json.loads(inner_status.stdout)["run_id"] == inner_id
    outer_status = run_dtf("status", "--json", env=env, cwd=project)
    assert json.loads(outer_status.stdout)["run_id"] != inner_id
    # DTF_HOME still wins.
    elsewhere = run_dtf("status", env=clean_env(DTF_HOME=str(tmp_path / "h")), cwd=nested)
    assert elsewhere.returncode == 2 and "no dtf database" in elsewhere.stderr


def readme_plugin() -> str:
    """The README's ``slow_tests.py``, exactly as written there."""
    readme = (REPO / "README.md").read_text()
    block = re.search(r"```python\n(# slow_tests\.py.*?)```", readme, re.S)
    assert block, "the README's plugin example is gone"
    assert "Try it with `DTF_PLUGINS=slow_tests dtf run tests/`" in readme
    return block.group(1)


def test_the_readme_plugin_runs_as_written_and_its_output_reaches_the_terminal(tmp_path):
    project = tmp_path / "project"
    (project / "tests").mkdir(parents=True)
    (project / "pyproject.toml").write_text("[project]\nname = 'mine'\n")
    (project / "slow_tests.py").write_text(readme_plugin())
    (project / "tests" / "test_speed.py").write_text(
        "import time\n\ndef test_quick():\n    pass\n\ndef test_sleepy():\n    time.sleep(5.2)\n"
    )
    env = clean_env(DTF_PLUGINS="slow_tests")
    env.pop("PYTHONPATH", None)

    # `DTF_PLUGINS=slow_tests dtf run tests/`, in the folder that holds slow_tests.py.
    proc = dtf_command("run", "tests/", "--workers", "1", env=env, cwd=project)

    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "not loaded" not in proc.stderr, proc.stderr
    lines = proc.stdout.splitlines()
    # The worker-side hook (dtf_test_finished), then the coordinator's (dtf_run_finished),
    # then dtf's summary.
    slow = [line for line in lines if line.startswith("slow: ")]
    assert len(slow) == 1 and slow[0].startswith("slow: tests/test_speed.py::test_sleepy 5."), lines
    run_id = re.search(r"\(run (\w+)\)", lines[-1]).group(1)
    verdict = f"run {run_id} passed: {{'passed': 2}}"
    assert lines.index(slow[0]) < lines.index(verdict) < len(lines) - 1
    assert not list((project / ".dtf" / "plugin-output").glob("*"))  # printed, then dropped

    # A task file's plugins: from a folder below, the project's plugin loads; a missing
    # one is reported once (it was tried at the start and again at the run's end).
    (project / "run.yaml").write_text(
        "tasks:\n  - type: test\n    paths: [../tests/test_speed.py]\n"
        "    pytest_args: [-k, quick]\nplugins: [slow_tests, nowhere_plugin]\n"
    )
    env.pop("DTF_PLUGINS")
    (project / "docs").mkdir()
    tasked = dtf_command(
        "run", "--task-file", "../run.yaml", "--workers", "1", env=env, cwd=project / "docs"
    )
    assert tasked.returncode == 0, tasked.stdout + tasked.stderr
    assert re.search(r"^run \w+ passed: \{'passed': 1\}$", tasked.stdout, re.M), tasked.stdout
    warnings = [line for line in tasked.stderr.splitlines() if "nowhere_plugin" in line]
    assert len(warnings) == 1, tasked.stderr
    assert (
        "plugin nowhere_plugin (task file) not loaded: cannot import nowhere_plugin"
        in (warnings[0])
    )
