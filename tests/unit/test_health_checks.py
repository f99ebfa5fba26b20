"""The real queue health checks on this machine, and the rules for choosing queues."""

from __future__ import annotations

import shutil

import pytest
from dtf.workers.health import FORCED_REASON, check_queue
from dtf.workers.queues import QueueRefused, check_requested, detected_queues, forced_queues

from dtf.inventory import CpuInfo, Inventory, Probe


@pytest.fixture(scope="module")
def inventory() -> Inventory:
    from dtf.workers.detection.detect import detect_inventory

    return detect_inventory()


def test_the_cpu_check_passes_here(inventory):
    assert check_queue("cpu", inventory, env={}).ok


def test_the_fail_file_fails_the_queues_it_names_while_it_exists(tmp_path, inventory):
    trigger = tmp_path / "fail"
    env = {"DTF_HEALTH_FAIL_FILE": str(trigger)}
    assert check_queue("cpu", inventory, env=env).ok

    trigger.write_text("")  # empty: every queue fails
    health = check_queue("cpu", inventory, env=env)
    assert not health.ok
    assert health.reason == f"failed on purpose: DTF_HEALTH_FAIL_FILE {trigger} exists"

    trigger.write_text("cuda, webgpu")
    assert check_queue("cpu", inventory, env=env).ok
    assert not check_queue("cuda", inventory, {"cuda"}, env=env).ok

    trigger.unlink()
    assert check_queue("cpu", inventory, env=env).ok


def test_dtf_health_fail_fails_the_queues_it_names(inventory):
    env = {"DTF_HEALTH_FAIL": "gpu-less,cpu"}
    assert check_queue("cpu", inventory, env=env).reason == (
        "failed on purpose: DTF_HEALTH_FAIL names this queue"
    )


def test_the_cuda_check_fails_without_a_gpu_unless_forced(inventory):
    if "cuda" in inventory.kinds() or shutil.which("nvidia-smi"):
        pytest.skip("this machine has an NVIDIA driver")
    health = check_queue("cuda", inventory, env={})
    assert not health.ok
    assert "no torch or cupy" in health.reason and "nvidia-smi" in health.reason

    forced = check_queue("cuda", inventory, {"cuda"}, env={})
    assert forced.ok and forced.reason == FORCED_REASON


def test_the_webgpu_check_agrees_with_detection(inventory):
    probe = inventory.probes.get("webgpu")
    if probe is None or not probe.details.get("browser"):
        pytest.skip("no browser on this machine")
    health = check_queue("webgpu", inventory, env={})
    assert health.ok == probe.ok
    assert health.reason == probe.reason


def test_a_queue_without_a_check_is_ok(inventory):
    assert check_queue("nightly", inventory, env={}).ok


def test_a_hardware_queue_the_machine_lacks_is_refused_unless_forced():
    no_gpu = Inventory(
        hostname="h",
        cpu=CpuInfo(cores=1, threads=1, memory_gb=1.0),
        probes={"cuda": Probe(kind="cuda", ok=False, reason="no NVIDIA driver")},
    )
    with pytest.raises(QueueRefused) as refused:
        check_requested(["cpu", "cuda"], no_gpu, forced=set())
    assert str(refused.value) == (
        "refusing queue 'cuda': no cuda on this machine (no NVIDIA driver); "
        "set DTF_FORCE_QUEUES=cuda to serve it anyway"
    )
    check_requested(["cpu", "cuda", "nightly"], no_gpu, forced={"cuda"})
    assert forced_queues({"DTF_FORCE_QUEUES": " cuda, rocm ,"}) == {"cuda", "rocm"}


def test_without_q_a_worker_serves_detected_and_forced_queues(inventory):
    detected = detected_queues(inventory)
    assert detected[0] == "cpu"
    extra = "rocm" if "rocm" not in detected else "mps"
    assert detected_queues(inventory, {extra}) == [*detected, extra]
