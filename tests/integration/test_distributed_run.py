"""The distributed case: Redis broker, PostgreSQL database, separate `celery -A dtf worker`s."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
import toolz
from sqlalchemy import create_engine, func, select

from dtf.db.models import Attempt, Run, TestResult
from tests.support.processes import SUITES, pytest_counts, run_dtf

pytestmark = pytest.mark.integration


def test_two_workers_run_a_suite_into_postgres(tmp_path, cluster_env, start_worker):
    suite = tmp_path / "suite"
    shutil.copytree(SUITES / "outcomes", suite)
    start_worker(cluster_env, queues="cpu", name="alpha")
    start_worker(cluster_env, queues="cpu", name="beta")
    selection = "not test_crash and not test_hang"

    proc = run_dtf(
        "run", ".", "-k", selection, "--junit-xml", "out.xml", env=cluster_env, cwd=suite
    )

    assert proc.returncode == 1, proc.stderr
    counts = json.loads(run_dtf("status", "--json", env=cluster_env, cwd=suite).stdout)["counts"]
    assert counts == pytest_counts(
        ".", "--continue-on-collection-errors", "-k", selection, cwd=suite
    )
    engine = create_engine(cluster_env["DTF_DATABASE_URL"])
    with engine.connect() as db:
        assert db.scalar(select(Run.status)) == "failed"
        assert db.scalar(select(func.count()).select_from(TestResult)) == sum(counts.values())
        workers = set(db.scalars(select(Attempt.worker)))
    engine.dispose()
    assert workers and all(w.startswith(("alpha@", "beta@")) for w in workers)


def test_a_real_third_party_suite_counts_like_pytest(tmp_path, cluster_env, start_worker):
    package = Path(toolz.__file__).parent
    start_worker(cluster_env, queues="cpu", concurrency=2, name="gamma")

    proc = run_dtf("run", "tests", env=cluster_env, cwd=package)

    assert proc.returncode in (0, 1), proc.stderr
    counts = json.loads(run_dtf("status", "--json", env=cluster_env, cwd=package).stdout)["counts"]
    expected = pytest_counts("tests", cwd=package)
    assert counts == expected
    assert expected["passed"] > 100


def test_submit_queues_and_returns_at_once(tmp_path, cluster_env, start_worker):
    (tmp_path / "test_ok.py").write_text("def test_ok():\n    pass\n")
    (tmp_path / "run.json").write_text(json.dumps({"tasks": [{"type": "test", "paths": ["."]}]}))
    start_worker(cluster_env, queues="cpu", name="delta")

    proc = run_dtf("submit", "--task-file", "run.json", env=cluster_env, cwd=tmp_path)

    assert proc.returncode == 0, proc.stderr
    run_id = proc.stdout.strip()
    waited = run_dtf("wait", run_id, "--junit-xml", "out.xml", env=cluster_env, cwd=tmp_path)
    assert waited.returncode == 0, waited.stderr
    assert f"(run {run_id})" in waited.stdout
    status = json.loads(run_dtf("status", run_id, "--json", env=cluster_env, cwd=tmp_path).stdout)
    assert status == {
        "run_id": run_id,
        "status": "passed",
        "total": 1,
        "finished": 1,
        "counts": {"passed": 1},
        "labels": {},
        "ci": None,
        "integrations": [],
        "recoveries": [],
    }
    assert (tmp_path / "out.xml").exists()


def test_wait_for_workers_holds_the_submission_until_a_capable_worker_appears(
    tmp_path, cluster_env, start_worker
):
    (tmp_path / "test_gpu.py").write_text(
        "import pytest\n\n@pytest.mark.dtf(hardware='cuda')\ndef test_gpu():\n    pass\n"
    )
    submitting = subprocess.Popen(
        [sys.executable, "-m", "dtf", "submit", ".", "--wait-for-workers", "120"],
        env=cluster_env, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    time.sleep(1)  # the submission is waiting: nothing serves cuda yet
    assert submitting.poll() is None
    start_worker({**cluster_env, "DTF_FORCE_QUEUES": "cuda"}, queues="cuda", name="late")

    out, err = submitting.communicate(timeout=120)
    assert submitting.returncode == 0, err
    waited = run_dtf("wait", out.strip(), env=cluster_env, cwd=tmp_path)
    assert waited.returncode == 0, waited.stdout + waited.stderr
