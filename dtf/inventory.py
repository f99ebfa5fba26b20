"""What a worker has: the schema detection (``workers/``) fills in and routing reads.

A worker registers its inventory as JSON (``Inventory.to_dict``); dtf matches
task requirements against it with ``unmet``. Every probe that cannot answer
says why in ``reason`` instead of failing the worker.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

#: Accelerator kinds whose probes report devices.
GPU_KINDS = ("cuda", "rocm", "mps")
#: Kinds served through a browser on the worker.
BROWSER_KINDS = ("webgpu", "webnn")


@dataclass
class Device:
    """One accelerator device."""

    index: int
    name: str
    memory_gb: float | None = None
    compute_capability: float | None = None  # CUDA only, e.g. 9.0
    arch: str | None = None  # ROCm gfx target, e.g. gfx90a
    driver: str | None = None


@dataclass
class Probe:
    """The answer of one hardware probe: ``ok`` with devices/details, or why not."""

    kind: str
    ok: bool
    reason: str | None = None
    devices: list[Device] = field(default_factory=list)
    details: dict[str, Any] = field(default_factory=dict)  # e.g. browser path/version, adapter


@dataclass
class CpuInfo:
    cores: int
    threads: int
    memory_gb: float
    model: str = ""
    arch: str = ""
    flags: list[str] = field(default_factory=list)


@dataclass
class Inventory:
    """Everything detection found on one machine."""

    hostname: str
    cpu: CpuInfo
    probes: dict[str, Probe] = field(default_factory=dict)  # kind -> probe, cpu excluded

    def kinds(self) -> list[str]:
        """Hardware kinds this machine serves: ``cpu`` always, then every probe that is ok."""
        return ["cpu", *(kind for kind, probe in self.probes.items() if probe.ok)]

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Inventory:
        probes = {
            kind: Probe(
                kind=p["kind"],
                ok=p["ok"],
                reason=p.get("reason"),
                devices=[Device(**d) for d in p.get("devices", [])],
                details=dict(p.get("details", {})),
            )
            for kind, p in (data.get("probes") or {}).items()
        }
        return cls(hostname=data["hostname"], cpu=CpuInfo(**data["cpu"]), probes=probes)


def unmet(
    inventory: Inventory, kind: str, requirements: Mapping[str, Any], *, serves_kind: bool = False
) -> str | None:
    """Why ``inventory`` cannot serve ``requirements`` on ``kind``; None when it can.

    ``serves_kind``: the worker consumes ``kind``'s queue (an operator may force a
    queue the probes did not find), so only the other requirements are checked.
    """
    if not serves_kind and kind not in inventory.kinds():
        probe = inventory.probes.get(kind)
        return f"no {kind}" + (f" ({probe.reason})" if probe and probe.reason else "")
    need_memory = requirements.get("min_memory_gb")
    if need_memory is not None and inventory.cpu.memory_gb < need_memory:
        return f"{inventory.cpu.memory_gb:g} GB memory < min_memory_gb {need_memory:g}"
    devices = inventory.probes[kind].devices if kind in inventory.probes else []
    if kind in GPU_KINDS:
        count = requirements.get("gpu_count")
        if count is not None and len(devices) < count:
            return f"{len(devices)} {kind} device(s) < gpu_count {count}"
        need_gpu = requirements.get("min_gpu_memory_gb")
        best = max((d.memory_gb or 0.0 for d in devices), default=0.0)
        if need_gpu is not None and best < need_gpu:
            return f"{best:g} GB {kind} memory < min_gpu_memory_gb {need_gpu:g}"
    elif requirements.get("min_gpu_memory_gb") is not None or requirements.get("gpu_count"):
        return f"{kind} has no GPU devices to satisfy a GPU requirement"
    need_cc = requirements.get("min_cuda_compute")
    if need_cc is not None:
        if kind != "cuda":
            return f"min_cuda_compute needs cuda, not {kind}"
        best_cc = max((d.compute_capability or 0.0 for d in devices), default=0.0)
        if best_cc < need_cc:
            return f"compute capability {best_cc:g} < min_cuda_compute {need_cc:g}"
    browser = requirements.get("browser")
    if browser:
        found = [
            str(p.details.get("browser", {}).get("name", "")).lower()
            for k, p in inventory.probes.items()
            if k in BROWSER_KINDS and p.ok
        ]
        if not any(browser.lower() in name for name in found):
            return f"no browser matching '{browser}'"
    return None
