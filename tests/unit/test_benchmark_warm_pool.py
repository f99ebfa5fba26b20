"""Warm measurement processes: reused between jobs, replaced after a crash, a poisoned
device, an idle spell or too much memory. Real processes throughout."""

from __future__ import annotations

import os
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

from dtf.benchmarking.runner import run_job
from dtf.benchmarking.warm_pool import WarmPool

CALLABLES = textwrap.dedent(
    """
    import os

    # One line per import: a warm process imports this module once.
    with open(os.path.join(os.path.dirname(os.path.abspath(__file__)), "imports"), "a") as f:
        f.write(f"{os.getpid()}\\n")


    def quick(request):
        return (lambda inputs: None, lambda batch_size, shape: shape)


    def aborts_on_64(request):
        def run(shape):
            if shape[0] == 64:
                os.abort()
        return (run, lambda batch_size, shape: shape)


    def poisons_on_64(request):
        def run(shape):
            if shape[0] == 64:
                raise RuntimeError("CUDA error: an illegal memory access was encountered")
        return (run, lambda batch_size, shape: shape)
    """
)


@pytest.fixture
def project(tmp_path: Path) -> Path:
    (tmp_path / "warm_callables.py").write_text(CALLABLES)
    return tmp_path


@pytest.fixture
def pool() -> Iterator[WarmPool]:
    pool = WarmPool()
    yield pool
    pool.close()


def _job(project: Path, function: str, shapes: list[list[int]]) -> dict:
    return {
        "model": "toy", "runtime": f"warm_callables:{function}", "hardware": "cpu",
        "precision": "fp32", "workdir": str(project), "options": {}, "batch_size": 2,
        "shapes": shapes, "warmup": 1, "iterations": 3,
    }  # fmt: skip


def _run(project: Path, pool: WarmPool, function: str, shapes: list[list[int]]):
    return run_job(_job(project, function, shapes), cwd=str(project), timeout=60, pool=pool)


def _statuses(outcome) -> dict[str, tuple[str, str | None]]:
    return {label: (shape.status, shape.error) for label, shape in outcome.shapes.items()}


def _imports(project: Path) -> list[str]:
    return (project / "imports").read_text().split()


def test_a_second_job_reuses_the_process_and_its_imports(project: Path, pool: WarmPool) -> None:
    first = _run(project, pool, "quick", [[8], [16]])
    second = _run(project, pool, "quick", [[32]])

    assert _statuses(second) == {"32": ("done", None)}
    assert (first.fresh, second.fresh) == (1, 0)
    assert first.processes[0]["pid"] == second.processes[0]["pid"]
    assert (first.processes[0]["job"], second.processes[0]["job"]) == (1, 2)
    assert _imports(project) == [str(first.processes[0]["pid"])]  # imported once
    assert pool.started == 1


def test_a_shape_that_crashes_the_process_ends_only_that_shape(
    project: Path, pool: WarmPool
) -> None:
    outcome = _run(project, pool, "aborts_on_64", [[8], [64], [16]])

    assert _statuses(outcome) == {
        "8": ("done", None),
        "64": ("failed", "the benchmark process was killed by SIGABRT"),
        "16": ("done", None),
    }
    crashed, fresh = (process["pid"] for process in outcome.processes)
    assert crashed != fresh and outcome.fresh == 2
    later = _run(project, pool, "aborts_on_64", [[8]])  # the warm one: the fresh, not the dead
    assert later.processes[0]["pid"] == fresh and later.fresh == 0


def test_a_poisoned_device_ends_its_shape_and_its_process(project: Path, pool: WarmPool) -> None:
    outcome = _run(project, pool, "poisons_on_64", [[8], [64], [16]])

    assert _statuses(outcome) == {
        "8": ("done", None),
        "64": ("failed", "RuntimeError: CUDA error: an illegal memory access was encountered"),
        "16": ("done", None),
    }
    poisoned, fresh = (process["pid"] for process in outcome.processes)
    assert poisoned != fresh
    with pytest.raises(ProcessLookupError):
        os.kill(poisoned, 0)  # ended and reaped: never used again
    later = _run(project, pool, "poisons_on_64", [[8]])
    assert later.processes[0]["pid"] == fresh


def test_an_idle_process_ends_by_itself(
    project: Path, pool: WarmPool, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DTF_BENCH_IDLE_S", "1")
    first = _run(project, pool, "quick", [[8]])
    (process,) = pool.processes.values()

    assert process.process.wait() == 0  # ended after a second with no job

    second = _run(project, pool, "quick", [[8]])
    assert second.fresh == 1 and second.processes[0]["pid"] != first.processes[0]["pid"]
    assert _statuses(second) == {"8": ("done", None)}


def test_a_process_over_the_memory_ceiling_is_not_kept(
    project: Path, pool: WarmPool, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DTF_BENCH_MEMORY_MB", "1")
    first = _run(project, pool, "quick", [[8]])

    assert pool.processes == {}
    second = _run(project, pool, "quick", [[8]])
    assert second.fresh == 1 and second.processes[0]["pid"] != first.processes[0]["pid"]
