"""NVIDIA probe (kind ``cuda``): NVML via ``pynvml`` (package nvidia-ml-py), else ``nvidia-smi``.

Memory is in GiB. ``CUDA_VISIBLE_DEVICES`` is honoured when it lists indices or
GPU UUIDs: a worker pinned to some GPUs reports only those (``Device.index`` stays
the physical index; ``details["visible_devices"]`` says what the variable was).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess

from dtf.inventory import Device, Probe

KIND = "cuda"
GIB = 1024**3
MIB_PER_GIB = 1024

#: The query of the ``nvidia-smi`` fallback; older drivers lack ``compute_cap``.
SMI_FIELDS = ("index", "name", "memory.total", "compute_cap", "driver_version")


def _text(value) -> str:
    return value.decode(errors="replace") if isinstance(value, bytes) else str(value)


def _visible(devices: list[Device], uuids: dict[int, str]) -> tuple[list[Device], str | None]:
    """``devices`` filtered by ``CUDA_VISIBLE_DEVICES``; the variable's value (None: unset)."""
    value = os.environ.get("CUDA_VISIBLE_DEVICES")
    if value is None:
        return devices, None
    wanted: list[Device] = []
    by_index = {d.index: d for d in devices}
    for entry in (e.strip() for e in value.split(",")):
        if not entry:
            continue
        if entry.lstrip("-").isdigit():
            number = int(entry)
            if number < 0:  # CUDA stops at the first invalid entry
                break
            device = by_index.get(number)
        else:
            device = next((by_index[i] for i, u in uuids.items() if u.startswith(entry)), None)
            if device is None and not uuids:  # nvidia-smi fallback has no UUIDs: keep all
                return devices, value
        if device is None:
            break
        if device not in wanted:
            wanted.append(device)
    return wanted, value


def _probe_result(devices: list[Device], uuids: dict[int, str], source: str, driver: str | None):
    visible, variable = _visible(devices, uuids)
    details: dict = {"source": source, "driver": driver, "count": len(devices)}
    if variable is not None:
        details["visible_devices"] = variable
    if not devices:
        return Probe(kind=KIND, ok=False, reason=f"{source} reports 0 NVIDIA GPUs", details=details)
    if not visible:
        reason = f"CUDA_VISIBLE_DEVICES={variable!r} hides all {len(devices)} NVIDIA GPU(s)"
        return Probe(kind=KIND, ok=False, reason=reason, details=details)
    return Probe(kind=KIND, ok=True, devices=visible, details=details)


def query_nvml() -> tuple[list[Device], dict[int, str], str]:
    """Devices, their UUIDs by index and the driver version from NVML; raises when NVML fails."""
    import pynvml

    pynvml.nvmlInit()
    try:
        driver = _text(pynvml.nvmlSystemGetDriverVersion())
        devices: list[Device] = []
        uuids: dict[int, str] = {}
        for index in range(pynvml.nvmlDeviceGetCount()):
            handle = pynvml.nvmlDeviceGetHandleByIndex(index)
            try:
                memory_gb: float | None = round(
                    pynvml.nvmlDeviceGetMemoryInfo(handle).total / GIB, 1
                )
            except pynvml.NVMLError:  # e.g. "Not Supported" on some unified-memory parts
                memory_gb = None
            try:
                major, minor = pynvml.nvmlDeviceGetCudaComputeCapability(handle)
                capability: float | None = float(f"{major}.{minor}")
            except pynvml.NVMLError:
                capability = None
            with contextlib.suppress(pynvml.NVMLError):
                uuids[index] = _text(pynvml.nvmlDeviceGetUUID(handle))
            devices.append(
                Device(
                    index=index,
                    name=_text(pynvml.nvmlDeviceGetName(handle)),
                    memory_gb=memory_gb,
                    compute_capability=capability,
                    driver=driver,
                )
            )
        return devices, uuids, driver
    finally:
        with contextlib.suppress(Exception):
            pynvml.nvmlShutdown()


def _number(text: str) -> float | None:
    try:
        return float(text.strip())
    except ValueError:  # "[N/A]", "[Not Supported]"
        return None


def parse_nvidia_smi_csv(output: str, fields: tuple[str, ...] = SMI_FIELDS) -> list[Device]:
    """Devices from ``nvidia-smi --query-gpu=FIELDS --format=csv,noheader,nounits`` output."""
    devices = []
    count = len(fields)
    for line in output.splitlines():
        if not line.strip():
            continue
        # The name may hold commas; every other field cannot: split the rest off the right.
        first, rest = line.split(",", 1) if "," in line else (line, "")
        values = [first, *rest.rsplit(",", count - 2)] if count > 2 else [first, rest]
        if len(values) != count:
            raise ValueError(f"unexpected nvidia-smi line: {line!r}")
        row = dict(zip(fields, (v.strip() for v in values), strict=True))
        memory_mib = _number(row.get("memory.total", ""))
        capability = _number(row["compute_cap"]) if "compute_cap" in row else None
        devices.append(
            Device(
                index=int(row["index"]),
                name=row["name"],
                memory_gb=round(memory_mib / MIB_PER_GIB, 1) if memory_mib is not None else None,
                compute_capability=capability,
                driver=row.get("driver_version") or None,
            )
        )
    return devices


def _run_smi(binary: str, fields: tuple[str, ...], timeout: float):
    return subprocess.run(
        [binary, f"--query-gpu={','.join(fields)}", "--format=csv,noheader,nounits"],
        capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL,
    )  # fmt: skip


def query_nvidia_smi(timeout: float = 15.0) -> list[Device]:
    """Devices from the ``nvidia-smi`` on PATH; raises FileNotFoundError or RuntimeError."""
    binary = shutil.which("nvidia-smi")
    if binary is None:
        raise FileNotFoundError("nvidia-smi not found")
    fields = SMI_FIELDS
    proc = _run_smi(binary, fields, timeout)
    if proc.returncode != 0 and "compute_cap" in (proc.stdout + proc.stderr):
        fields = tuple(f for f in SMI_FIELDS if f != "compute_cap")  # driver older than 510
        proc = _run_smi(binary, fields, timeout)
    if proc.returncode != 0:
        message = (proc.stderr.strip() or proc.stdout.strip()).splitlines()
        raise RuntimeError(
            f"nvidia-smi exited {proc.returncode}: {message[0] if message else 'no output'}"
        )
    return parse_nvidia_smi_csv(proc.stdout, fields)


def probe(timeout: float = 15.0) -> Probe:
    """NVIDIA GPUs of this machine; never raises."""
    try:
        devices, uuids, driver = query_nvml()
    except Exception as error:
        nvml_error = f"{type(error).__name__}: {error}"
    else:
        return _probe_result(devices, uuids, "nvml", driver)
    try:
        devices = query_nvidia_smi(timeout)
    except FileNotFoundError:
        reason = f"no NVIDIA driver: NVML not loadable ({nvml_error}) and nvidia-smi not found"
        return Probe(kind=KIND, ok=False, reason=reason)
    except Exception as error:
        reason = f"NVML not loadable ({nvml_error}); nvidia-smi failed: {error}"
        return Probe(kind=KIND, ok=False, reason=reason)
    driver = devices[0].driver if devices else None
    return _probe_result(devices, {}, "nvidia-smi", driver)
