"""Browser probe (kinds ``webgpu`` and ``webnn``): ask a headless Chromium/Chrome.

The browser is the one named by ``DTF_BROWSER`` (a path or a command name), else
the first of ``chromium``, ``chromium-browser``, ``google-chrome`` and
``google-chrome-stable`` on PATH. It loads a page from a throwaway HTTP server on
127.0.0.1 (a secure context, so ``navigator.gpu`` exists when WebGPU is enabled);
the page checks ``navigator.gpu`` / ``requestAdapter()`` and ``navigator.ml`` /
``createContext()`` and POSTs what it found back. The browser's whole process
group is killed and its temporary profile removed afterwards, whatever happened.

``webgpu`` is ok when an adapter backed by a GPU is returned. Chromium hands out
a software adapter (SwiftShader) on machines without a GPU; that one counts only
when ``DTF_WEBGPU_SOFTWARE=1`` (for CI), so CPU-only workers do not take WebGPU
work by default. ``webnn`` is ok when ``navigator.ml.createContext()`` succeeds.
Extra browser switches (e.g. ``--use-angle=vulkan``) go in ``DTF_BROWSER_FLAGS``.
"""

from __future__ import annotations

import contextlib
import copy
import json
import os
import re
import secrets
import shlex
import shutil
import signal
import subprocess
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from dtf.inventory import Probe

KINDS = ("webgpu", "webnn")
CANDIDATES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")

#: Switches of every probe run (unknown ones are ignored by Chromium).
FLAGS = (
    "--headless=new",
    "--no-sandbox",  # workers often run as root in containers
    "--disable-gpu-sandbox",
    "--no-first-run",
    "--no-default-browser-check",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-extensions",
    "--disable-dev-shm-usage",  # Docker's 64 MB /dev/shm crashes Chromium otherwise
    "--mute-audio",
    "--enable-unsafe-webgpu",  # WebGPU is behind this switch on Linux
    "--ignore-gpu-blocklist",  # server GPUs without a display are often blocklisted
    "--enable-features=Vulkan,WebMachineLearningNeuralNetwork",
)

#: Adapters that are software renderers, not GPUs (matched in the adapter's info).
SOFTWARE_ADAPTERS = ("swiftshader", "llvmpipe", "lavapipe", "softpipe", "warp")

_PAGE = """<!doctype html>
<html><head><meta charset="utf-8"><title>dtf hardware probe</title></head><body><script>
const TOKEN = "%(token)s", STEP_MS = %(step_ms)d;
const text = (v) => (v === undefined || v === null) ? null : String(v);
const within = (promise, what) => Promise.race([promise, new Promise((_, reject) =>
  setTimeout(() => reject(new Error(what + " gave no answer in " + STEP_MS + " ms")), STEP_MS))]);
async function check() {
  const r = {secure: window.isSecureContext, userAgent: navigator.userAgent,
             gpu: "gpu" in navigator, ml: "ml" in navigator};
  if (r.gpu) {
    try {
      let a = await within(navigator.gpu.requestAdapter({powerPreference: "high-performance"}),
                           "requestAdapter()");
      if (!a) a = await within(navigator.gpu.requestAdapter(), "requestAdapter()");
      if (a) {
        const i = a.info || (a.requestAdapterInfo ? await a.requestAdapterInfo() : {}) || {};
        const l = a.limits || {};
        r.adapter = {
          vendor: text(i.vendor), architecture: text(i.architecture),
          device: text(i.device), description: text(i.description),
          isFallbackAdapter: Boolean(i.isFallbackAdapter || a.isFallbackAdapter),
          features: Array.from(a.features || []).sort(),
          limits: {maxBufferSize: l.maxBufferSize,
                   maxStorageBufferBindingSize: l.maxStorageBufferBindingSize,
                   maxComputeInvocationsPerWorkgroup: l.maxComputeInvocationsPerWorkgroup,
                   maxComputeWorkgroupStorageSize: l.maxComputeWorkgroupStorageSize},
        };
      } else {
        r.adapter = null;
      }
    } catch (e) { r.gpuError = String(e); }
  }
  if (r.ml) {
    r.mlCreateContext = typeof navigator.ml.createContext === "function";
    if (r.mlCreateContext) {
      try { await within(navigator.ml.createContext(), "createContext()"); r.mlContext = true; }
      catch (e) { r.mlContext = false; r.mlError = String(e); }
    }
  }
  return r;
}
check().catch((e) => ({error: String(e)})).then((r) =>
  fetch("/result/" + TOKEN, {method: "POST", body: JSON.stringify(r)}));
</script></body></html>
"""


class BrowserError(RuntimeError):
    """The browser could not run the check page."""


