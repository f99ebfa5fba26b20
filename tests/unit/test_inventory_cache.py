"""Local workers reuse a recent inventory instead of probing the machine at every run."""

import os
import time

import workers.detection.detect as detection
from dtf.inventory import CpuInfo, Inventory
from workers.startup import INVENTORY_CACHE_MAX_AGE_S, detect

KNOWN = Inventory("cached-host", CpuInfo(cores=64, threads=128, memory_gb=512.0))


def test_a_fresh_cached_inventory_is_used_as_is(tmp_path, monkeypatch):
    cache = tmp_path / "inventory.json"
    monkeypatch.setenv("DTF_INVENTORY_CACHE", str(cache))
    monkeypatch.setattr(detection, "detect_inventory", lambda **kwargs: KNOWN)
    assert detect() == KNOWN  # detected and written

    monkeypatch.setattr(detection, "detect_inventory", lambda **kwargs: 1 / 0)
    assert detect() == KNOWN  # read back, no probe ran


def test_an_old_cached_inventory_is_detected_again(tmp_path, monkeypatch):
    cache = tmp_path / "inventory.json"
    monkeypatch.setenv("DTF_INVENTORY_CACHE", str(cache))
    monkeypatch.setattr(detection, "detect_inventory", lambda **kwargs: KNOWN)
    detect()
    old = time.time() - INVENTORY_CACHE_MAX_AGE_S - 60
    os.utime(cache, (old, old))

    fresh = Inventory("new-host", CpuInfo(cores=2, threads=2, memory_gb=8.0))
    monkeypatch.setattr(detection, "detect_inventory", lambda **kwargs: fresh)
    assert detect() == fresh


def test_without_the_setting_every_start_detects(tmp_path, monkeypatch):
    monkeypatch.delenv("DTF_INVENTORY_CACHE", raising=False)
    monkeypatch.setattr(detection, "detect_inventory", lambda **kwargs: KNOWN)
    assert detect() == KNOWN
    assert not list(tmp_path.iterdir())
