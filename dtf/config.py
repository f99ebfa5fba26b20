"""Settings from the environment, with an embedded default that needs no server.

With nothing configured, dtf keeps everything under ``.dtf/`` (or ``DTF_HOME``):
kombu's filesystem transport as the broker, Celery's filesystem result backend,
and a SQLite database. ``.dtf/`` is found the way git finds ``.git`` (see
:func:`find_home`), so every dtf command typed anywhere in a project shares it.
"""

from __future__ import annotations

import contextlib
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import parse_qs, unquote_plus, urlsplit, urlunsplit

CONTROL_QUEUE = "dtf.control"
#: Every worker also consumes a queue of its own, for work meant for it alone.
WORKER_QUEUE_PREFIX = "dtf.worker."


def worker_queue(hostname: str) -> str:
    """The queue only worker ``hostname`` consumes (``w1@host`` -> ``dtf.worker.w1-host``).

    Only letters, digits, ``.``, ``_`` and ``-``: every transport takes such a name
    (kombu's filesystem transport refuses an exchange named with ``@``).
    """
    return WORKER_QUEUE_PREFIX + re.sub(r"[^A-Za-z0-9._-]", "-", hostname)


#: dtf's run priorities are 0..9, 9 most urgent (see dtf/spec.py).
MAX_PRIORITY = 9
#: RabbitMQ queues are declared with ``x-max-priority`` = this (Celery's
#: ``task_queue_max_priority``): above every dtf priority.
QUEUE_MAX_PRIORITY = 10
#: Broker URL schemes served by kombu's Redis transport.
REDIS_SCHEMES = ("redis", "rediss", "sentinel")


def message_priority(priority: int, broker_url: str | None) -> int:
    """The message priority that has the broker at ``broker_url`` serve dtf's ``priority``
    (9 most urgent) first: RabbitMQ and the embedded broker serve the highest number
    first, kombu's Redis transport the lowest, so there 9 becomes 0."""
    if (broker_url or "").partition("://")[0] in REDIS_SCHEMES:
        return MAX_PRIORITY - priority
    return priority


#: Longer than the longest batch may run: a message a worker took but never
#: acknowledged is handed out again only after this long (Redis, SQS).
VISIBILITY_TIMEOUT_S = 12 * 3600

HOME_NAME = ".dtf"
#: What marks a project's root directory, as pytest and git tools look for it.
PROJECT_MARKERS = (".git", "pyproject.toml", "setup.cfg", "pytest.ini", "tox.ini")
#: The home a ``celery worker`` process found when it started (see :func:`pin_home`).
_pinned_home: Path | None = None


def _upwards(start: Path) -> list[Path]:
    start = start.resolve()
    return [start, *start.parents]


def project_root(start: Path | str | None = None) -> Path | None:
    """The nearest directory at or above ``start`` (default: the current directory) that
    holds ``.git``, ``pyproject.toml``, ``setup.cfg``, ``pytest.ini`` or ``tox.ini``."""
    for folder in _upwards(Path(start) if start is not None else Path.cwd()):
        if _is_project_root(folder):
            return folder
    return None


def _is_project_root(folder: Path) -> bool:
    return any((folder / marker).exists() for marker in PROJECT_MARKERS)


def find_home(start: Path | str | None = None) -> Path:
    """Where the embedded default lives when ``DTF_HOME`` is not set, found as git finds
    ``.git``: the nearest ``.dtf/`` at or above ``start`` (default: the current
    directory), but not above the outermost project root (a stray ``/tmp/.dtf`` is not
    this project's); else ``.dtf/`` in the project root (:func:`project_root`); else in
    ``start``. The same for every dtf process started anywhere in the project."""
    start = Path(start) if start is not None else Path.cwd()
    folders = _upwards(start)
    roots = [folder for folder in folders if _is_project_root(folder)]
    searched = folders[: folders.index(roots[-1]) + 1] if roots else folders
    for folder in searched:
        if (folder / HOME_NAME).is_dir():
            return folder / HOME_NAME
    return (roots[0] if roots else folders[0]) / HOME_NAME


