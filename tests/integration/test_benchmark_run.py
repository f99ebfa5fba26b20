"""Benchmark runs through real workers: fan-out, baselines and regressions, the matrix.

The model is a user's callable whose speed the test controls (a sleep of
``delay`` seconds per call), so measurements, regressions and their absence
are real without torch.
"""

from __future__ import annotations

import json
import re
import textwrap
from datetime import datetime
from pathlib import Path

import pytest
from sqlalchemy import create_engine, select
from sqlalchemy.orm import Session

from dtf.db.models import BenchmarkResult
from tests.support.processes import run_dtf

pytestmark = pytest.mark.integration

SLEEPER = textwrap.dedent(
    """
    import time


    def load(request):
        delay = request.options["delay"]
        return (lambda inputs: time.sleep(delay), lambda batch_size, shape: [0] * batch_size)
    """
)


@pytest.fixture
def project(tmp_path: Path) -> Path:
    folder = tmp_path / "project"
    folder.mkdir()
    (folder / "bench_sleep.py").write_text(SLEEPER)
    return folder


def _task(delay: float, hardware=("cpu",), **config: object) -> dict:
    return {
        "type": "benchmark",
        "name": "sleeper",
        "config": {
            "model": "sleeper", "runtime": "bench_sleep:load", "batch_sizes": [2],
            "warmup": 1, "iterations": 10, "options": {"delay": delay}, **config,
        },
        "requirements": {"hardware": list(hardware)},
        "timeout_seconds": 120,
    }  # fmt: skip


def _run(project: Path, env: dict, *tasks: dict):
    (project / "run.json").write_text(json.dumps({"tasks": list(tasks)}))
    return run_dtf("run", "--task-file", "run.json", env=env, cwd=project)


def _run_id(proc) -> str:
    return proc.stdout.strip().splitlines()[-1].rsplit("(run ", 1)[1].rstrip(")")


def _rows(env: dict, run_id: str) -> list[BenchmarkResult]:
    engine = create_engine(env["DTF_DATABASE_URL"])
    with Session(engine) as session:
        rows = list(
            session.scalars(
                select(BenchmarkResult)
                .filter_by(run_id=run_id)
                .order_by(BenchmarkResult.hardware, BenchmarkResult.batch_size)
            )
        )
    engine.dispose()
    return rows


MARKED_TESTS = textwrap.dedent(
    """
    import pytest

    @pytest.mark.dtf(model="sleeper")
    def test_sleeper_loads():
        pass

    @pytest.mark.dtf(model="flaky-net")
    def test_flaky_net_loads():
        assert False, "weights do not match"
    """
)


def test_one_task_fans_out_per_hardware_and_batch_size_and_rolls_up_into_the_matrix(
    project, cluster_env, start_worker
):
    (project / "test_models.py").write_text(MARKED_TESTS)
    start_worker(cluster_env, queues="cpu", name="cpubox")
    start_worker({**cluster_env, "DTF_FORCE_QUEUES": "cuda"}, queues="cuda", name="gpubox")
    benchmark = _task(0.003, hardware=("cpu", "cuda", "rocm"), batch_sizes=[1, 4],
                      sequence_lengths=[8], skip_missing_hardware=True)  # fmt: skip

    proc = _run(project, cluster_env, {"type": "test", "paths": ["test_models.py"]}, benchmark)

    assert proc.returncode == 1, proc.stdout + proc.stderr  # the flaky-net test failed
    assert "1 passed, 1 failed, 6/6 benchmarks (2 skipped)" in proc.stdout
    run_id = _run_id(proc)
    rows = _rows(cluster_env, run_id)
    assert [(r.hardware, r.batch_size, r.shape, r.status) for r in rows] == [
        ("cpu", 1, "8", "done"), ("cpu", 4, "8", "done"),
        ("cuda", 1, "8", "done"), ("cuda", 4, "8", "done"),
        ("rocm", 1, "8", "skipped"), ("rocm", 4, "8", "skipped"),
    ]  # fmt: skip
    measured = [r for r in rows if r.status == "done"]
    assert len({r.job for r in measured}) == 4  # one Celery task each
    for row in measured:
        assert row.worker.startswith("cpubox@" if row.hardware == "cpu" else "gpubox@")
        assert len(row.samples) == 10 and min(row.samples) >= 0.003
        assert row.latency_mean_ms >= 3.0
        assert row.latency_p50_ms <= row.latency_p90_ms <= row.latency_p99_ms
        assert row.throughput == pytest.approx(row.batch_size * 1000 / row.latency_mean_ms)
        assert row.peak_rss_mb > 0 and row.load_s >= 0
        assert row.environment["python"] and row.environment["hardware"] == row.hardware

    shown = run_dtf("matrix", run_id, "--format", "json", env=cluster_env, cwd=project)
    assert shown.returncode == 0, shown.stderr
    matrix = json.loads(shown.stdout)
    assert matrix["models"] == ["flaky-net", "sleeper"]
    assert matrix["hardware"] == ["cpu", "cuda", "rocm"]
    cells = {(c["model"], c["hardware"]): c for c in matrix["cells"]}
    assert cells[("sleeper", "cpu")]["state"] == "supported"
    assert cells[("sleeper", "cpu")]["tests"] == {"passed": 1}
    assert cells[("sleeper", "cpu")]["benchmarks"] == {"done": 2}
    best = max((r for r in measured if r.hardware == "cuda"), key=lambda r: r.throughput)
    fastest = cells[("sleeper", "cuda")]["fastest"]
    assert (fastest["batch_size"], fastest["throughput"]) == (best.batch_size, best.throughput)
    assert cells[("sleeper", "rocm")]["state"] == "not run"
    assert "no live worker serves 'rocm'" in cells[("sleeper", "rocm")]["notes"][0]
    assert cells[("flaky-net", "cpu")]["state"] == "fails"
    assert cells[("flaky-net", "cuda")]["state"] == "not run"

    markdown = run_dtf("report", run_id, "--format", "markdown", env=cluster_env, cwd=project)
    assert "### Model x hardware\n\n| model | cpu | cuda | rocm |" in markdown.stdout
    assert "| flaky-net | fails: 1 test failed | not run | not run |" in markdown.stdout
    page = run_dtf("report", run_id, "--format", "html", env=cluster_env, cwd=project).stdout
    assert '<section id="matrix"><h2>Model x hardware</h2>' in page
    assert '<span class="badge o-failed">fails</span> 1 test failed' in page
    report = json.loads(run_dtf("report", run_id, env=cluster_env, cwd=project).stdout)
    assert len(report["benchmarks"]) == 6


