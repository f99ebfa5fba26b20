"""RabbitMQ quorum queues (``DTF_RABBITMQ_QUEUE_TYPE=quorum``): every queue dtf declares
is a quorum queue without ``x-max-priority`` (RabbitMQ refuses it on one), a run goes
through them, and a batch whose worker is killed mid-run comes back from the queue,
stored once. A private virtual host per test."""

from __future__ import annotations

import json
import subprocess
import time

import pytest

from tests.support.processes import WorkerProcess, clean_env, run_dtf

pytestmark = pytest.mark.integration


def queues(vhost: str) -> dict[str, tuple[str, str]]:
    """name -> (type, arguments) of the queues ``vhost`` holds."""
    proc = subprocess.run(
        ["rabbitmqctl", "-q", "list_queues", "-p", vhost, "--no-table-headers",
         "name", "type", "arguments"],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    found = {}
    for line in proc.stdout.splitlines():
        name, kind, arguments = line.split("\t")
        found[name] = (kind, arguments)
    return found


@pytest.fixture
def quorum_env(tmp_path, rabbitmq_url, postgres_url) -> dict[str, str]:
    env = clean_env(
        DTF_BROKER_URL=rabbitmq_url,
        DTF_DATABASE_URL=postgres_url,
        DTF_HOME=str(tmp_path / "home"),
        DTF_RABBITMQ_QUEUE_TYPE="quorum",
    )
    init = run_dtf("init-db", env=env, cwd=tmp_path)
    assert init.returncode == 0, init.stderr
    return env


def write_suite(folder, modules: int, tests: int, seconds: float) -> None:
    folder.mkdir()
    (folder / "pytest.ini").write_text("[pytest]\n")
    for m in range(modules):
        body = "".join(
            f"def test_{t}():\n    import time\n    time.sleep({seconds})\n\n\n"
            for t in range(tests)
        )
        (folder / f"test_m{m}.py").write_text(body)


def test_a_run_goes_through_quorum_queues(tmp_path, quorum_env, start_worker):
    start_worker(quorum_env, queues="cpu", name="quorate")
    write_suite(tmp_path / "suite", modules=2, tests=2, seconds=0)

    ran = run_dtf("run", ".", env=quorum_env, cwd=tmp_path / "suite")

    assert ran.returncode == 0, ran.stdout + ran.stderr
    assert "4 passed" in ran.stdout + ran.stderr
    vhost = quorum_env["DTF_BROKER_URL"].rsplit("/", 1)[1]
    declared = queues(vhost)
    own = [name for name in declared if name.startswith("dtf.worker.quorate")]
    assert len(own) == 1, declared
    for name in ("cpu", "dtf.control", *own):
        kind, arguments = declared[name]
        assert kind == "quorum", (name, kind)
        assert "x-max-priority" not in arguments, (name, arguments)


def test_a_batch_of_a_killed_worker_comes_back_from_its_quorum_queue(
    tmp_path, quorum_env, start_worker
):
    victim = start_worker(quorum_env, queues="cpu", name="victim")
    write_suite(tmp_path / "suite", modules=2, tests=6, seconds=0.3)
    submitted = run_dtf("submit", ".", "--batches", "2", env=quorum_env, cwd=tmp_path / "suite")
    assert submitted.returncode == 0, submitted.stderr
    run_id = submitted.stdout.strip().splitlines()[-1]
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        status = run_dtf("status", run_id, "--json", env=quorum_env, cwd=tmp_path)
        status = json.loads(status.stdout)
        if status.get("finished", 0) >= 2:
            break
        time.sleep(0.2)
    victim.kill()  # the whole process group: the batch it held is unacknowledged
    start_worker(quorum_env, queues="cpu", name="survivor")

    waited = run_dtf("wait", run_id, env=quorum_env, cwd=tmp_path, timeout=180)

    assert waited.returncode == 0, waited.stdout + waited.stderr
    report = json.loads(
        run_dtf("report", run_id, "--format", "json", env=quorum_env, cwd=tmp_path).stdout
    )
    assert report["summary"]["counts"] == {"passed": 12}
    stored = [r["item_id"] for r in report["results"] if r["when"] == "call"]
    assert len(stored) == len(set(stored)) == 12
    workers = {a["worker"] for b in report["batches"] for a in b["attempts"]}
    assert any(w and w.startswith("survivor@") for w in workers), workers


def test_a_quorum_worker_refuses_a_classic_queue_and_says_what_to_do(
    tmp_path, quorum_env, start_worker
):
    classic = {k: v for k, v in quorum_env.items() if k != "DTF_RABBITMQ_QUEUE_TYPE"}
    start_worker(classic, queues="cpu", name="classic")  # declares cpu as dtf always did

    quorate = WorkerProcess(quorum_env, "cpu", 1, "quorate", tmp_path)
    try:
        assert quorate.process.wait(timeout=120) == 2
    finally:
        quorate.stop()
    refused = quorate.stderr_text()
    assert "Traceback" not in refused
    assert "RabbitMQ queue 'cpu' was declared with other arguments than dtf's" in refused
    assert "every dtf process needs the same DTF_RABBITMQ_QUEUE_TYPE" in refused
    assert "rabbitmqctl delete_queue -p dtf_test_" in refused
