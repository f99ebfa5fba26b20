"""AMD probe (kind ``rocm``): ``rocm-smi --json`` for the cards, ``rocminfo`` for gfx targets.

``rocm-smi`` spells its keys differently across ROCm versions ("Card series" in
5.x, "Card Series" / "Device Name" and "GFX Version" in 6.x; the driver version
under "system"), so keys are matched loosely. Memory is in GiB.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from typing import Any

from dtf.inventory import Device, Probe

KIND = "rocm"
GIB = 1024**3

SMI_ARGS = ("--showproductname", "--showmeminfo", "vram", "--showdriverversion", "--json")


def _key(name: str) -> str:
    return re.sub(r"[^a-z0-9]+", " ", name.lower()).strip()


def _find(fields: dict[str, Any], *names: str) -> str | None:
    """The value of the first of ``names`` (compared loosely) with a real value."""
    loose = {_key(k): v for k, v in fields.items()}
    for name in names:
        value = loose.get(_key(name))
        if value not in (None, "", "N/A", "n/a"):
            return str(value).strip()
    return None


def _json_object(output: str) -> dict[str, Any]:
    """The JSON object in ``output``; rocm-smi may print warnings around it."""
    start = output.find("{")
    if start < 0:
        raise ValueError("rocm-smi printed no JSON")
    data, _ = json.JSONDecoder().raw_decode(output[start:])
    if not isinstance(data, dict):
        raise ValueError("rocm-smi JSON is not an object")
    return data


def parse_rocm_smi_json(output: str) -> tuple[list[Device], str | None]:
    """Devices and driver version from ``rocm-smi ... --json`` output."""
    data = _json_object(output)
    driver = None
    for key, fields in data.items():
        if isinstance(fields, dict) and not key.lower().startswith("card"):
            driver = driver or _find(fields, "Driver version")
    if driver is None:  # some versions repeat it per card
        for fields in data.values():
            if isinstance(fields, dict):
                driver = driver or _find(fields, "Driver version")
    devices = []
    for key, fields in data.items():
        match = re.fullmatch(r"card(\d+)", key.lower())
        if not match or not isinstance(fields, dict):
            continue
        name = _find(
            fields, "Card Series", "Device Name", "Card series", "Marketing Name", "Card model"
        )
        memory = _find(fields, "VRAM Total Memory (B)", "vram total memory")
        try:
            memory_gb = round(int(float(memory)) / GIB, 1) if memory else None
        except ValueError:
            memory_gb = None
        arch = _find(fields, "GFX Version", "gfx version", "Target Graphics Version")
        devices.append(
            Device(
                index=int(match.group(1)),
                name=name or "AMD GPU",
                memory_gb=memory_gb,
                arch=arch if arch and arch.startswith("gfx") else None,
                driver=driver,
            )
        )
    devices.sort(key=lambda d: d.index)
    return devices, driver


def parse_rocminfo(output: str) -> list[dict[str, str]]:
    """The GPU agents of ``rocminfo`` output, in order: ``{"arch": "gfx90a", "name": ...}``."""
    agents: list[dict[str, str]] = []
    for block in re.split(r"\n\*{3,}\s*\n\s*Agent \d+\s*\n\*{3,}", output)[1:]:
        fields: dict[str, str] = {}
        for line in block.splitlines():
            if line.startswith("  ") and not line.startswith("    ") and ":" in line:
                name, _, value = line.strip().partition(":")
                fields.setdefault(name.strip(), value.strip())
        if fields.get("Device Type", "").upper() == "GPU":
            agents.append(
                {"arch": fields.get("Name", ""), "name": fields.get("Marketing Name", "")}
            )
    return agents


def _run(binary: str, args: tuple[str, ...], timeout: float) -> str:
    proc = subprocess.run(
        [binary, *args], capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL
    )
    if proc.returncode != 0:
        lines = (proc.stderr.strip() or proc.stdout.strip()).splitlines()
        raise RuntimeError(f"exited {proc.returncode}: {lines[-1] if lines else 'no output'}")
    return proc.stdout


def probe(timeout: float = 15.0) -> Probe:
    """AMD GPUs of this machine; never raises."""
    smi, info = shutil.which("rocm-smi"), shutil.which("rocminfo")
    if smi is None and info is None:
        return Probe(kind=KIND, ok=False, reason="no ROCm: rocm-smi and rocminfo not found")
    problems: list[str] = []
    devices: list[Device] = []
    driver = None
    source = []
    if smi is not None:
        try:
            devices, driver = parse_rocm_smi_json(_run(smi, SMI_ARGS, timeout))
            source.append("rocm-smi")
        except Exception as error:
            problems.append(f"rocm-smi failed: {error}")
    agents: list[dict[str, str]] = []
    if info is not None and (not devices or any(d.arch is None for d in devices)):
        try:
            agents = parse_rocminfo(_run(info, (), timeout))
            source.append("rocminfo")
        except Exception as error:
            problems.append(f"rocminfo failed: {error}")
    if devices and agents and len(agents) == len(devices):
        for device, agent in zip(devices, agents, strict=True):
            device.arch = device.arch or agent["arch"] or None
    elif not devices and agents:
        devices = [
            Device(index=i, name=a["name"] or "AMD GPU", arch=a["arch"] or None)
            for i, a in enumerate(agents)
        ]
    details: dict[str, Any] = {"source": "+".join(source), "driver": driver}
    if problems:
        details["problems"] = problems
    if not devices:
        reason = "; ".join(problems) or f"{' and '.join(source)} report 0 AMD GPUs"
        return Probe(kind=KIND, ok=False, reason=reason, details=details)
    return Probe(kind=KIND, ok=True, devices=devices, details=details)
