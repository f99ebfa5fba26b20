"""dtf's Celery settings: the module ``DTF_CELERY_CONFIG`` names unless set otherwise.

It lives in the dtf package so that Celery, which imports a settings module from the
current directory first, never takes a project's own ``celeryconfig.py`` for dtf's.
A deployment that changes settings starts from the top-level ``celeryconfig.py`` and
names its module in ``DTF_CELERY_CONFIG``. Connection URLs come from
``DTF_BROKER_URL``, ``DTF_RESULT_BACKEND`` and ``DTF_DATABASE_URL`` (see the README);
the rest are the reliability settings every deployment should keep.
"""

from dtf.config import (
    CONTROL_QUEUE,
    QUEUE_MAX_PRIORITY,
    VISIBILITY_TIMEOUT_S,
    load_settings,
    verified_tls,
)

_settings = load_settings()

broker_url = _settings.broker_url
result_backend = _settings.result_backend
broker_transport_options = _settings.broker_transport_options
result_backend_transport_options = {"visibility_timeout": VISIBILITY_TIMEOUT_S}
# TLS is verified: a rediss:// URL without ssl_cert_reqs requires a valid certificate
# (None otherwise: what the URL says). AMQPS: set broker_use_ssl in a site's module.
broker_use_ssl = verified_tls(broker_url)
redis_backend_use_ssl = verified_tls(result_backend)

# JSON only: a broker message must never be able to run code when it is read.
task_serializer = "json"
result_serializer = "json"
accept_content = ["json"]
result_accept_content = ["json"]

# At-least-once: a batch is acknowledged after it ran, and a batch whose
# worker died is handed out again instead of being lost.
task_acks_late = True
task_reject_on_worker_lost = True
worker_prefetch_multiplier = 1
task_track_started = True

# Retry the broker at worker start explicitly, as Celery 6 will require.
broker_connection_retry_on_startup = True
broker_connection_timeout = 4

# A batch enforces each test's timeout itself; these limits catch a batch
# that hangs as a whole and stay below the visibility timeout.
task_soft_time_limit = VISIBILITY_TIMEOUT_S - 1800
task_time_limit = VISIBILITY_TIMEOUT_S - 900

# Control tasks (finalize_run, chord bookkeeping) go to a queue every worker
# consumes; batches go to the queue of the hardware they need.
task_default_queue = CONTROL_QUEUE
task_create_missing_queues = True
# Run priority (0..9, 9 most urgent): RabbitMQ serves it only from queues declared
# with x-max-priority; Redis gets one list per level from broker_transport_options.
task_queue_max_priority = QUEUE_MAX_PRIORITY
result_chord_retry_interval = 0.2
result_expires = 7 * 24 * 3600
result_extended = True

# Task events, so that Flower (`celery -A dtf flower`) and `celery events` see
# batches as they are sent, received, started and finish. The cost is a few small
# messages per batch (its arguments travel as the short `argsrepr` set in
# dtf/scheduling/canvas.py) published to a fanout with no queue behind it: with
# nobody listening Redis drops them. A batch runs pytest for seconds to minutes,
# so this stays far below anything measurable; set both False to turn them off.
worker_send_task_events = True
task_send_sent_event = True

worker_hijack_root_logger = False
worker_max_tasks_per_child = 200
