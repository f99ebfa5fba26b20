"""Health checks of a worker's hardware queues.

A worker checks each of its queues at startup and every ``DTF_HEALTH_INTERVAL``
seconds (default 60); a queue whose check fails is not consumed until it passes
again (``workers/health_step.py``). The checks:

- ``cpu``: a hash and an arithmetic computation with known results, and free
  memory and temp-dir disk above a floor.
- ``cuda`` / ``rocm`` / ``mps``: a 256x256 matmul on device 0 compared with the
  CPU result, in a subprocess (so the worker, whose pool children fork from it,
  never initialises a GPU context): with torch (a ROCm build for ``rocm``), else
  cupy (``cuda``). Without a compute library the check falls back to the driver
  tool (``nvidia-smi`` / ``rocm-smi``): the queue is ok when it lists the GPUs,
  and the reason says only the driver was checked. (Failing instead would drain
  the cuda queue of every worker image without torch, such as workers/Dockerfile.)
- ``webgpu`` / ``webnn``: detection's check page loaded headless in the browser
  detection found (``details["browser"]["path"]`` of the probe), judged as
  detection judges it: a GPU adapter from ``navigator.gpu`` (software only with
  ``DTF_WEBGPU_SOFTWARE=1``) / a context from ``navigator.ml``.
- A queue forced with ``DTF_FORCE_QUEUES`` on a machine without that hardware is
  ok, not checked. Queues that are not hardware kinds have no check.

Operator and test switches that fail checks on purpose (to drain a queue):
``DTF_HEALTH_FAIL=cpu,cuda`` fails those queues for the worker's lifetime;
``DTF_HEALTH_FAIL_FILE=/path`` fails them while the file exists (it lists the
queues, comma- or space-separated; an empty file fails every queue).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from dtf.inventory import Inventory

FORCED_REASON = "forced by DTF_FORCE_QUEUES, not checked"
MIN_FREE_MEMORY_MB = 256
MIN_FREE_DISK_MB = 512
#: Seconds a device check may take (importing torch and creating a context is slow).
DEVICE_CHECK_TIMEOUT = 180.0
BROWSER_CHECK_TIMEOUT = 30.0

_SELF_TEST = b"dtf cpu self-test\n" * 20000
_SELF_TEST_SHA256 = "e6bef17d20da724d09a105ab80432de0a7e7f136a7fe10a58ace8e16a9117453"


@dataclass(frozen=True)
class Health:
    """The outcome of one check: ok, or why not (an ok check may carry a note)."""

    ok: bool
    reason: str | None = None

    def entry(self, now: datetime | None = None) -> dict:
        """The registry's ``queue_health`` value for this outcome."""
        when = now or datetime.now(timezone.utc)
        return {"ok": self.ok, "reason": self.reason, "checked_at": when.isoformat()}


def health_interval(env: Mapping[str, str] | None = None) -> float:
    """Seconds between checks: ``DTF_HEALTH_INTERVAL``, default 60."""
    return float((os.environ if env is None else env).get("DTF_HEALTH_INTERVAL") or 60.0)


def check_queue(
    queue: str,
    inventory: Inventory,
    forced: set[str] | frozenset[str] = frozenset(),
    env: Mapping[str, str] | None = None,
) -> Health:
    """Run the check of ``queue``; never raises."""
    switched = fail_switch(queue, os.environ if env is None else env)
    if switched:
        return Health(False, switched)
    if queue in forced and queue not in inventory.kinds():
        return Health(True, FORCED_REASON)
    check = CHECKS.get(queue)
    if check is None:
        return Health(True, "not a hardware queue, not checked")
    try:
        return check(queue, inventory)
    except Exception as exc:  # a broken check says so instead of stopping the checks
        return Health(False, f"the {queue} check failed: {type(exc).__name__}: {exc}")


def fail_switch(queue: str, env: Mapping[str, str]) -> str | None:
    """Why ``DTF_HEALTH_FAIL`` or ``DTF_HEALTH_FAIL_FILE`` fails ``queue``; None if they don't."""
    if queue in _names(env.get("DTF_HEALTH_FAIL", "")):
        return "failed on purpose: DTF_HEALTH_FAIL names this queue"
    path = env.get("DTF_HEALTH_FAIL_FILE")
    if path:
        try:
            names = _names(Path(path).read_text(errors="replace"))
        except OSError:
            return None  # no file: nothing fails
        if not names or queue in names:
            return f"failed on purpose: DTF_HEALTH_FAIL_FILE {path} exists"
    return None


def _names(text: str) -> set[str]:
    return {name for name in text.replace(",", " ").split() if name}


def check_cpu(queue: str = "cpu", inventory: Inventory | None = None) -> Health:
    """Known results from the CPU, and enough free memory and disk to run tests."""
    import psutil

    n = 200_000
    if sum(i * i for i in range(n)) != (n - 1) * n * (2 * n - 1) // 6:
        return Health(False, "CPU self-test: a sum of squares came out wrong")
    if hashlib.sha256(_SELF_TEST).hexdigest() != _SELF_TEST_SHA256:
        return Health(False, "CPU self-test: a SHA-256 digest came out wrong")
    memory_mb = psutil.virtual_memory().available / 2**20
    if memory_mb < MIN_FREE_MEMORY_MB:
        return Health(False, f"{memory_mb:.0f} MiB memory free < {MIN_FREE_MEMORY_MB} MiB")
    tmp = tempfile.gettempdir()
    disk_mb = shutil.disk_usage(tmp).free / 2**20
    if disk_mb < MIN_FREE_DISK_MB:
        return Health(False, f"{disk_mb:.0f} MiB disk free in {tmp} < {MIN_FREE_DISK_MB} MiB")
    return Health(True)


