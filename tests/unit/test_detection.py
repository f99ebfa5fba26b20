"""Hardware detection (``workers/detection``) and ``dtf hardware``.

The CPU probe and ``detect_inventory`` run for real on this (CPU-only) machine.
The GPU probes' parsers are fed by ``tests/support/fake_tools/`` (``nvidia-smi``,
``rocm-smi``, ``rocminfo``): small executables put on PATH that print output
captured from real H100 / MI250X hosts. They stand in for vendor tools that do not
exist on a CPU-only machine, not for a service; everything dtf does with their
output is the real code. Probes that raise or hang are injected through the probe
table to test dtf's own guard.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import threading
from pathlib import Path

import pytest
from dtf.workers.detection import (
    PROBES,
    browser,
    cpu,
    detect,
    detect_inventory,
    nvidia,
    queues_for,
    rocm,
)

from dtf.inventory import CpuInfo, Inventory, Probe
from dtf.spec import HARDWARE_KINDS
from tests.support.processes import REPO, clean_env, run_dtf

FAKE_TOOLS = REPO / "tests" / "support" / "fake_tools"


def _nvml_loadable() -> bool:
    try:
        nvidia.query_nvml()
    except Exception:
        return False
    return True


@pytest.fixture
def fake_tools(monkeypatch) -> Path:
    """The fake vendor tools first on PATH; no GPU pinning from the environment."""
    monkeypatch.setenv("PATH", f"{FAKE_TOOLS}{os.pathsep}{os.environ.get('PATH', '')}")
    for name in ("CUDA_VISIBLE_DEVICES", "FAKE_NVIDIA_SMI", "FAKE_ROCM"):
        monkeypatch.delenv(name, raising=False)
    return FAKE_TOOLS


@pytest.fixture
def quick_cpu(monkeypatch) -> None:
    """A fixed CPU answer, for tests about the other probes (py-cpuinfo takes a second)."""
    info = CpuInfo(cores=1, threads=2, memory_gb=1.0, model="test", arch="x86_64")
    monkeypatch.setitem(detect.CPU_PROBE, "cpu", lambda: info)


# -- the real probes on this machine ---------------------------------------------------


def test_cpu_probe_reports_this_machine():
    info = cpu.probe_cpu()
    assert isinstance(info, CpuInfo)
    assert info.cores >= 1
    assert info.threads >= info.cores
    assert info.memory_gb > 0
    assert info.arch
    assert set(info.flags) <= set(cpu.INTERESTING_FLAGS)
    assert info.flags == sorted(info.flags)


X86_CPUINFO = """processor\t: 0
vendor_id\t: GenuineIntel
model name\t: Intel(R) Xeon(R) Platinum 8480+
flags\t\t: fpu sse4_2 avx avx2 avx512f amx_tile amx_bf16

