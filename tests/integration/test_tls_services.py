"""dtf over TLS: a TLS-only Redis with an ACL user, a PostgreSQL that takes passwords over
``hostssl`` only, both with certificates of a private CA that every dtf process verifies.

The URL forms are the ones the README's "TLS and ACL users" section gives:
``rediss://USER:PASSWORD@HOST:PORT/DB?ssl_cert_reqs=required&ssl_ca_certs=CA`` for the
broker (and so the result backend and the chord), and
``postgresql+psycopg2://USER:PASSWORD@HOST:PORT/DB?sslmode=verify-full&sslrootcert=CA``.
AMQPS (``amqps://`` with ``broker_use_ssl`` in a site's settings module) is checked up
to the TLS handshake only: a TLS RabbitMQ would mean reconfiguring the system's broker.
"""

from __future__ import annotations

import itertools
import json
import subprocess
import time
import uuid
from collections.abc import Iterator
from urllib.parse import quote

import pytest

from tests.support.processes import WorkerProcess, clean_env, run_dtf
from tests.support.tls_services import (
    SERVER_NAMES,
    CertificateAuthority,
    TlsListener,
    TlsPostgres,
    TlsRedis,
)

pytestmark = pytest.mark.integration

SUITE = "".join(f"def test_{i}():\n    assert {i} == {i}\n\n" for i in range(4))
#: a hang guard only: a worker normally says it cannot connect within a second
WORKER_LOG_TIMEOUT_S = 120


@pytest.fixture(scope="module")
def ca(tmp_path_factory) -> CertificateAuthority:
    return CertificateAuthority.create(tmp_path_factory.mktemp("ca"))


@pytest.fixture(scope="module")
def other_ca(tmp_path_factory) -> CertificateAuthority:
    """A CA that signed none of the servers' certificates."""
    return CertificateAuthority.create(tmp_path_factory.mktemp("other-ca"), "another CA")


#: Passwords with characters a URL must percent-encode (``/``, ``@``, ``:``, space).
REDIS_PASSWORD = "s3cret/redis@tls:1"
PG_PASSWORD = "s3cret pg@tls:2"


@pytest.fixture(scope="module")
def tls_redis(ca) -> Iterator[TlsRedis]:
    server = TlsRedis(ca, password=REDIS_PASSWORD).start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def tls_postgres(ca) -> Iterator[TlsPostgres]:
    server = TlsPostgres(ca, password=PG_PASSWORD).start()
    yield server
    server.stop()


_databases = itertools.count()


@pytest.fixture
def redis_db(tls_redis) -> Iterator[int]:
    """A Redis database number of this test's own on the TLS server, emptied around it;
    its ACL log is reset too."""
    db = 1 + next(_databases) % 15
    admin = tls_redis.admin(db)
    admin.flushdb()
    admin.acl_log_reset()
    yield db
    admin.flushdb()
    admin.close()


@pytest.fixture
def tls_env(tmp_path, tls_redis, tls_postgres, redis_db) -> dict[str, str]:
    """Every dtf process's settings: the TLS broker as the ACL user, a new database on
    the TLS PostgreSQL (no schema yet)."""
    database = tls_postgres.create_database(f"dtf_{uuid.uuid4().hex[:10]}")
    return clean_env(
        DTF_BROKER_URL=tls_redis.url(redis_db),
        DTF_DATABASE_URL=tls_postgres.url(database),
        DTF_HOME=str(tmp_path / "home"),
    )


@pytest.fixture
def ready_env(tls_env, tmp_path) -> dict[str, str]:
    """:func:`tls_env` with dtf's schema made."""
    init = run_dtf("init-db", env=tls_env, cwd=tmp_path)
    assert init.returncode == 0, init.stderr
    return tls_env


@pytest.fixture
def suite(tmp_path):
    folder = tmp_path / "suite"
    folder.mkdir()
    (folder / "test_four.py").write_text(SUITE)
    return folder


def secrets(tls_redis: TlsRedis, tls_postgres: TlsPostgres) -> tuple[str, ...]:
    """The passwords, as typed and as percent-encoded in the URLs."""
    typed = (tls_redis.password, tls_postgres.password)
    return (*typed, *(quote(secret, safe="") for secret in typed))


def assert_no_secret(text: str, tls_redis: TlsRedis, tls_postgres: TlsPostgres) -> None:
    for secret in secrets(tls_redis, tls_postgres):
        assert secret not in text


