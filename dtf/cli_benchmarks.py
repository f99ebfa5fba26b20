"""``dtf baseline`` and ``dtf matrix``, and the benchmark table ``dtf run`` prints."""

from __future__ import annotations

import click
from rich.console import Console
from rich.table import Table

from dtf.errors import BadInput


def _console() -> Console:
    from dtf.cli import stdout

    return stdout


def _session_for_reading():
    from dtf.cli import _prepare_read
    from dtf.config import load_settings
    from dtf.db.session import session_scope

    settings = load_settings()
    _prepare_read(settings)
    return session_scope(settings.database_url)


def _ms(value: float | None) -> str:
    """Milliseconds to three significant digits, never in exponent notation."""
    if value is None:
        return "-"
    return f"{value:.0f}" if value >= 100 else f"{value:.3g}"


def _rate(value: float) -> str:
    return f"{value:.0f}" if value >= 1000 else f"{value:.4g}"


def _shape(row) -> str:
    return row.shape or "-"


@click.group()
def baseline() -> None:
    """Benchmark baselines: set one from a run, list them, compare a run with them."""


@baseline.command("set")
@click.argument("run_id", metavar="RUN")
def baseline_set(run_id: str) -> None:
    """Make RUN's finished benchmark results the baselines of their configurations."""
    from dtf.benchmarking.baselines import set_baseline
    from dtf.cli import _resolve_run

    with _session_for_reading() as session:
        run_id = _resolve_run(session, run_id)
        rows = set_baseline(session, run_id)
        table = Table("model", "runtime", "hardware", "batch", "shape", "precision", "p50 ms",
                      "items/s", title=f"baselines set from run {run_id}")  # fmt: skip
        for row in rows:
            table.add_row(
                row.model, row.runtime, row.hardware, str(row.batch_size), _shape(row),
                row.precision, _ms(row.latency_p50_ms), _rate(row.throughput),
            )  # fmt: skip
    _console().print(table)


