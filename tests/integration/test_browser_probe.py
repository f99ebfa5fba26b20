"""The browser probe (``webgpu`` / ``webnn``) against the real Chromium of this machine.

CI installs Debian's ``chromium`` (``.ci/run``); there a missing browser fails.
Elsewhere the tests are skipped when no Chromium/Chrome is installed.
"""

from __future__ import annotations

import os
import re
import tempfile
from pathlib import Path

import psutil
import pytest
from dtf.workers.detection import browser, detect_inventory, queues_for

pytestmark = pytest.mark.integration


@pytest.fixture
def browser_path(monkeypatch, tmp_path) -> str:
    """The browser the probe will use; the probe's temporary files go under ``tmp_path``."""
    path, missing = browser.find_browser()
    if path is None:
        if os.environ.get("CI"):
            pytest.fail(f"CI needs a browser for the browser probe: {missing}")
        pytest.skip(missing)
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    return path


def _no_leftovers(tmp_path: Path) -> None:
    assert list(tmp_path.glob("dtf-browser-*")) == [], "temporary profile left behind"
    running = [
        process.info["pid"]
        for process in psutil.process_iter(["pid", "cmdline", "status"])
        if str(tmp_path) in " ".join(process.info["cmdline"] or [])
        and process.info["status"] != psutil.STATUS_ZOMBIE
    ]
    assert running == [], "browser processes left running"


def test_the_real_browser_answers(browser_path, tmp_path, monkeypatch):
    monkeypatch.delenv("DTF_WEBGPU_SOFTWARE", raising=False)
    webgpu, webnn = browser.probe(timeout=60)
    assert (webgpu.kind, webnn.kind) == ("webgpu", "webnn")
    for probe in (webgpu, webnn):
        found = probe.details["browser"]
        assert found["path"] == browser_path
        assert found["name"]
        if "chromium" in Path(browser_path).resolve().as_posix():
            assert found["name"] == "chromium"
        assert re.fullmatch(r"\d+(\.\d+)+", found["version"] or ""), found
        assert "HeadlessChrome" in (found.get("user_agent") or ""), probe.reason
        if not probe.ok:
            assert probe.reason
    assert isinstance(webgpu.details["navigator_gpu"], bool)
    assert isinstance(webnn.details["navigator_ml"], bool)
    if webgpu.ok:
        assert webgpu.details["adapter"], "webgpu ok without an adapter"
        assert not webgpu.details.get("software_adapter")
    if webnn.ok:
        assert webnn.details["navigator_ml"] and webnn.details["context"]
    _no_leftovers(tmp_path)


def test_a_software_adapter_counts_only_when_allowed(browser_path, tmp_path, monkeypatch):
    monkeypatch.delenv("DTF_WEBGPU_SOFTWARE", raising=False)
    webgpu, _ = browser.probe(timeout=60)
    if not webgpu.details.get("software_adapter"):
        assert "software" not in (webgpu.reason or "")
        return  # a GPU adapter, or none: nothing to opt into
    assert webgpu.ok is False
    assert "software" in webgpu.reason and "DTF_WEBGPU_SOFTWARE=1" in webgpu.reason
    monkeypatch.setenv("DTF_WEBGPU_SOFTWARE", "1")
    webgpu, _ = browser.probe(timeout=60)
    assert webgpu.ok, webgpu.reason
    assert webgpu.details["adapter"]
    _no_leftovers(tmp_path)


def test_detection_declares_the_browser_queues_it_found(browser_path, tmp_path):
    inventory = detect_inventory(kinds=["webgpu", "webnn"], probe_timeout=60)
    assert set(inventory.probes) == {"webgpu", "webnn"}
    queues = queues_for(inventory)
    assert queues[0] == "cpu"
    for kind in ("webgpu", "webnn"):
        probe = inventory.probes[kind]
        assert (kind in queues) == probe.ok
        assert probe.ok or probe.reason
        assert probe.details["browser"]["path"] == browser_path
    _no_leftovers(tmp_path)
