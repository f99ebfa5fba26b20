"""What tests printed: ``dtf logs RUN [TEST_ID] [--follow]``, and ``-v`` on run and wait.

Output comes from the database (stdout, stderr and the failure report pytest
captured for each result line, bounded in size by the worker), so it works
for any run from any machine that sees the database.
"""

from __future__ import annotations

import time

import click

_VERBOSE = "dtf.verbose"


def _remember_verbose(ctx: click.Context, param: click.Parameter, value: bool) -> bool:
    ctx.meta[_VERBOSE] = value
    return value


verbose_option = click.option(
    "-v",
    "--verbose",
    is_flag=True,
    expose_value=False,
    callback=_remember_verbose,
    help="Print each test's outcome as it finishes (node id, outcome, duration, worker).",
)


def verbose_requested() -> bool:
    """Whether the command being run was given ``-v``."""
    ctx = click.get_current_context(silent=True)
    return bool(ctx and ctx.meta.get(_VERBOSE))


@click.command()
@click.argument("run_id", metavar="RUN")
@click.argument("test_id", required=False)
@click.option(
    "-f",
    "--follow",
    is_flag=True,
    help="Print each test's output as it finishes, until the run (or TEST_ID's batch) ends.",
)
@click.option(
    "--interval",
    type=click.FloatRange(min=0.05),
    default=0.5,
    show_default=True,
    help="Seconds between looks at the database with --follow.",
)
def logs(run_id: str, test_id: str | None, follow: bool, interval: float) -> None:
    """Print what a test printed (stdout, stderr, failure report), or a command task's
    output.

    Without TEST_ID: list the run's tests that have captured output, and its command
    tasks. TEST_ID is a node id, or its end after a '/' or '::' when that names one
    test of the run, or a command task's name (or `task N`).
    """
    from dtf.config import load_settings
    from dtf.db.session import session_scope

    settings = load_settings()
    _check_database(settings.database_url)
    with session_scope(settings.database_url) as session:
        _check_run(session, run_id)
        command = _command_task(session, run_id, test_id) if test_id else None
        if command is not None:
            _print_command(session, command, follow, interval)
            return
        nodeid = _match_test(session, run_id, test_id) if test_id else None
        if not follow:
            if nodeid is None:
                _print_listing(session, run_id)
            else:
                _print_test(session, run_id, nodeid)
            return
    _follow(settings.database_url, run_id, nodeid, interval)


def _check_database(db_url: str) -> None:
    from dtf.db.schema import database_exists, ensure_readable
    from dtf.errors import BadInput

    if not database_exists(db_url):
        raise BadInput(f"no dtf database at {db_url}: run something first, or set DTF_DATABASE_URL")
    ensure_readable(db_url)


def _command_task(session, run_id: str, name: str):
    """The command task of the run that ``name`` names (its name, or ``task N``)."""
    from sqlalchemy import select

    from dtf.db.models import RunTask

    commands = session.scalars(
        select(RunTask).where(RunTask.run_id == run_id, RunTask.type == "command")
    ).all()
    return next(
        (c for c in commands if name in (c.name, f"task {c.position}", str(c.position))), None
    )


def _print_command(session, command, follow: bool, interval: float) -> None:
    """A command task's output, once it has ended (with --follow: waiting for that)."""
    from dtf.errors import BadInput

    label = command.name or f"task {command.position}"
    while command.status in ("pending", "running"):
        if not follow:
            raise BadInput(
                f"command {label!r} of run {command.run_id} is {command.status}; "
                f"`dtf logs {command.run_id} {label!r} --follow` waits for it"
            )
        time.sleep(interval)
        session.expire_all()
    ended = f"exit {command.exit_code}" if command.exit_code is not None else "no exit code"
    click.echo(f"--- command {label!r}: {command.status}, {ended} ---")
    click.echo((command.output or "").rstrip("\n") or "(no output)")


def _check_run(session, run_id: str) -> None:
    from dtf.db.models import Run
    from dtf.errors import BadInput

    if session.get(Run, run_id) is None:
        raise BadInput(f"no run with id {run_id!r}; `dtf status` shows the latest")


def _match_test(session, run_id: str, test_id: str) -> str:
    """The one node id of the run that ``test_id`` names: exactly, as its end, or as the
    function of a parametrized test."""
    from sqlalchemy import or_, select

    from dtf.db.models import TestItem
    from dtf.errors import BadInput

    nodeid = TestItem.nodeid
    names = set(
        session.scalars(
            select(nodeid).where(
                TestItem.run_id == run_id,
                or_(
                    nodeid == test_id,
                    nodeid.endswith("/" + test_id, autoescape=True),
                    nodeid.endswith("::" + test_id, autoescape=True),
                    # a parametrized test by its function name
                    nodeid.contains("::" + test_id + "[", autoescape=True),
                ),
            )
        )
    )
    if test_id in names:
        return test_id
    if len(names) == 1:
        return names.pop()
    if names:
        some = ", ".join(sorted(names)[:3]) + (", ..." if len(names) > 3 else "")
        raise BadInput(
            f"{test_id!r} names {len(names)} tests of run {run_id} ({some}): give the whole node id"
        )
    raise BadInput(
        f"run {run_id} has no test {test_id!r}; `dtf logs {run_id}` lists its tests with output"
    )


def _line_count(column):
    # Lines of a text column without loading it: newlines after trimming the last ones, + 1.
    from sqlalchemy import case, func

    trimmed = func.rtrim(func.coalesce(column, ""), "\n")
    newlines = func.length(trimmed) - func.length(func.replace(trimmed, "\n", ""))
    return case((trimmed == "", 0), else_=newlines + 1)


