"""Which queues a worker consumes: the hardware it detected, or what ``-Q`` asked for.

Without ``-Q`` a worker consumes the queue of every hardware kind detection
found (``cpu`` always), plus ``dtf.control`` and its own ``dtf.worker.<name>``.
With ``-Q`` it consumes what it was given, but refuses to start when a hardware
queue names hardware this machine lacks: a ``cuda`` worker without a GPU would
take CUDA batches and fail every one of them.

``DTF_FORCE_QUEUES=cuda,rocm`` lets an operator serve hardware queues anyway
(a machine whose device detection cannot see, or a test standing up a ``cuda``
queue on a CPU machine). A forced queue is consumed even without ``-Q``, and its
health check reports it ok without checking a device. Queues that are not
hardware kinds (``-Q nightly``) are consumed as given.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping

from dtf.inventory import BROWSER_KINDS, GPU_KINDS, Inventory

#: Queue names that stand for hardware a worker must have.
HARDWARE_KINDS = ("cpu", *GPU_KINDS, *BROWSER_KINDS)
FORCE_ENV = "DTF_FORCE_QUEUES"


class QueueRefused(Exception):
    """A queue this worker was asked to consume names hardware it does not have."""


def forced_queues(env: Mapping[str, str] | None = None) -> set[str]:
    """The queues ``DTF_FORCE_QUEUES`` names."""
    value = (os.environ if env is None else env).get(FORCE_ENV, "")
    return {name.strip() for name in value.split(",") if name.strip()}


def detected_queues(inventory: Inventory, forced: Iterable[str] = ()) -> list[str]:
    """The hardware queues of a worker started without ``-Q``: detected, then forced."""
    from dtf.workers.detection.detect import queues_for

    queues = list(queues_for(inventory))
    return queues + sorted(set(forced) - set(queues))


def check_requested(requested: Iterable[str], inventory: Inventory, forced: set[str]) -> None:
    """Raise QueueRefused for the first hardware queue in ``requested`` this machine lacks."""
    have = set(inventory.kinds()) | forced
    for name in requested:
        if name in HARDWARE_KINDS and name not in have:
            probe = inventory.probes.get(name)
            why = f" ({probe.reason})" if probe is not None and probe.reason else ""
            raise QueueRefused(
                f"refusing queue '{name}': no {name} on this machine{why}; "
                f"set {FORCE_ENV}={name} to serve it anyway"
            )


def hardware_queues(queues: Iterable[str]) -> list[str]:
    """The queues among ``queues`` that are hardware kinds, in order."""
    return [name for name in queues if name in HARDWARE_KINDS]
