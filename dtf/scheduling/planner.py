"""Turn a validated run spec into a plan: collected tests, queues and batches."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from dtf.errors import BadInput
from dtf.executor.collect import CollectedItem, CollectionFailed, collect
from dtf.executor.records import TestRecord
from dtf.scheduling.batching import make_batches
from dtf.spec import BenchmarkTask, CommandTask, RunSpec, TestTask


@dataclass
class TaskPlan:
    """One task of the run, ready to be stored and sent."""

    position: int
    spec: TestTask | CommandTask
    queue: str
    workdir: Path
    timeout: float
    priority: int
    items: list[CollectedItem] = field(default_factory=list)
    collection_errors: list[TestRecord] = field(default_factory=list)
    batches: list[list[CollectedItem]] = field(default_factory=list)


@dataclass
class Plan:
    spec: RunSpec
    tasks: list[TaskPlan]

    @property
    def queues(self) -> set[str]:
        return {task.queue for task in self.tasks}

    @property
    def test_count(self) -> int:
        return sum(len(t.items) + len(t.collection_errors) for t in self.tasks)


def plan_run(spec: RunSpec, *, cwd: Path, slots: int) -> Plan:
    """Collect every test task once and batch it for ``slots`` worker slots."""
    unsupported = [i for i, t in enumerate(spec.tasks) if isinstance(t, BenchmarkTask)]
    if unsupported:
        raise BadInput(
            f"tasks[{unsupported[0]}]: benchmark tasks are not supported yet; "
            "remove it or run it as a 'command' task"
        )
    plans = [_plan_task(i, task, cwd, slots) for i, task in enumerate(spec.tasks)]
    plan = Plan(spec=spec, tasks=plans)
    if not any(isinstance(t.spec, CommandTask) for t in plans) and plan.test_count == 0:
        paths = ", ".join(p for t in plans for p in t.spec.paths)
        raise BadInput(f"no tests collected from {paths}; check the paths, -k and -m")
    return plan


def _plan_task(position: int, task: TestTask | CommandTask, cwd: Path, slots: int) -> TaskPlan:
    workdir = (cwd / task.workdir).resolve() if task.workdir else cwd.resolve()
    if not workdir.is_dir():
        raise BadInput(f"tasks[{position}].workdir: no such directory: {workdir}")
    plan = TaskPlan(
        position=position,
        spec=task,
        # Routing across hardware kinds comes with worker hardware detection;
        # until then a task goes to its first acceptable kind.
        queue=task.requirements.hardware[0],
        workdir=workdir,
        timeout=task.effective_timeout,
        priority=task.effective_priority,
    )
    if isinstance(task, TestTask):
        try:
            collection = collect(
                task.paths,
                workdir,
                keyword=task.keyword,
                markexpr=task.markers,
                extra_args=task.pytest_args,
            )
        except CollectionFailed as exc:
            raise BadInput(f"tasks[{position}]: {exc}") from exc
        plan.items = collection.items
        plan.collection_errors = collection.errors
        plan.batches = make_batches(collection.items, slots)
    return plan
