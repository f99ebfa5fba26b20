"""The report formats by name, and writing a run's reports to files."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from pathlib import Path

from dtf.db.session import session_scope
from dtf.errors import BadInput
from dtf.reporting.html import render_html
from dtf.reporting.json_report import render_json
from dtf.reporting.junit import junit_xml
from dtf.reporting.markdown import render_markdown
from dtf.reporting.model import RunReport, load_report

#: Keep in step with ``dtf.reporting.FORMAT_NAMES`` (the CLI offers those).
FORMATS: dict[str, Callable[[RunReport], str]] = {
    "junit": junit_xml,
    "json": render_json,
    "markdown": render_markdown,
    "html": render_html,
}


def read_report(db_url: str, run_id: str) -> RunReport:
    with session_scope(db_url) as session:
        return load_report(session, run_id)


def render(report: RunReport, fmt: str) -> str:
    if fmt in FORMATS:
        return FORMATS[fmt](report)
    from dtf.plugins.reporting import plugin_formats

    return plugin_formats()[fmt](json.loads(render_json(report)))  # a reporter plugin's


def write_reports(db_url: str, run_id: str, targets: Iterable[tuple[str, str]]) -> None:
    """Write the run's report in each ``(format, path)``; the run is read once."""
    targets = list(targets)
    if not targets:
        return
    report = read_report(db_url, run_id)
    for fmt, path in targets:
        write_text(path, render(report, fmt))


def write_text(path: str | Path, text: str) -> None:
    try:
        Path(path).write_text(text, encoding="utf-8")
    except OSError as exc:
        raise BadInput(f"cannot write {path}: {exc.strerror or exc}") from exc
