"""``dtf run`` and ``dtf wait`` ride out a database outage while they wait for a run.

dtf and its worker reach PostgreSQL through a TCP proxy the test cuts: the workers keep
their results and store them once the database is back; the waiting command says when
the database went and when it came back, and ends with the run's real verdict. Past
``DTF_DB_OUTAGE_S`` it gives up with one line saying how to resume: ``dtf wait RUN``.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time

import pytest
from sqlalchemy import create_engine, text

from tests.support.processes import clean_env, pytest_counts, run_dtf
from tests.support.tcp_proxy import TcpProxy

pytestmark = pytest.mark.integration

#: 36 pass, 2 fail, 1 is skipped: about 20 s on one worker, results all along.
SUITE = "import time\n\nimport pytest\n\n" + "".join(
    f"def test_{i}():\n    time.sleep(0.5)\n    assert {i} not in (7, 21)\n\n" for i in range(38)
) + "@pytest.mark.skip\ndef test_skipped():\n    pass\n"  # fmt: skip
OUTAGE_S = 10


@pytest.fixture
def proxy():
    with TcpProxy() as proxy:
        yield proxy


@pytest.fixture
def project(tmp_path, redis_url, postgres_url, proxy, start_worker):
    """A suite, and an env whose database is PostgreSQL behind ``proxy``, with a worker
    that reaches it through the proxy too."""
    (tmp_path / "test_suite.py").write_text(SUITE)
    env = clean_env(
        DTF_BROKER_URL=redis_url,
        DTF_DATABASE_URL=proxy.url(postgres_url),
        DTF_HOME=str(tmp_path / "home"),
        DTF_HEARTBEAT_INTERVAL="2",
    )
    assert run_dtf("init-db", env=env, cwd=tmp_path).returncode == 0
    start_worker(env, queues="cpu", name="patient")
    return tmp_path, env


def start_dtf(*args: str, env: dict[str, str], cwd) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "dtf", *args],
        env=env, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip


def wait_for_results(process: subprocess.Popen, db_url: str, at_least: int = 1) -> None:
    """Until the run has stored a result (read past the proxy); fails if dtf ends first."""
    engine = create_engine(db_url)
    try:
        while process.poll() is None:
            with engine.connect() as connection:
                if connection.scalar(text("select count(*) from test_results")) >= at_least:
                    return
            time.sleep(0.1)
    finally:
        engine.dispose()
    out, err = process.communicate()
    raise AssertionError(f"dtf ended before the run had results:\n{out}\n{err}")


def status_of(run_id: str, env, cwd) -> dict:
    proc = run_dtf("status", run_id, "--json", env=env, cwd=cwd)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


def run_id_of(stdout: str) -> str:
    found = re.search(r"\(run (\w+)\)\s*$", stdout)
    assert found, stdout
    return found.group(1)


def test_dtf_run_rides_out_a_database_outage_and_ends_with_the_real_verdict(
    project, postgres_url, proxy
):
    cwd, env = project
    dtf = start_dtf("run", "test_suite.py", env=env, cwd=cwd)
    wait_for_results(dtf, postgres_url)

    proxy.cut()
    time.sleep(OUTAGE_S)
    proxy.restore()
    out, err = dtf.communicate(timeout=600)

    assert dtf.returncode == 1, (out, err)  # two tests fail: the run's verdict, not exit 3
    assert "Traceback" not in out + err
    lost = [line for line in err.splitlines() if line.startswith("dtf: lost the database")]
    back = [line for line in err.splitlines() if line.startswith("dtf: the database is back")]
    assert len(lost) == 1 and len(back) == 1, err
    run_id = run_id_of(out)
    assert f"run {run_id} goes on" in lost[0] and "up to 300 s (DTF_DB_OUTAGE_S)" in lost[0]
    assert f"following run {run_id}" in back[0]
    assert "password" not in err

    expected = pytest_counts("test_suite.py", cwd=cwd)
    assert expected == {"passed": 36, "failed": 2, "skipped": 1}
    status = status_of(run_id, env, cwd)
    assert status["counts"] == expected and status["status"] == "failed"
    assert out.splitlines()[-1] == (f"dtf: failed: 36 passed, 2 failed, 1 skipped (run {run_id})")


def test_past_the_limit_dtf_run_gives_up_and_dtf_wait_resumes(project, postgres_url, proxy):
    cwd, env = project
    dtf = start_dtf("run", "test_suite.py", env={**env, "DTF_DB_OUTAGE_S": "3"}, cwd=cwd)
    wait_for_results(dtf, postgres_url)

    proxy.cut()
    out, err = dtf.communicate(timeout=600)
    proxy.restore()

    assert dtf.returncode == 3, (out, err)
    assert "Traceback" not in out + err
    lines = err.strip().splitlines()
    lost = [line for line in lines if line.startswith("dtf: lost the database at ")]
    assert len(lost) == 1, err
    run_id = re.search(r"run (\w+) goes on", lost[0]).group(1)
    assert re.fullmatch(
        r"dtf: error: the database at \S+ has been unreachable for 3 s \(.+\); "
        rf"run {run_id} goes on: `dtf wait {run_id}` resumes waiting for it",
        lines[-1],
    ), lines[-1]

    resumed = run_dtf("wait", run_id, env=env, cwd=cwd)
    assert resumed.returncode == 1, resumed.stderr
    assert status_of(run_id, env, cwd)["counts"] == {"passed": 36, "failed": 2, "skipped": 1}


def test_dtf_wait_rides_out_a_database_outage_too(project, postgres_url, proxy):
    cwd, env = project
    submitted = run_dtf("submit", "test_suite.py", env=env, cwd=cwd)
    assert submitted.returncode == 0, submitted.stderr
    run_id = submitted.stdout.strip()
    dtf = start_dtf("wait", run_id, env=env, cwd=cwd)
    wait_for_results(dtf, postgres_url)

    proxy.cut("reset")
    time.sleep(OUTAGE_S)
    proxy.restore()
    out, err = dtf.communicate(timeout=600)

    assert dtf.returncode == 1, (out, err)
    assert len(re.findall(r"^dtf: lost the database", err, re.M)) == 1, err
    assert len(re.findall(r"^dtf: the database is back", err, re.M)) == 1, err
    assert out.splitlines()[-1] == f"dtf: failed: 36 passed, 2 failed, 1 skipped (run {run_id})"


# What counts as an outage that may pass


def test_a_refused_reset_or_silent_database_may_pass_a_wrong_name_will_not(
    tmp_path, postgres_url, proxy
):
    env = clean_env(DTF_DATABASE_URL=proxy.url(postgres_url), DTF_HOME=str(tmp_path / "h"))
    assert run_dtf("init-db", env=env, cwd=tmp_path).returncode == 0
    for mode, reason in [
        ("refuse", "Connection refused"),
        ("reset", "Connection reset by peer|server closed the connection unexpectedly"),
        ("hold", "timeout expired"),  # connect_timeout: dtf's 10 s default
    ]:
        proxy.cut(mode)
        proc = run_dtf("status", env=env, cwd=tmp_path)
        proxy.restore()
        assert proc.returncode == 3, proc.stderr
        assert proc.stderr.startswith("dtf: error: cannot reach the database"), proc.stderr
        assert re.search(reason, proc.stderr), proc.stderr

    from dtf.db.session import session_scope
    from dtf.errors import DatabaseUnreachable, InfrastructureError

    proxy.cut()
    with pytest.raises(DatabaseUnreachable), session_scope(proxy.url(postgres_url)) as session:
        session.execute(text("select 1"))
    proxy.restore()
    missing = postgres_url + "_missing"
    with pytest.raises(InfrastructureError) as info, session_scope(missing) as session:
        session.execute(text("select 1"))
    assert "does not exist" in str(info.value)
    assert not isinstance(info.value, DatabaseUnreachable)


def test_a_bad_outage_limit_is_refused_before_anything_is_sent(tmp_path):
    (tmp_path / "test_one.py").write_text("def test_one():\n    pass\n")
    env = clean_env(DTF_HOME=str(tmp_path / "home"), DTF_DB_OUTAGE_S="a while")
    proc = run_dtf("run", "--workers", "1", env=env, cwd=tmp_path)
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr == (
        "dtf: error: DTF_DB_OUTAGE_S must be a number of seconds, 0 or more; got 'a while'\n"
    )
    assert not (tmp_path / "home").exists()
