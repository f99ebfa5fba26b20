"""A benchmark task becomes jobs: one per (hardware kind, batch size), routed like tests."""

from __future__ import annotations

import difflib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from dtf.benchmarking.support import extra_requirements, unsupported
from dtf.errors import BadInput
from dtf.inventory import GPU_KINDS
from dtf.scheduling.routing import LiveWorker, Unroutable, choose_route
from dtf.spec import BenchmarkConfig, BenchmarkTask

#: Keys older task files put in a benchmark's config that dtf still reads.
LEGACY_KEYS = ("input_shape",)
#: The ``config.options`` each built-in runtime reads (dtf/benchmarking/runtimes.py).
BUILTIN_OPTIONS: dict[str, tuple[str, ...]] = {"pytorch": ("threads",), "onnxruntime": ("threads",)}


@dataclass
class PlannedJob:
    """One Celery task of a benchmark: a model on one hardware kind at one batch size."""

    hardware: str
    batch_size: int
    shapes: list[list[int]]
    queue: str = ""
    #: why it does not run (no live worker and ``skip_missing_hardware``); None: it runs
    skipped: str | None = None
    requirements: dict[str, Any] = field(default_factory=dict)


def shape_label(shape: Sequence[int]) -> str:
    """``"128"`` for a sequence length, ``"3x224x224"`` for an input shape, ``""`` for none."""
    return "x".join(str(d) for d in shape)


def check_benchmark(position: int, task: BenchmarkTask) -> None:
    """Refuse in one line what no worker could run: unknown keys, runtime x hardware x precision."""
    config = task.config
    where = f"tasks[{position}].config"
    for key in config.model_extra or {}:
        if key in LEGACY_KEYS:
            continue
        match = difflib.get_close_matches(key, list(BenchmarkConfig.model_fields), n=1)
        hint = f" (did you mean {match[0]!r}?)" if match else ""
        raise BadInput(f"{where}: unknown field {key!r}{hint}")
    for kind in task.requirements.hardware:
        why = unsupported(config.runtime, kind, config.precision)
        if why:
            raise BadInput(f"{where}: {why}")
    if config.runtime in BUILTIN_OPTIONS:
        known = BUILTIN_OPTIONS[config.runtime]
        for key in config.options:
            if key not in known:
                raise BadInput(
                    f"{where}.options: runtime {config.runtime!r} does not read {key!r} "
                    f"(it reads: {', '.join(known)}; a callable runtime gets every option)"
                )


def plan_jobs(task: BenchmarkTask) -> list[PlannedJob]:
    """The jobs of a task, not routed yet: every hardware kind times every batch size."""
    config = task.config
    return [
        PlannedJob(hardware=kind, batch_size=size, shapes=config.shapes())
        for kind in task.requirements.hardware
        for size in config.batch_sizes
    ]


def route_jobs(
    task: BenchmarkTask,
    requirements: Mapping[str, Any],
    jobs: list[PlannedJob],
    workers: Sequence[LiveWorker],
) -> None:
    """Give each job the queue of a live worker of its kind that meets the requirements.

    Raises Unroutable when a kind has no such worker, unless the task skips missing hardware.
    """
    config = task.config
    routes: dict[str, tuple[str, str | None, dict[str, Any]]] = {}
    for kind in dict.fromkeys(job.hardware for job in jobs):
        needs = {**requirements, "hardware": [kind]}
        # One task spans kinds: a GPU's requirements must not rule out the CPU.
        if kind not in GPU_KINDS:
            needs.pop("min_gpu_memory_gb", None)
            needs.pop("gpu_count", None)
        if kind != "cuda":
            needs.pop("min_cuda_compute", None)
        for key, value in extra_requirements(config.runtime, kind, config.precision).items():
            needs[key] = max(needs.get(key) or 0.0, value)
        try:
            queue, _ = choose_route(needs, workers)
            routes[kind] = (queue, None, needs)
        except Unroutable as exc:
            if not config.skip_missing_hardware:
                raise Unroutable(f"benchmark of {config.model} on {kind} {exc}", kind) from exc
            routes[kind] = ("", f"not run: {exc}", needs)
    for job in jobs:
        job.queue, job.skipped, job.requirements = routes[job.hardware]
