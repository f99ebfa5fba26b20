"""Two hosts for real: a cpu worker and a cuda worker in their own network namespaces.

Each namespace reaches Redis and PostgreSQL only over its veth pair. The run
is submitted in bundle mode and its project directory is deleted before the
workers start, so the tests can only run from the bundle each worker fetched.
"""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import time
from contextlib import ExitStack

import pytest

from tests.support.netns import TcpForwarder, namespace_host
from tests.support.processes import clean_env, run_dtf

pytestmark = pytest.mark.integration

MIXED_SUITE = """
import os

import pytest


def where():
    print(os.readlink("/proc/self/ns/net"))


def test_cpu_one():
    where()


def test_cpu_two():
    where()


@pytest.mark.dtf(hardware="cuda")
def test_gpu_one():
    where()


@pytest.mark.dtf(hardware="cuda")
def test_gpu_two():
    where()
"""


def free_port(host: str) -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def wait_for_port(host: str, port: int) -> None:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            socket.create_connection((host, port), timeout=0.2).close()
            return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"nothing listens on {host}:{port}")


def test_each_test_runs_in_the_namespace_of_its_hardware(tmp_path, postgres_url, start_worker):
    with ExitStack() as cleanup:
        cpu_host = cleanup.enter_context(namespace_host(subnet=41))
        gpu_host = cleanup.enter_context(namespace_host(subnet=42))

        redis_port = free_port("127.0.0.1")
        redis = subprocess.Popen(
            ["redis-server", "--port", str(redis_port), "--save", "", "--appendonly", "no",
             "--requirepass", "two-hosts", "--bind", "127.0.0.1", cpu_host.gateway,
             gpu_host.gateway],
            stdout=subprocess.DEVNULL,
        )  # fmt: skip
        cleanup.callback(redis.wait)
        cleanup.callback(redis.kill)
        wait_for_port("127.0.0.1", redis_port)
        postgres = TcpForwarder([cpu_host.gateway, gpu_host.gateway], ("127.0.0.1", 5432)).start()
        cleanup.callback(postgres.stop)
        pg_ports = postgres.ports()
        database = postgres_url.rsplit("/", 1)[1]

        def env_on(host, **extra: str) -> dict[str, str]:
            home = tmp_path / host.name
            home.mkdir(exist_ok=True)
            return clean_env(
                DTF_BROKER_URL=f"redis://:two-hosts@{host.gateway}:{redis_port}/0",
                DTF_DATABASE_URL=(
                    f"postgresql+psycopg2://postgres@{host.gateway}:{pg_ports[host.gateway]}/"
                    f"{database}"
                ),
                DTF_HOME=str(home),
                DTF_HEARTBEAT_INTERVAL="2",
                **extra,
            )

        here = clean_env(
            DTF_BROKER_URL=f"redis://:two-hosts@127.0.0.1:{redis_port}/0",
            DTF_DATABASE_URL=postgres_url,
            DTF_HOME=str(tmp_path / "submitter"),
        )
        assert run_dtf("init-db", env=here, cwd=tmp_path).returncode == 0
        cpu_worker = start_worker(
            env_on(cpu_host), queues="cpu", name="cpu", prefix=cpu_host.command()
        )
        gpu_worker = start_worker(
            env_on(gpu_host, DTF_FORCE_QUEUES="cuda"), queues="cuda", name="gpu",
            prefix=gpu_host.command(),
        )  # fmt: skip
        cleanup.callback(cpu_worker.stop)
        cleanup.callback(gpu_worker.stop)

        project = tmp_path / "project"
        project.mkdir()
        (project / "test_mixed.py").write_text(MIXED_SUITE)
        submitted = run_dtf(
            "submit", ".", "--code", "bundle", "--wait-for-workers", "30", env=here, cwd=project
        )
        assert submitted.returncode == 0, submitted.stderr
        run_id = submitted.stdout.strip()
        shutil.rmtree(project)  # no shared filesystem: only the bundle has the code

        waited = run_dtf("wait", run_id, env=here, cwd=tmp_path, timeout=180)
        assert waited.returncode == 0, waited.stdout + waited.stderr

        data = json.loads(run_dtf("results", run_id, env=here, cwd=tmp_path).stdout)
        ran_in = {r["nodeid"].split("::")[1]: r["stdout"].strip() for r in data["results"]}
        cpu_ns, gpu_ns = cpu_host.netns_id(), gpu_host.netns_id()
        assert cpu_ns != gpu_ns
        assert ran_in == {
            "test_cpu_one": cpu_ns,
            "test_cpu_two": cpu_ns,
            "test_gpu_one": gpu_ns,
            "test_gpu_two": gpu_ns,
        }
        assert data["summary"]["counts"] == {"passed": 4}
        assert {b["queue"] for b in data["batches"]} == {"cpu", "cuda"}
        assert data["run"]["bundle"]
        for host in (cpu_host, gpu_host):
            assert (tmp_path / host.name / "bundles" / data["run"]["bundle"]).is_dir()
