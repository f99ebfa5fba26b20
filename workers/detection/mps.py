"""Apple probe (kind ``mps``): Metal Performance Shaders through PyTorch, on macOS arm64 only."""

from __future__ import annotations

import importlib.util
import platform
import subprocess

from dtf.inventory import Device, Probe

KIND = "mps"
GIB = 1024**3


def _sysctl(name: str, timeout: float) -> str | None:
    try:
        proc = subprocess.run(
            ["sysctl", "-n", name], capture_output=True, text=True, timeout=timeout
        )
    except (OSError, subprocess.SubprocessError):
        return None
    if proc.returncode != 0:
        return None
    return proc.stdout.strip() or None


def probe(timeout: float = 15.0) -> Probe:
    """The Apple GPU of this Mac, when PyTorch can use it; never raises."""
    system, machine = platform.system(), platform.machine()
    if system != "Darwin":
        return Probe(kind=KIND, ok=False, reason=f"not macOS ({system or 'unknown system'})")
    if machine != "arm64":
        return Probe(kind=KIND, ok=False, reason=f"not Apple silicon ({machine})")
    if importlib.util.find_spec("torch") is None:
        return Probe(kind=KIND, ok=False, reason="torch not installed")
    import torch

    details = {"torch": torch.__version__, "macos": platform.mac_ver()[0]}
    if not torch.backends.mps.is_built():
        return Probe(kind=KIND, ok=False, reason="torch built without MPS", details=details)
    if not torch.backends.mps.is_available():
        reason = "torch.backends.mps.is_available() is False (macOS 12.3+ needed)"
        return Probe(kind=KIND, ok=False, reason=reason, details=details)
    memory = _sysctl("hw.memsize", timeout)  # unified memory, shared with the CPU
    device = Device(
        index=0,
        name=_sysctl("machdep.cpu.brand_string", timeout) or "Apple GPU",
        memory_gb=round(int(memory) / GIB, 1) if memory and memory.isdigit() else None,
    )
    return Probe(kind=KIND, ok=True, devices=[device], details=details)
