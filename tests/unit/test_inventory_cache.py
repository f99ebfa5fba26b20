"""Local workers reuse a recent inventory instead of probing the machine at every run."""

import os
import time

import dtf.workers.detection.detect as detection
from dtf.workers.startup import INVENTORY_CACHE_MAX_AGE_S, detect

from dtf.inventory import CpuInfo, Inventory

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


def test_local_workers_share_one_inventory_per_machine_and_detection_setting(tmp_path):
    from dtf.local_workers import inventory_cache

    env = {"XDG_CACHE_HOME": str(tmp_path), "PATH": "/usr/bin"}
    assert inventory_cache(env) == inventory_cache(dict(env))
    assert inventory_cache(env).parent == tmp_path / "dtf"
    assert inventory_cache({**env, "CUDA_VISIBLE_DEVICES": "1"}) != inventory_cache(env)
    assert inventory_cache({**env, "DTF_BROWSER": "/opt/chrome"}) != inventory_cache(env)
    assert inventory_cache({**env, "UNRELATED": "x"}) == inventory_cache(env)
