"""dtf: a distributed testing framework built on Celery."""

__version__ = "0.1.0"
