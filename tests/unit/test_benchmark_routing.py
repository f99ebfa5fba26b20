"""Benchmark jobs are routed like tests: each hardware kind to a live worker that fits."""

from __future__ import annotations

import pytest

from dtf.benchmarking.plan import plan_jobs, route_jobs
from dtf.config import worker_queue
from dtf.inventory import CpuInfo, Device, Inventory, Probe
from dtf.scheduling.canvas import HeaderTask, header_signature
from dtf.scheduling.routing import LiveWorker, Unroutable
from dtf.spec import parse_run_spec


def _worker(host: str, queues: set[str], gpus: list[Device] | None = None) -> LiveWorker:
    probes = {"cuda": Probe(kind="cuda", ok=True, devices=gpus)} if gpus else {}
    inventory = Inventory(host, CpuInfo(cores=8, threads=16, memory_gb=32), probes)
    return LiveWorker(host, frozenset(queues), inventory)


CPU = _worker("cpu1@a", {"cpu"})
A100 = _worker("gpu1@b", {"cuda"}, [Device(0, "NVIDIA A100", memory_gb=80, compute_capability=8.0)])
T4 = _worker("gpu2@c", {"cuda"}, [Device(0, "Tesla T4", memory_gb=15, compute_capability=7.5)])


def _routed(workers: list[LiveWorker], requirements: dict, **config: object):
    (task,) = parse_run_spec(
        {"type": "benchmark", "config": {"model": "m", **config}, "requirements": requirements}
    ).tasks
    jobs = plan_jobs(task)
    route_jobs(task, task.requirements.model_dump(exclude_none=True), jobs, workers)
    return jobs


def test_every_kind_gets_its_own_queue() -> None:
    jobs = _routed([CPU, A100], {"hardware": ["cuda", "cpu"]}, batch_sizes=[1, 8])

    assert [(j.hardware, j.batch_size, j.queue) for j in jobs] == [
        ("cuda", 1, "cuda"), ("cuda", 8, "cuda"), ("cpu", 1, "cpu"), ("cpu", 8, "cpu"),
    ]  # fmt: skip


def test_gpu_requirements_do_not_rule_out_the_cpu() -> None:
    jobs = _routed(
        [CPU, A100], {"hardware": ["cuda", "cpu"], "min_gpu_memory_gb": 40, "min_cuda_compute": 8}
    )
    assert {j.hardware: j.queue for j in jobs} == {"cuda": "cuda", "cpu": "cpu"}


def test_bf16_on_cuda_goes_only_to_a_gpu_that_has_it() -> None:
    (job,) = _routed([T4, A100], {"hardware": "cuda"}, precision="bf16")

    assert job.queue == worker_queue("gpu1@b")
    assert job.requirements["min_cuda_compute"] == 8.0


def test_a_kind_without_a_worker_refuses_the_run() -> None:
    with pytest.raises(Unroutable, match="benchmark of m on cuda needs cuda, but no live worker"):
        _routed([CPU], {"hardware": ["cuda", "cpu"]})


def test_a_kind_without_a_worker_is_not_run_when_the_task_says_so() -> None:
    jobs = _routed([CPU], {"hardware": ["cuda", "cpu"]}, skip_missing_hardware=True)

    cuda, cpu = jobs
    assert cuda.queue == "" and cuda.skipped.startswith("not run: needs cuda")
    assert cpu.queue == "cpu" and cpu.skipped is None


def test_a_benchmark_header_is_an_execute_benchmark_on_its_queue() -> None:
    signature = header_signature(HeaderTask("benchmark", "job1", "cuda", 7, 600))

    assert signature.task == "dtf.execute_benchmark"
    assert signature.args == ("job1",)
    assert signature.options["queue"] == "cuda" and signature.options["task_id"] == "job1"
    assert signature.options["time_limit"] > 600