# Run with `python -c SCRIPT KIND`; prints {"ok": true|false, "reason": ...}, or
# {"ok": null} when no compute library for KIND is importable.
_DEVICE_SCRIPT = r"""
import json, sys
kind = sys.argv[1]

def done(ok, reason=None):
    print(json.dumps({"ok": ok, "reason": reason}))
    sys.exit(0)

def compare(name, got, expected):
    diff = float(abs(got - expected).max())
    if diff > 1e-2:
        done(False, f"matmul on {name} differs from the CPU result by {diff:.3g}")
    done(True)

try:
    import torch
except ImportError:
    torch = None
if torch is not None:
    build = {"cuda": torch.version.cuda, "rocm": getattr(torch.version, "hip", None),
             "mps": True}[kind]
    if build:
        if kind == "mps":
            usable, device = torch.backends.mps.is_available(), "mps"
        else:
            usable, device = torch.cuda.is_available(), "cuda:0"
        if not usable:
            done(False, f"torch {torch.__version__} cannot use the {kind} device")
        torch.backends.cuda.matmul.allow_tf32 = False
        gen = torch.Generator().manual_seed(0)
        a, b = torch.rand(256, 256, generator=gen), torch.rand(256, 256, generator=gen)
        name = device if kind == "mps" else f"{device} ({torch.cuda.get_device_name(0)})"
        compare(name, (a.to(device) @ b.to(device)).cpu(), a @ b)
if kind == "cuda":
    try:
        import cupy, numpy
    except ImportError:
        cupy = None
    if cupy is not None:
        rng = numpy.random.default_rng(0)
        a = rng.random((256, 256), dtype=numpy.float32)
        b = rng.random((256, 256), dtype=numpy.float32)
        compare("cuda device 0 (cupy)", cupy.asnumpy(cupy.asarray(a) @ cupy.asarray(b)), a @ b)
done(None)
"""

#: The driver tool a GPU kind falls back to without a compute library.
_DRIVER_TOOLS = {
    "cuda": ["nvidia-smi", "--query-gpu=name", "--format=csv,noheader"],
    "rocm": ["rocm-smi", "--showproductname"],
}


def check_gpu(queue: str, inventory: Inventory | None = None) -> Health:
    """A matmul on the device in a subprocess; the driver tool without torch/cupy."""
    try:
        proc = subprocess.run(
            [sys.executable, "-c", _DEVICE_SCRIPT, queue],
            capture_output=True, text=True, timeout=DEVICE_CHECK_TIMEOUT,
        )  # fmt: skip
    except subprocess.TimeoutExpired:
        return Health(False, f"the {queue} device check took over {DEVICE_CHECK_TIMEOUT:g}s")
    lines = proc.stdout.strip().splitlines()
    try:
        result = json.loads(lines[-1])
    except (IndexError, ValueError):
        return Health(False, f"the {queue} device check crashed: {_last_line(proc.stderr)}")
    if result["ok"] is not None:
        return Health(bool(result["ok"]), result.get("reason"))
    return _driver_check(queue)


def _driver_check(queue: str) -> Health:
    library = "torch" if queue != "cuda" else "torch or cupy"
    tool = _DRIVER_TOOLS.get(queue)
    if tool is None:
        return Health(False, f"no {library} to run the {queue} device check")
    if shutil.which(tool[0]) is None:
        return Health(False, f"no {library} for a device check, and no {tool[0]} (no driver?)")
    try:
        proc = subprocess.run(tool, capture_output=True, text=True, timeout=60)
    except subprocess.TimeoutExpired:
        return Health(False, f"{tool[0]} did not answer in 60s")
    if proc.returncode != 0:
        return Health(False, f"{tool[0]} failed: {_last_line(proc.stderr or proc.stdout)}")
    return Health(True, f"driver check only ({tool[0]} runs); {library} would check compute")


def check_browser(queue: str, inventory: Inventory) -> Health:
    """Load detection's check page in the detected browser; judge it as detection does."""
    from dtf.workers.detection import browser

    probe = inventory.probes.get(queue)
    path = ((probe.details if probe else {}).get("browser") or {}).get("path")
    if not path:
        return Health(False, f"the {queue} probe names no browser to load a page in")
    try:
        found = browser.run_check_page(path, timeout=BROWSER_CHECK_TIMEOUT)
    except browser.BrowserError as exc:
        return Health(False, f"{path}: {exc}")
    if found.get("error"):
        return Health(False, f"{path}: the check page failed: {found['error']}")
    judged = browser._webgpu(found, {}) if queue == "webgpu" else browser._webnn(found, {})
    return Health(judged.ok, judged.reason)


def _last_line(text: str) -> str:
    lines = [line.strip() for line in (text or "").strip().splitlines() if line.strip()]
    return lines[-1][:300] if lines else "no output"


CHECKS = {
    "cpu": check_cpu,
    "cuda": check_gpu,
    "rocm": check_gpu,
    "mps": check_gpu,
    "webgpu": check_browser,
    "webnn": check_browser,
}
