"""CPU probe: cores, threads and memory (psutil), model, architecture and flags.

Model and flags come from Linux's ``/proc/cpuinfo`` where it names both (x86, and Arm
kernels that print a model name); elsewhere from py-cpuinfo, which starts a Python
subprocess and probes for about a second of CPU time -- a second every worker start
would otherwise pay, on the cores the tests need.

Memory is in GiB (1024**3 bytes, the unit every ``*_gb`` of the inventory uses),
rounded to 0.1. Inside a container whose cgroup limits memory, the limit counts
instead of the host's total: that is what the tests on this worker can use.
"""

from __future__ import annotations

import os
import platform
from pathlib import Path

from dtf.inventory import CpuInfo

#: CPU flags worth routing on (SIMD / matrix extensions); every other flag is dropped.
#: Names as Linux ``/proc/cpuinfo`` and py-cpuinfo spell them (x86 and Arm).
INTERESTING_FLAGS: tuple[str, ...] = (
    # x86
    "sse4_1", "sse4_2", "avx", "avx2", "fma", "f16c",
    "avx512f", "avx512cd", "avx512bw", "avx512dq", "avx512vl",
    "avx512_vnni", "avx512vnni", "avx512_bf16", "avx512_fp16", "avx512ifma", "avx512vbmi",
    "avx_vnni", "amx_tile", "amx_bf16", "amx_int8",
    # Arm
    "neon", "asimd", "asimddp", "asimdhp", "sve", "sve2", "i8mm", "bf16", "sme",
)  # fmt: skip

GIB = 1024**3

_CGROUP_LIMITS = (
    Path("/sys/fs/cgroup/memory.max"),  # cgroup v2
    Path("/sys/fs/cgroup/memory/memory.limit_in_bytes"),  # cgroup v1
)


def _cgroup_memory_limit() -> int | None:
    """The memory limit of this process's cgroup in bytes; None when unlimited or unknown."""
    for path in _CGROUP_LIMITS:
        try:
            text = path.read_text().strip()
        except OSError:
            continue
        if text.isdigit() and int(text) < 2**60:  # v1 says "no limit" with a huge number
            return int(text)
    return None


def _memory_bytes() -> int:
    import psutil

    total = psutil.virtual_memory().total
    limit = _cgroup_memory_limit()
    return min(total, limit) if limit else total


def interesting_flags(flags: list[str] | tuple[str, ...]) -> list[str]:
    """The flags of ``INTERESTING_FLAGS`` among ``flags``, sorted."""
    have = {flag.lower() for flag in flags}
    return sorted(flag for flag in INTERESTING_FLAGS if flag in have)


def parse_proc_cpuinfo(text: str) -> tuple[str, list[str]] | None:
    """(model, flags) of the first processor in ``/proc/cpuinfo`` text; None unless both
    are there (Arm kernels often print no model name)."""
    model, flags = "", None
    for line in text.split("\n\n", 1)[0].splitlines():
        key, sep, value = line.partition(":")
        key = key.strip().lower()
        if not sep:
            continue
        if key == "model name":
            model = value.strip()
        elif key in ("flags", "features"):  # x86 says flags, Arm says Features
            flags = value.split()
    return (model, flags) if model and flags is not None else None


def _model_and_flags() -> tuple[str, str, list[str]]:
    """(model, arch, flags): from /proc/cpuinfo when it says, else from py-cpuinfo."""
    try:
        found = parse_proc_cpuinfo(Path("/proc/cpuinfo").read_text(errors="replace"))
    except OSError:
        found = None
    if found:
        return found[0], platform.machine(), found[1]
    import cpuinfo

    try:
        info = cpuinfo.get_cpu_info() or {}
    except Exception:  # py-cpuinfo fails on some exotic platforms: the counts still hold
        info = {}
    model = str(info.get("brand_raw") or platform.processor() or "")
    arch = str(info.get("arch_string_raw") or platform.machine() or info.get("arch") or "")
    return model, arch, list(info.get("flags") or [])


def probe_cpu() -> CpuInfo:
    """What the CPU of this machine is."""
    import psutil

    threads = psutil.cpu_count(logical=True) or os.cpu_count() or 1
    cores = psutil.cpu_count(logical=False) or threads
    model, arch, flags = _model_and_flags()
    return CpuInfo(
        cores=int(cores),
        threads=int(threads),
        memory_gb=round(_memory_bytes() / GIB, 1),
        model=model,
        arch=arch,
        flags=interesting_flags(flags),
    )
