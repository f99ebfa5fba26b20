"""The ``dtf`` command: submit, run, status, results, init-db."""

from __future__ import annotations

import atexit
import contextlib
import functools
import os
import sys
from collections.abc import Iterator
from pathlib import Path

import click
from rich.console import Console

from dtf.cli_benchmarks import baseline, matrix
from dtf.cli_flaky import flaky
from dtf.cli_logs import logs, verbose_option, verbose_requested
from dtf.cli_recovery import recovery as recovery_command
from dtf.cli_report import report, report_option, results, write_run_reports
from dtf.config import Settings, load_settings, make_home, redact
from dtf.errors import (
    EXIT_BAD_INPUT,
    EXIT_INFRASTRUCTURE,
    BadInput,
    DatabaseUnreachable,
    DtfError,
    exit_now,
    system_exit_code,
)
from dtf.labels import label_callback, with_labels
from dtf.plugins.cli import plugins_command
from dtf.worker_status import workers

stdout = Console(highlight=False, soft_wrap=True)
if not stdout.is_terminal:
    stdout.width = 140  # CI logs: room for the batch table
stderr = Console(stderr=True, highlight=False, soft_wrap=True)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="dtf")
def cli() -> None:
    """dtf: run tests and benchmarks as Celery tasks on the hardware they need."""


