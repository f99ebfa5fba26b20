"""``dtf hardware``: print what this machine has."""

from __future__ import annotations

import json

import click


def _devices(probe) -> str:
    parts = []
    for device in probe.devices:
        extras = [
            f"{device.memory_gb:g} GB" if device.memory_gb is not None else None,
            f"cc {device.compute_capability:g}" if device.compute_capability is not None else None,
            device.arch,
        ]
        extra = ", ".join(e for e in extras if e)
        parts.append(f"[{device.index}] {device.name}" + (f" ({extra})" if extra else ""))
    browser = probe.details.get("browser")
    if isinstance(browser, dict) and browser.get("name"):
        parts.append(f"{browser['name']} {browser.get('version') or ''}".strip())
    adapter = probe.details.get("adapter")
    if isinstance(adapter, dict) and adapter:
        described = " ".join(
            str(adapter[key])
            for key in ("vendor", "architecture", "description")
            if adapter.get(key)
        )
        parts.append(f"adapter: {described or 'unnamed'}")
    driver = probe.details.get("driver")
    if driver and not probe.devices:
        parts.append(f"driver {driver}")
    return "\n".join(parts)


@click.command()
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.option(
    "--timeout",
    type=float,
    default=20.0,
    show_default=True,
    help="Seconds each probe may take.",
)
def hardware(as_json: bool, timeout: float) -> None:
    """Print the hardware inventory of this machine."""
    from dtf.workers.detection import detect_inventory, queues_for

    inventory = detect_inventory(probe_timeout=timeout)
    queues = queues_for(inventory)
    if as_json:
        click.echo(json.dumps({**inventory.to_dict(), "queues": queues}, indent=2))
        return

    from rich.console import Console
    from rich.table import Table

    console = Console(highlight=False)
    cpu = inventory.cpu
    table = Table(title=f"Hardware of {inventory.hostname}")
    table.add_column("kind")
    table.add_column("ok")
    table.add_column("devices / details")
    table.add_column("reason", overflow="fold")
    cpu_text = (
        f"{cpu.model or 'CPU'} ({cpu.arch}): {cpu.cores} cores, {cpu.threads} threads, "
        f"{cpu.memory_gb:g} GB"
    )
    if cpu.flags:
        cpu_text += "\n" + " ".join(cpu.flags)
    table.add_row("cpu", "[green]yes[/]", cpu_text, "")
    for kind, probe in inventory.probes.items():
        table.add_row(
            kind,
            "[green]yes[/]" if probe.ok else "[red]no[/]",
            _devices(probe),
            probe.reason or "",
        )
    console.print(table)
    console.print(f"queues: {', '.join(queues)}")
