"""Turn a validated run spec into a plan: tests collected once, routed to queues, batched.

Planning is two steps so that ``--wait-for-workers`` can route again without
collecting again: ``collect_run`` (pytest, once) and ``route_run`` (workers).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dtf.benchmarking.plan import PlannedJob, check_benchmark, plan_jobs, route_jobs
from dtf.config import worker_queue
from dtf.errors import BadInput, InfrastructureError
from dtf.executor.collect import CollectedItem, CollectionFailed
from dtf.executor.records import TestRecord
from dtf.pytest_args import without_maxfail
from dtf.scheduling.batching import (
    guessed_min_batch_seconds,
    is_exclusive,
    make_batches,
    min_batch_seconds,
)
from dtf.scheduling.collect_cache import cached_collect
from dtf.scheduling.durations import DurationHistory
from dtf.scheduling.routing import LiveWorker, Unroutable, choose_queue, choose_route
from dtf.spec import (
    BenchmarkTask,
    CommandTask,
    RetryPolicy,
    RunSpec,
    SpecError,
    TestTask,
    parse_requirements,
)


@dataclass
class PlannedItem:
    """A collected test with its requirements: the task's, overridden by its dtf marker."""

    nodeid: str
    path: str
    requirements: dict[str, Any]


@dataclass
class PlannedBatch:
    queue: str
    hardware: str
    timeout: float  # per test
    items: list[PlannedItem]
    estimated_s: float = 0.0
    #: a test that runs alone on its worker
    exclusive: bool = False
    #: 0..9 (a marker's, else the task's); None: the task's
    priority: int | None = None


@dataclass
class TaskPlan:
    """One task of the run, ready to be stored and sent."""

    position: int
    spec: TestTask | CommandTask | BenchmarkTask
    workdir: Path
    timeout: float
    priority: int
    requirements: dict[str, Any]
    queue: str = ""  # commands: where they run; tests: where most of their batches go
    grouping: str = "module"
    items: list[PlannedItem] = field(default_factory=list)
    collection_errors: list[TestRecord] = field(default_factory=list)
    batches: list[PlannedBatch] = field(default_factory=list)
    #: benchmark tasks: one job per (hardware kind, batch size)
    jobs: list[PlannedJob] = field(default_factory=list)


@dataclass
class Plan:
    spec: RunSpec
    tasks: list[TaskPlan]

    @property
    def test_count(self) -> int:
        return sum(len(t.items) + len(t.collection_errors) for t in self.tasks)


def collect_run(spec: RunSpec, *, cwd: Path, cache_dir: Path) -> Plan:
    """Collect every test task once (or reuse the cached collection); nothing is routed yet."""
    for position, task in enumerate(spec.tasks):
        refuse_unused_fields(position, task)
        if isinstance(task, BenchmarkTask):
            check_benchmark(position, task)
    tasks = [_collect_task(i, t, cwd, cache_dir) for i, t in enumerate(spec.tasks)]
    plan = Plan(spec=spec, tasks=tasks)
    runs_more = any(isinstance(t.spec, (CommandTask, BenchmarkTask)) for t in plan.tasks)
    if not runs_more and plan.test_count == 0:
        paths = ", ".join(p for t in plan.tasks for p in t.spec.paths) or _default_paths(plan)
        raise BadInput(f"no tests collected from {paths}; check the paths, -k and -m")
    return plan


def _default_paths(plan: Plan) -> str:
    dirs = ", ".join(dict.fromkeys(str(t.workdir) for t in plan.tasks))
    return f"pytest's default paths in {dirs} (testpaths, else the directory)"


#: (suite, hardware kind) -> what is known of its tests' durations
Histories = Callable[[str, str], DurationHistory]


def no_history(suite: str, hardware: str) -> DurationHistory:
    return DurationHistory({})


def route_run(
    plan: Plan,
    workers: Sequence[LiveWorker],
    histories: Histories = no_history,
    *,
    waited: float = 0,
) -> Plan:
    """Give every test and command a queue and cut the tests into batches per queue.

    ``waited``: the seconds --wait-for-workers already waited for these workers (what a
    refusal then says)."""
    for task in plan.tasks:
        try:
            if isinstance(task.spec, CommandTask):
                task.queue = choose_queue(task.requirements, workers)
                continue
            if isinstance(task.spec, BenchmarkTask):
                route_jobs(task.spec, task.requirements, task.jobs, workers)
                task.queue = next((job.queue for job in task.jobs if job.queue), "")
                continue
            _route_tests(task, workers, histories)
        except Unroutable as exc:
            start = f"`celery -A dtf worker -Q {exc.kind}`"
            if waited > 0:
                advice = (
                    f"no such worker registered within the {waited:g} s waited "
                    f"(--wait-for-workers); start one with {start} and submit again, "
                    "or wait longer"
                )
            else:
                advice = f"start one with {start} or pass --wait-for-workers SECONDS"
            raise InfrastructureError(
                f"tasks[{task.position}]{_which(task)} {exc}; {advice} (nothing was queued)"
            ) from exc
    return plan


def _which(task: TaskPlan) -> str:
    return f" ({task.spec.name})" if task.spec.name else ""


