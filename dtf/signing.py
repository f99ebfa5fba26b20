"""Signed messages: Celery's ``auth`` serializer, turned on by three settings.

With ``DTF_SIGNING_KEY`` (this process's private key), ``DTF_SIGNING_CERT`` (its
certificate) and ``DTF_SIGNING_CERT_STORE`` (the certificates of every process allowed
to send work: a folder, or a glob such as ``/etc/dtf/certs/*.pem``), every task, event
and remote-control message dtf sends is signed, and a worker refuses any message
not signed by a certificate of the store: someone who can write to the broker can no
longer start work or stop workers. Results stay JSON (they carry no instructions).
"""

from __future__ import annotations

import glob
import os
from collections.abc import Mapping
from dataclasses import dataclass

from celery import Celery

from dtf.errors import BadInput

#: The settings, in the order they are named in messages.
VARIABLES = ("DTF_SIGNING_KEY", "DTF_SIGNING_CERT", "DTF_SIGNING_CERT_STORE")
DIGEST = "sha256"


@dataclass(frozen=True)
class Signing:
    key: str
    cert: str
    store: str
    key_password: str | None = None


def signing_from_env(env: Mapping[str, str] | None = None) -> Signing | None:
    """The signing settings, None when none is set; BadInput (one line) when only some
    are, or a file they name is missing."""
    env = os.environ if env is None else env
    values = {name: (env.get(name) or "").strip() for name in VARIABLES}
    given = [name for name, value in values.items() if value]
    if not given:
        return None
    missing = [name for name in VARIABLES if name not in given]
    if missing:
        raise BadInput(
            f"signed messages need {', '.join(VARIABLES)}; {' and '.join(missing)} "
            f"{'is' if len(missing) == 1 else 'are'} not set (unset all three to send "
            "unsigned JSON)"
        )
    key, cert, store = (values[name] for name in VARIABLES)
    for name, path in (("DTF_SIGNING_KEY", key), ("DTF_SIGNING_CERT", cert)):
        if not os.path.isfile(path):
            raise BadInput(f"{name}: no such file {path!r}")
    if not (os.path.isdir(store) or glob.glob(store)):
        raise BadInput(f"DTF_SIGNING_CERT_STORE: no certificate at {store!r}")
    return Signing(key, cert, store, env.get("DTF_SIGNING_KEY_PASSWORD") or None)


def sign_messages(app: Celery, signing: Signing) -> None:
    """Make ``app`` sign what it sends and accept only signed messages."""
    try:
        import cryptography  # noqa: F401  (Celery's auth serializer needs it)
    except ImportError:
        raise BadInput(
            "signed messages need the cryptography package: pip install 'dtf[signing]'"
        ) from None
    store = os.path.join(signing.store, "*") if os.path.isdir(signing.store) else signing.store
    app.conf.update(
        security_key=signing.key,
        security_key_password=signing.key_password,
        security_certificate=signing.cert,
        security_cert_store=store,
        security_digest=DIGEST,
        task_serializer="auth",
        event_serializer="auth",
        accept_content=["auth"],
        result_serializer="json",
        result_accept_content=["json"],
    )
    try:
        # Kombu's serializer registry is global: pickle, yaml and msgpack go for good.
        app.setup_security(allowed_serializers=["json"], serializer="json")
    except Exception as exc:  # a key or certificate that does not load
        raise BadInput(f"signed messages: {type(exc).__name__}: {exc}") from None