class PytestArgsCommand(click.Command):
    """A command whose words after the first ``--`` are pytest's own arguments
    (``ctx.meta["pytest_args"]``), handed unchanged to every collection and batch."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        if "--" in args:
            cut = args.index("--")
            ctx.meta["pytest_args"] = args[cut + 1 :]
            args = args[:cut]
        return super().parse_args(ctx, args)

    def collect_usage_pieces(self, ctx: click.Context) -> list[str]:
        return [*super().collect_usage_pieces(ctx), "[-- PYTEST_ARGS]..."]


def _spec_from_options(selection: dict):
    """The run spec from the command line: a task file or paths, plus overrides."""
    from dtf.spec import with_pytest_args

    grouping, code = selection["grouping"], selection["code"]
    spec = _load_spec(
        selection["task_file"],
        selection["paths"],
        selection["keyword"],
        selection["markers"],
        _hardware(selection["hardware"]),
        selection["timeout"],
        selection["priority"],
    )
    spec = with_pytest_args(spec, click.get_current_context().meta.get("pytest_args", []))
    batching = {
        key: value
        for key, value in (
            ("grouping", grouping),
            ("batches", selection["batches"]),
            ("max_batch_seconds", selection["max_batch_seconds"]),
        )
        if value is not None
    }
    if batching:
        tasks = [t.model_copy(update=batching) if t.type == "test" else t for t in spec.tasks]
        spec = spec.model_copy(update={"tasks": tasks})
    spec = with_labels(spec, selection["labels"])
    return spec.model_copy(update={"code": code}) if code else spec


def _load_spec(task_file, paths, keyword, markers, hardware, timeout, priority):
    from dtf.spec import load_run_spec, spec_from_cli

    if task_file and paths:
        raise BadInput("give either PATHS or --task-file, not both")
    if task_file:
        return load_run_spec(task_file)
    # No paths: what pytest does without any (testpaths, else the current directory).
    return spec_from_cli(
        paths,
        keyword=keyword,
        markers=markers,
        hardware=hardware,
        timeout=timeout,
        priority=priority,
    )


def _prepare(settings: Settings) -> None:
    """Make the embedded default's folders and schema; check a server database's schema."""
    from dtf.db.schema import ensure_schema

    if settings.embedded or settings.database_url.startswith("sqlite"):
        settings.make_folders()
    ensure_schema(settings.database_url, create=settings.database_url.startswith("sqlite"))


selection_options = [
    click.option("--task-file", type=click.Path(dir_okay=False), help="JSON or YAML run file."),
    click.option("-k", "keyword", help="Only tests matching this pytest -k expression."),
    click.option("-m", "markers", help="Only tests matching this pytest -m expression."),
    click.option(
        "--hardware", help="Hardware kind(s) the tests need, comma-separated (default cpu)."
    ),
    click.option("--timeout", type=float, help="Per-test timeout in seconds (default 300)."),
    click.option("--priority", type=int, help="0..9, 9 most urgent (default 5)."),
    click.option(
        "--grouping",
        type=click.Choice(["module", "file", "scope", "none"]),
        help="What stays in one batch: a module unless too long (default), a whole file, "
        "a class or module scope, nothing.",
    ),
    click.option(
        "--batches",
        type=click.IntRange(min=1),
        help="Cut each test task into this many batches of equal expected duration.",
    ),
    click.option(
        "--max-batch-seconds",
        type=click.FloatRange(min=0, min_open=True),
        help="No batch is expected to run longer than this.",
    ),
    click.option(
        "--code",
        type=click.Choice(["path", "bundle"]),
        help="Where workers find the code: the same path (default) or a bundle of this directory.",
    ),
    click.option(
        "--label",
        "labels",
        multiple=True,
        metavar="KEY=VALUE",
        callback=label_callback,
        help="A label stored with the run (repeatable; wins over the task file's).",
    ),
]


wait_for_workers_option = click.option(
    "--wait-for-workers",
    type=float,
    default=0.0,
    metavar="SECONDS",
    help="When no live worker can take the run yet, wait this long for one.",
)


SELECTION_KEYS = (
    "paths", "task_file", "keyword", "markers", "hardware", "timeout", "priority", "grouping",
    "batches", "max_batch_seconds", "code", "labels",
)  # fmt: skip


def with_selection(func):
    """Add the options that say what to run; the command gets them as ``selection``."""

    @functools.wraps(func)
    def command(**kwargs):
        selection = {key: kwargs.pop(key) for key in SELECTION_KEYS}
        return func(selection=selection, **kwargs)

    for option in reversed(selection_options):
        command = option(command)
    return click.argument("paths", nargs=-1)(command)


def _hardware(value: str | None) -> list[str] | None:
    return [h.strip() for h in value.split(",") if h.strip()] if value else None


@cli.command(cls=PytestArgsCommand)
@with_selection
@verbose_option
@click.option(
    "--wait/--no-wait",
    default=True,
    show_default=True,
    help="Wait for the run to finish and exit with its verdict.",
)
@click.option(
    "--workers",
    "workers",
    type=int,
    help="Start N local workers for this run (default: one per core on the "
    "embedded default, none when a broker is configured).",
)
@click.option("--junit-xml", type=click.Path(dir_okay=False), help="Write JUnit XML here.")
@report_option
@wait_for_workers_option
def run(selection, wait, workers, junit_xml, reports, wait_for_workers) -> None:
    """Run tests: plan, send to workers, show progress, exit 0/1/2/3.

    PATHS and PYTEST_ARGS mean what they mean to pytest typed in this directory (no
    PATHS: pytest's testpaths, else this directory); PYTEST_ARGS reach every
    collection and batch."""
    from dtf.db.outage import outage_limit
    from dtf.local_workers import LocalWorkers

    settings = load_settings()
    outage_limit()  # a bad DTF_DB_OUTAGE_S is refused before anything is sent
    spec = _spec_from_options(selection)
    if workers is None:
        workers = (os.cpu_count() or 1) if settings.embedded else 0
    if workers < 0:
        raise BadInput("--workers must be 0 or more")
    if settings.embedded and workers == 0:
        raise BadInput(
            "the embedded default has no other workers: pass --workers 1 or more, "
            "or set DTF_BROKER_URL to a shared broker"
        )
    if workers and not wait:
        raise BadInput("local workers stop when dtf exits: use --wait with --workers")
    if reports and not wait:
        raise BadInput("--report is written when the run ends: use --wait, or `dtf wait --report`")
    _prepare(settings)
    _plugin_hooks().coordinator_started(settings, "run", spec)
    _plugin_hooks().check_settings_sections(spec)
    local = (
        LocalWorkers(workers, settings.home / "logs", db_url=settings.database_url)
        if workers
        else None
    )
    summary = None
    sent_nothing = False
    interrupted = False
    try:
        if local:
            local.start()  # they start and register while the tests are collected
        run_id = _submit(settings, spec, local=local, wait_for_workers=wait_for_workers)
        if not wait:
            stdout.print(run_id)
            return
        try:
            summary = _wait(settings, run_id, local)
        except KeyboardInterrupt:
            # The run this command started is cancelled; a second Ctrl-C leaves at once.
            stderr.print(f"dtf: cancelling run {run_id} (Ctrl-C again to leave at once)")
            _cancel(settings, run_id, "cancelled with Ctrl-C on dtf run")
            summary = _wait(settings, run_id, local)
            interrupted = True
    except BadInput:
        sent_nothing = True  # refused while planning: the workers hold nothing of this run
        raise
    finally:
        if local:
            local.finish(clean=summary is not None or sent_nothing)
    with _resumable(run_id):
        _finish(settings, summary, junit_xml, reports, exit_code=130 if interrupted else None)


def _finish(
    settings: Settings, summary, junit_xml: str | None, reports=(), exit_code: int | None = None
) -> None:
    targets = [*reports, *([("junit", junit_xml)] if junit_xml else [])]
    write_run_reports(settings.database_url, summary.run_id, targets)
    _plugin_hooks().run_finished(settings.database_url, summary)
    _print_summary(settings, summary)
    sys.exit(summary.exit_code if exit_code is None else exit_code)


@cli.command(cls=PytestArgsCommand)
@with_selection
@wait_for_workers_option
def submit(selection, wait_for_workers) -> None:
    """Queue a run for the workers and print its id (fire and forget).

    On the embedded default the run goes to local workers (warm ones of this project, or
    new ones), which stay up until DTF_LOCAL_WORKERS_IDLE seconds after their last task;
    where that is 0 (CI), to workers started with `celery -A dtf worker`."""
    settings = load_settings()
    spec = _spec_from_options(selection)
    _prepare(settings)
    _plugin_hooks().coordinator_started(settings, "submit", spec)
    _plugin_hooks().check_settings_sections(spec)
    local = _submit_workers(settings)
    try:
        if local is not None:
            local.start()
        run_id = _submit(settings, spec, local=local, wait_for_workers=wait_for_workers)
    finally:
        if local is not None:
            local.finish(clean=True)  # warm: they run what was sent, then idle out
    stdout.print(run_id)


def _submit_workers(settings: Settings):
    """The local workers a submit on the embedded default sends its run to: None with a
    broker of its own, or where local workers would not outlive the submit."""
    from dtf.local_workers import LocalWorkers, idle_seconds

    if not settings.embedded or idle_seconds(os.environ) <= 0:
        return None
    return LocalWorkers(os.cpu_count() or 1, settings.home / "logs", db_url=settings.database_url)


def _submit(settings: Settings, spec, *, local, wait_for_workers: float) -> str:
    """Check the broker, collect, route to live workers, store, send; returns the run id."""
    from dtf.celery_app import app
    from dtf.config import CONTROL_QUEUE, worker_queue
    from dtf.scheduling.planner import collect_run
    from dtf.submission import (
        check_broker,
        check_bundle_holds,
        route_when_possible,
        send_run,
        store_plan,
        wait_for_workers_to_register,
    )

    plan = collect_run(spec, cwd=Path.cwd(), cache_dir=settings.home / "collect-cache")
    check_broker(app, settings)
    if local is not None:
        wait_for_workers_to_register(
            settings.database_url, {local.hostname}, timeout=120, still_starting=local.problem
        )
    private = {local.hostname} if local is not None else None
    plan = route_when_possible(settings.database_url, plan, wait=wait_for_workers, private=private)
    bundle = None
    if spec.code == "bundle":
        from dtf.bundles import pack, store

        check_bundle_holds(plan, Path.cwd())
        packed = pack(Path.cwd())
        store(settings.database_url, packed)
        bundle = packed.sha256
    run_id, headers = store_plan(
        settings.database_url, plan, workdir=str(Path.cwd()), bundle=bundle
    )
    _plugin_hooks().run_stored(settings.database_url, run_id, headers)
    control = worker_queue(local.hostname) if local is not None else CONTROL_QUEUE
    send_run(settings.database_url, run_id, headers, control)
    _plugin_hooks().run_submitted(settings.database_url, run_id)
    return run_id


def _wait(settings: Settings, run_id: str, local):
    from dtf.celery_app import app
    from dtf.progress import ClusterWatch, wait_for_run

    cluster = ClusterWatch(app, settings, run_id, interval=settings.liveness_interval)

    def still_serving(summary) -> str | None:
        if local is not None:
            problem = local.problem()
            return f"{problem} before run {run_id} finished" if problem else None
        return cluster(summary)

    # Given up on an unreachable database: the run goes on, unless its workers were ours.
    resume = (
        f"run {run_id} cannot finish without this command's local workers, which stop now: "
        "run it again once the database is back"
        if local is not None
        else None  # `dtf wait RUN` resumes waiting
    )
    return wait_for_run(
        settings.database_url,
        run_id,
        stderr,
        still_serving=still_serving,
        verbose=verbose_requested(),
        resume=resume,
    )


@contextlib.contextmanager
def _resumable(run_id: str) -> Iterator[None]:
    """A database lost after the run ended (its reports, its summary): the line says how
    to see them once it is back."""
    try:
        yield
    except DatabaseUnreachable as exc:
        raise DatabaseUnreachable(
            f"{exc}; `dtf wait {run_id}` shows how run {run_id} ended once it is back", exc.reason
        ) from exc


def _print_summary(settings: Settings, summary) -> None:
    from dtf.db.session import session_scope
    from dtf.progress import counts_line
    from dtf.recovery.notices import recoveries, summary_line
    from dtf.summary import failure_line, failures

    with session_scope(settings.database_url) as session:
        failing = failures(session, summary.run_id)
        recovered = summary_line(recoveries(session, summary.run_id))
    if recovered:
        stdout.print(f"  {recovered}", markup=False)
    if failing:
        stdout.print("[bold]failures[/bold]")
        for result in failing:
            text = failure_line(result.outcome, result.longrepr)
            stdout.print(
                f"  {result.outcome.upper():9} {result.nodeid}"
                + (f" - {text[:160]}" if text else ""),
                markup=False,
            )
    for command in summary.commands:
        if command.status == "timed_out" or command.exit_code:
            stdout.print(
                f"  COMMAND   task {command.position} exited {command.exit_code}", markup=False
            )
    if summary.benchmarks is not None:
        from dtf.cli_benchmarks import print_run_benchmarks

        with session_scope(settings.database_url) as session:
            print_run_benchmarks(stdout, session, summary.run_id)
    for line in summary.broken:
        stdout.print(f"  BROKEN    {line}", markup=False)
    if summary.stopped:
        not_run = summary.total - summary.finished
        stdout.print(f"dtf: {'; '.join(summary.stopped)}: {not_run} tests not run", markup=False)
    _print_integrations(settings, summary.run_id)
    stdout.print(
        f"dtf: {summary.status}: {counts_line(summary)} (run {summary.run_id})", markup=False
    )


def _print_integrations(settings: Settings, run_id: str) -> None:
    from dtf.db.session import session_scope
    from dtf.plugins.outcomes import outcome_lines

    with session_scope(settings.database_url) as session:
        for line in outcome_lines(session, run_id):
            stdout.print(f"  {line}", markup=False)


def _plugin_hooks():
    from dtf.plugins import coordinator

    return coordinator


def _plugin_outcomes():
    from dtf.plugins import outcomes

    return outcomes


@cli.command()
@click.argument("run_id", metavar="RUN")
@verbose_option
@click.option("--junit-xml", type=click.Path(dir_okay=False), help="Write JUnit XML here.")
@report_option
def wait(run_id, junit_xml, reports) -> None:
    """Wait for a submitted run to finish and exit with its verdict (0/1/3/4).

    Ctrl-C only stops waiting: the run goes on (`dtf cancel RUN` stops it)."""
    from dtf.db.session import session_scope

    # From the start: a Ctrl-C while dtf wait sets up stops waiting just the same.
    try:
        settings = load_settings()
        _prepare_read(settings)
        with session_scope(settings.database_url) as session:
            run_id = _resolve_run(session, run_id)
        _plugin_hooks().coordinator_started(settings, "wait")
        summary = _wait(settings, run_id, None)
    except KeyboardInterrupt:
        stderr.print(f"dtf: stopped waiting; run {run_id} goes on (dtf cancel {run_id} stops it)")
        exit_now(130)
    with _resumable(run_id):
        _finish(settings, summary, junit_xml, reports)


@cli.command()
@click.argument("run_id", metavar="RUN")
def cancel(run_id) -> None:
    """Cancel a run everywhere: queued batches run nothing, running ones end their pytest
    children; results already stored stay. The run ends `cancelled` (exit 4 for
    `dtf wait`)."""
    from dtf.db.session import session_scope

    settings = load_settings()
    _prepare_read(settings)
    with session_scope(settings.database_url) as session:
        run_id = _resolve_run(session, run_id)
    status, _ = _cancel(settings, run_id, "cancelled with dtf cancel")
    stdout.print(f"run {run_id}: {status}", markup=False)


def _cancel(settings: Settings, run_id: str, reason: str) -> tuple[str, bool]:
    from dtf.tasks.stopping import cancel_run

    status, ends_now = cancel_run(settings.database_url, run_id, reason)
    if status == "cancelling":
        status = "cancelling: its running batches are ending their pytest children"
    elif not ends_now and status != "cancelled":
        status = f"already {status}, nothing to cancel"
    return status, ends_now


@cli.command()
@click.argument("run_id", metavar="[RUN]", required=False)
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.option(
    "--batches",
    "show_batches",
    is_flag=True,
    help="Also show each batch: estimate, wall time, start-up, time in tests.",
)
def status(run_id, as_json, show_batches) -> None:
    """Show a run's state, counts and labels (the latest run when RUN is omitted)."""
    from dtf.db.models import Run
    from dtf.db.session import session_scope
    from dtf.labels import labels_of, labels_text
    from dtf.progress import counts_line
    from dtf.recovery.notices import notice_lines, recoveries, summary_line
    from dtf.reporting.batches import batch_efficiency
    from dtf.summary import summarize

    settings = load_settings()
    _prepare_read(settings)
    with session_scope(settings.database_url) as session:
        run_id = _resolve_run(session, run_id)
        summary = summarize(session, run_id)
        batches = batch_efficiency(session, run_id) if show_batches else None
        extras = _plugin_outcomes().run_extras(session, run_id)
        extra_lines = _plugin_outcomes().extras_lines(session, run_id)
        labels = labels_of(session.get(Run, run_id))
        recovered = recoveries(session, run_id)
    if as_json:
        data = {
            "run_id": run_id,
            "status": summary.status,
            "total": summary.total,
            "finished": summary.finished,
            "counts": summary.counts,
            "labels": labels,
            **extras,
        }
        if summary.stopped:
            data["stopped"] = summary.stopped
        data["recoveries"] = recovered
        if batches is not None:
            data["batches"] = batches
        stdout.print_json(data=data)
        return
    stdout.print(f"run {run_id}: {summary.status}: {counts_line(summary)}", markup=False)
    if labels:
        stdout.print(f"  labels: {labels_text(labels)}", markup=False)
    for line in extra_lines:
        stdout.print(f"  {line}", markup=False)
    for reason in summary.stopped:
        not_run = summary.total - summary.finished
        stdout.print(f"  {reason}: {not_run} tests not run", markup=False)
    if summary_line(recovered):
        stdout.print(f"  {summary_line(recovered)}", markup=False)
        for event in recovered:
            for line in notice_lines(event):
                stdout.print(f"    {event['started_at']}  {line}", markup=False)
    if batches:
        stdout.print(_batch_table(batches))


def _batch_table(rows):
    from rich.table import Table

    def secs(value):
        return "-" if value is None else f"{value:.2f}"

    table = Table("batch", "queue", "tests", "est s", "wall s", "start-up s", "tests s",
                  "other s", "use", "tries", "worker")  # fmt: skip
    for row in rows:
        use = "-" if row["efficiency"] is None else f"{row['efficiency']:.0%}"
        table.add_row(
            str(row["batch"]), row["queue"], str(row["tests"]), secs(row["estimated_s"]),
            secs(row["wall_s"]), secs(row["startup_s"]), secs(row["test_s"]),
            secs(row["other_s"]), use, str(row["attempts"]), row["worker"] or "-",
        )  # fmt: skip
    return table


@cli.command("init-db")
def init_db() -> None:
    """Create or upgrade the database schema (Alembic migrations)."""
    from dtf.db.schema import upgrade

    settings = load_settings()
    if settings.database_url.startswith("sqlite"):
        make_home(settings.home)
    revision = upgrade(settings.database_url)
    stdout.print(
        f"database {redact(settings.database_url)} is at revision {revision}", markup=False
    )


def _prepare_read(settings: Settings) -> None:
    from dtf.db.schema import database_exists, ensure_readable

    if not database_exists(settings.database_url):
        raise BadInput(
            f"no dtf database at {settings.database_url}: run something first, "
            "or set DTF_DATABASE_URL"
        )
    ensure_readable(settings.database_url)


def _resolve_run(session, run_id: str | None) -> str:
    from sqlalchemy import select

    from dtf.db.models import Run

    if run_id is None:
        run_id = session.scalar(select(Run.id).order_by(Run.created_at.desc()).limit(1))
        if run_id is None:
            raise BadInput("there are no runs yet")
        return run_id
    if session.get(Run, run_id) is None:
        raise BadInput(f"no run with id {run_id!r}; `dtf status` shows the latest")
    return run_id


cli.add_command(workers)
cli.add_command(flaky)
cli.add_command(plugins_command)
cli.add_command(baseline)
cli.add_command(matrix)
cli.add_command(recovery_command)
cli.add_command(logs)
cli.add_command(report)
cli.add_command(results)


@cli.command("stop-workers")
def stop_workers() -> None:
    """Stop the local workers and the command server `dtf run` keeps warm for this
    project (DTF_HOME)."""
    from dtf.local_workers import stop_local_workers

    settings = load_settings()
    workers, servers = stop_local_workers(settings.home, settings.database_url)
    stopped = [f"{workers} warm local worker(s)"] if workers else []
    stopped += [f"{servers} command server(s)"] if servers else []
    stdout.print(
        f"dtf: stopped {' and '.join(stopped)}" if stopped
        else "dtf: none running (no warm local worker, no command server)"
    )  # fmt: skip


@cli.command(
    "worker",
    context_settings={"ignore_unknown_options": True, "help_option_names": []},
    add_help_option=False,
)
@click.argument("celery_args", nargs=-1, type=click.UNPROCESSED)
def worker(celery_args: tuple[str, ...]) -> None:
    """Start a worker: `celery -A dtf worker [OPTIONS]`, with dtf's own dtf even in a
    project that has a dtf.py or dtf/ of its own (which `celery -A dtf` would import)."""
    from dtf.launch import python_module_command

    command = python_module_command("celery", "-A", "dtf", "worker", *celery_args)
    sys.stdout.flush()
    os.execv(command[0], command)


def _check_working_directory() -> None:
    try:
        os.getcwd()
    except FileNotFoundError:
        raise BadInput(
            "the current directory no longer exists: cd into the project and run dtf again"
        ) from None


def _add_plugin_commands() -> None:
    # Commands of worker-side packages (e.g. `dtf hardware`), found by entry point.
    from importlib.metadata import entry_points

    for entry in entry_points(group="dtf.commands"):
        if entry.name not in cli.commands:
            cli.add_command(entry.load(), entry.name)


def entry_point() -> None:
    """The ``dtf`` command: :func:`main`, then leave without the interpreter's teardown.

    Freeing every module of a process that imported SQLAlchemy, Celery and pydantic
    takes ~0.25 s after the work is done; exit handlers still run and output is flushed.
    """
    try:
        main()
        code = 0
    except SystemExit as exc:
        code = system_exit_code(exc)
    atexit._run_exitfuncs()
    exit_now(code)


#: click >= 8.2 raises this for a group typed without a subcommand (older ones print help)
_NO_ARGS_IS_HELP = getattr(click.exceptions, "NoArgsIsHelpError", ())


def main(argv: list[str] | None = None) -> None:
    """Entry point: every error is one line on stderr and an exit code, never a traceback."""
    from dtf.spec import SpecError

    # Celery's result objects talk to the result backend in __del__; when the
    # broker is gone that fails at exit with a traceback nobody can act on.
    if not os.environ.get("DTF_DEBUG"):
        sys.unraisablehook = lambda unraisable: None
    try:
        _check_working_directory()
        _add_plugin_commands()
        cli.main(args=argv, prog_name="dtf", standalone_mode=False)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
    except click.Abort:
        stderr.print("dtf: aborted")
        sys.exit(130)
    except _NO_ARGS_IS_HELP as exc:  # `dtf`, `dtf recovery`: the group's help, as git does
        click.echo(exc.ctx.get_help())
        sys.exit(0)
    except click.ClickException as exc:
        stderr.print(f"dtf: error: {exc.format_message()}", markup=False)
        sys.exit(EXIT_BAD_INPUT)
    except SpecError as exc:
        stderr.print(f"dtf: error: {exc}", markup=False)
        sys.exit(EXIT_BAD_INPUT)
    except DtfError as exc:
        stderr.print(f"dtf: error: {exc}", markup=False)
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        stderr.print("dtf: interrupted")
        sys.exit(130)
    except Exception as exc:
        if os.environ.get("DTF_DEBUG"):
            raise
        line = " ".join(f"{type(exc).__name__}: {exc}".split())
        stderr.print(f"dtf: internal error: {line} (set DTF_DEBUG=1 for a traceback)", markup=False)
        sys.exit(EXIT_INFRASTRUCTURE)