def home_of(env: Mapping[str, str], cwd: Path | str | None = None) -> Path:
    """``DTF_HOME`` when set, else :func:`find_home` from ``cwd``."""
    if env.get("DTF_HOME"):
        return Path(env["DTF_HOME"]).resolve()
    return find_home(cwd)


def pin_home() -> Path:
    """Keep this process's home for good (a worker, whose tasks read the settings again
    and again, serves the project it started in whatever is created later)."""
    global _pinned_home
    _pinned_home = load_settings().home
    return _pinned_home


def project_dirs(start: Path | str | None = None) -> list[Path]:
    """Where a project's own modules (plugins) are: ``start`` (default: the current
    directory), the folder that holds its ``.dtf/``, and its project root."""
    start = (Path(start) if start is not None else Path.cwd()).resolve()
    dirs = [start, find_home(start).parent, project_root(start)]
    return list(dict.fromkeys(d for d in dirs if d is not None))


def make_home(home: Path) -> None:
    """Create ``home`` with a ``.gitignore`` of ``*``, so that it never shows in ``git
    status`` (written when missing, also into a home an older dtf made)."""
    home.mkdir(parents=True, exist_ok=True)
    ignore = home / ".gitignore"
    if not ignore.exists():
        with contextlib.suppress(OSError):  # a read-only home still serves
            ignore.write_text("# made by dtf: nothing here belongs in version control\n*\n")


@dataclass(frozen=True)
class Settings:
    """Where dtf's broker, result backend and database are."""

    home: Path
    broker_url: str
    result_backend: str
    database_url: str
    broker_transport_options: dict = field(default_factory=dict)
    #: how often a waiting CLI checks the broker and the workers of a run's queues
    liveness_interval: float = 15.0

    @property
    def embedded(self) -> bool:
        """True when the broker is the serverless embedded default."""
        return self.broker_url.startswith("filesystem://")

    def folders(self) -> list[Path]:
        """Folders the embedded default needs on disk."""
        opts = self.broker_transport_options
        keys = ("data_folder_in", "data_folder_out", "control_folder", "processed_folder")
        broker = [Path(opts[k]) for k in keys if k in opts]
        results = (
            [Path(self.result_backend[len("file://") :])]
            if self.result_backend.startswith("file://")
            else []
        )
        return [self.home, self.home / "logs", *broker, *results]

    def make_folders(self) -> None:
        """Create :meth:`folders`, the home with its ``.gitignore`` first."""
        make_home(self.home)
        for folder in self.folders():
            folder.mkdir(parents=True, exist_ok=True)


def load_settings(env: Mapping[str, str] | None = None) -> Settings:
    """Read ``DTF_HOME``, ``DTF_BROKER_URL``, ``DTF_RESULT_BACKEND`` and ``DTF_DATABASE_URL``."""
    env = os.environ if env is None else env
    home = _pinned_home if _pinned_home is not None and not env.get("DTF_HOME") else home_of(env)
    broker_url = env.get("DTF_BROKER_URL") or "filesystem://"
    database_url = with_installed_driver(
        env.get("DTF_DATABASE_URL") or f"sqlite:///{home / 'dtf.sqlite'}"
    )

    if broker_url.startswith("filesystem://"):
        queue_dir = str(home / "broker" / "queue")
        transport_options = {
            "data_folder_in": queue_dir,
            "data_folder_out": queue_dir,
            "control_folder": str(home / "broker" / "control"),
            "processed_folder": str(home / "broker" / "processed"),
            "store_processed": False,
            "polling_interval": 0.05,
        }
        default_backend = f"file://{home / 'results'}"
    else:
        transport_options = {"visibility_timeout": VISIBILITY_TIMEOUT_S}
        if broker_url.partition("://")[0] in REDIS_SCHEMES:
            # One Redis list per priority level (the default is 4 levels, 0 3 6 9);
            # a worker pops the lowest level first (see message_priority).
            transport_options["priority_steps"] = list(range(MAX_PRIORITY + 1))
        if broker_url.startswith(("redis://", "rediss://")):
            default_backend = broker_url
        else:
            default_backend = f"db+{database_url}"
    result_backend = env.get("DTF_RESULT_BACKEND") or default_backend
    return Settings(
        home=home,
        broker_url=broker_url,
        result_backend=result_backend,
        database_url=database_url,
        broker_transport_options=transport_options,
        liveness_interval=float(env.get("DTF_LIVENESS_INTERVAL") or 15.0),
    )


