"""A deployment's Celery settings: dtf's own, and what this site changes.

dtf reads its settings from ``dtf.celeryconfig``. A site that changes them copies this
file next to its workers, edits the lines below and starts every dtf process with
``DTF_CELERY_CONFIG=celeryconfig`` (the module name; Celery imports it from the
current directory first). Keep the reliability settings of ``dtf.celeryconfig``:
JSON only, late acknowledgement, prefetch 1, the time limits under the visibility
timeout.
"""

from dtf.celeryconfig import *  # noqa: F403

# What a site commonly changes, e.g.:
# worker_max_tasks_per_child = 50      # recycle pool processes sooner (leaky suites)
# worker_send_task_events = False      # no live task events for Flower
