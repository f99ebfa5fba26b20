"""The Celery application: ``celery -A dtf worker`` finds it as ``dtf.app``."""

from __future__ import annotations

import os

from celery import Celery, signals
from kombu import Queue

from dtf.config import CONTROL_QUEUE

#: Queues a worker started without ``-Q`` consumes.
DEFAULT_WORKER_QUEUES = ("cpu", CONTROL_QUEUE)


def create_app() -> Celery:
    """Build the app from the settings module named by ``DTF_CELERY_CONFIG``."""
    app = Celery("dtf", include=["dtf.tasks.execute", "dtf.tasks.finalize"])
    app.config_from_object(os.environ.get("DTF_CELERY_CONFIG", "celeryconfig"))
    app.conf.task_queues = [Queue(name, routing_key=name) for name in DEFAULT_WORKER_QUEUES]
    return app


app = create_app()


@signals.celeryd_after_setup.connect
def _always_consume_control_queue(sender, instance, **kwargs) -> None:
    # finalize_run and chord bookkeeping must run whatever -Q a worker got.
    instance.app.amqp.queues.select_add(CONTROL_QUEUE)
