"""Every field of a task file does something (docs/task-file.md): one a task type would
ignore is refused in one line, and the per-test timeout follows the documented order."""

from __future__ import annotations

from pathlib import Path

import pytest

from dtf.errors import BadInput
from dtf.executor.collect import CollectedItem
from dtf.inventory import CpuInfo, Inventory
from dtf.scheduling.planner import Plan, TaskPlan, _with_requirements, collect_run, route_run
from dtf.scheduling.routing import LiveWorker
from dtf.spec import parse_run_spec, run_spec_to_json

COMMAND = {"type": "command", "command": "true"}
BENCHMARK = {"type": "benchmark", "config": {"model": "m"}}


def _collect(tmp_path: Path, *tasks: dict) -> Plan:
    spec = parse_run_spec({"tasks": list(tasks)}, "run.yaml")
    return collect_run(spec, cwd=tmp_path, cache_dir=tmp_path / "cache")


@pytest.mark.parametrize(
    "task, says",
    [
        ({**COMMAND, "retry_policy": {"max_retries": 5}},
         "tasks[0].retry_policy: a command task is not retried"),
        ({**COMMAND, "requirements": {"exclusive": True}},
         "tasks[0].requirements.exclusive: a command task does not run alone"),
        ({**COMMAND, "requirements": {"model": "bert"}},
         "tasks[0].requirements.model: a command task is not batched by model"),
        ({**COMMAND, "requirements": {"testrail": "C1"}},
         "tasks[0].requirements.testrail: a command task has no test results"),
        ({**BENCHMARK, "requirements": {"model": "bert"}},
         "tasks[0].requirements.model: a benchmark task is not batched by model "
         "(a benchmark's model is config.model)"),
        ({**BENCHMARK, "requirements": {"testrail": [3]}},
         "tasks[0].requirements.testrail: a benchmark task has no test results"),
    ],
)  # fmt: skip
def test_a_field_the_task_type_would_ignore_is_refused_in_one_line(tmp_path, task, says):
    with pytest.raises(BadInput) as err:
        _collect(tmp_path, task)
    assert str(err.value).startswith(says)
    assert str(err.value).endswith("; remove it")
    assert "\n" not in str(err.value)


def test_an_option_a_built_in_runtime_does_not_read_is_refused(tmp_path):
    task = {**BENCHMARK, "config": {"model": "m", "options": {"threads": 2, "thread": 4}}}
    with pytest.raises(BadInput) as err:
        _collect(tmp_path, task)
    assert str(err.value) == (
        "tasks[0].config.options: runtime 'pytorch' does not read 'thread' "
        "(it reads: threads; a callable runtime gets every option)"
    )
    # A callable runtime gets every option, whatever its name.
    custom = {**BENCHMARK, "config": {"model": "m", "runtime": "mod:load", "options": {"x": 1}}}
    assert _collect(tmp_path, custom).tasks[0].jobs


def test_defaults_and_what_a_type_uses_pass_even_after_a_json_round_trip(tmp_path):
    tasks = [
        {**COMMAND, "retry_policy": {"max_retries": 3}, "requirements": {"exclusive": False}},
        {**COMMAND, "env": {"A": "1"}, "timeout": 5, "requirements": {"priority": 9}},
    ]
    spec = parse_run_spec({"tasks": tasks})
    again = parse_run_spec(run_spec_to_json(spec))  # every default is now "set"
    plan = collect_run(again, cwd=tmp_path, cache_dir=tmp_path / "cache")
    assert [t.timeout for t in plan.tasks] == [300.0, 5.0]
    assert plan.tasks[1].priority == 9


def _planned_batches(task: dict, markers: dict[str, dict]) -> list:
    spec = parse_run_spec({"tasks": [{"type": "test", "paths": ["t.py"], **task}]})
    test = spec.tasks[0]
    requirements = test.requirements.model_dump(exclude_none=True)
    plan = TaskPlan(
        position=0, spec=test, workdir=Path("/suite"), timeout=test.effective_timeout,
        priority=test.effective_priority, requirements=requirements,
        items=[_with_requirements(requirements, CollectedItem(f"t.py::{name}", "t.py", marker))
               for name, marker in markers.items()],
    )  # fmt: skip
    worker = LiveWorker("w@a", frozenset({"cpu"}), Inventory("a", CpuInfo(1, 1, 8), {}))
    route_run(Plan(spec=spec, tasks=[plan]), [worker])
    return plan.batches


def _batch_timeouts(task: dict, markers: dict[str, dict]) -> dict[str, float]:
    batches = _planned_batches(task, markers)
    return {item.nodeid.split("::")[1]: b.timeout for b in batches for item in b.items}


