"""Hardware detection at worker startup: what this machine has, and which queues it serves.

``detect_inventory()`` runs the probes (``cpu``, ``nvidia``, ``rocm``, ``mps``,
``browser``), each guarded so that detection never raises; ``queues_for()`` turns
the inventory into the hardware queues the worker declares.
"""

from dtf.workers.detection.detect import PROBES, detect_inventory, queues_for

__all__ = ["PROBES", "detect_inventory", "queues_for"]