def _print_listing(session, run_id: str) -> None:
    from sqlalchemy import func, or_, select

    from dtf.db.models import TestResult

    total = session.scalar(select(func.count()).where(TestResult.run_id == run_id))
    rows = session.execute(
        select(
            TestResult.nodeid,
            TestResult.outcome,
            TestResult.when,
            TestResult.attempt,
            TestResult.superseded,
            _line_count(TestResult.stdout),
            _line_count(TestResult.stderr),
            _line_count(TestResult.longrepr),
        )
        .where(
            TestResult.run_id == run_id,
            or_(
                TestResult.stdout.is_not(None),
                TestResult.stderr.is_not(None),
                TestResult.longrepr.is_not(None),
            ),
        )
        .order_by(TestResult.id)
    ).all()
    if not rows:
        click.echo(f"run {run_id}: none of its {total} results captured output")
        _list_commands(session, run_id)
        return
    click.echo(f"run {run_id}: {len(rows)} of {total} results captured output")
    for nodeid, outcome, when, attempt, superseded, *counts in rows:
        labels = ("stdout", "stderr", _report_label(outcome))
        notes = [f"{label} {_lines(n)}" for label, n in zip(labels, counts, strict=True) if n]
        if attempt and attempt > 1:
            notes.append(f"attempt {attempt}")
        if superseded:
            notes.append("superseded by a rerun")
        click.echo(f"  {_label(outcome, when):9} {nodeid}  ({', '.join(notes)})")
    click.echo(f"`dtf logs {run_id} TEST_ID` prints a test's output")
    _list_commands(session, run_id)


def _list_commands(session, run_id: str) -> None:
    from sqlalchemy import select

    from dtf.db.models import RunTask

    commands = session.scalars(
        select(RunTask)
        .where(RunTask.run_id == run_id, RunTask.type == "command")
        .order_by(RunTask.position)
    ).all()
    if not commands:
        return
    click.echo(f"run {run_id}: {len(commands)} command task(s)")
    for command in commands:
        label = command.name or f"task {command.position}"
        lines = _lines(len((command.output or "").splitlines()))
        click.echo(f"  {command.status:9} {label}  (output {lines})")
    click.echo(f"`dtf logs {run_id} NAME` prints a command task's output")


def _lines(count: int) -> str:
    return f"{count} line" + ("" if count == 1 else "s")


def _print_test(session, run_id: str, nodeid: str) -> None:
    from dtf.db.models import TestResult
    from dtf.errors import BadInput
    from dtf.progress import finished_tests

    results = finished_tests(
        session, (TestResult.run_id == run_id) & (TestResult.nodeid == nodeid), with_output=True
    )
    if not results:
        raise BadInput(
            f"test {nodeid} of run {run_id} has not finished yet; "
            f"`dtf logs {run_id} {nodeid} --follow` waits for it"
        )
    for result in results:
        _print_result(result)


def _follow(db_url: str, run_id: str, nodeid: str | None, interval: float) -> None:
    from dtf.db.session import session_scope
    from dtf.progress import NewResults
    from dtf.summary import TERMINAL_RUN_STATES

    new_results = NewResults(run_id, with_output=True)
    printed = 0
    while True:
        with session_scope(db_url) as session:
            # Read whether it is over first: every result stored before then is read below.
            status = _over(session, run_id, nodeid)
            for result in new_results(session):
                if nodeid is None or result.nodeid == nodeid:
                    _print_result(result, quiet=nodeid is None)
                    printed += 1
        if status:
            break
        time.sleep(interval)
    if nodeid is not None and not printed:
        click.echo(f"dtf: {nodeid} ended without a result (run {run_id} is {status})", err=True)
    elif nodeid is not None and status not in TERMINAL_RUN_STATES:
        click.echo(f"dtf: {nodeid} finished; run {run_id} is {status}", err=True)
    else:
        click.echo(f"dtf: run {run_id} is {status}", err=True)


def _over(session, run_id: str, nodeid: str | None) -> str | None:
    """The run's final status, or (for one test) ``running`` once that test's batches ended."""
    from sqlalchemy import select

    from dtf.db.models import Batch, Run, TestItem
    from dtf.summary import TERMINAL_RUN_STATES

    status = session.get(Run, run_id).status
    if status in TERMINAL_RUN_STATES:
        return status
    if nodeid is None:
        return None
    batch_states = session.scalars(
        select(Batch.status)
        .join(TestItem, TestItem.batch_id == Batch.id)
        .where(TestItem.run_id == run_id, TestItem.nodeid == nodeid)
    ).all()
    return status if all(s in ("done", "broken") for s in batch_states) else None


def _print_result(result, *, quiet: bool = False) -> None:
    """A header line, then each captured section; ``quiet``: nothing more when none."""
    header = f"==== {_label(result.outcome, result.when)} {result.nodeid} "
    where = f" on {result.worker}" if result.worker else ""
    if result.attempt and result.attempt > 1:
        where += f", attempt {result.attempt}"
    if result.superseded:
        where += ", superseded by a rerun"
    header += f"({result.duration:.2f}s{where}) ===="
    click.echo(click.style(header, bold=True))
    sections = (
        ("stdout", result.stdout),
        ("stderr", result.stderr),
        (_report_label(result.outcome), result.longrepr),
    )
    shown = [(label, text) for label, text in sections if text]
    if not shown and not quiet:
        click.echo("(no captured output)")
    for label, text in shown:
        click.echo(f"---- {label} ----")
        click.echo(text.rstrip("\n"))


def _label(outcome: str, when: str) -> str:
    return outcome.upper() + ("" if when == "call" else f" ({when})")


def _report_label(outcome: str) -> str:
    from dtf.summary import FAILING_OUTCOMES

    return "traceback" if outcome in (*FAILING_OUTCOMES, "xfailed") else "reason"
