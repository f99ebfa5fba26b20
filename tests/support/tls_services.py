"""Private TLS services for tests: a CA made with openssl, a TLS-only redis-server with
ACL users, and a PostgreSQL instance that takes passwords over ``hostssl`` only.

Each lives in a temporary folder of its own and is stopped (and the folder removed) by
``stop()``; the server certificates are signed by the CA for ``localhost`` and
``127.0.0.1``, so clients can verify the certificate *and* the host name.
"""

from __future__ import annotations

import contextlib
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

#: Names the server certificates are valid for (subjectAltName).
SERVER_NAMES = ("DNS:localhost", "IP:127.0.0.1")
#: Generous: a server normally answers within a second.
START_TIMEOUT_S = 60.0

#: What the ``dtf`` Redis ACL user may do: every key (``~*``) and pub/sub channel
#: (``&*``); the data-type, pub/sub, transaction, scripting and connection command
#: categories that kombu's Redis transport, Celery's Redis result backend and redis-py
#: use, plus ``TIME`` (kombu's queue-binding Lua script reads the server clock); nothing
#: of ``@admin`` or ``@dangerous`` (CONFIG, SHUTDOWN, FLUSHALL, FLUSHDB, KEYS, MONITOR,
#: ACL SETUSER, DEBUG, CLIENT KILL/LIST, ...). The rule the docs give a deployment to copy.
DTF_ACL_RULES = (
    "~*", "&*",
    "+@connection", "+@keyspace", "+@string", "+@list", "+@hash",
    "+@set", "+@sortedset", "+@pubsub", "+@transaction", "+@scripting", "+time",
    "-@admin", "-@dangerous",
)  # fmt: skip


