"""What a notification says, independent of where it goes (Slack, Teams, email)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

from dtf.summary import FAILING_OUTCOMES, INFRA_OUTCOMES

#: Outcomes in the order a counts line names them.
OUTCOME_ORDER = (
    "passed", "failed", "error", "crashed", "timed_out", "out_of_memory", "infra_error",
    "flaky", "skipped", "xfailed", "xpassed",
)  # fmt: skip
NOTIFY_ON = ("always", "failure", "never")

Severity = Literal["ok", "failure", "critical"]


@dataclass(frozen=True)
class Notice:
    """A message for people: a title, one line, facts, and a few detail lines."""

    severity: Severity
    title: str
    text: str
    facts: list[tuple[str, str]] = field(default_factory=list)
    details_title: str = ""
    details: list[str] = field(default_factory=list)
    #: detail lines left out to keep the message short
    more: int = 0
    #: (label, url) of a page to open, e.g. the CI build
    link: tuple[str, str] | None = None


def counts_text(counts: Mapping[str, int]) -> str:
    """``7 passed, 1 failed`` (fixed order, zeros left out, unknown outcomes last)."""
    order = [*OUTCOME_ORDER, *sorted(set(counts) - set(OUTCOME_ORDER))]
    parts = [f"{counts[o]} {o.replace('_', ' ')}" for o in order if counts.get(o)]
    return ", ".join(parts) or "no tests"


def should_notify(summary: Mapping[str, Any], notify_on: str) -> bool:
    """Whether a finished run is worth a message under ``notify_on`` (always/failure/never)."""
    if notify_on == "never":
        return False
    return notify_on == "always" or summary.get("status") != "passed"


def run_notice(
    run: Mapping[str, Any], summary: Mapping[str, Any], *, max_details: int = 10
) -> Notice:
    """The notice for a finished run: verdict, counts, failures and where to look."""
    status = str(summary.get("status") or run.get("status") or "unknown")
    run_id = str(run.get("id") or summary.get("run_id") or "")
    name = run.get("name") or run_id[:8]
    counts = dict(summary.get("counts") or {})
    total = summary.get("total")
    text = counts_text(counts)
    if total is not None:
        text += f" ({total} test{'s' if total != 1 else ''})"
    duration = _seconds_between(run.get("started_at"), run.get("finished_at"))
    if duration is not None:
        text += f" in {_human_seconds(duration)}"

    facts = [("Run", run_id), ("Status", status)]
    ci = run.get("ci") or {}
    for label, key in (
        ("Branch", "branch"),
        ("Commit", "commit"),
        ("Pull request", "pull_request"),
    ):
        if ci.get(key):
            value = str(ci[key])
            facts.append((label, value[:12] if key == "commit" else value))
    if run.get("workdir"):
        facts.append(("Directory", str(run["workdir"])))

    lines = [
        f"{f.get('nodeid')}: {str(f.get('outcome', 'failed')).replace('_', ' ')}"
        + (f": {_one_line(f['message'])}" if f.get("message") else "")
        for f in summary.get("failures") or []
    ] + [f"could not run: {_one_line(line)}" for line in summary.get("broken") or []]
    if run.get("error"):
        lines.append(f"run error: {_one_line(str(run['error']))}")
    failing = sum(counts.get(o, 0) for o in (*FAILING_OUTCOMES, *INFRA_OUTCOMES))
    more = max(0, len(lines) - max_details) + max(0, failing - len(summary.get("failures") or []))
    build_url = ci.get("build_url")
    return Notice(
        severity="ok" if status == "passed" else "failure",
        title=f"dtf run {name}: {status}",
        text=text,
        facts=facts,
        details_title="Failures" if lines else "",
        details=lines[:max_details],
        more=more,
        link=("Open the build", str(build_url)) if build_url else None,
    )


def recovery_notice(recovery: Mapping[str, Any]) -> Notice:
    """The critical notice for a batch whose recovery attempt broke too."""
    run_id = str(recovery.get("run_id") or "")
    batch = str(recovery.get("batch_id") or "")
    worker = recovery.get("worker") or "unknown worker"
    facts = [("Run", run_id), ("Batch", batch), ("Worker", str(worker))]
    if recovery.get("attempt") is not None:
        facts.append(("Attempt", str(recovery["attempt"])))
    if recovery.get("reason"):
        facts.append(("Reason", _one_line(str(recovery["reason"]))))
    error = recovery.get("error")
    return Notice(
        severity="critical",
        title=f"dtf: recovery failed for run {run_id[:8] or '?'}",
        text=f"Batch {batch[:8]} broke again on {worker} after an earlier attempt was lost; "
        "its tests have no result.",
        facts=facts,
        details_title="Error" if error else "",
        details=[_one_line(str(error))] if error else [],
    )


def _one_line(text: str, limit: int = 300) -> str:
    line = " ".join(str(text).split())
    return line if len(line) <= limit else line[: limit - 1] + "…"


def _seconds_between(start: Any, end: Any) -> float | None:
    try:
        a, b = _as_datetime(start), _as_datetime(end)
    except (TypeError, ValueError):
        return None
    if a is None or b is None:
        return None
    if (a.tzinfo is None) != (b.tzinfo is None):
        a, b = a.replace(tzinfo=None), b.replace(tzinfo=None)
    return max(0.0, (b - a).total_seconds())


def _as_datetime(value: Any) -> datetime | None:
    if value is None or isinstance(value, datetime):
        return value
    return datetime.fromisoformat(str(value).replace("Z", "+00:00"))


def _human_seconds(seconds: float) -> str:
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, rest = divmod(round(seconds), 60)
    if minutes < 60:
        return f"{minutes} min {rest} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes} min"
