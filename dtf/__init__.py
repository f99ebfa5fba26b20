"""dtf: a distributed testing framework built on Celery."""

from __future__ import annotations

from typing import Any

__version__ = "0.1.0"


def __getattr__(name: str) -> Any:
    # Lazy, so that `import dtf.pytest_plugin` in a test child process does
    # not build a Celery app; `celery -A dtf` still finds `dtf.app`.
    if name == "app":
        from dtf.celery_app import app

        return app
    raise AttributeError(f"module 'dtf' has no attribute {name!r}")
