"""Follow a run in the database until it ends, showing progress as batches finish."""

from __future__ import annotations

import time
from collections.abc import Callable

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from dtf.benchmarking.summary import benchmarks_part
from dtf.db.session import session_scope
from dtf.errors import InfrastructureError
from dtf.summary import RunSummary, summarize

ORDER = (
    "passed", "failed", "error", "crashed", "timed_out", "out_of_memory", "infra_error",
    "flaky", "skipped", "xfailed", "xpassed",
)  # fmt: skip


def counts_line(summary: RunSummary) -> str:
    """``12 passed, 1 failed, 3 remaining`` (outcomes in a fixed order, zeros left out)."""
    parts = [f"{summary.counts[o]} {o.replace('_', ' ')}" for o in ORDER if summary.counts.get(o)]
    remaining = summary.total - summary.finished
    if remaining and not summary.done:
        parts.append(f"{remaining} remaining")
    commands = [c for c in summary.commands if c.status not in ("pending", "running")]
    if summary.commands:
        parts.append(f"{len(commands)}/{len(summary.commands)} commands")
    if summary.benchmarks is not None:
        parts.append(benchmarks_part(summary.benchmarks))
    return ", ".join(parts) or "waiting for workers"


def wait_for_run(
    db_url: str,
    run_id: str,
    console: Console,
    *,
    still_serving: Callable[[RunSummary], str | None] = lambda summary: None,
    verbose: bool = False,
    poll_interval: float = 0.1,
) -> RunSummary:
    """Block until the run is finished; ``still_serving`` names why it cannot finish, if so."""
    progress = Progress(
        TextColumn("[bold]dtf[/bold] run " + run_id),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.description}"),
        TimeElapsedColumn(),
        console=console,
        transient=True,
        disable=not console.is_terminal,
    )
    last_line = None
    with progress:
        bar = progress.add_task("", total=None)
        while True:
            with session_scope(db_url) as session:
                summary = summarize(session, run_id)
            line = counts_line(summary)
            progress.update(
                bar, total=summary.total or None, completed=summary.finished, description=line
            )
            if not console.is_terminal and line != last_line:
                console.print(f"dtf: {line}", highlight=False)
                last_line = line
            if summary.done:
                return summary
            problem = still_serving(summary)
            if problem:
                raise InfrastructureError(problem)
            time.sleep(poll_interval)


class ClusterWatch:
    """Says why a run cannot finish: the broker is gone, or no worker serves its open queues.

    Checked every ``interval`` seconds while waiting; a queue must stay without
    a consumer for ``patience`` checks in a row, so a restarting worker is fine.
    """

    def __init__(self, app, settings, run_id: str, interval: float = 15.0, patience: int = 3):
        self.app, self.settings, self.run_id = app, settings, run_id
        self.interval, self.patience = interval, patience
        self.next_check = time.monotonic() + interval
        self.strikes = 0

    def __call__(self, summary: RunSummary) -> str | None:
        from dtf.config import worker_queue
        from dtf.submission import check_broker, live_workers

        if time.monotonic() < self.next_check or not summary.open_queues:
            return None
        self.next_check = time.monotonic() + self.interval
        resume = f"run {self.run_id} stays queued; `dtf wait {self.run_id}` follows it again"
        try:
            check_broker(self.app, self.settings)
        except InfrastructureError as exc:
            return f"{exc}; {resume}"
        served = set()
        for worker in live_workers(self.settings.database_url):
            served |= {*worker.healthy_queues, worker_queue(worker.hostname)}
        missing = sorted(summary.open_queues - served)
        self.strikes = self.strikes + 1 if missing else 0
        if self.strikes >= self.patience:
            return f"no live worker consumes queue '{missing[0]}' any more; {resume}"
        return None