def find_browser() -> tuple[str | None, str]:
    """The browser's path, or None and what was looked for."""
    named = os.environ.get("DTF_BROWSER", "").strip()
    if named:
        path = shutil.which(named) or (named if os.access(named, os.X_OK) else None)
        return path, f"DTF_BROWSER={named!r} is not an executable"
    for name in CANDIDATES:
        path = shutil.which(name)
        if path:
            return path, ""
    looked = ", ".join(CANDIDATES)
    return None, f"no Chromium/Chrome browser (DTF_BROWSER unset; looked for {looked} on PATH)"


def browser_version(path: str, timeout: float = 10.0) -> tuple[str, str | None]:
    """The browser's name ("chromium", "chrome" or the file name) and version."""
    fallback = Path(path).name
    try:
        proc = subprocess.run(
            [path, "--version"], capture_output=True, text=True, timeout=timeout,
            stdin=subprocess.DEVNULL,
        )  # fmt: skip
        output = proc.stdout
    except (OSError, subprocess.SubprocessError):
        output = ""
    lowered = (output + " " + fallback).lower()
    name = "chrome" if "google chrome" in lowered or "google-chrome" in lowered else fallback
    if "chromium" in lowered:
        name = "chromium"
    match = re.search(r"\b(\d+(?:\.\d+){1,3})\b", output)
    return name, match.group(1) if match else None


def _serve(page: bytes, token: str, result: dict[str, Any], done: threading.Event):
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            if self.path.split("?")[0] not in ("/", "/index.html"):
                self.send_error(404)
                return
            self.send_response(200)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.send_header("Content-Length", str(len(page)))
            self.end_headers()
            self.wfile.write(page)

        def do_POST(self) -> None:
            if self.path != f"/result/{token}":
                self.send_error(404)
                return
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            try:
                result.update(json.loads(body or b"{}"))
            except ValueError:
                result["error"] = f"unreadable result: {body[:200]!r}"
            self.send_response(204)
            self.end_headers()
            done.set()

        def log_message(self, format: str, *args: Any) -> None:
            pass

    class Server(ThreadingHTTPServer):
        def handle_error(self, request, client_address) -> None:
            pass  # the browser closed a connection (favicon, shutdown): not the worker's

    server = Server(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, name="dtf-browser-probe", daemon=True).start()
    return server


def _group_alive(pgid: int) -> bool:
    """Whether a process of group ``pgid`` still runs (zombies waiting for init do not count)."""
    import psutil

    for process in psutil.process_iter():
        with contextlib.suppress(psutil.Error, OSError):
            if os.getpgid(process.pid) == pgid and process.status() != psutil.STATUS_ZOMBIE:
                return True
    return False


