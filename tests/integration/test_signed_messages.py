"""Signed messages (DTF_SIGNING_*): a deployment whose processes sign every message, and
a worker that refuses what is not signed by a certificate of its store: an unsigned
task, a task signed by an unknown key, and an unsigned `celery control shutdown`."""

from __future__ import annotations

import re
import subprocess
import time
from pathlib import Path

import pytest
from celery import Celery

from tests.support.processes import run_dtf

pytestmark = pytest.mark.integration


def identity(folder: Path, name: str) -> tuple[Path, Path]:
    """A private key and a self-signed certificate, made by openssl."""
    folder.mkdir(parents=True, exist_ok=True)
    key, cert = folder / f"{name}.key", folder / f"{name}.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
         "-subj", f"/CN={name}", "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True,
    )  # fmt: skip
    return key, cert


def suite(tmp_path: Path) -> Path:
    root = tmp_path / "suite"
    root.mkdir()
    (root / "pytest.ini").write_text("[pytest]\n")
    (root / "test_one.py").write_text("def test_one():\n    pass\n\ndef test_two():\n    pass\n")
    return root


def log_shows(worker, pattern: str) -> bool:
    """Whether the worker's log comes to show ``pattern`` (False if the worker ends first)."""
    while worker.process.poll() is None:
        if re.search(pattern, worker.log.read_text(errors="replace")):
            return True
        time.sleep(0.2)
    return False


def unsigned_app(broker_url: str) -> Celery:
    return Celery("outsider", broker=broker_url, set_as_current=False)


def test_a_signing_deployment_runs_and_its_workers_refuse_what_is_not_signed(
    tmp_path, cluster_env, start_worker
):
    key, cert = identity(tmp_path / "store", "dtf")
    env = {
        **cluster_env,
        "DTF_SIGNING_KEY": str(key),
        "DTF_SIGNING_CERT": str(cert),
        "DTF_SIGNING_CERT_STORE": str(tmp_path / "store" / "*.pem"),
    }
    worker = start_worker(env, queues="cpu", name="signed")
    root = suite(tmp_path)

    ran = run_dtf("run", ".", env=env, cwd=root)
    assert ran.returncode == 0, ran.stdout + ran.stderr

    # Whoever can write to the broker, without the key: a task in JSON is refused.
    outsider = unsigned_app(cluster_env["DTF_BROKER_URL"])
    outsider.send_task("dtf.execute_command", args=[1], queue="cpu")
    assert log_shows(worker, r"untrusted content|Refusing to deserialize")

    # ...and so is remote control: the worker does not shut down.
    outsider.control.broadcast("shutdown")
    again = run_dtf("run", ".", env=env, cwd=root)
    assert again.returncode == 0, again.stdout + again.stderr
    assert worker.process.poll() is None


def test_a_message_signed_by_a_key_outside_the_store_is_refused(
    tmp_path, cluster_env, start_worker
):
    key, cert = identity(tmp_path / "store", "dtf")
    intruder_key, intruder_cert = identity(tmp_path / "elsewhere", "intruder")
    store = str(tmp_path / "store" / "*.pem")
    env = {**cluster_env, "DTF_SIGNING_KEY": str(key), "DTF_SIGNING_CERT": str(cert),
           "DTF_SIGNING_CERT_STORE": store}  # fmt: skip
    worker = start_worker(env, queues="cpu", name="signed")
    intruder = {**env, "DTF_SIGNING_KEY": str(intruder_key),
                "DTF_SIGNING_CERT": str(intruder_cert)}  # fmt: skip

    refused = run_dtf("submit", ".", env=intruder, cwd=suite(tmp_path))

    assert refused.returncode == 0, refused.stderr  # the broker took it...
    assert log_shows(worker, r"Unknown certificate: b'intruder")  # ...the worker not


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        (
            {"DTF_SIGNING_KEY": "/nowhere/key.pem"},
            "signed messages need DTF_SIGNING_KEY, DTF_SIGNING_CERT, DTF_SIGNING_CERT_STORE; "
            "DTF_SIGNING_CERT and DTF_SIGNING_CERT_STORE are not set (unset all three to "
            "send unsigned JSON)",
        ),
        (
            {"DTF_SIGNING_KEY": "/nowhere/key.pem", "DTF_SIGNING_CERT": "/nowhere/c.pem",
             "DTF_SIGNING_CERT_STORE": "/nowhere"},
            "DTF_SIGNING_KEY: no such file '/nowhere/key.pem'",
        ),
    ],
)  # fmt: skip
def test_incomplete_signing_settings_are_one_line(tmp_path, cluster_env, settings, message):
    shown = run_dtf("submit", ".", env={**cluster_env, **settings}, cwd=suite(tmp_path))

    assert shown.returncode == 2
    assert shown.stderr.strip() == f"dtf: error: {message}"