def _batch_priorities(task: dict, markers: dict[str, dict]) -> dict[str, int | None]:
    batches = _planned_batches(task, markers)
    return {item.nodeid.split("::")[1]: b.priority for b in batches for item in b.items}


def test_the_tasks_timeout_beats_its_requirements_timeout_and_a_marker_beats_both():
    task = {"timeout": 5, "requirements": {"timeout": 60}}
    assert _batch_timeouts(task, {"plain": {}, "marked": {"timeout": 30}}) == {
        "plain": 5.0,
        "marked": 30.0,
    }
    assert _batch_timeouts({"requirements": {"timeout": 60}}, {"plain": {}}) == {"plain": 60.0}
    assert _batch_timeouts({"timeout_seconds": 7}, {"plain": {}}) == {"plain": 7.0}
    assert _batch_timeouts({}, {"plain": {}}) == {"plain": 300.0}


def test_a_markers_priority_gives_its_test_a_batch_of_that_priority():
    task = {"priority": 3, "requirements": {"priority": 8}}
    assert _batch_priorities(task, {"plain": {}, "urgent": {"priority": 9}}) == {
        "plain": 3,
        "urgent": 9,
    }
    assert _batch_priorities({"requirements": {"priority": 8}}, {"plain": {}}) == {"plain": 8}
    assert _batch_priorities({}, {"plain": {}, "low": {"priority": 0}}) == {"plain": 5, "low": 0}


def test_an_integrations_section_no_plugin_reads_is_refused_in_one_line():
    from dtf.plugins.coordinator import check_settings_sections

    known = {"slack": {"notify_on": "failure"}, "github": {"comment": False}, "notify": {}}
    check_settings_sections(parse_run_spec({"tasks": [COMMAND], "integrations": known}))
    misspelt = parse_run_spec({"tasks": [COMMAND], "integrations": {"slak": {}}})
    with pytest.raises(BadInput, match=r"^integrations.slak: no loaded plugin reads this section"):
        check_settings_sections(misspelt)


def test_a_misspelt_key_of_an_integration_is_refused_before_anything_runs():
    from dtf.plugins.coordinator import check_settings_sections

    typo = {"slack": {"notify_onn": "failure"}}
    with pytest.raises(
        BadInput,
        match=r"^integrations.slack.notify_onn: unknown setting "
        r"\(known: max_failures, notify_on\)$",
    ):
        check_settings_sections(parse_run_spec({"tasks": [COMMAND], "integrations": typo}))
    unknown_common = {"notify": {"onn": "failure"}}
    with pytest.raises(BadInput, match=r"^integrations.notify.onn: unknown setting"):
        check_settings_sections(
            parse_run_spec({"tasks": [COMMAND], "integrations": unknown_common})
        )


def test_a_plugin_names_the_sections_it_reads():
    from dtf.plugins import manager
    from dtf.plugins.coordinator import check_settings_sections

    class ReadsTwo:
        dtf_plugin_kind = "integration"
        dtf_plugin_name = "two-sections"
        dtf_settings_sections = ("first", "second")

    manager.register(ReadsTwo(), name="two-sections")
    try:
        spec = parse_run_spec({"tasks": [COMMAND], "integrations": {"first": {}, "second": {}}})
        check_settings_sections(spec)
    finally:
        manager.unregister("two-sections")


def _unroutable_plan() -> Plan:
    spec = parse_run_spec({"tasks": [{"type": "test", "paths": ["t.py"]}]})
    test = spec.tasks[0]
    plan = TaskPlan(
        position=0, spec=test, workdir=Path("/suite"), timeout=test.effective_timeout,
        priority=test.effective_priority, requirements={},
        items=[_with_requirements({}, CollectedItem("t.py::test_one", "t.py", {}))],
    )  # fmt: skip
    return Plan(spec=spec, tasks=[plan])


def test_no_worker_suggests_waiting_for_one():
    with pytest.raises(Exception, match=r"pass --wait-for-workers SECONDS \(nothing was queued\)"):
        route_run(_unroutable_plan(), [])


def test_after_waiting_for_workers_it_says_none_came_in_that_time(tmp_path):
    from dtf.db.schema import ensure_schema
    from dtf.submission import route_when_possible

    url = f"sqlite:///{tmp_path / 'dtf.db'}"
    ensure_schema(url, create=True)
    with pytest.raises(Exception) as refused:
        route_when_possible(url, _unroutable_plan(), 0.5)
    message = str(refused.value)
    assert "no such worker registered within the 0.5 s waited" in message
    assert "pass --wait-for-workers" not in message
    assert "celery -A dtf worker -Q cpu" in message
