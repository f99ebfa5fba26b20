"""``dtf report``, its alias ``dtf results``, and ``--report FORMAT=FILE`` for run and wait."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import click

from dtf.errors import BadInput
from dtf.labels import label_callback
from dtf.reporting import FORMAT_NAMES, SUFFIXES

_CHOICES = ", ".join(FORMAT_NAMES)


def parse_target(value: str) -> tuple[str, str]:
    """``html=out/report.html`` -> ``("html", "out/report.html")``, or BadInput saying why not."""
    fmt, sep, path = value.partition("=")
    fmt = fmt.strip().lower()
    if not sep or not fmt or not path:
        raise BadInput(f"--report {value!r}: expected FORMAT=FILE, e.g. html=report.html")
    if fmt not in _format_names():
        choices = ", ".join(_format_names())
        raise BadInput(f"--report {value!r}: unknown format {fmt!r}; use one of {choices}")
    check_writable(path)
    return fmt, path


def check_writable(path: str) -> None:
    """Refuse a report file that cannot be written, before any work is done."""
    target = Path(path)
    folder = target.parent
    if target.is_dir():
        raise BadInput(f"cannot write report {path}: it is a folder; name a file")
    if not folder.is_dir():
        raise BadInput(f"cannot write report {path}: folder {folder} does not exist")
    if not os.access(folder, os.W_OK) or (target.exists() and not os.access(target, os.W_OK)):
        raise BadInput(f"cannot write report {path}: permission denied")


def _targets(ctx, param, values: tuple[str, ...]) -> list[tuple[str, str]]:
    return [parse_target(value) for value in values]


report_option = click.option(
    "--report",
    "reports",
    multiple=True,
    metavar="FORMAT=FILE",
    callback=_targets,
    help=f"When the run ends, write its report ({_CHOICES}) to FILE; repeatable.",
)


def _format_names() -> tuple[str, ...]:
    from dtf.plugins.reporting import format_names

    return format_names()


def _check_format(fmt: str | None) -> str | None:
    if fmt is not None and fmt not in _format_names():
        raise BadInput(f"--format {fmt!r}: unknown format; use one of {', '.join(_format_names())}")
    return fmt


def format_for(fmt: str | None, output: str | None) -> str:
    """``--format``, else what the output file's suffix says, else JSON."""
    if fmt:
        return fmt
    if output:
        return SUFFIXES.get(Path(output).suffix.lower(), "json")
    return "json"


def write_run_reports(db_url: str, run_id: str, targets: list[tuple[str, str]]) -> None:
    """Write each ``(format, path)`` report of a finished run."""
    if targets:
        from dtf.reporting.formats import write_reports

        write_reports(db_url, run_id, targets)


@click.command()
@click.argument("run_id", metavar="[RUN]", required=False)
@click.option(
    "--format",
    "fmt",
    callback=lambda ctx, param, value: _check_format(value),
    help="junit (XML), json (every stored field), markdown (for a PR comment or step summary) "
    "or html (one self-contained page), or one a reporter plugin adds. "
    "Default: from -o's suffix, else json.",
)
@click.option("-o", "--output", type=click.Path(dir_okay=False), help="Write to FILE.")
@click.option(
    "--label",
    "labels",
    multiple=True,
    metavar="KEY=VALUE",
    callback=label_callback,
    help="The most recent run carrying this label (repeatable: all of them); "
    "with RUN, refuse a run that does not carry it.",
)
def report(run_id, fmt, output, labels) -> None:
    """Print or write a run's report (the latest run when RUN is omitted)."""
    from dtf.cli import _prepare_read, _resolve_run
    from dtf.config import load_settings
    from dtf.db.session import session_scope
    from dtf.labels import resolve_run_with_labels
    from dtf.reporting.formats import render, write_text
    from dtf.reporting.model import load_report

    fmt = format_for(fmt, output)
    if output:
        check_writable(output)
    settings = load_settings()
    _prepare_read(settings)
    with session_scope(settings.database_url) as session:
        if labels:
            run_id = resolve_run_with_labels(session, run_id, labels)
        else:
            run_id = _resolve_run(session, run_id)
        text = render(load_report(session, run_id), fmt)
    if output:
        write_text(output, text)
    else:
        sys.stdout.write(text)
        sys.stdout.flush()


results = click.Command(
    "results",
    callback=report.callback,
    params=report.params,
    help="Same as `dtf report` (the name earlier versions used).",
)
