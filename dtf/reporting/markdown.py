"""A run in Markdown, short enough for a pull-request comment or GitHub's step summary.

The report is a list of sections; each is a function ``(report, items) -> str``
that lists at most ``items`` entries and says how many it left out. When the whole
text is longer than ``MAX_CHARS`` (GitHub refuses comments over 65536), the
sections are rendered again with fewer entries until it fits.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence

from dtf.reporting.model import NOT_RUN, Group, Result, RunReport, TestEntry, outcome_rank
from dtf.reporting.text import counts_text, error_excerpt, label, seconds

Section = Callable[[RunReport, int], str]

#: GitHub's limit is 65536 characters; room is left for a header an integration adds.
MAX_CHARS = 60_000
#: Entries per list, tried in turn until the report fits.
_ITEM_STEPS = (20, 10, 5, 2, 0)
_STATUS_MARK = {"passed": "✅", "failed": "❌", "error": "⚠️"}


def code(text: str) -> str:
    """An inline code span that survives backticks in ``text``."""
    text = " ".join(text.split())
    longest = max((len(run) for run in re.findall(r"`+", text)), default=0)
    ticks = "`" * (longest + 1)
    pad = " " if longest or text.startswith("`") or text.endswith("`") else ""
    return f"{ticks}{pad}{text}{pad}{ticks}"


def cell(text: object) -> str:
    """A table cell: one line, pipes escaped."""
    return " ".join(str(text).split()).replace("|", "\\|")


def fenced(lines: Sequence[str], info: str = "text") -> str:
    body = "\n".join(lines)
    longest = max((len(run) for run in re.findall(r"`{3,}", body)), default=2)
    fence = "`" * (longest + 1)
    return f"{fence}{info}\n{body}\n{fence}"


def table(header: Sequence[str], rows: Sequence[Sequence[object]], right: int = 1) -> str:
    """A pipe table; the columns from ``right`` on are right-aligned (numbers)."""
    align = ["---" if i < right else "---:" for i in range(len(header))]
    lines = [header, align, *[[cell(v) for v in row] for row in rows]]
    return "\n".join("| " + " | ".join(str(v) for v in line) + " |" for line in lines)


def more(left_out: int, noun: str) -> str:
    return f"\n\n_... and {left_out} more {noun}_" if left_out > 0 else ""


def header(report: RunReport, items: int) -> str:
    mark = _STATUS_MARK.get(report.status, "⏳")
    lines = [
        f"## {mark} dtf run {code(report.run_id)}: {report.status}",
        "",
        f"**{counts_text(report)}**",
    ]
    timing = []
    if report.wall_s is not None:
        timing.append(f"{seconds(report.wall_s)} wall")
    timing.append(f"{seconds(report.test_s)} in tests")
    workers = [g for g in report.by_worker if not g.name.startswith("(")]
    if workers:
        timing.append(f"{len(workers)} worker{'s' if len(workers) != 1 else ''}")
    lines += ["", " · ".join(timing)]
    if report.name:
        lines[0] += f" ({cell(report.name)})"
    ci = report.ci
    context = [f"{key.replace('_', ' ')} {code(ci[key])}" for key in ci if key != "build_url"]
    if "build_url" in ci:
        context.append(f"[build]({ci['build_url']})")
    if context:
        lines += ["", " · ".join(context)]
    if report.labels:
        lines += ["", "labels " + " · ".join(code(f"{k}={v}") for k, v in report.labels.items())]
    if report.error:
        lines += ["", f"> {cell(report.error[:500])}"]
    return "\n".join(lines)


def totals(report: RunReport, items: int) -> str:
    rows = [(label(o), n) for o, n in report.counts.items()]
    missing = report.total - report.finished
    if missing:
        rows.append((label(NOT_RUN) if report.done else "remaining", missing))
    if report.flaky and "flaky" not in report.counts:
        rows.append(("flaky", len(report.flaky)))
    rows.append(("**tests**", report.total))
    return "### Totals\n\n" + table(("outcome", "count"), rows)


def _failure_title(test: TestEntry, result: Result | None) -> str:
    if result is None:
        what = "NOT RUN"
    elif result.outcome == "error" and result.when in ("setup", "teardown"):
        what = f"ERROR at {result.when} of"
    else:
        what = label(result.outcome).upper()
    where = " · ".join(x for x in (test.hardware, test.worker) if x)
    return f"**{what}** {code(test.nodeid)} · {where}"


def failures(report: RunReport, items: int) -> str:
    found = report.failures
    failing_commands = [c for c in report.commands if c.failing]
    total = len(found) + len(failing_commands) + len(report.broken)
    if not total:
        return ""
    parts = []
    for test, result in found[:items]:
        text = result.longrepr if result is not None else "its batch never finished"
        parts.append(f"{_failure_title(test, result)}\n{fenced(error_excerpt(text))}")
    for command in failing_commands[: max(0, items - len(parts))]:
        status = "timed out" if command.status == "timed_out" else f"exited {command.exit_code}"
        tail = (command.output or "").strip().splitlines()[-6:]
        title = f"**COMMAND** {code(command.name)} {status}"
        parts.append(f"{title}\n{fenced(tail or ['(no output)'])}")
    for line in report.broken[: max(0, items - len(parts))]:
        parts.append(f"**BROKEN** {cell(line)}")
    return f"### Failures ({total})\n\n" + "\n\n".join(parts) + more(total - len(parts), "failures")


def flaky(report: RunReport, items: int) -> str:
    if not report.flaky:
        return ""
    lines = []
    for test in report.flaky[:items]:
        where = " · ".join(x for x in (test.hardware, test.worker) if x)
        passed = f" · passed on attempt {test.attempts}" if test.attempts > 1 else ""
        lines.append(f"- {code(test.nodeid)} · {where}{passed}")
    body = "\n".join(lines)
    left_out = more(len(report.flaky) - len(lines), "flaky tests")
    return f"### Flaky ({len(report.flaky)})\n\n{body}{left_out}"


def slowest(report: RunReport, items: int) -> str:
    tests = report.slowest(min(items, 10))
    if not tests:
        return ""
    rows = [
        (code(t.nodeid), label(t.outcome), t.hardware, t.worker or "-", seconds(t.duration))
        for t in tests
    ]
    head = ("test", "outcome", "hardware", "worker", "time")
    return "### Slowest tests\n\n" + table(head, rows, right=4)


def _breakdown(title: str, first: str, groups: list[Group], items: int) -> str:
    if not groups:
        return ""
    outcomes = sorted({o for g in groups for o in g.counts}, key=outcome_rank)
    rows = [
        (g.name, g.tests, *[g.counts.get(o, 0) for o in outcomes], seconds(g.duration))
        for g in groups[: max(items, 1)]
    ]
    header_row = (first, "tests", *[label(o) for o in outcomes], "time in tests")
    return f"### {title}\n\n" + table(header_row, rows) + more(len(groups) - len(rows), first + "s")


def hardware(report: RunReport, items: int) -> str:
    return _breakdown("By hardware", "hardware", report.by_hardware, items)


def workers(report: RunReport, items: int) -> str:
    return _breakdown("By worker", "worker", report.by_worker, items)


def matrix(report: RunReport, items: int) -> str:
    from dtf.benchmarking.matrix import matrix_markdown, report_matrix

    text = matrix_markdown(report_matrix(report.records))
    return f"### Model x hardware\n\n{text.rstrip()}" if text else ""


#: The sections, in order; a new one is a function added here.
SECTIONS: list[Section] = [header, totals, failures, flaky, slowest, matrix, hardware, workers]


def render_markdown(
    report: RunReport, sections: Sequence[Section] = SECTIONS, max_chars: int = MAX_CHARS
) -> str:
    """The report, at most ``max_chars`` characters long."""
    text = ""
    for items in _ITEM_STEPS:
        text = "\n\n".join(s for s in (section(report, items) for section in sections) if s)
        text += "\n"
        if len(text) <= max_chars:
            return text
    note = f"\n\n_... report cut at {max_chars} characters_\n"
    cut = text[: max_chars - len(note)]
    return cut[: cut.rfind("\n")] + note if "\n" in cut else cut + note