def assert_one_line_error(proc: subprocess.CompletedProcess, *fragments: str) -> None:
    """dtf's infrastructure error: exit 3, one line on stderr, no traceback."""
    assert proc.returncode == 3, (proc.stdout, proc.stderr)
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("dtf: error: ")
    assert "Traceback" not in proc.stdout + proc.stderr
    for fragment in fragments:
        assert fragment in lines[0], lines[0]


def test_a_run_over_tls_redis_and_tls_postgres_passes(
    tmp_path, tls_env, suite, start_worker, tls_redis, tls_postgres, redis_db
):
    init = run_dtf("init-db", env=tls_env, cwd=tmp_path)
    assert init.returncode == 0, init.stderr
    assert "postgresql+psycopg2://dtf:***@localhost" in init.stdout
    worker = start_worker(tls_env, queues="cpu", concurrency=2, name="tls")

    run = run_dtf("run", ".", env=tls_env, cwd=suite)
    workers = run_dtf("workers", env=tls_env, cwd=suite)

    assert run.returncode == 0, run.stderr
    status = json.loads(run_dtf("status", "--json", env=tls_env, cwd=suite).stdout)
    assert status["status"] == "passed"
    assert status["counts"] == {"passed": 4}
    assert workers.returncode == 0, workers.stderr
    assert "tls@" in workers.stdout
    for text in (init.stdout, init.stderr, run.stdout, run.stderr, workers.stdout,
                 workers.stderr, worker.log.read_text(), worker.stderr_text()):  # fmt: skip
        assert_no_secret(text, tls_redis, tls_postgres)
    # The ACL user's rights were enough for every command dtf, Celery and kombu sent.
    assert tls_redis.admin().acl_log() == []
    # The worker's database connections are TLS (pg_hba.conf allows no other).
    connections = tls_postgres.psql(
        "SELECT count(*) FILTER (WHERE s.ssl), count(*) FILTER (WHERE NOT s.ssl) "
        "FROM pg_stat_activity a JOIN pg_stat_ssl s USING (pid) WHERE a.usename = 'dtf'"
    )
    encrypted, plain = connections.strip().split("|")
    assert int(encrypted) >= 1
    assert plain == "0"


def test_a_rediss_url_without_ssl_cert_reqs_still_verifies_the_certificate(
    tmp_path, ready_env, suite, start_worker, tls_redis, redis_db, ca
):
    # Only the CA: dtf requires a verified certificate (Celery's Redis result backend
    # alone would refuse this URL, and kombu would not check the certificate).
    secret = quote(tls_redis.password, safe="")
    short = f"rediss://dtf:{secret}@localhost:{tls_redis.port}/{redis_db}"
    env = {**ready_env, "DTF_BROKER_URL": f"{short}?ssl_ca_certs={ca.cert}"}
    start_worker(env, queues="cpu", name="short")
    run = run_dtf("run", ".", env=env, cwd=suite)
    assert run.returncode == 0, run.stderr

    # Nothing at all: the system's CAs, which do not include the private one.
    bare = run_dtf("run", ".", env={**ready_env, "DTF_BROKER_URL": short}, cwd=suite)
    assert_one_line_error(bare, "cannot reach the broker at rediss://dtf:***@", "CERTIFICATE")
    assert secret not in bare.stderr


@pytest.mark.parametrize(
    ("case", "reason"),
    [
        ("a CA that did not sign the server's certificate", "CERTIFICATE_VERIFY_FAILED"),
        ("plain redis:// to the TLS port", "Connection reset by peer"),
        ("a wrong ACL password", "invalid username-password pair"),
        ("a certificate that names another host", "Hostname mismatch"),
    ],
)
def test_a_broker_that_cannot_be_trusted_or_entered_is_a_one_line_error(
    case, reason, tmp_path, ready_env, suite, tls_redis, tls_postgres, redis_db, ca, other_ca
):
    elsewhere = None
    if case.startswith("a CA"):
        url = tls_redis.url(redis_db, ca=other_ca.cert)
    elif case.startswith("plain"):
        url = tls_redis.url(redis_db, scheme="redis")
    elif case.startswith("a wrong"):
        url = tls_redis.url(redis_db, password="not-the-password")
    else:
        names = ("DNS:elsewhere.invalid",)
        elsewhere = TlsRedis(ca, password=tls_redis.password, names=names).start()
        url = elsewhere.url(redis_db)
    try:
        proc = run_dtf("run", ".", env={**ready_env, "DTF_BROKER_URL": url}, cwd=suite)
    finally:
        if elsewhere is not None:
            elsewhere.stop()

    scheme = "redis" if case.startswith("plain") else "rediss"
    assert_one_line_error(proc, f"cannot reach the broker at {scheme}://dtf:***@", reason)
    assert_no_secret(proc.stdout + proc.stderr, tls_redis, tls_postgres)
    assert "not-the-password" not in proc.stderr


