"""A project may use any name dtf uses: its own ``workers/``, ``integrations/``,
``celeryconfig.py``, ``dtf.py`` and ``conftest.py`` never stand in for dtf's, in ``dtf``
itself, its local workers, cluster workers started in the project, or pytest children.
Each of the project's stand-ins fails loudly if a dtf process imports it."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from dtf.launch import python_module_command
from tests.support.processes import clean_env, pytest_counts

pytestmark = pytest.mark.integration

TRAP = 'raise RuntimeError("a dtf process imported the project\'s {name}")\n'


def name_clash_project(root: Path, *, with_dtf_module: bool = True) -> Path:
    """A project whose top-level names are dtf's; its tests use its own packages."""
    project = root / "project"
    for package in ("workers", "integrations"):
        (project / package).mkdir(parents=True)
        (project / package / "__init__.py").write_text('OWNER = "project"\n')
        # What dtf would import first from a package of that name.
        for module in ("startup", "settings", "health", "queues"):
            (project / package / f"{module}.py").write_text(TRAP.format(name=f"{package}/"))
    (project / "celeryconfig.py").write_text(
        TRAP.format(name="celeryconfig.py") + 'accept_content = ["pickle"]\n'
    )
    if with_dtf_module:
        (project / "dtf.py").write_text(TRAP.format(name="dtf.py"))
    (project / "pyproject.toml").write_text("[tool.pytest.ini_options]\ntestpaths = ['tests']\n")
    (project / "conftest.py").write_text(
        "import pytest\n\n\n@pytest.fixture\ndef answer():\n    return 42\n"
    )
    tests = project / "tests"
    tests.mkdir()
    (tests / "test_names.py").write_text(
        "import integrations\nimport workers\n\n\n"
        "def test_the_projects_own_packages():\n"
        '    assert workers.OWNER == integrations.OWNER == "project"\n\n\n'
        "def test_the_projects_conftest(answer):\n    assert answer == 42\n\n\n"
        "def test_fails_as_in_pytest():\n    assert 1 == 2\n"
    )
    return project


def installed(script: str) -> list[str]:
    """An installed console script, as a user types it (its sys.path has no directory)."""
    path = Path(sys.executable).parent / script
    if not path.exists():
        pytest.skip(f"no installed {script} script beside {sys.executable}")
    return [str(path)]


def counts_of(output: str) -> dict[str, int]:
    line = next(line for line in output.splitlines() if re.search(r"\d+ (passed|failed)", line))
    return {word: int(n) for n, word in re.findall(r"(\d+) (passed|failed)", line)}


def test_dtf_run_on_the_embedded_default_uses_only_dtfs_own_names(tmp_path):
    project = name_clash_project(tmp_path)
    env = clean_env()

    ran = run_dtf_script("run", env=env, cwd=project)

    assert ran.returncode == 1, ran.stdout + ran.stderr
    assert "imported the project" not in ran.stdout + ran.stderr
    assert counts_of(ran.stdout) == pytest_counts(cwd=project) == {"passed": 2, "failed": 1}
    # Commands that read the settings and load the plugins, typed in the project.
    for command in (("status",), ("plugins",), ("workers",), ("hardware",)):
        shown = run_dtf_script(*command, env=env, cwd=project)
        assert shown.returncode == 0, f"dtf {command[0]}: {shown.stdout}{shown.stderr}"


@pytest.mark.parametrize(
    ("start_command", "with_dtf_module"),
    [(("dtf", "worker"), True), (("celery", "-A", "dtf", "worker"), False)],
    ids=["dtf-worker", "celery-worker"],
)
def test_cluster_workers_started_in_the_project_use_only_dtfs_own_names(
    tmp_path, cluster_env, start_worker, start_command, with_dtf_module
):
    """`celery -A dtf` imports ``dtf`` from the directory it starts in (Celery's rule), so a
    project with a dtf.py of its own starts workers with `dtf worker`."""
    project = name_clash_project(tmp_path, with_dtf_module=with_dtf_module)
    command = [*installed(start_command[0]), *start_command[1:]]
    worker = start_worker(cluster_env, command=command, cwd=project)

    ran = run_dtf_script("run", env=cluster_env, cwd=project)

    output = ran.stdout + ran.stderr + worker.log.read_text(errors="replace")
    assert ran.returncode == 1, output
    assert "imported the project" not in output
    assert counts_of(ran.stdout) == {"passed": 2, "failed": 1}
    # JSON only, whatever the project's celeryconfig.py says: dtf never read it.
    assert "pickle" not in worker.log.read_text(errors="replace")


def run_dtf_script(*args: str, env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess:
    """``dtf ARGS`` through the installed script (``python -m dtf`` would import the
    project's dtf.py, as Python's rule for ``-m`` says)."""
    script = Path(sys.executable).parent / "dtf"
    command = [str(script)] if script.exists() else python_module_command("dtf")
    return subprocess.run(
        [*command, *args], env=env, cwd=cwd, capture_output=True, text=True, timeout=300
    )
