"""Fixtures that stand up the real services and processes the tests talk to."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import psycopg2
import pytest
import redis

from tests.support.processes import WorkerProcess

PG_ADMIN = "host=127.0.0.1 port=5432 user=postgres dbname=test"
REDIS = "redis://127.0.0.1:6379"


@pytest.fixture
def redis_url() -> Iterator[str]:
    """A Redis database of its own for this test, emptied before and after."""
    client = redis.Redis.from_url(f"{REDIS}/0")
    # Databases 1..15 are taken round-robin; each test flushes the one it uses.
    db = 1 + uuid.uuid4().int % 15
    url = f"{REDIS}/{db}"
    client = redis.Redis.from_url(url)
    client.flushdb()
    yield url
    client.flushdb()


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
def start_worker(tmp_path) -> Iterator:
    """Start real Celery worker processes; all are stopped after the test."""
    workers: list[WorkerProcess] = []

    def start(
        env: dict[str, str],
        queues: str | None = "cpu",
        concurrency: int = 1,
        name: str | None = None,
        prefix: tuple[str, ...] = (),
    ) -> WorkerProcess:
        worker = WorkerProcess(
            env, queues, concurrency, name or f"w{len(workers)}", tmp_path, prefix=prefix
        )
        workers.append(worker)
        worker.wait_ready()
        return worker

    yield start
    for worker in workers:
        worker.stop()
