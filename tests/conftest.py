"""Fixtures that stand up the real services and processes the tests talk to."""

from __future__ import annotations

import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg2
import pytest
import redis
from sqlalchemy import create_engine
from sqlalchemy.orm import Session

from dtf.db.models import Base
from tests.support.processes import WorkerProcess

PG_ADMIN = "host=127.0.0.1 port=5432 user=postgres dbname=test"
REDIS = "redis://127.0.0.1:6379"


@pytest.fixture
def redis_url() -> Iterator[str]:
    """A Redis database of its own for this test, emptied before and after.

    Databases 1..14 are leased with a key in database 15, so that test sessions
    running at the same time (several checkouts, CI beside a developer) never
    share one; database 0 is left to the benchmarks.
    """
    leases = redis.Redis.from_url(f"{REDIS}/15")
    db = _lease_redis_db(leases)
    url = f"{REDIS}/{db}"
    client = redis.Redis.from_url(url)
    client.flushdb()
    try:
        yield url
    finally:
        client.flushdb()
        leases.delete(f"{REDIS_LEASE}{db}")


REDIS_LEASE = "dtf-tests:redis-db-lease:"


def _lease_redis_db(leases: redis.Redis) -> int:
    start = uuid.uuid4().int % 14
    for _ in range(600):
        for offset in range(14):
            db = 1 + (start + offset) % 14
            # Expires on its own if a test session is killed before releasing it.
            if leases.set(f"{REDIS_LEASE}{db}", "1", nx=True, ex=1800):
                return db
        time.sleep(0.5)
    raise RuntimeError("no free Redis database 1..14 after 5 minutes")


@pytest.fixture
def postgres_url() -> Iterator[str]:
    """A fresh PostgreSQL database for this test, dropped afterwards."""
    name = f"dtf_test_{uuid.uuid4().hex[:10]}"
    admin = psycopg2.connect(PG_ADMIN)
    admin.autocommit = True
    with admin.cursor() as cursor:
        cursor.execute(f'CREATE DATABASE "{name}"')
    yield f"postgresql+psycopg2://postgres@127.0.0.1:5432/{name}"
    with admin.cursor() as cursor:
        cursor.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    admin.close()


@pytest.fixture
def rabbitmq_url() -> Iterator[str]:
    """A RabbitMQ virtual host of its own for this test (made with ``rabbitmqctl``, as
    root), deleted afterwards with its queues; user guest on 127.0.0.1:5672."""
    vhost = f"dtf_test_{uuid.uuid4().hex[:10]}"
    _rabbitmqctl("add_vhost", vhost)
    try:
        _rabbitmqctl("set_permissions", "-p", vhost, "guest", ".*", ".*", ".*")
        yield f"amqp://guest:guest@127.0.0.1:5672/{vhost}"
    finally:
        _rabbitmqctl("delete_vhost", vhost)


def _rabbitmqctl(*args: str) -> None:
    proc = subprocess.run(["rabbitmqctl", "-q", *args], capture_output=True, text=True)
    assert proc.returncode == 0, f"rabbitmqctl {' '.join(args)}: {proc.stderr.strip()}"


@pytest.fixture
def cluster_env(tmp_path, redis_url, postgres_url) -> dict[str, str]:
    """What every process of a deployment sees: one broker, one database (schema made)."""
    from tests.support.processes import clean_env, run_dtf

    env = clean_env(
        DTF_BROKER_URL=redis_url, DTF_DATABASE_URL=postgres_url, DTF_HOME=str(tmp_path / "home")
    )
    init = run_dtf("init-db", env=env, cwd=tmp_path)
    assert init.returncode == 0, init.stderr
    return env


@pytest.fixture
def start_worker(tmp_path) -> Iterator:
    """Start real Celery worker processes; all are stopped after the test."""
    workers: list[WorkerProcess] = []

    def start(
        env: dict[str, str],
        queues: str | None = "cpu",
        concurrency: int = 1,
        name: str | None = None,
        prefix: tuple[str, ...] = (),
        **options,
    ) -> WorkerProcess:
        worker = WorkerProcess(
            env, queues, concurrency, name or f"w{len(workers)}", tmp_path, prefix=prefix,
            **options,
        )  # fmt: skip
        workers.append(worker)
        worker.wait_ready()
        return worker

    yield start
    for worker in workers:
        worker.stop()


@pytest.fixture
def session() -> Iterator[Session]:
    """A session on an empty in-memory SQLite database with dtf's tables."""
    engine = create_engine("sqlite://")
    Base.metadata.create_all(engine)
    with Session(engine) as session:
        yield session
    engine.dispose()


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request, tmp_path) -> str:
    """A new, empty database of each kind dtf supports."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'dtf.sqlite'}"
    return request.getfixturevalue("postgres_url")


@pytest.fixture
def embedded_home(tmp_path) -> tuple[Path, str]:
    """An embedded default's home (``DTF_HOME``) with its SQLite schema, and the URL."""
    from dtf.db.schema import ensure_schema

    home = tmp_path / ".dtf"
    home.mkdir()
    url = f"sqlite:///{home / 'dtf.sqlite'}"
    ensure_schema(url, create=True)
    return home, url