processor\t: 1
model name\t: another
"""

ARM_CPUINFO_WITHOUT_MODEL = """processor\t: 0
BogoMIPS\t: 50.00
Features\t: fp asimd evtstrm aes pmull sha1 sha2 crc32 atomics asimddp sve
CPU implementer\t: 0x41
"""


def test_proc_cpuinfo_gives_the_first_processors_model_and_flags():
    model, flags = cpu.parse_proc_cpuinfo(X86_CPUINFO)
    assert model == "Intel(R) Xeon(R) Platinum 8480+"
    assert cpu.interesting_flags(flags) == ["amx_bf16", "amx_tile", "avx", "avx2", "avx512f",
                                            "sse4_2"]  # fmt: skip


def test_proc_cpuinfo_without_a_model_name_is_left_to_py_cpuinfo():
    assert cpu.parse_proc_cpuinfo(ARM_CPUINFO_WITHOUT_MODEL) is None
    named = "model name\t: Neoverse-V2\n" + ARM_CPUINFO_WITHOUT_MODEL
    model, flags = cpu.parse_proc_cpuinfo(named)
    assert model == "Neoverse-V2"
    assert cpu.interesting_flags(flags) == ["asimd", "asimddp", "sve"]


@pytest.mark.skipif(
    cpu.parse_proc_cpuinfo(Path("/proc/cpuinfo").read_text()) is None
    if Path("/proc/cpuinfo").exists() else True,
    reason="needs a Linux /proc/cpuinfo that names the model",
)  # fmt: skip
def test_the_cpu_probe_agrees_with_py_cpuinfo_without_starting_it(monkeypatch):
    import cpuinfo

    reference = cpuinfo.get_cpu_info()
    monkeypatch.setattr(cpuinfo, "get_cpu_info", lambda: pytest.fail("py-cpuinfo was started"))
    info = cpu.probe_cpu()
    assert info.model == reference["brand_raw"]
    assert info.arch == reference["arch_string_raw"]
    assert set(info.flags) <= set(cpu.interesting_flags(reference["flags"]))
    assert {"avx2", "sse4_2"} & set(reference["flags"]) <= set(info.flags)


def test_interesting_flags_keep_only_the_documented_list():
    flags = ["fpu", "AVX2", "avx512f", "amx_tile", "sse4_2", "asimd", "pni"]
    assert cpu.interesting_flags(flags) == ["amx_tile", "asimd", "avx2", "avx512f", "sse4_2"]


def test_detect_inventory_on_a_cpu_only_machine():
    inventory = detect_inventory(hostname="probe-host")
    assert inventory.hostname == "probe-host"
    assert inventory.cpu.cores >= 1 and inventory.cpu.memory_gb > 0
    assert list(inventory.probes) == [k for k in HARDWARE_KINDS if k != "cpu"]
    for kind, probe in inventory.probes.items():
        assert probe.kind == kind
        assert probe.ok or probe.reason, f"{kind} is not ok and says nothing"
    if shutil.which("nvidia-smi") is None and not _nvml_loadable():
        assert not inventory.probes["cuda"].ok
        assert "NVML not loadable" in inventory.probes["cuda"].reason
        assert "nvidia-smi not found" in inventory.probes["cuda"].reason
    if shutil.which("rocm-smi") is None and shutil.which("rocminfo") is None:
        assert not inventory.probes["rocm"].ok
        assert "rocm-smi" in inventory.probes["rocm"].reason
    if sys.platform != "darwin":
        assert inventory.probes["mps"].ok is False
        assert inventory.probes["mps"].reason.startswith("not macOS")
    queues = queues_for(inventory)
    assert queues[0] == "cpu"
    assert queues == inventory.kinds()
    assert set(queues) <= set(HARDWARE_KINDS)
    # The inventory travels as JSON.
    again = Inventory.from_dict(json.loads(json.dumps(inventory.to_dict())))
    assert again == inventory


def test_kinds_choose_the_probes_that_run(quick_cpu):
    inventory = detect_inventory(kinds=["mps", "gpu-of-the-future"])
    assert list(inventory.probes) == ["mps", "gpu-of-the-future"]
    assert inventory.probes["gpu-of-the-future"].ok is False
    assert "no probe" in inventory.probes["gpu-of-the-future"].reason
    assert detect_inventory(kinds=["cpu"]).probes == {}


# -- the guard around every probe -------------------------------------------------------


def test_a_probe_that_raises_becomes_not_ok(quick_cpu, monkeypatch):
    def broken(timeout: float) -> Probe:
        raise RuntimeError("driver exploded")

    monkeypatch.setitem(PROBES, ("cuda",), broken)
    inventory = detect_inventory(kinds=["cuda", "mps"])
    assert inventory.probes["cuda"].ok is False
    assert inventory.probes["cuda"].reason == "probe failed: RuntimeError: driver exploded"
    assert inventory.probes["mps"].reason  # the others still answer
    assert queues_for(inventory) == ["cpu"] + (["mps"] if inventory.probes["mps"].ok else [])


def test_a_probe_that_hangs_times_out(quick_cpu, monkeypatch):
    release = threading.Event()

    def hangs(timeout: float) -> Probe:
        release.wait(600)
        return Probe(kind="rocm", ok=True)

    monkeypatch.setitem(PROBES, ("rocm",), hangs)
    try:
        inventory = detect_inventory(kinds=["rocm"], probe_timeout=0.5)
    finally:
        release.set()
    assert inventory.probes["rocm"].ok is False
    assert inventory.probes["rocm"].reason == "probe timed out after 0.5s"
    assert queues_for(inventory) == ["cpu"]


def test_a_probe_group_that_answers_for_only_some_kinds(quick_cpu, monkeypatch):
    def half(timeout: float) -> list[Probe]:
        return [Probe(kind="webgpu", ok=True, details={"adapter": {"vendor": "x"}})]

    monkeypatch.setitem(PROBES, browser.KINDS, half)
    inventory = detect_inventory(kinds=["webgpu", "webnn"])
    assert inventory.probes["webgpu"].ok is True
    assert inventory.probes["webnn"].ok is False
    assert "no answer for webnn" in inventory.probes["webnn"].reason
    assert queues_for(inventory) == ["cpu", "webgpu"]


def test_a_probe_returning_nonsense_becomes_not_ok(quick_cpu, monkeypatch):
    monkeypatch.setitem(PROBES, ("mps",), lambda timeout: None)
    inventory = detect_inventory(kinds=["mps"])
    assert inventory.probes["mps"].ok is False
    assert "no answer" in inventory.probes["mps"].reason


def test_a_failing_cpu_probe_falls_back_to_the_cpu_count(monkeypatch):
    def broken() -> CpuInfo:
        raise OSError("no /proc")

    monkeypatch.setitem(detect.CPU_PROBE, "cpu", broken)
    inventory = detect_inventory(kinds=[])
    assert inventory.cpu.threads == (os.cpu_count() or 1)
    assert queues_for(inventory) == ["cpu"]


# -- vendor tool output, from the fake tools on PATH ---------------------------------


def test_nvidia_smi_csv_is_parsed(fake_tools):
    devices = nvidia.query_nvidia_smi()
    assert [d.index for d in devices] == [0, 1]
    h100 = devices[0]
    assert h100.name == "NVIDIA H100 80GB HBM3"
    assert h100.memory_gb == 79.6  # 81559 MiB
    assert h100.compute_capability == 9.0
    assert h100.driver == "550.54.15"


def test_nvidia_smi_of_a_driver_without_compute_cap(fake_tools, monkeypatch):
    monkeypatch.setenv("FAKE_NVIDIA_SMI", "old")
    devices = nvidia.query_nvidia_smi()
    assert [(d.name, d.memory_gb, d.compute_capability) for d in devices] == [
        ("NVIDIA H100 80GB HBM3", 79.6, None)
    ] * 2


def test_nvidia_smi_csv_with_commas_in_the_name():
    output = (
        "0, NVIDIA A100-SXM4-80GB, 81920, 8.0, 535.104.05\n"
        "3, Tesla V100, PCIe, 16384, [N/A], 470.129.06\n"
    )
    devices = nvidia.parse_nvidia_smi_csv(output)
    assert (devices[0].name, devices[0].memory_gb, devices[0].compute_capability) == (
        "NVIDIA A100-SXM4-80GB",
        80.0,
        8.0,
    )
    assert (devices[1].index, devices[1].name, devices[1].compute_capability) == (
        3,
        "Tesla V100, PCIe",
        None,
    )


@pytest.mark.skipif(_nvml_loadable(), reason="NVML answers here, so nvidia-smi is not consulted")
def test_the_cuda_probe_falls_back_to_nvidia_smi(quick_cpu, fake_tools, monkeypatch):
    probe = nvidia.probe()
    assert probe.ok, probe.reason
    assert probe.details["source"] == "nvidia-smi"
    assert len(probe.devices) == 2
    inventory = detect_inventory(kinds=["cuda"])
    assert queues_for(inventory) == ["cpu", "cuda"]

    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "1")
    probe = nvidia.probe()
    assert [d.index for d in probe.devices] == [1]
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")
    probe = nvidia.probe()
    assert probe.ok is False and "hides all 2" in probe.reason
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES")

    monkeypatch.setenv("FAKE_NVIDIA_SMI", "nodriver")
    probe = nvidia.probe()
    assert probe.ok is False
    assert "couldn't communicate with the NVIDIA driver" in probe.reason


def test_rocm_smi_json_and_rocminfo_are_parsed(quick_cpu, fake_tools):
    probe = rocm.probe()
    assert probe.ok, probe.reason
    assert probe.details["source"] == "rocm-smi+rocminfo"
    assert [d.index for d in probe.devices] == [0, 1]
    for device in probe.devices:
        assert "MI250X" in device.name
        assert device.memory_gb == 64.0
        assert device.arch == "gfx90a"  # from rocminfo: ROCm 5's rocm-smi does not say
        assert device.driver == "5.16.9.22.20"
    assert queues_for(detect_inventory(kinds=["rocm"])) == ["cpu", "rocm"]


def test_rocm_6_json_after_a_warning(fake_tools, monkeypatch):
    monkeypatch.setenv("FAKE_ROCM", "6")
    probe = rocm.probe()
    assert probe.ok, probe.reason
    assert probe.details["source"] == "rocm-smi"  # GFX Version given: rocminfo not needed
    assert [(d.name, d.memory_gb, d.arch, d.driver) for d in probe.devices] == [
        ("AMD Instinct MI250X", 64.0, "gfx90a", "6.3.6")
    ] * 2


def test_rocm_smi_without_a_gpu(fake_tools, monkeypatch, tmp_path):
    only_smi = tmp_path / "bin"
    only_smi.mkdir()
    (only_smi / "rocm-smi").symlink_to(fake_tools / "rocm-smi")
    # rocm-smi alone (and the system's python3 for it), without any rocminfo.
    monkeypatch.setenv("PATH", f"{only_smi}{os.pathsep}{Path(sys.executable).parent}")
    monkeypatch.setenv("FAKE_ROCM", "none")
    assert shutil.which("rocminfo") is None
    probe = rocm.probe()
    assert probe.ok is False
    assert "rocm-smi failed: exited 1" in probe.reason
    assert "Driver not initialized" in probe.reason


# -- the browser probe's guard (the real browser is in tests/integration) ---------------


def test_browser_named_by_dtf_browser_missing(monkeypatch):
    monkeypatch.setenv("DTF_BROWSER", "/nonexistent/chromium")
    probes = browser.probe(timeout=5)
    assert [p.kind for p in probes] == ["webgpu", "webnn"]
    assert all(not p.ok and "DTF_BROWSER" in p.reason for p in probes)


def test_browser_that_exits_at_once(monkeypatch):
    monkeypatch.setenv("DTF_BROWSER", shutil.which("false") or "/bin/false")
    probes = browser.probe(timeout=10)
    assert all(not p.ok and "browser exited 1 before answering" in p.reason for p in probes)


def test_browser_that_never_answers_is_killed(monkeypatch, tmp_path):
    import psutil

    fake = tmp_path / "silent-browser"
    fake.write_text("#!/bin/sh\nsleep 600 &\nwait\n")
    fake.chmod(0o755)
    monkeypatch.setenv("DTF_BROWSER", str(fake))
    probes = browser.probe(timeout=5)
    assert all(not p.ok and "no answer from the browser" in p.reason for p in probes)
    left = [
        p
        for p in psutil.process_iter(["cmdline", "status"])
        if str(fake) in " ".join(p.info["cmdline"] or [])
        and p.info["status"] != psutil.STATUS_ZOMBIE
    ]
    assert left == []


def test_a_browser_that_cannot_start_raises_browser_error_only(tmp_path, monkeypatch):
    import tempfile

    scratch = tmp_path / "tmp"
    scratch.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(scratch))
    not_a_program = tmp_path / "not-a-browser"
    not_a_program.write_text("plain text\n")
    with pytest.raises(browser.BrowserError, match="PermissionError"):
        browser.run_check_page(str(not_a_program), timeout=5)
    assert list(scratch.iterdir()) == []  # the temporary profile is gone


# -- dtf hardware -------------------------------------------------------------------------


def test_dtf_hardware_json(tmp_path):
    proc = run_dtf("hardware", "--json", env=clean_env(), cwd=tmp_path, timeout=180)
    assert proc.returncode == 0, proc.stderr
    data = json.loads(proc.stdout)
    assert data["queues"][0] == "cpu"
    assert data["queues"] == Inventory.from_dict(data).kinds()
    assert data["cpu"]["cores"] >= 1
    assert set(data["probes"]) == {k for k in HARDWARE_KINDS if k != "cpu"}


def test_dtf_hardware_table(tmp_path):
    proc = run_dtf("hardware", env=clean_env(COLUMNS="200"), cwd=tmp_path, timeout=180)
    assert proc.returncode == 0, proc.stderr
    assert "queues: cpu" in proc.stdout
    for kind in HARDWARE_KINDS:
        assert kind in proc.stdout
