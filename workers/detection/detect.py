"""Run every hardware probe, each guarded, and build the worker's ``Inventory``.

Probes run side by side in daemon threads. A probe that raises, answers nonsense
or runs past ``probe_timeout`` becomes ``Probe(ok=False, reason=...)``: detection
never raises and returns within about ``probe_timeout`` seconds (a hung probe is
left behind in its daemon thread).
"""

from __future__ import annotations

import logging
import os
import platform
import socket
import threading
import time
from collections.abc import Callable, Iterable
from typing import Any

from dtf.workers.detection import browser, cpu, mps, nvidia, rocm

from dtf.inventory import CpuInfo, Inventory, Probe

log = logging.getLogger("dtf.detection")

ProbeFunction = Callable[[float], "Probe | Iterable[Probe]"]

#: The probes, by the kinds each answers for; a probe gets its time budget in seconds
#: and returns one Probe or one per kind. Order here is the order of ``Inventory.probes``.
PROBES: dict[tuple[str, ...], ProbeFunction] = {
    ("cuda",): nvidia.probe,
    ("rocm",): rocm.probe,
    ("mps",): mps.probe,
    browser.KINDS: browser.probe,
}

#: How the CPU is probed (a table entry, so that tests can replace it like the others).
CPU_PROBE: dict[str, Callable[[], CpuInfo]] = {"cpu": cpu.probe_cpu}


def _describe(error: BaseException) -> str:
    return f"{type(error).__name__}: {error}" if str(error) else type(error).__name__


class _Guarded:
    """One call of ``function(*args)`` in a daemon thread, waited for at most a deadline."""

    def __init__(self, name: str, function: Callable[..., Any], *args: Any) -> None:
        self.value: Any = None
        self.error: BaseException | None = None
        self._thread = threading.Thread(
            target=self._run, args=(function, args), name=f"dtf-probe-{name}", daemon=True
        )
        self._thread.start()

    def _run(self, function: Callable[..., Any], args: tuple) -> None:
        try:
            self.value = function(*args)
        except BaseException as error:  # a probe must not take the worker down
            self.error = error

    def wait(self, deadline: float) -> bool:
        """True when the call finished before ``deadline`` (a ``time.monotonic()`` value)."""
        self._thread.join(max(0.0, deadline - time.monotonic()))
        return not self._thread.is_alive()


def _answers(kinds: tuple[str, ...], call: _Guarded, timeout: float) -> dict[str, Probe]:
    """The probes of ``kinds`` from a finished (or not) guarded call."""
    if call.error is not None:
        reason = f"probe failed: {_describe(call.error)}"
        return {kind: Probe(kind=kind, ok=False, reason=reason) for kind in kinds}
    value = call.value
    answers: dict[str, Probe] = {}
    for item in [value] if isinstance(value, Probe) else list(value or []):
        if isinstance(item, Probe) and item.kind in kinds:
            answers.setdefault(item.kind, item)
    for kind in kinds:
        if kind not in answers:
            reason = f"probe gave no answer for {kind} (returned {type(value).__name__})"
            answers[kind] = Probe(kind=kind, ok=False, reason=reason)
    return answers


def _fallback_cpu() -> CpuInfo:
    threads = os.cpu_count() or 1
    return CpuInfo(cores=threads, threads=threads, memory_gb=0.0, arch=platform.machine())


def detect_inventory(
    *,
    hostname: str | None = None,
    probe_timeout: float = 20.0,
    kinds: Iterable[str] | None = None,
) -> Inventory:
    """What this machine has. Runs every probe (or those of ``kinds``); never raises."""
    wanted = None if kinds is None else {str(kind).strip().lower() for kind in kinds}
    started = time.monotonic()
    deadline = started + max(0.0, probe_timeout)
    cpu_call = _Guarded("cpu", CPU_PROBE["cpu"])
    calls: list[tuple[tuple[str, ...], _Guarded]] = []
    for group, function in list(PROBES.items()):
        chosen = group if wanted is None else tuple(kind for kind in group if kind in wanted)
        if chosen:
            calls.append((chosen, _Guarded("+".join(group), function, probe_timeout)))

    probes: dict[str, Probe] = {}
    for chosen, call in calls:
        if call.wait(deadline):
            probes.update(_answers(chosen, call, probe_timeout))
        else:
            reason = f"probe timed out after {probe_timeout:g}s"
            probes.update({kind: Probe(kind=kind, ok=False, reason=reason) for kind in chosen})
    known = {kind for group in PROBES for kind in group} | {"cpu"}
    for kind in sorted((wanted or set()) - known):
        probes[kind] = Probe(kind=kind, ok=False, reason=f"no probe for hardware kind {kind!r}")

    if cpu_call.wait(deadline) and cpu_call.error is None and isinstance(cpu_call.value, CpuInfo):
        cpu_info = cpu_call.value
    else:
        why = _describe(cpu_call.error) if cpu_call.error else "timed out or no answer"
        log.warning("CPU probe failed (%s); reporting os.cpu_count() only", why)
        cpu_info = _fallback_cpu()
    for kind, probe in probes.items():
        if not probe.ok:
            log.debug("hardware %s not available: %s", kind, probe.reason)
    log.debug("hardware detection took %.2fs", time.monotonic() - started)
    return Inventory(hostname=hostname or socket.gethostname(), cpu=cpu_info, probes=probes)


def queues_for(inventory: Inventory) -> list[str]:
    """The queues a worker with ``inventory`` consumes: ``cpu``, then each ok probe's kind."""
    return inventory.kinds()