def _collect_task(
    position: int, task: TestTask | CommandTask | BenchmarkTask, cwd: Path, cache_dir: Path
) -> TaskPlan:
    workdir = (cwd / task.workdir).resolve() if task.workdir else cwd.resolve()
    if not workdir.is_dir():
        raise BadInput(f"tasks[{position}].workdir: no such directory: {workdir}")
    plan = TaskPlan(
        position=position,
        spec=task,
        workdir=workdir,
        timeout=task.effective_timeout,
        priority=task.effective_priority,
        requirements=task.requirements.model_dump(exclude_none=True),
        grouping=getattr(task, "grouping", "module"),
    )
    if isinstance(task, TestTask):
        try:
            collection = cached_collect(
                task.paths,
                workdir,
                cache_dir,
                keyword=task.keyword,
                markexpr=task.markers,
                # -x / --maxfail stop the task as a whole; the collection must be whole.
                extra_args=without_maxfail(task.pytest_args),
            )
        except CollectionFailed as exc:
            raise BadInput(f"tasks[{position}]: {exc}") from exc
        plan.items = [_with_requirements(plan.requirements, item) for item in collection.items]
        plan.collection_errors = collection.errors
    elif isinstance(task, BenchmarkTask):
        plan.jobs = plan_jobs(task)
    return plan


def refuse_unused_fields(position: int, task: TestTask | CommandTask | BenchmarkTask) -> None:
    """Refuse, in one line, a field set to something this type of task would ignore
    (docs/task-file.md). Judged by value, not by presence: a spec that went through
    JSON holds every default."""
    requirements = task.requirements
    unused: list[tuple[str, bool, str]] = []
    if isinstance(task, CommandTask):
        unused += [
            ("retry_policy", task.retry_policy != RetryPolicy(),
             "a command task is not retried (retry_policy is for test tasks)"),
            ("requirements.exclusive", requirements.exclusive,
             "a command task does not run alone on its worker (tests and benchmarks can)"),
        ]  # fmt: skip
    if isinstance(task, (CommandTask, BenchmarkTask)):
        what = f"a {task.type} task"
        model = " (a benchmark's model is config.model)" if isinstance(task, BenchmarkTask) else ""
        unused += [
            ("requirements.model", requirements.model is not None,
             f"{what} is not batched by model{model}"),
            ("requirements.testrail", requirements.testrail is not None,
             f"{what} has no test results to report to TestRail"),
        ]  # fmt: skip
    for field_name, is_set, why in unused:
        if is_set:
            raise BadInput(f"tasks[{position}].{field_name}: {why}; remove it")


_TASK_LEVEL = ("timeout", "priority")


def _with_requirements(task_requirements: dict[str, Any], item: CollectedItem) -> PlannedItem:
    # The task's own timeout and priority are TaskPlan's (its ``timeout`` and ``priority``
    # beat requirements'); only a marker's override them for one test.
    requirements = {
        key: value for key, value in task_requirements.items() if key not in _TASK_LEVEL
    }
    if item.requirements:
        try:
            marker = parse_requirements(item.requirements, f"{item.nodeid}: @pytest.mark.dtf")
        except SpecError as exc:
            raise BadInput(str(exc)) from exc
        requirements.update(marker.model_dump(exclude_unset=True))
    return PlannedItem(nodeid=item.nodeid, path=item.path, requirements=requirements)


def _route_tests(task: TaskPlan, workers: Sequence[LiveWorker], histories: Histories) -> None:
    groups: dict[tuple[str, str, float, int], list[PlannedItem]] = defaultdict(list)
    for item in task.items:
        try:
            queue, kind = choose_route(item.requirements, workers)
        except Unroutable as exc:
            raise Unroutable(f"test {item.nodeid} {exc}", exc.kind) from exc
        timeout = float(item.requirements.get("timeout") or task.timeout)
        priority = item.requirements.get("priority")
        groups[(queue, kind, timeout, task.priority if priority is None else priority)].append(item)
    slots = _slots_by_queue(workers)
    task.batches = []
    for (queue, kind, timeout, priority), items in groups.items():
        history = histories(str(task.workdir), kind)
        estimate = lambda item, history=history: history.estimate(item.nodeid)  # noqa: E731
        min_batch_s = min_batch_seconds(history.startup_s)
        if not history.known:
            total_s = sum(estimate(item) for item in items)
            min_batch_s = max(min_batch_s, guessed_min_batch_seconds(total_s, slots.get(queue, 1)))
        batches = make_batches(
            items,
            slots.get(queue, 1),
            estimate,
            grouping=task.grouping,
            min_batch_s=min_batch_s,
            max_batch_s=getattr(task.spec, "max_batch_seconds", None),
            batch_count=getattr(task.spec, "batches", None),
        )
        for batch in batches:
            task.batches.append(
                PlannedBatch(
                    queue=queue,
                    hardware=kind,
                    timeout=timeout,
                    items=batch,
                    estimated_s=sum(estimate(item) for item in batch),
                    exclusive=is_exclusive(batch[0]),
                    priority=priority,
                )
            )
    if groups:
        task.queue = max(groups, key=lambda key: len(groups[key]))[0]


def _slots_by_queue(workers: Sequence[LiveWorker]) -> dict[str, int]:
    slots: dict[str, int] = defaultdict(int)
    for worker in workers:
        for queue in (*worker.healthy_queues, worker_queue(worker.hostname)):
            slots[queue] += worker.concurrency
    return dict(slots)
