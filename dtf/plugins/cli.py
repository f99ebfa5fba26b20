"""``dtf plugins``: the plugins this process finds, their kind and status."""

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

    table = Table("name", "kind", "status", "source", "hooks")
    for info in found:
        status = info.status if not info.error else f"{info.status}: {info.error}"
        table.add_row(info.name, info.kind or "-", status, info.source, ", ".join(info.hooks))
    console = Console(highlight=False, soft_wrap=True)
    if not console.is_terminal:
        console.width = 160
    console.print(table)
