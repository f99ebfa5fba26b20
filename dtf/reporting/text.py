"""Small text helpers the human-readable reports share."""

from __future__ import annotations

import re

from dtf.reporting.model import RunReport

_LOCATION = re.compile(r"^\S+:\d+: \S")


def error_excerpt(text: str | None, max_lines: int = 6, width: int = 200) -> list[str]:
    """The lines that say what went wrong: pytest's ``E`` lines and the location line
    under them, else the first lines of the text; each cut to ``width`` characters."""
    lines = [line.rstrip() for line in (text or "").strip().splitlines()]
    errors = [line for line in lines if line.startswith("E ")]
    if errors:
        picked = errors[:max_lines]
        if _LOCATION.match(lines[-1]) and len(picked) < max_lines + 1:
            picked.append(lines[-1])
    else:
        picked = [line for line in lines if line.strip()][:max_lines]
    return [line if len(line) <= width else line[: width - 1] + "…" for line in picked]


def seconds(value: float | None) -> str:
    """``0.42s``, ``12.3s``, ``4m05s``, ``1h02m``; ``-`` when unknown."""
    if value is None:
        return "-"
    if value < 10:
        return f"{value:.2f}s"
    if value < 60:
        return f"{value:.1f}s"
    minutes, secs = divmod(round(value), 60)
    if minutes < 60:
        return f"{minutes}m{secs:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m"


def label(outcome: str) -> str:
    """``timed_out`` -> ``timed out``."""
    return outcome.replace("_", " ")


def counts_text(report: RunReport) -> str:
    """``17 passed, 3 failed, 2 not run`` in report order."""
    parts = [f"{n} {label(o)}" for o, n in report.counts.items() if n]
    missing = report.total - report.finished
    if missing:
        parts.append(f"{missing} not run" if report.done else f"{missing} remaining")
    if report.flaky and "flaky" not in report.counts:
        parts.append(f"{len(report.flaky)} flaky")
    if report.commands:
        failing = sum(1 for c in report.commands if c.failing)
        parts.append(f"{len(report.commands) - failing}/{len(report.commands)} commands ok")
    return ", ".join(parts) or "no results yet"