def free_port() -> int:
    """A TCP port on 127.0.0.1 nothing listens on now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _run(args: Sequence[str], **kwargs) -> subprocess.CompletedProcess:
    proc = subprocess.run(list(args), capture_output=True, text=True, **kwargs)
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(args)} exited {proc.returncode}: {proc.stderr.strip()}")
    return proc


@dataclass(frozen=True)
class CertificateAuthority:
    """A private CA in ``folder``: ``ca.pem`` (its certificate) and ``ca.key``."""

    folder: Path

    @property
    def cert(self) -> Path:
        return self.folder / "ca.pem"

    @property
    def key(self) -> Path:
        return self.folder / "ca.key"

    @classmethod
    def create(cls, folder: Path, name: str = "dtf test CA") -> CertificateAuthority:
        """A new CA (EC P-256, valid two days) written into ``folder``."""
        folder.mkdir(parents=True, exist_ok=True)
        ca = cls(folder)
        _run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
              "ec_paramgen_curve:prime256v1", "-nodes", "-days", "2",
              "-keyout", str(ca.key), "-out", str(ca.cert), "-subj", f"/CN={name}",
              "-addext", "basicConstraints=critical,CA:TRUE",
              "-addext", "keyUsage=critical,keyCertSign,cRLSign"])  # fmt: skip
        return ca

    def issue(
        self, folder: Path, name: str = "server", names: Sequence[str] = SERVER_NAMES
    ) -> tuple[Path, Path]:
        """A server certificate for ``names`` (subjectAltName entries) signed by this CA,
        written into ``folder`` as ``NAME.pem`` and ``NAME.key``; returns (cert, key)."""
        folder.mkdir(parents=True, exist_ok=True)
        cert, key, csr = (folder / f"{name}{ext}" for ext in (".pem", ".key", ".csr"))
        extensions = folder / f"{name}.ext"
        extensions.write_text(
            f"subjectAltName={','.join(names)}\n"
            "basicConstraints=critical,CA:FALSE\n"
            "keyUsage=critical,digitalSignature,keyEncipherment\n"
            "extendedKeyUsage=serverAuth\n"
            "subjectKeyIdentifier=hash\n"
            "authorityKeyIdentifier=keyid,issuer\n"
        )
        _run(["openssl", "req", "-new", "-newkey", "ec", "-pkeyopt",
              "ec_paramgen_curve:prime256v1", "-nodes", "-keyout", str(key),
              "-out", str(csr), "-subj", "/CN=localhost"])  # fmt: skip
        _run(["openssl", "x509", "-req", "-in", str(csr), "-CA", str(self.cert),
              "-CAkey", str(self.key), "-CAcreateserial", "-days", "2",
              "-out", str(cert), "-extfile", str(extensions)])  # fmt: skip
        return cert, key


def _wait_until(ready, process: subprocess.Popen | None, what: str, log: Path) -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if ready():
            return
        if process is not None and process.poll() is not None:
            break
        time.sleep(0.05)
    text = log.read_text(errors="replace")[-2000:] if log.exists() else ""
    raise RuntimeError(f"{what} did not start:\n{text}")


class TlsRedis:
    """A ``redis-server`` that speaks TLS only (``--port 0``) on 127.0.0.1 at ``port``.

    The ``default`` user is off; ``user`` (password ``password``) has
    :data:`DTF_ACL_RULES`, and ``admin`` every right, for the test's own checks.
    Clients need not present a certificate (``tls-auth-clients no``): they are
    authenticated by their ACL password, over a connection that verified the server.
    """

    def __init__(
        self,
        ca: CertificateAuthority,
        user: str = "dtf",
        password: str = "s3cret-redis",
        rules: Sequence[str] = DTF_ACL_RULES,
        names: Sequence[str] = SERVER_NAMES,
    ) -> None:
        """``rules``: the ACL of ``user``; ``names``: whom the server certificate names."""
        self.ca, self.user, self.password, self.rules = ca, user, password, tuple(rules)
        self.names = tuple(names)
        self.admin_password = "admin-" + password
        self.folder = Path(tempfile.mkdtemp(prefix="dtf-tls-redis-"))
        self.port = free_port()
        self.process: subprocess.Popen | None = None

    def url(
        self,
        db: int = 0,
        *,
        password: str | None = None,
        ca: Path | None = None,
        scheme: str = "rediss",
    ) -> str:
        """The URL dtf takes for this server: ``rediss://`` with the ACL user, requiring
        a certificate signed by ``ca`` (default: this server's CA)."""
        secret = quote(self.password if password is None else password, safe="")
        base = f"{scheme}://{self.user}:{secret}@localhost:{self.port}/{db}"
        if scheme != "rediss":
            return base
        return f"{base}?ssl_cert_reqs=required&ssl_ca_certs={ca or self.ca.cert}"

    def admin(self, db: int = 0):
        """A redis-py client as the ``admin`` user (the CA is checked, not the name: the
        test's own client also reaches a server whose certificate names another host)."""
        import redis

        return redis.Redis(
            host="127.0.0.1", port=self.port, db=db, username="admin",
            password=self.admin_password, ssl=True, ssl_ca_certs=str(self.ca.cert),
            ssl_cert_reqs="required", ssl_check_hostname=False, socket_timeout=10,
        )  # fmt: skip

    def start(self) -> TlsRedis:
        """Start the server and wait until it answers; on failure stop and clean up."""
        try:
            self._start()
        except BaseException:
            self.stop()
            raise
        return self

    def _start(self) -> None:
        cert, key = self.ca.issue(self.folder, "redis", self.names)
        config = self.folder / "redis.conf"
        config.write_text(
            "\n".join([
                "port 0", f"tls-port {self.port}", "bind 127.0.0.1",
                f"tls-cert-file {cert}", f"tls-key-file {key}",
                f"tls-ca-cert-file {self.ca.cert}", "tls-auth-clients no",
                f"dir {self.folder}", 'save ""', "appendonly no",
                f"logfile {self.folder / 'redis.log'}",
                "user default off",
                f"user {self.user} on >{self.password} {' '.join(self.rules)}",
                f"user admin on >{self.admin_password} ~* &* +@all",
            ]) + "\n"
        )  # fmt: skip
        self.process = subprocess.Popen(
            ["redis-server", str(config)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL,
        )  # fmt: skip
        _wait_until(self._answers, self.process, "redis-server", self.folder / "redis.log")

    def _answers(self) -> bool:
        try:
            client = self.admin()
            try:
                return bool(client.ping())
            finally:
                client.close()
        except Exception:
            return False

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        shutil.rmtree(self.folder, ignore_errors=True)


def _postgres_bin() -> Path:
    found = sorted(Path("/usr/lib/postgresql").glob("*/bin/pg_ctl"))
    if not found:
        raise RuntimeError("no PostgreSQL server binaries under /usr/lib/postgresql")
    return found[-1].parent


class TlsPostgres:
    """A private PostgreSQL instance (run as the ``postgres`` user, which the server
    requires) with ``ssl=on`` and a certificate signed by the CA, listening on
    127.0.0.1 at ``port``.

    ``pg_hba.conf`` lets role ``user`` in with its password (SCRAM) over ``hostssl``
    only; any other TCP connection is rejected. The test itself administers the
    instance as ``postgres`` over its Unix socket in the temporary folder.
    """

    def __init__(
        self, ca: CertificateAuthority, user: str = "dtf", password: str = "s3cret-pg"
    ) -> None:
        self.ca, self.user, self.password = ca, user, password
        self.folder = Path(tempfile.mkdtemp(prefix="dtf-tls-pg-"))
        self.data = self.folder / "data"
        self.port = free_port()
        self.bin = _postgres_bin()
        self.started = False

    def url(
        self, database: str, *, password: str | None = None, sslmode: str = "verify-full",
        ca: Path | None = None,
    ) -> str:  # fmt: skip
        """The URL dtf takes: psycopg2, the role's password, ``sslmode=verify-full`` with
        ``sslrootcert`` the CA (default: this server's)."""
        secret = quote(self.password if password is None else password, safe="")
        return (
            f"postgresql+psycopg2://{self.user}:{secret}@localhost:{self.port}/{database}"
            f"?sslmode={sslmode}&sslrootcert={ca or self.ca.cert}"
        )

    def _as_postgres(self, *args: str) -> subprocess.CompletedProcess:
        return _run(["runuser", "-u", "postgres", "--", *args])

    def psql(self, sql: str, database: str = "postgres") -> str:
        """Run ``sql`` as the ``postgres`` superuser over the Unix socket."""
        return self._as_postgres(
            str(self.bin / "psql"), "-h", str(self.folder), "-p", str(self.port),
            "-U", "postgres", "-d", database, "-v", "ON_ERROR_STOP=1", "-qAtc", sql,
        ).stdout  # fmt: skip

    def start(self) -> TlsPostgres:
        """Start the server and wait until it answers; on failure stop and clean up."""
        try:
            self._start()
        except BaseException:
            self.stop()
            raise
        return self

    def _start(self) -> None:
        cert, key = self.ca.issue(self.folder / "certs", "postgres")
        key.chmod(0o600)  # the server refuses a key others can read
        shutil.chown(self.folder, "postgres", "postgres")
        for path in (self.folder / "certs").iterdir():
            shutil.chown(path, "postgres", "postgres")
        shutil.chown(self.folder / "certs", "postgres", "postgres")
        self._as_postgres(
            str(self.bin / "initdb"), "-D", str(self.data), "-U", "postgres",
            "--auth-local=trust", "--auth-host=reject", "--no-sync",
        )  # fmt: skip
        with (self.data / "postgresql.conf").open("a") as conf:
            conf.write(
                f"listen_addresses = '127.0.0.1'\nport = {self.port}\n"
                f"unix_socket_directories = '{self.folder}'\n"
                f"ssl = on\nssl_cert_file = '{cert}'\nssl_key_file = '{key}'\n"
                "password_encryption = 'scram-sha-256'\n"
                "fsync = off\nsynchronous_commit = off\nfull_page_writes = off\n"
            )
        (self.data / "pg_hba.conf").write_text(
            "local all postgres trust\n"
            f"hostssl all {self.user} 127.0.0.1/32 scram-sha-256\n"
            "host all all 0.0.0.0/0 reject\n"
        )
        log = self.folder / "pg.log"
        self.started = True  # from here on stop() runs pg_ctl stop
        try:
            self._as_postgres(
                str(self.bin / "pg_ctl"), "-D", str(self.data), "-l", str(log),
                "-w", "-t", str(int(START_TIMEOUT_S)), "start",
            )  # fmt: skip
        except RuntimeError as exc:
            tail = log.read_text(errors="replace")[-2000:] if log.exists() else ""
            raise RuntimeError(f"{exc}\n{tail}") from None
        secret = self.password.replace("'", "''")
        self.psql(f"CREATE ROLE {self.user} LOGIN PASSWORD '{secret}'")

    def create_database(self, name: str) -> str:
        """A new database ``name`` owned by the role; returns its name."""
        self.psql(f'CREATE DATABASE "{name}" OWNER {self.user}')
        return name

    def stop(self) -> None:
        if self.started:
            with contextlib.suppress(RuntimeError):
                self._as_postgres(
                    str(self.bin / "pg_ctl"), "-D", str(self.data), "-m", "immediate",
                    "-w", "stop",
                )  # fmt: skip
            self.started = False
        shutil.rmtree(self.folder, ignore_errors=True)


class TlsListener:
    """A TLS server on 127.0.0.1 that completes the handshake and then hangs up: stands in
    for a TLS broker (AMQPS) where only the client's certificate checks are under test.
    Runs in a daemon thread until ``stop()``."""

    def __init__(self, ca: CertificateAuthority, names: Sequence[str] = SERVER_NAMES) -> None:
        import ssl
        import threading

        self.folder = Path(tempfile.mkdtemp(prefix="dtf-tls-listener-"))
        cert, key = ca.issue(self.folder, "listener", names)
        self.context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.context.load_cert_chain(cert, key)
        self.handshakes = 0
        self.socket = socket.socket()
        self.socket.bind(("127.0.0.1", 0))
        self.socket.listen(16)
        self.port: int = self.socket.getsockname()[1]
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            try:
                client, _ = self.socket.accept()
            except OSError:
                return  # stopped
            with contextlib.suppress(OSError), client:
                client.settimeout(10)
                with self.context.wrap_socket(client, server_side=True):
                    self.handshakes += 1

    def stop(self) -> None:
        with contextlib.suppress(OSError):
            self.socket.shutdown(socket.SHUT_RDWR)
        self.socket.close()
        shutil.rmtree(self.folder, ignore_errors=True)