@baseline.command("list")
@click.option("--model", help="Only the baselines of this model.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def baseline_list(model: str | None, as_json: bool) -> None:
    """Every baseline: its configuration, the run it came from, its latencies."""
    from dtf.benchmarking.baselines import list_baselines

    with _session_for_reading() as session:
        rows = list_baselines(session, model)
        data = [
            {
                "model": r.mark.model, "runtime": r.mark.runtime, "hardware": r.mark.hardware,
                "batch_size": r.mark.batch_size, "shape": r.mark.shape,
                "precision": r.mark.precision, "run_id": r.mark.run_id,
                "result_id": r.result.id, "set_at": r.mark.set_at.isoformat(),
                "device": r.result.device, "latency_p50_ms": r.result.latency_p50_ms,
                "latency_p99_ms": r.result.latency_p99_ms, "throughput": r.result.throughput,
                "samples": len(r.result.samples),
            }
            for r in rows
        ]  # fmt: skip
    if as_json:
        _console().print_json(data=data)
        return
    if not data:
        _console().print("no baselines yet: `dtf baseline set RUN` makes one", markup=False)
        return
    table = Table("model", "runtime", "hardware", "batch", "shape", "precision", "p50 ms",
                  "p99 ms", "items/s", "samples", "run", "device")  # fmt: skip
    for d in data:
        table.add_row(
            d["model"], d["runtime"], d["hardware"], str(d["batch_size"]), d["shape"] or "-",
            d["precision"], _ms(d["latency_p50_ms"]), _ms(d["latency_p99_ms"]),
            _rate(d["throughput"]), str(d["samples"]), d["run_id"], d["device"] or "-",
        )  # fmt: skip
    _console().print(table)


@baseline.command("show")
@click.argument("run_id", metavar="[RUN]", required=False)
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def baseline_show(run_id: str | None, as_json: bool) -> None:
    """Compare RUN's benchmark results (the latest run when omitted) with today's baselines."""
    from dtf.benchmarking.baselines import compare_run
    from dtf.cli import _resolve_run

    with _session_for_reading() as session:
        run_id = _resolve_run(session, run_id)
        compared = compare_run(session, run_id)
        data = [
            {
                "model": c.result.model, "runtime": c.result.runtime,
                "hardware": c.result.hardware, "batch_size": c.result.batch_size,
                "shape": c.result.shape, "precision": c.result.precision,
                "status": c.result.status, "latency_p50_ms": c.result.latency_p50_ms,
                "baseline_run": c.baseline.run_id if c.baseline else None,
                "baseline_p50_ms": c.baseline.latency_p50_ms if c.baseline else None,
                "verdict": c.verdict, "comparison": c.comparison,
                "is_baseline": c.baseline is not None and c.baseline.id == c.result.id,
            }
            for c in compared
        ]  # fmt: skip
    if as_json:
        _console().print_json(data={"run_id": run_id, "results": data})
        return
    table = Table("model", "hardware", "batch", "shape", "precision", "p50 ms", "baseline p50",
                  "verdict", "how", title=f"run {run_id} against the baselines")  # fmt: skip
    for d in data:
        how = (d["comparison"] or {}).get("summary") or (
            "is the baseline" if d["is_baseline"]
            else "no baseline" if d["status"] == "done"
            else d["status"]
        )  # fmt: skip
        table.add_row(
            d["model"], d["hardware"], str(d["batch_size"]), d["shape"] or "-", d["precision"],
            _ms(d["latency_p50_ms"]), _ms(d["baseline_p50_ms"]), d["verdict"] or "-", how,
        )  # fmt: skip
    _console().print(table)


@click.command()
@click.argument("run_id", metavar="[RUN]", required=False)
@click.option(
    "--format", "fmt", type=click.Choice(["table", "markdown", "html", "json"]), default="table",
    show_default=True,
)  # fmt: skip
def matrix(run_id: str | None, fmt: str) -> None:
    """Model x hardware compatibility: supported / fails / not run, fastest configuration.

    From RUN's tests (marked with a model) and benchmarks; without RUN, each cell
    comes from the newest recent run that has anything for it.
    """
    from dtf.benchmarking.matrix import build_matrix, matrix_html, matrix_markdown
    from dtf.cli import _resolve_run

    with _session_for_reading() as session:
        if run_id is not None:
            run_id = _resolve_run(session, run_id)
        found = build_matrix(session, run_id)
    console = _console()
    if fmt == "json":
        console.print_json(data=found.to_dict())
        return
    if not found.models:
        where = f"run {run_id}" if run_id else "the recent runs"
        raise BadInput(
            f"{where} tested or benchmarked no model: mark tests with "
            "@pytest.mark.dtf(model=...) or run a benchmark task"
        )
    if fmt == "markdown":
        console.out(matrix_markdown(found), end="")
        return
    if fmt == "html":
        console.out(matrix_html(found), end="")
        return
    colours = {"supported": "green", "fails": "red", "not run": "dim"}
    table = Table("model", *found.hardware, title="model x hardware", show_lines=True)
    for model in found.models:
        cells = []
        for kind in found.hardware:
            cell = found.cell(model, kind)
            cells.append(f"[{colours[cell.state]}]{_escape(cell.describe())}[/]")
        table.add_row(_escape(model), *cells)
    console.print(table)


def _escape(text: str) -> str:
    from rich.markup import escape

    return escape(text)


def print_run_benchmarks(console: Console, session, run_id: str) -> None:
    """The benchmark results of a run, after ``dtf run``/``dtf wait``; nothing if it has none."""
    from sqlalchemy import select

    from dtf.db.models import BenchmarkResult

    rows = list(
        session.scalars(
            select(BenchmarkResult).filter_by(run_id=run_id).order_by(BenchmarkResult.id)
        )
    )
    if not rows:
        return
    table = Table("model", "hardware", "batch", "shape", "precision", "mean ms", "p50 ms",
                  "p90 ms", "p99 ms", "items/s", "peak MiB", "load s", "vs baseline",
                  title="benchmarks")  # fmt: skip
    for row in rows:
        if row.status != "done":
            table.add_row(row.model, row.hardware, str(row.batch_size), _shape(row), row.precision,
                          *(["-"] * 7), row.status)  # fmt: skip
            continue
        peak = row.peak_rss_mb if row.peak_gpu_mb is None else row.peak_gpu_mb
        versus = row.verdict or "-"
        if row.comparison:
            versus += f" {row.comparison['ratio']:.2f}x"
        table.add_row(
            row.model, row.hardware, str(row.batch_size), _shape(row), row.precision,
            _ms(row.latency_mean_ms), _ms(row.latency_p50_ms), _ms(row.latency_p90_ms),
            _ms(row.latency_p99_ms), _rate(row.throughput), f"{peak:.0f}",
            f"{row.load_s:.2f}", versus,
        )  # fmt: skip
    console.print(table)
    for row in rows:
        what = f"{row.model} {row.hardware} batch {row.batch_size}" + (
            f" shape {row.shape}" if row.shape else ""
        ) + f" {row.precision}"  # fmt: skip
        if row.status == "failed":
            console.print(f"  BENCHMARK {what}: {row.error}", markup=False)
        if row.verdict == "regression":
            label = "REGRESSION" if row.gate else "regression"
            console.print(f"  {label:9} {what}: {row.comparison['summary']}", markup=False)
