"""`dtf run` with nothing configured: filesystem broker, SQLite, local worker processes."""

from __future__ import annotations

import json
import shutil

import pytest
from junitparser import JUnitXml

from tests.support.processes import REPO, SUITES, clean_env, pytest_counts, run_dtf

pytestmark = pytest.mark.integration

CRASH_AND_HANG = (
    "--deselect",
    "test_crash.py::test_crash",
    "--deselect",
    "test_hang.py::test_hang",
)


@pytest.fixture
def outcomes_suite(tmp_path):
    suite = tmp_path / "suite"
    shutil.copytree(SUITES / "outcomes", suite)
    return suite


def junit_totals(path) -> dict[str, int]:
    xml = JUnitXml.fromfile(str(path))
    suites = list(xml) if isinstance(xml, JUnitXml) else [xml]
    return {
        "tests": sum(s.tests for s in suites),
        "failures": sum(s.failures for s in suites),
        "errors": sum(s.errors for s in suites),
        "skipped": sum(s.skipped for s in suites),
    }


def test_counts_equal_plain_pytest_and_crash_and_hang_are_reported(outcomes_suite):
    env = clean_env()
    proc = run_dtf(
        "run", ".", "--workers", "2", "--timeout", "5", "--junit-xml", "dtf.xml",
        env=env, cwd=outcomes_suite,
    )  # fmt: skip

    assert proc.returncode == 1, proc.stderr
    assert "Traceback" not in proc.stdout + proc.stderr
    status = json.loads(run_dtf("status", "--json", env=env, cwd=outcomes_suite).stdout)
    counts = status["counts"]
    assert counts.pop("crashed") == 1
    assert counts.pop("timed_out") == 1
    # Plain pytest dies with the os._exit test and hangs on the sleeping one;
    # everything else must count the same (dtf runs past collection errors).
    expected = pytest_counts(
        ".", "--continue-on-collection-errors", *CRASH_AND_HANG, cwd=outcomes_suite
    )
    assert counts == expected
    assert "test_crash.py::test_crash" in proc.stdout
    # The summary line says what happened, not the heading of the output tails.
    crash_line = next(line for line in proc.stdout.splitlines() if "::test_crash " in line)
    assert "pytest child exited with code 3 while this test was running" in crash_line
    assert "--- stderr" not in proc.stdout
    assert "dtf: failed:" in proc.stdout


def test_junit_xml_has_the_counts_pytest_writes(outcomes_suite):
    env = clean_env()
    run_dtf(
        "run", ".", "-k", "not test_crash and not test_hang", "--workers", "2",
        "--junit-xml", "dtf.xml", env=env, cwd=outcomes_suite,
    )  # fmt: skip
    pytest_counts(
        ".", "--continue-on-collection-errors", "-k", "not test_crash and not test_hang",
        "--junitxml", "pytest.xml", cwd=outcomes_suite,
    )  # fmt: skip

    assert junit_totals(outcomes_suite / "dtf.xml") == junit_totals(outcomes_suite / "pytest.xml")
    exported = run_dtf("results", "--format", "junit", env=env, cwd=outcomes_suite).stdout
    assert exported == (outcomes_suite / "dtf.xml").read_text()


def test_results_json_holds_every_result_with_output(outcomes_suite):
    env = clean_env()
    run_dtf("run", "test_outcomes.py", "--workers", "1", env=env, cwd=outcomes_suite)
    data = json.loads(run_dtf("results", "--format", "json", env=env, cwd=outcomes_suite).stdout)

    results = {(r["nodeid"], r["when"]): r for r in data["results"]}
    assert results[("test_outcomes.py::test_prints", "call")]["stdout"] == "hello on stdout\n"
    assert results[("test_outcomes.py::test_prints", "call")]["stderr"] == "hello on stderr\n"
    assert results[("test_outcomes.py::test_teardown_error_after_pass", "teardown")]["outcome"] == (
        "error"
    )
    assert "test_outcomes.py::test_odd_ids[a b]" in {r["nodeid"] for r in data["results"]}
    assert data["summary"]["status"] == "failed"
    assert all(b["status"] == "done" and b["attempts"] for b in data["batches"])
    assert all(item["outcome"] for item in data["items"])


def test_a_passing_run_exits_zero_and_leaves_no_worker_behind(tmp_path):
    (tmp_path / "test_ok.py").write_text("def test_one():\n    pass\n\ndef test_two():\n    pass\n")
    proc = run_dtf("run", ".", "--workers", "2", env=clean_env(), cwd=tmp_path)

    assert proc.returncode == 0, proc.stderr
    assert "dtf: passed: 2 passed" in proc.stdout
    assert (tmp_path / ".dtf" / "dtf.sqlite").exists()
    registry = run_dtf("workers", "--json", env=clean_env(), cwd=tmp_path)
    assert json.loads(registry.stdout) == []


def test_bundle_mode_runs_the_tests_from_the_fetched_bundle(tmp_path):
    (tmp_path / "test_ok.py").write_text("import os\n\ndef test_cwd():\n    print(os.getcwd())\n")
    proc = run_dtf("run", ".", "--code", "bundle", "--workers", "1", env=clean_env(), cwd=tmp_path)

    assert proc.returncode == 0, proc.stdout + proc.stderr
    data = json.loads(run_dtf("results", env=clean_env(), cwd=tmp_path).stdout)
    bundle = data["run"]["bundle"]
    (result,) = data["results"]
    assert result["stdout"].strip() == str(tmp_path / ".dtf" / "bundles" / bundle)


def test_a_task_file_mixes_tests_and_commands(tmp_path):
    (tmp_path / "test_ok.py").write_text("def test_one():\n    pass\n")
    (tmp_path / "run.yaml").write_text(
        "name: mixed\n"
        "tasks:\n"
        "  - type: test\n"
        "    paths: [test_ok.py]\n"
        "  - type: command\n"
        "    name: greet\n"
        "    command: echo hello from $WHO; exit 3\n"
        "    env: {WHO: dtf}\n"
    )
    env = clean_env()
    proc = run_dtf("run", "--task-file", "run.yaml", "--workers", "1", env=env, cwd=tmp_path)

    assert proc.returncode == 1, proc.stderr
    data = json.loads(run_dtf("results", env=env, cwd=tmp_path).stdout)
    command = next(t for t in data["tasks"] if t["type"] == "command")
    assert command["exit_code"] == 3
    assert command["output"].strip() == "hello from dtf"
    assert data["summary"]["counts"] == {"passed": 1}


def test_the_readme_sample_run_passes(tmp_path):
    env = clean_env(DTF_HOME=str(tmp_path / "home"))
    proc = run_dtf("run", "examples/sample_suite", env=env, cwd=REPO)

    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "dtf: passed: 7 passed, 1 xfailed" in proc.stdout


def test_the_example_task_files_run(tmp_path):
    env = clean_env(DTF_HOME=str(tmp_path / "home"))
    for task_file in ("examples/run.json", "examples/run.yaml"):
        proc = run_dtf("run", "--task-file", task_file, "--workers", "2", env=env, cwd=REPO)
        assert proc.returncode == 0, proc.stdout + proc.stderr
        assert "1/1 commands" in proc.stdout