def test_a_slowdown_past_the_baseline_fails_the_run_when_asked(project, cluster_env, start_worker):
    start_worker(cluster_env, queues="cpu", name="bench")
    # A wide threshold for the unchanged case: only a real 3x slowdown must count.
    steady = dict(regression_threshold=0.5)

    first = _run(project, cluster_env, _task(0.002, **steady))
    assert first.returncode == 0, first.stdout + first.stderr
    base_run = _run_id(first)
    marked = run_dtf("baseline", "set", base_run, env=cluster_env, cwd=project)
    assert marked.returncode == 0, marked.stderr
    assert "sleeper" in marked.stdout

    same = _run(project, cluster_env, _task(0.002, fail_on_regression=True, **steady))
    slower = _run(project, cluster_env, _task(0.006, fail_on_regression=True, **steady))

    assert same.returncode == 0, same.stdout + same.stderr
    (row,) = _rows(cluster_env, _run_id(same))
    assert row.verdict in ("unchanged", "improvement")
    assert row.comparison["baseline_run"] == base_run

    assert slower.returncode == 1, slower.stdout + slower.stderr
    assert re.search(r"REGRESSION sleeper cpu batch 2 fp32: \d\.\d\dx the baseline's median "
                     r"\(95% CI \d\.\d\d-\d\.\d\d, p=", slower.stdout)  # fmt: skip
    assert "1 regression" in slower.stdout
    (row,) = _rows(cluster_env, _run_id(slower))
    assert row.verdict == "regression" and row.gate
    assert row.comparison["ratio"] > 2 and row.comparison["ci_low"] > 1.5
    assert row.comparison["p_slower"] < 0.01

    shown = run_dtf("baseline", "show", _run_id(slower), "--json", env=cluster_env, cwd=project)
    (result,) = json.loads(shown.stdout)["results"]
    assert result["verdict"] == "regression" and result["baseline_run"] == base_run
    listed = json.loads(run_dtf("baseline", "list", "--json", env=cluster_env, cwd=project).stdout)
    assert [(b["model"], b["hardware"], b["batch_size"], b["run_id"]) for b in listed] == [
        ("sleeper", "cpu", 2, base_run)
    ]

    (project / "fp16.json").write_text(json.dumps(_task(0.001, runtime="pytorch",
                                                        precision="fp16")))  # fmt: skip
    refused = run_dtf("submit", "--task-file", "fp16.json", env=cluster_env, cwd=project)
    assert refused.returncode == 2
    assert refused.stderr.strip().splitlines() == [
        "dtf: error: tasks[0].config: fp16 is not available with pytorch on cpu "
        "(it offers fp32, bf16, int8)"
    ]
    unknown = run_dtf("baseline", "set", "nosuchrun", env=cluster_env, cwd=project)
    assert unknown.returncode == 2 and unknown.stderr.startswith("dtf: error: no run with id")
    history = run_dtf("matrix", env=cluster_env, cwd=project)  # no RUN: the recent runs
    assert history.returncode == 0 and "sleeper" in history.stdout


def test_jobs_and_runs_share_one_warm_measurement_process_and_each_shape_has_its_times(
    project, cluster_env, start_worker
):
    start_worker(cluster_env, queues="cpu", name="warm")
    task = _task(0.002, batch_sizes=[1, 4], sequence_lengths=[8, 16])

    first, second = _run(project, cluster_env, task), _run(project, cluster_env, task)

    assert first.returncode == 0 and second.returncode == 0, first.stdout + second.stdout
    rows = _rows(cluster_env, _run_id(first)) + _rows(cluster_env, _run_id(second))
    processes = [p for row in rows for p in row.environment["measurement_processes"]]
    assert len({p["pid"] for p in processes}) == 1  # 4 jobs in 2 runs, one process
    assert sorted({p["job"] for p in processes}) == [1, 2, 3, 4]
    for job in {row.job for row in rows}:
        eight, sixteen = sorted((r for r in rows if r.job == job), key=lambda r: r.id)
        received = datetime.fromisoformat(eight.environment["received_at"])
        assert received <= eight.started_at < eight.finished_at  # measured after received
        assert eight.finished_at <= sixteen.started_at < sixteen.finished_at  # one after other
        assert eight.environment["warmup_s"] >= 0.002  # one warm-up call of 2 ms
