"""-x and --maxfail stop a whole run, across its batches, as they stop pytest."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest
from junitparser import JUnitXml

from tests.support.processes import clean_env, run_dtf

pytestmark = pytest.mark.integration

SLOW_PASSES = """
    import time
    import pytest

    @pytest.mark.parametrize("i", range(15))
    def test_slow(i):
        time.sleep(0.2)
"""


def suite(root: Path, files: dict[str, str]) -> Path:
    root.mkdir()
    (root / "pytest.ini").write_text("[pytest]\n")
    for name, body in files.items():
        (root / name).write_text(textwrap.dedent(body))
    return root


def status(env: dict[str, str], cwd: Path) -> dict:
    proc = run_dtf("status", "--json", env=env, cwd=cwd)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


def junit_cases(path: Path) -> int:
    return sum(suite.tests for suite in JUnitXml.fromfile(str(path)))


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    return clean_env(DTF_HOME=str(tmp_path / "home"))


def test_x_stops_every_batch_after_the_first_failure(tmp_path, env):
    root = suite(
        tmp_path / "s",
        {
            "test_a.py": "def test_fails():\n    assert 1 == 2\n" + textwrap.dedent(SLOW_PASSES),
            "test_b.py": SLOW_PASSES,
            "test_c.py": SLOW_PASSES,
        },
    )
    proc = run_dtf(
        "run", "--workers", "2", "--batches", "3", "--junit-xml", "out.xml", "--", "-x",
        env=env, cwd=root,
    )  # fmt: skip
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "stopped after 1 failing test (-x)" in proc.stdout
    state = status(env, root)
    assert state["status"] == "failed"
    assert state["counts"].get("failed") == 1 and "error" not in state["counts"]
    assert state["finished"] < state["total"] == 46
    assert state["stopped"] == ["stopped after 1 failing test (-x)"]
    # As pytest's: the tests never run are not in the report.
    assert junit_cases(root / "out.xml") == state["finished"]


def test_maxfail_lets_that_many_failures_happen_first(tmp_path, env):
    failing = "".join(f"def test_fails_{i}():\n    assert False\n\n" for i in range(3))
    root = suite(tmp_path / "s", {"test_a.py": failing + textwrap.dedent(SLOW_PASSES)})
    proc = run_dtf("run", "--workers", "1", "--", "--maxfail=2", env=env, cwd=root)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    state = status(env, root)
    assert state["counts"]["failed"] >= 2
    assert state["finished"] < state["total"]
    assert state["stopped"] == ["stopped after 2 failing tests (--maxfail 2)"]


def test_collection_errors_that_reach_maxfail_run_nothing_else(tmp_path, env):
    root = suite(
        tmp_path / "s",
        {"test_broken.py": "import no_such_module_dtf\n", "test_ok.py": SLOW_PASSES},
    )
    proc = run_dtf("run", "--workers", "1", "--", "-x", env=env, cwd=root)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    state = status(env, root)
    assert state["counts"] == {"error": 1}
    assert state["stopped"] == ["stopped after 1 failing test (-x)"]
