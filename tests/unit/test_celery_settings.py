"""The reliability settings every deployment starts with."""

from dtf.celery_app import app
from dtf.config import CONTROL_QUEUE


def test_only_json_is_accepted_from_the_broker():
    assert app.conf.accept_content == ["json"]
    assert app.conf.result_accept_content == ["json"]
    assert app.conf.task_serializer == "json"


def test_batches_are_acknowledged_late_and_requeued_when_their_worker_dies():
    assert app.conf.task_acks_late is True
    assert app.conf.task_reject_on_worker_lost is True
    assert app.conf.worker_prefetch_multiplier == 1


def test_time_limits_stay_under_the_visibility_timeout():
    visibility = app.conf.broker_transport_options.get("visibility_timeout")
    assert app.conf.broker_connection_retry_on_startup is True
    assert app.conf.task_soft_time_limit < app.conf.task_time_limit
    if visibility:
        assert app.conf.task_time_limit < visibility


def test_control_tasks_go_to_the_control_queue():
    assert app.conf.task_default_queue == CONTROL_QUEUE
    app.loader.import_default_modules()  # what a worker does at start
    assert {"dtf.execute_batch", "dtf.execute_command", "dtf.finalize_run"} <= set(app.tasks)


def test_every_queue_is_declared_with_a_priority_level_for_each_run_priority():
    # RabbitMQ serves priority only from queues declared with x-max-priority.
    for name in (CONTROL_QUEUE, "cpu", "cuda", "dtf.worker.w1-host"):
        assert app.amqp.queues[name].queue_arguments == {"x-max-priority": 10}
