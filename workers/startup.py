"""Worker-side setup, called by dtf through the ``dtf.worker`` entry point.

The flow of one ``celery -A dtf worker`` start:

1. ``celeryd_init``: dtf calls ``setup(app)``, which connects the handlers below
   and adds the ``QueueHealth`` consumer bootstep.
2. ``celeryd_after_setup`` (``-Q`` applied, nothing consumed yet): hardware is
   detected once; without ``-Q`` the worker consumes the detected queues (plus
   ``DTF_FORCE_QUEUES``), ``dtf.control`` and its own queue; with ``-Q`` a
   hardware queue this machine lacks makes the worker refuse to start (one line
   on stderr, exit 2). See ``workers/queues.py``. So does a RabbitMQ queue
   declared without dtf's ``x-max-priority`` (``dtf.celery_app.check_queues``).
3. Consumer start: ``QueueHealth`` checks each queue before consuming it, then
   every ``DTF_HEALTH_INTERVAL`` seconds (``workers/health.py``).
4. ``worker_ready``: the registry row is written and the heartbeat starts
   (``workers/registry.py``); 5. ``worker_shutdown``: the row says offline.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import sys
import threading
import time
from pathlib import Path

from celery import Celery, signals
from celery.worker import state as worker_state
from dtf.workers.broker_watch import BrokerReconnects
from dtf.workers.health import health_interval
from dtf.workers.health_step import QueueHealth, monitor
from dtf.workers.idle import IdleExit
from dtf.workers.queues import QueueRefused, check_requested, detected_queues, forced_queues
from dtf.workers.registry import Registry, heartbeat_interval

from dtf.celery_app import QueueMismatch, check_queues
from dtf.config import CONTROL_QUEUE, load_settings, worker_queue
from dtf.inventory import CpuInfo, Inventory

logger = logging.getLogger(__name__)

#: This worker's registry, once its queues are chosen.
registry: Registry | None = None
#: What detection found when this worker started.
inventory: Inventory | None = None
#: The idle shutdown of a local worker dtf run keeps warm (None elsewhere).
idle_exit: IdleExit | None = None


def setup(app: Celery) -> None:
    """Connect hardware detection, registry and health checks to the worker's signals."""
    signals.celeryd_after_setup.connect(choose_queues, weak=False, dispatch_uid="dtf-queues")
    signals.worker_ready.connect(on_ready, weak=False, dispatch_uid="dtf-ready")
    signals.worker_shutdown.connect(on_shutdown, weak=False, dispatch_uid="dtf-shutdown")
    if QueueHealth not in app.steps["consumer"]:
        app.steps["consumer"].add(QueueHealth)
    if BrokerReconnects not in app.steps["consumer"]:
        app.steps["consumer"].add(BrokerReconnects)


def choose_queues(sender: str, instance, **kwargs) -> None:
    """Select the queues to consume, or refuse to start; set up registry and checks."""
    global registry, inventory
    inventory = detect()
    forced = forced_queues()
    queues = instance.app.amqp.queues
    own = [CONTROL_QUEUE, worker_queue(sender)]
    private = os.environ.get("DTF_PRIVATE_WORKER") == "1"
    if private:
        # dtf run's local workers: the hardware they have is registered (routing reads
        # it), but they take work only from their own queue, so that neither they nor
        # a run's batches can end up with another project on a shared broker.
        chosen = detected_queues(inventory, forced)
        queues.select([worker_queue(sender)])
    elif queues._consume_from is None:  # no -Q: serve what this machine has
        chosen = detected_queues(inventory, forced)
        queues.select([*chosen, *own])
    else:
        chosen = [name for name in queues.consume_from if name not in own]
        try:
            check_requested(chosen, inventory, forced)
        except QueueRefused as exc:
            print(f"dtf worker: {exc}", file=sys.__stderr__, flush=True)
            raise SystemExit(2) from None
    try:
        check_queues(instance.app, queues.consume_from)
    except QueueMismatch as exc:
        print(f"dtf worker: {exc}", file=sys.__stderr__, flush=True)
        raise SystemExit(2) from None

    registry = Registry(
        load_settings().database_url,
        hostname=sender,
        queues=chosen,
        inventory=inventory.to_dict(),
        concurrency=int(instance.concurrency or 1),
        interval=heartbeat_interval(),
        active=lambda: len(worker_state.active_requests),
    )
    monitor.queues = chosen
    monitor.inventory = inventory
    monitor.forced = forced
    monitor.interval = health_interval()
    monitor.on_result = lambda queue, health: registry.set_health(queue, health.entry())
    monitor.busy = lambda: bool(worker_state.active_requests)
    monitor.private = private
    consumed = [worker_queue(sender)] if private else [*chosen, *own]
    logger.info("dtf: consuming %s", ", ".join(consumed))


#: A fresh-enough inventory found here is reused instead of probing again.
INVENTORY_CACHE_MAX_AGE_S = 3600.0


def detect() -> Inventory:
    """This machine's inventory; a CPU-only one (and a warning) if detection fails.

    ``DTF_INVENTORY_CACHE=FILE`` reuses an inventory detected less than an hour
    ago (``dtf run`` sets it for the local workers it starts, so a run does not
    probe the browser and the CPU again each time); unset, every start detects.
    """
    cache = os.environ.get("DTF_INVENTORY_CACHE")
    if cache:
        cached = _read_cached(Path(cache))
        if cached is not None:
            return cached
    try:
        from dtf.workers.detection.detect import detect_inventory

        found = detect_inventory()
        if cache:
            _write_cached(Path(cache), found)
        return found
    except Exception as exc:
        logger.warning("dtf: hardware detection failed, serving cpu only: %r", exc)
        import psutil

        threads = os.cpu_count() or 1
        memory_gb = round(psutil.virtual_memory().total / 1024**3, 1)
        return Inventory(socket.gethostname(), CpuInfo(threads, threads, memory_gb))


def on_ready(sender=None, **kwargs) -> None:
    if registry is not None:
        registry.start()
    # Beside the work, not before it: a large cache takes a while to walk.
    threading.Thread(target=_clean_bundle_cache, name="dtf-bundle-cache", daemon=True).start()
    global idle_exit
    idle_exit = IdleExit.from_env(
        busy=lambda: bool(worker_state.active_requests or worker_state.reserved_requests)
    )
    if idle_exit is not None:
        idle_exit.start()


def _clean_bundle_cache() -> None:
    """Remove the unpacked bundles unused for DTF_BUNDLE_CACHE_DAYS (also done whenever
    this worker unpacks a new one)."""
    from dtf.bundle_cache import clean
    from dtf.config import load_settings

    cache = load_settings().home / "bundles"
    if not cache.is_dir():
        return
    try:
        clean(cache)
    except Exception:
        logger.exception("dtf: could not clean the bundle cache %s", cache)


def on_shutdown(sender=None, **kwargs) -> None:
    if idle_exit is not None:
        idle_exit.stop()
    if registry is not None:
        registry.stop()


def _read_cached(path: Path) -> Inventory | None:
    try:
        if time.time() - path.stat().st_mtime > INVENTORY_CACHE_MAX_AGE_S:
            return None
        return Inventory.from_dict(json.loads(path.read_text()))
    except (OSError, ValueError, KeyError, TypeError):
        return None


def _write_cached(path: Path, found: Inventory) -> None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_text(json.dumps(found.to_dict()))
        os.replace(tmp, path)
    except OSError as exc:
        logger.warning("dtf: could not cache the inventory at %s: %s", path, exc)
