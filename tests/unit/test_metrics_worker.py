"""The worker's /metrics server: started only when asked, and a port it cannot have
(another worker on the host took it) never stops the worker."""

from __future__ import annotations

import socket
import subprocess
import sys
import textwrap

import pytest
from dtf.integrations.metrics.worker import metrics_port

from tests.support.processes import REPO, clean_env

# Runs setup() the way celeryd_init does, in a fresh interpreter (it changes the
# process's environment and prometheus_client's mode), then reports what it did.
PROBE = textwrap.dedent(
    """
    import logging, os, sys, urllib.request
    logging.basicConfig(level=logging.INFO, stream=sys.stdout, format="%(message)s")
    from dtf import app
    from dtf.integrations.metrics import worker
    worker.setup(app)
    print("enabled", worker.metrics_enabled())
    if worker.metrics_enabled():
        from dtf.integrations.metrics import instruments
        instruments.result_stored({"batch_id": "b", "outcome": "passed", "duration": 0.2})
        port = os.environ["DTF_METRICS_PORT"]
        body = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics").read().decode()
        print([line for line in body.splitlines() if line.startswith("dtf_tests_total")])
    """
)


def probe(tmp_path, **env: str) -> str:
    proc = subprocess.run(
        [sys.executable, "-c", PROBE],
        env=clean_env(
            DTF_HOME=str(tmp_path), DTF_METRICS_ADDR="127.0.0.1", TMPDIR=str(tmp_path), **env
        ),
        cwd=REPO, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_without_a_port_there_is_no_server(tmp_path):
    assert "enabled False" in probe(tmp_path)


def test_a_port_serves_the_pool_processes_sum(tmp_path):
    out = probe(tmp_path, DTF_METRICS_PORT=str(free_port()))
    assert "enabled True" in out
    assert 'dtf_tests_total{outcome="passed",queue="unknown"} 1.0' in out


def test_a_taken_port_is_logged_and_the_worker_goes_on(tmp_path):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        out = probe(tmp_path, DTF_METRICS_PORT=str(port))
    assert f"dtf: no /metrics endpoint on 127.0.0.1:{port}:" in out
    assert "enabled False" in out


def test_a_bad_port_is_named():
    assert metrics_port({}) is None
    assert metrics_port({"DTF_METRICS_PORT": "9100"}) == 9100
    with pytest.raises(ValueError, match=r"DTF_METRICS_PORT: expected a TCP port 1\.\.65535"):
        metrics_port({"DTF_METRICS_PORT": "http"})
