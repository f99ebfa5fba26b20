"""``dtf plugins``: the plugins this process finds, their kind, status and whether each is
configured (its ``dtf_configured``: "yes", "no: what to set", "-" when it does not say)."""

from __future__ import annotations

import json

import click


@click.command("plugins")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.option(
    "--task-file",
    type=click.Path(dir_okay=False),
    help="Also load the plugins a task file lists.",
)
def plugins_command(as_json: bool, task_file: str | None) -> None:
    """List plugins: entry points (dtf.plugins), DTF_PLUGINS and a task file's plugins:."""
    from dtf.plugins.manager import load_plugins, plugins

    if task_file:
        from dtf.spec import load_run_spec

        load_plugins(load_run_spec(task_file).plugins, source="task file")
    found = plugins()
    if as_json:
        click.echo(json.dumps([info.to_dict() for info in found], indent=2))
        return
    if not found:
        click.echo("no plugins (install one with a dtf.plugins entry point, or set DTF_PLUGINS)")
        return
    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

    table = Table("name", "kind", "status", "configured", "source", "hooks")
    for info in found:
        status = info.status if not info.error else f"{info.status}: {info.error}"
        table.add_row(
            info.name,
            info.kind or "-",
            status,
            Text(_configured_cell(*info.configuration())),  # not markup
            info.source,
            ", ".join(info.hooks),
        )
    console = Console(highlight=False, soft_wrap=True)
    if not console.is_terminal:
        console.width = 160
    console.print(table)


def _configured_cell(configured: bool | None, detail: str) -> str:
    if configured is None:
        return "-"
    if configured:
        return "yes"
    return f"no: {detail}" if detail else "no"