def verified_tls(url: str) -> dict | None:
    """Celery's ``broker_use_ssl`` / ``redis_backend_use_ssl`` for ``url``: a ``rediss://``
    URL that does not say ``ssl_cert_reqs`` still verifies the server's certificate and
    host name (``ssl_cert_reqs=required``, against ``ssl_ca_certs`` when the URL gives it,
    else the system's CAs). Without this kombu takes such TLS unverified (a warning in a
    log) and Celery's Redis result backend refuses the URL with a traceback. None for
    any other URL, and for one that says ``ssl_cert_reqs`` (even ``none``)."""
    import ssl

    scheme, _, rest = url.partition("://")
    query = rest.partition("?")[2]
    if scheme != "rediss" or "ssl_cert_reqs" in parse_qs(query):
        return None
    return {"ssl_cert_reqs": ssl.CERT_REQUIRED}


def with_installed_driver(url: str) -> str:
    """``postgresql://`` names no driver, and SQLAlchemy 2.1 then takes psycopg 3; dtf
    installs psycopg2, so such a URL uses psycopg2 unless psycopg 3 is installed."""
    import importlib.util

    scheme, sep, rest = url.partition("://")
    if sep and scheme in ("postgresql", "postgres") and not importlib.util.find_spec("psycopg"):
        return f"postgresql+psycopg2://{rest}"
    return url


#: Query parameters whose value ``redact`` hides: a key is secret when its lower-cased name
#: contains one of these (``password``, ``sslpassword``, ``db_password``, ``token``,
#: ``access_token``, ``client_secret``, ``api_key`` …) …
SECRET_KEY_PARTS = (
    "password", "passwd", "pwd", "secret", "token", "apikey", "api_key", "api-key",
    "accesskey", "access_key", "credential", "signature", "private",
)  # fmt: skip
#: … or is one of these exactly (Azure SAS ``sig``, Google ``key``, ``auth``).
SECRET_KEYS = ("sig", "key", "auth")
HIDDEN = "***"


def redact(url: str) -> str:
    """The URL with its password and the values of secret-looking query parameters
    (:data:`SECRET_KEY_PARTS`, :data:`SECRET_KEYS`) replaced by ``***``, for messages,
    logs and plugin payloads; everything else is left as it was written."""
    try:
        parts = urlsplit(url)
    except ValueError:  # e.g. an unclosed IPv6 bracket: hide everything that might be secret
        return _redact_text(url)
    netloc = parts.netloc
    if parts.password:
        netloc = netloc.replace(f":{parts.password}@", f":{HIDDEN}@", 1)
    query = _redact_query(parts.query)
    if (netloc, query) == (parts.netloc, parts.query):
        return url
    return urlunsplit(parts._replace(netloc=netloc, query=query))


def is_secret_key(name: str) -> bool:
    """True for a query parameter whose value :func:`redact` hides."""
    name = unquote_plus(name).strip().lower()
    return name in SECRET_KEYS or any(part in name for part in SECRET_KEY_PARTS)


def _redact_query(query: str) -> str:
    pairs = []
    for pair in re.split(r"([&;])", query):
        key, sep, _ = pair.partition("=")
        pairs.append(f"{key}={HIDDEN}" if sep and is_secret_key(key) else pair)
    return "".join(pairs)


def _redact_text(url: str) -> str:
    head, sep, query = url.partition("?")
    head = re.sub(r"(//[^/@]*?:)[^/]*@", rf"\g<1>{HIDDEN}@", head, count=1)
    return head + sep + _redact_query(query)