def _kill_group(proc: subprocess.Popen) -> None:
    """Stop the browser and every process it started (they share its process group)."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGTERM)  # the browser stops its children and exits
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(timeout=3.0)
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)  # whatever is left of the group
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(timeout=5.0)
    deadline = time.monotonic() + 3.0
    while time.monotonic() < deadline and _group_alive(proc.pid):
        time.sleep(0.05)


def _tail(path: Path, lines: int = 3) -> str:
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return ""
    useful = [line for line in text.splitlines() if line.strip() and "dbus" not in line]
    return " | ".join(useful[-lines:])


def run_check_page(path: str, timeout: float = 15.0) -> dict[str, Any]:
    """What the check page found in the browser at ``path``; raises only BrowserError."""
    try:
        return _run_check_page(path, timeout)
    except BrowserError:
        raise
    except Exception as error:  # cannot start the browser, no port to listen on, ...
        raise BrowserError(f"{type(error).__name__}: {error}") from error


def _run_check_page(path: str, timeout: float) -> dict[str, Any]:
    token = secrets.token_hex(16)
    step_ms = max(1000, int(timeout * 1000 * 0.4))
    page = (_PAGE % {"token": token, "step_ms": step_ms}).encode()
    result: dict[str, Any] = {}
    done = threading.Event()
    profile = Path(tempfile.mkdtemp(prefix="dtf-browser-"))
    log = profile.parent / f"{profile.name}.log"
    server = proc = None
    try:
        server = _serve(page, token, result, done)
        url = f"http://127.0.0.1:{server.server_address[1]}/"
        extra = shlex.split(os.environ.get("DTF_BROWSER_FLAGS", ""))
        with open(log, "wb") as stderr:
            proc = subprocess.Popen(
                [path, *FLAGS, f"--user-data-dir={profile}", *extra, url],
                stdin=subprocess.DEVNULL, stdout=stderr, stderr=stderr, start_new_session=True,
            )  # fmt: skip
        deadline = time.monotonic() + timeout
        while not done.wait(0.05):
            if proc.poll() is not None:
                raise BrowserError(
                    f"browser exited {proc.returncode} before answering: {_tail(log)}"
                )
            if time.monotonic() > deadline:
                raise BrowserError(f"no answer from the browser within {timeout:g}s: {_tail(log)}")
        return dict(result)
    finally:
        if proc is not None:
            _kill_group(proc)
        if server is not None:
            server.shutdown()
            server.server_close()
        shutil.rmtree(profile, ignore_errors=True)
        with contextlib.suppress(OSError):
            log.unlink()


def _software(adapter: dict[str, Any]) -> str | None:
    """The software renderer behind ``adapter``, None when it is a GPU."""
    described = " ".join(
        str(adapter.get(key) or "") for key in ("vendor", "architecture", "device", "description")
    ).lower()
    for name in SOFTWARE_ADAPTERS:
        if re.search(rf"\b{name}\b", described):
            return name
    return "fallback adapter" if adapter.get("isFallbackAdapter") else None


def judge_webgpu(found: dict[str, Any], base: dict[str, Any]) -> Probe:
    """The ``webgpu`` probe from what the check page ``found``; ``base``: details to carry."""
    adapter = found.get("adapter")
    details = {
        **copy.deepcopy(base),
        "adapter": adapter or {},
        "navigator_gpu": bool(found.get("gpu")),
    }
    if not found.get("gpu"):
        secure = "" if found.get("secure", True) else " (page was not a secure context)"
        reason = f"navigator.gpu is missing: WebGPU is not enabled in this browser{secure}"
        return Probe(kind="webgpu", ok=False, reason=reason, details=details)
    if found.get("gpuError"):
        reason = f"navigator.gpu.requestAdapter() failed: {found['gpuError']}"
        return Probe(kind="webgpu", ok=False, reason=reason, details=details)
    if not adapter:
        reason = "navigator.gpu exists but requestAdapter() returned no adapter (no usable GPU)"
        return Probe(kind="webgpu", ok=False, reason=reason, details=details)
    software = _software(adapter)
    if software:
        details["software_adapter"] = software
        if os.environ.get("DTF_WEBGPU_SOFTWARE", "").strip().lower() not in ("1", "true", "yes"):
            reason = (
                f"navigator.gpu exists but the only adapter is software ({software}), no GPU; "
                "DTF_WEBGPU_SOFTWARE=1 accepts it"
            )
            return Probe(kind="webgpu", ok=False, reason=reason, details=details)
    return Probe(kind="webgpu", ok=True, details=details)


def judge_webnn(found: dict[str, Any], base: dict[str, Any]) -> Probe:
    """The ``webnn`` probe from what the check page ``found``; ``base``: details to carry."""
    details = {
        **copy.deepcopy(base),
        "navigator_ml": bool(found.get("ml")),
        "context": bool(found.get("mlContext")),
    }
    if not found.get("ml"):
        reason = "navigator.ml is missing: WebNN is not enabled in this browser"
        return Probe(kind="webnn", ok=False, reason=reason, details=details)
    if found.get("mlCreateContext") is False:
        reason = "navigator.ml exists but has no createContext()"
        return Probe(kind="webnn", ok=False, reason=reason, details=details)
    if not found.get("mlContext"):
        reason = f"navigator.ml exists but createContext() failed: {found.get('mlError')}"
        return Probe(kind="webnn", ok=False, reason=reason, details=details)
    return Probe(kind="webnn", ok=True, details=details)


def probe(timeout: float = 20.0) -> list[Probe]:
    """The ``webgpu`` and ``webnn`` probes from one browser run; never raises."""
    started = time.monotonic()
    path, missing = find_browser()
    if path is None:
        return [Probe(kind=kind, ok=False, reason=missing) for kind in KINDS]
    name, version = browser_version(path, timeout=min(10.0, timeout / 4))
    base: dict[str, Any] = {"browser": {"name": name, "path": path, "version": version}}
    # Leave a few seconds of the budget for stopping the browser.
    remaining = max(1.0, timeout - (time.monotonic() - started) - 3.0)
    try:
        found = run_check_page(path, timeout=remaining)
    except Exception as error:
        reason = f"browser check failed: {error}"
        return [Probe(kind=kind, ok=False, reason=reason, details=dict(base)) for kind in KINDS]
    if found.get("error"):
        reason = f"browser check page failed: {found['error']}"
        return [Probe(kind=kind, ok=False, reason=reason, details=dict(base)) for kind in KINDS]
    base["browser"]["user_agent"] = found.get("userAgent")
    return [judge_webgpu(found, base), judge_webnn(found, base)]


# Earlier names, kept for callers (workers/health.py).
_webgpu = judge_webgpu
_webnn = judge_webnn
