"""The Celery application: ``celery -A dtf worker`` finds it as ``dtf.app``."""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable
from importlib.metadata import entry_points

from celery import Celery, signals
from kombu import Queue

from dtf import embedded_broker
from dtf.config import CONTROL_QUEUE, QUEUE_MAX_PRIORITY, pin_home, worker_queue
from dtf.errors import BadInput
from dtf.signing import sign_messages, signing_from_env

logger = logging.getLogger(__name__)

#: Queues a worker started without ``-Q`` consumes, unless worker-side setup
#: (hardware detection) chooses others.
DEFAULT_WORKER_QUEUES = ("cpu", CONTROL_QUEUE)
#: dtf's own settings module: in the package, so that no project file can stand in for it.
DEFAULT_CELERY_CONFIG = "dtf.celeryconfig"
#: Entry-point group of worker-side setup functions, each called as ``setup(app)``.
WORKER_SETUP_GROUP = "dtf.worker"
#: ``DTF_RABBITMQ_QUEUE_TYPE``: ``classic`` (default) or ``quorum``.
QUEUE_TYPES = ("classic", "quorum")


def create_app() -> Celery:
    """Build the app from the settings module named by ``DTF_CELERY_CONFIG``."""
    embedded_broker.register()
    app = Celery("dtf", include=["dtf.tasks.execute", "dtf.tasks.finalize", "dtf.tasks.benchmark"])
    app.config_from_object(os.environ.get("DTF_CELERY_CONFIG") or DEFAULT_CELERY_CONFIG)
    signing = signing_from_env()
    if signing is not None:
        sign_messages(app, signing)
    _apply_queue_type(app)
    app.conf.task_queues = [_queue(app, name) for name in DEFAULT_WORKER_QUEUES]
    return app


def _apply_queue_type(app: Celery) -> None:
    """``DTF_RABBITMQ_QUEUE_TYPE=quorum`` (or ``task_default_queue_type = "quorum"`` in a
    site's settings module): every queue dtf declares on RabbitMQ is a quorum queue,
    replicated and durable. RabbitMQ refuses ``x-max-priority`` on a quorum queue, so
    they are declared without it: run priority is then not served (batches are taken
    in the order they were sent). Other brokers ignore queue types. Every dtf process
    (workers, ``dtf run``/``submit``) must say the same: RabbitMQ refuses to declare a
    queue again with other arguments."""
    queue_type = os.environ.get("DTF_RABBITMQ_QUEUE_TYPE") or app.conf.task_default_queue_type
    if queue_type not in QUEUE_TYPES:
        raise BadInput(f"DTF_RABBITMQ_QUEUE_TYPE must be classic or quorum, not {queue_type!r}")
    if queue_type == "quorum":
        app.conf.task_default_queue_type = "quorum"
        app.conf.task_create_missing_queue_type = "quorum"  # hardware and worker queues
        app.conf.task_queue_max_priority = None


def _queue(app: Celery, name: str) -> Queue:
    """A queue dtf itself names, declared with the type the app's queues have."""
    quorum = app.conf.task_default_queue_type == "quorum"
    return Queue(
        name, routing_key=name, queue_arguments={"x-queue-type": "quorum"} if quorum else None
    )


app = create_app()


class QueueMismatch(Exception):
    """RabbitMQ holds a queue dtf uses, declared with other arguments than dtf's."""


def check_queues(app: Celery, names: Iterable[str]) -> None:
    """Declare the queues ``names`` on RabbitMQ as this app does; raise QueueMismatch
    (one line naming the queue and the fix) for one that exists declared otherwise,
    e.g. without ``x-max-priority`` by a dtf before run priorities. RabbitMQ refuses
    to redeclare a queue with other arguments. Other brokers: nothing to check."""
    from amqp.exceptions import PreconditionFailed

    with app.connection_for_write() as connection:
        if connection.transport.driver_type != "amqp":
            return
        try:
            connection.connect()
        except connection.connection_errors:
            return  # not reachable now: a worker's start retries, and says so
        for name in names:
            try:
                with connection.channel() as channel:
                    app.amqp.queues[name].bind(channel).declare()
            except PreconditionFailed as exc:
                if app.conf.task_default_queue_type == "quorum":
                    wanted = "x-queue-type=quorum: every dtf process needs the same "
                    wanted += "DTF_RABBITMQ_QUEUE_TYPE"
                else:
                    wanted = f"x-max-priority={QUEUE_MAX_PRIORITY}, for run priority; "
                    wanted += "a quorum queue needs DTF_RABBITMQ_QUEUE_TYPE=quorum"
                raise QueueMismatch(
                    f"RabbitMQ queue {name!r} was declared with other arguments than dtf's "
                    f"({wanted}): "
                    f"delete it once it is empty "
                    f"(rabbitmqctl delete_queue -p {connection.virtual_host} {name}) "
                    "and dtf declares it again"
                ) from exc


@signals.celeryd_init.connect
def _load_worker_setup(sender=None, instance=None, **kwargs) -> None:
    # A worker serves the project it started in: its home is found once (.dtf/ as git
    # finds .git, from its working directory), not again by every task.
    pin_home()
    # Only in `celery worker` processes: detection, registry and health checks
    # live in workers/, found by entry point so dtf never imports it.
    for entry in entry_points(group=WORKER_SETUP_GROUP):
        entry.load()(instance.app if instance is not None else app)


@signals.celeryd_after_setup.connect
def _always_consume_own_queues(sender, instance, **kwargs) -> None:
    # finalize_run and chord bookkeeping must run whatever -Q a worker got, and
    # work addressed to this worker alone must reach it.
    for name in (CONTROL_QUEUE, worker_queue(sender)):
        instance.app.amqp.queues.select_add(_queue(instance.app, name))


@signals.worker_process_init.connect
def _warm_up_executor(**kwargs) -> None:
    # Each pool process imports pytest once, so batches fork from a warm process.
    from dtf.executor.warm import warm_up

    warm_up()