@pytest.mark.parametrize(
    ("case", "reason"),
    [
        ("a CA that did not sign the server's certificate", "certificate verify failed"),
        ("a wrong password", 'password authentication failed for user "dtf"'),
        ("no TLS (sslmode=disable)", "no encryption"),
    ],
)
def test_a_database_that_cannot_be_trusted_or_entered_is_a_one_line_error(
    case, reason, tmp_path, ready_env, suite, tls_redis, tls_postgres, other_ca
):
    database = ready_env["DTF_DATABASE_URL"].split("/")[-1].split("?")[0]
    if case.startswith("a CA"):
        url = tls_postgres.url(database, ca=other_ca.cert)
    elif case.startswith("a wrong"):
        url = tls_postgres.url(database, password="not-the-password")
    else:
        url = tls_postgres.url(database, sslmode="disable")
    env = {**ready_env, "DTF_DATABASE_URL": url}

    for command in (("init-db",), ("workers",), ("run", ".")):
        proc = run_dtf(*command, env=env, cwd=suite)
        assert_one_line_error(
            proc, "cannot reach the database at postgresql+psycopg2://dtf:***@", reason
        )
        assert_no_secret(proc.stdout + proc.stderr, tls_redis, tls_postgres)
        assert "not-the-password" not in proc.stderr


def test_a_worker_given_a_wrong_redis_password_retries_without_showing_it(
    tmp_path, ready_env, tls_redis, tls_postgres, redis_db
):
    wrong = "not-the-password"
    env = {**ready_env, "DTF_BROKER_URL": tls_redis.url(redis_db, password=wrong)}
    worker = WorkerProcess(env, "cpu", 1, "locked-out", tmp_path)
    try:
        deadline = time.monotonic() + WORKER_LOG_TIMEOUT_S
        log = ""
        while "Cannot connect" not in log and worker.process.poll() is None:
            assert time.monotonic() < deadline, log
            time.sleep(0.2)
            log = worker.log.read_text(errors="replace") if worker.log.exists() else ""
        assert worker.process.poll() is None, worker.stderr_text()  # it keeps retrying
    finally:
        worker.stop()
    assert f"Cannot connect to rediss://dtf:**@localhost:{tls_redis.port}" in log
    assert "invalid username-password pair" in log
    for text in (log, worker.stderr_text()):
        assert wrong not in text
        assert_no_secret(text, tls_redis, tls_postgres)


#: The site settings module docs/security.md gives for AMQPS, with the CA filled in.
SITE_AMQPS = """\
import ssl

from dtf.celeryconfig import *  # noqa: F403

broker_use_ssl = {{
    "ca_certs": "{ca}",
    "cert_reqs": ssl.CERT_REQUIRED,
    "server_hostname": None,  # kombu fills in the broker's host: its name is checked too
}}
"""


@pytest.mark.parametrize(
    ("case", "reason"),
    [
        # The handshake passed; the stand-in then hangs up where RabbitMQ would speak AMQP.
        ("the right CA", "Server unexpectedly closed connection"),
        ("a CA that did not sign the server's certificate", "CERTIFICATE_VERIFY_FAILED"),
        ("a certificate that names another host", "mismatch"),
    ],
)
def test_amqps_with_broker_use_ssl_verifies_the_certificate_and_host_name(
    case, reason, tmp_path, suite, ca, other_ca
):
    listener = TlsListener(
        ca, ["DNS:elsewhere.invalid"] if "another host" in case else SERVER_NAMES
    )
    (tmp_path / "site_amqps.py").write_text(
        SITE_AMQPS.format(ca=other_ca.cert if "did not sign" in case else ca.cert)
    )
    env = clean_env(
        DTF_BROKER_URL=f"amqps://dtf:s3cret-mq@localhost:{listener.port}//",
        DTF_DATABASE_URL=f"sqlite:///{tmp_path / 'dtf.sqlite'}",
        DTF_HOME=str(tmp_path / "home"),
        DTF_CELERY_CONFIG="site_amqps",
        PYTHONPATH=str(tmp_path),
    )
    try:
        assert run_dtf("init-db", env=env, cwd=tmp_path).returncode == 0
        proc = run_dtf("run", ".", env=env, cwd=suite)
    finally:
        listener.stop()

    assert_one_line_error(proc, "cannot reach the broker at amqps://dtf:***@localhost", reason)
    assert "s3cret-mq" not in proc.stderr
    assert (listener.handshakes > 0) == (case == "the right CA")
