"""reruns: N turns a test that fails and then passes into `flaky`, kept per test id and in JUnit."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from lxml import etree

from tests.support.processes import clean_env, run_dtf

pytestmark = pytest.mark.integration

SCHEMA = Path(__file__).resolve().parents[1] / "data" / "junit-10.xsd"
SUITE = """
import os
from pathlib import Path

def test_fails_once_then_passes():
    state = Path(os.environ["FLAKY_STATE"])
    if not state.exists():
        state.write_text("failed once")
        assert False, "first try fails"

def test_always_fails():
    assert 1 == 2

def test_fine():
    pass
"""


def test_a_test_that_passes_on_a_rerun_is_flaky_and_one_that_never_does_failed(tmp_path):
    (tmp_path / "test_flaky.py").write_text(SUITE)
    run = {"tasks": [{"type": "test", "paths": ["."], "reruns": 2}]}
    (tmp_path / "run.json").write_text(json.dumps(run))
    env = clean_env(DTF_HOME=str(tmp_path / "home"), FLAKY_STATE=str(tmp_path / "state"))

    proc = run_dtf(
        "run", "--task-file", "run.json", "--workers", "1", "--report", "junit=out.xml",
        env=env, cwd=tmp_path,
    )  # fmt: skip

    assert proc.returncode == 1, proc.stderr
    status = json.loads(run_dtf("status", "--json", env=env, cwd=tmp_path).stdout)
    assert status["counts"] == {"passed": 1, "failed": 1, "flaky": 1}

    junit = etree.parse(str(tmp_path / "out.xml"))
    etree.XMLSchema(etree.parse(str(SCHEMA))).assertValid(junit)
    cases = {case.get("name"): case for case in junit.iter("testcase")}
    flaky = cases["test_fails_once_then_passes"]
    assert [e.tag for e in flaky] == ["flakyFailure"]
    assert "first try fails" in flaky.find("flakyFailure/stackTrace").text
    failed = cases["test_always_fails"]
    assert [e.tag for e in failed] == ["failure", "rerunFailure", "rerunFailure"]
    assert len(cases["test_fine"]) == 0

    history = json.loads(run_dtf("flaky", "--json", env=env, cwd=tmp_path).stdout)
    assert [(h["nodeid"], h["times"]) for h in history] == [
        ("test_flaky.py::test_fails_once_then_passes", 1)
    ]


def test_without_reruns_a_failing_test_runs_once(tmp_path):
    (tmp_path / "test_flaky.py").write_text(SUITE)
    env = clean_env(DTF_HOME=str(tmp_path / "home"), FLAKY_STATE=str(tmp_path / "state"))

    proc = run_dtf("run", ".", "--workers", "1", env=env, cwd=tmp_path)

    assert proc.returncode == 1
    status = json.loads(run_dtf("status", "--json", env=env, cwd=tmp_path).stdout)
    assert status["counts"] == {"passed": 1, "failed": 2}
    assert "no flaky test" in run_dtf("flaky", env=env, cwd=tmp_path).stdout
