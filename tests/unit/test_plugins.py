"""The plugin manager: discovery, kinds, fire's failure isolation, the scheduler hook."""

from __future__ import annotations

import json
import logging
import sys
import textwrap
from types import SimpleNamespace

import pytest
from click.testing import CliRunner

from dtf import plugins as dtf_plugins
from dtf.db.schema import upgrade
from dtf.db.session import session_scope
from dtf.plugins import fire, hookimpl, register
from dtf.plugins.cli import plugins_command
from dtf.plugins.coordinator import ordered_batches
from dtf.plugins.outcomes import outcomes
from dtf.spec import SpecError, parse_run_spec


@pytest.fixture(autouse=True)
def fresh_plugins(monkeypatch):
    monkeypatch.delenv("DTF_PLUGINS", raising=False)
    dtf_plugins.reset()
    yield
    dtf_plugins.reset()


@pytest.fixture
def database_url(monkeypatch, tmp_path) -> str:
    """dtf's database (where failures are stored as integration outcomes) for this test."""
    url = f"sqlite:///{tmp_path / 'dtf.sqlite'}"
    monkeypatch.setenv("DTF_DATABASE_URL", url)
    upgrade(url)
    return url


class Recorder:
    dtf_plugin_kind = "monitoring"

    def __init__(self) -> None:
        self.calls: list[tuple[str, dict]] = []

    @hookimpl
    def dtf_task_created(self, task):
        self.calls.append(("dtf_task_created", task))
        return f"seen {task['id']}"

    @hookimpl
    def dtf_run_finished(self, run, summary):
        self.calls.append(("dtf_run_finished", run))


class Exploding:
    dtf_plugin_kind = "notification"

    def __init__(self) -> None:
        self.calls = 0

    @hookimpl
    def dtf_run_finished(self, run, summary):
        self.calls += 1
        raise ConnectionError("https://bot:s3cret@chat.example/hook refused")

    @hookimpl
    def dtf_worker_registered(self, worker):
        self.calls += 1
        raise RuntimeError("no")


def write_module(directory, name: str, source: str) -> None:
    (directory / f"{name}.py").write_text(textwrap.dedent(source))


PLUGIN_MODULE = """
    from dtf.plugins import hookimpl

    dtf_plugin_kind = "reporter"
    seen = []

    @hookimpl
    def dtf_task_created(task):
        seen.append(task["id"])
        return "module"

    class Scheduler:
        dtf_plugin_kind = "scheduler"

        @hookimpl
        def dtf_schedule_batches(self, task, batches):
            return list(reversed(range(len(batches))))
"""


def test_fire_calls_every_plugin_with_plain_dicts_and_returns_their_results():
    first, second = Recorder(), Recorder()
    register(first, name="first")
    register(second, name="second")

    results = fire("dtf_task_created", task={"run_id": "r1", "id": "b1"})

    assert results == ["seen b1", "seen b1"]
    assert first.calls == second.calls == [("dtf_task_created", {"run_id": "r1", "id": "b1"})]


def test_a_hook_nobody_implements_or_that_does_not_exist_returns_nothing(caplog):
    assert fire("dtf_task_started", task={"run_id": "r", "id": "b"}) == []
    with caplog.at_level(logging.ERROR, logger="dtf.plugins"):
        assert fire("dtf_no_such_hook", task={}) == []
    assert "no hook named dtf_no_such_hook" in caplog.text


def test_a_raising_plugin_is_logged_disabled_for_that_run_and_its_failure_stored(
    caplog, database_url
):
    _store_run(database_url, "run-a")
    bad, good = Exploding(), Recorder()
    register(bad, name="chatty")
    register(good, name="recorder")

    with caplog.at_level(logging.WARNING, logger="dtf.plugins"):
        fire("dtf_run_finished", run={"id": "run-a"}, summary={})
        fire("dtf_run_finished", run={"id": "run-a"}, summary={})
        fire("dtf_run_finished", run={"id": "run-b"}, summary={})

    # Called once for run-a (then disabled for it), again for another run.
    assert bad.calls == 2
    assert [run["id"] for _, run in good.calls] == ["run-a", "run-a", "run-b"]
    assert "plugin chatty disabled for run run-a" in caplog.text
    assert "s3cret" not in caplog.text
    with session_scope(database_url) as session:
        stored = outcomes(session, "run-a")
    assert stored == [
        {
            "integration": "chatty",
            "kind": "notification",
            "ok": False,
            "error": "dtf_run_finished raised ConnectionError: https://***@chat.example/hook "
            "refused",
            "url": None,
        }
    ]
    info = {i.name: i for i in dtf_plugins.plugins()}["chatty"]
    assert info.status == "disabled for a run"


def test_a_plugin_raising_outside_a_run_is_disabled_for_the_process():
    bad = Exploding()
    register(bad, name="chatty")
    worker = {"hostname": "w1", "queues": ["cpu"]}

    assert fire("dtf_worker_registered", worker=worker) == []
    assert fire("dtf_worker_registered", worker=worker) == []

    assert bad.calls == 1
    assert {i.name: i for i in dtf_plugins.plugins()}["chatty"].status == "disabled"


def test_first_result_hooks_stop_at_the_first_answer():
    class Reverse:
        dtf_plugin_kind = "scheduler"

        @hookimpl
        def dtf_schedule_batches(self, task, batches):
            return [1, 0]

    class Never:
        dtf_plugin_kind = "scheduler"

        @hookimpl
        def dtf_schedule_batches(self, task, batches):
            raise AssertionError("a later scheduler must not be asked")

    register(Never(), name="never")
    register(Reverse(), name="reverse")  # registered last: asked first

    assert fire("dtf_schedule_batches", task={}, batches=[{}, {}]) == [[1, 0]]


def test_plugins_load_from_dtf_plugins_as_module_or_class(monkeypatch, tmp_path):
    write_module(tmp_path, "my_dtf_plugin", PLUGIN_MODULE)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setenv("DTF_PLUGINS", "my_dtf_plugin, my_dtf_plugin:Scheduler")

    assert fire("dtf_task_created", task={"id": "b1"}) == ["module"]
    found = {info.name: info for info in dtf_plugins.plugins()}
    assert found["my_dtf_plugin"].kind == "reporter"
    assert found["my_dtf_plugin"].source == "DTF_PLUGINS"
    assert found["my_dtf_plugin:Scheduler"].kind == "scheduler"
    assert found["my_dtf_plugin:Scheduler"].hooks == ["dtf_schedule_batches"]


def test_plugins_load_from_the_dtf_plugins_entry_point_group(monkeypatch, tmp_path):
    write_module(tmp_path, "entry_point_plugin", PLUGIN_MODULE)
    dist = tmp_path / "entry_point_plugin-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text(
        "Metadata-Version: 2.1\nName: entry-point-plugin\nVersion: 1.0\n"
    )
    (dist / "entry_points.txt").write_text(
        "[dtf.plugins]\nhello = entry_point_plugin\nbroken = entry_point_plugin:Missing\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))

    assert fire("dtf_task_created", task={"id": "b7"}) == ["module"]
    found = {info.name: info for info in dtf_plugins.plugins()}
    assert (found["hello"].source, found["hello"].kind, found["hello"].status) == (
        "entry point",
        "reporter",
        "active",
    )
    assert found["broken"].status == "failed to load"
    assert "Missing" in found["broken"].error


def test_a_plugin_without_a_known_kind_or_with_a_wrapper_is_not_loaded(monkeypatch, tmp_path):
    write_module(
        tmp_path,
        "odd_plugins",
        """
        from dtf.plugins import hookimpl

        class NoKind:
            @hookimpl
            def dtf_task_created(self, task):
                return 1

        class Wrapper:
            dtf_plugin_kind = "monitoring"

            @hookimpl(wrapper=True)
            def dtf_task_created(self, task):
                return (yield)
        """,
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setenv("DTF_PLUGINS", "odd_plugins:NoKind,odd_plugins:Wrapper,nowhere_module")

    assert fire("dtf_task_created", task={"id": "b"}) == []
    errors = {info.name: info.error for info in dtf_plugins.plugins()}
    assert (
        "dtf_plugin_kind must be one of scheduler, executor, reporter"
        in errors["odd_plugins:NoKind"]
    )
    assert "hook wrappers are not supported" in errors["odd_plugins:Wrapper"]
    assert "cannot import nowhere_module" in errors["nowhere_module"]


def test_the_task_file_lists_plugins_as_module_or_module_attr():
    spec = parse_run_spec(
        {"tasks": [{"type": "test", "paths": ["t"]}], "plugins": ["pkg.mod", "pkg.mod:Obj"]}
    )
    assert spec.plugins == ["pkg.mod", "pkg.mod:Obj"]
    with pytest.raises(SpecError, match=r"plugins\[0\]: expected a plugin as module or "):
        parse_run_spec({"tasks": [{"type": "test", "paths": ["t"]}], "plugins": ["a b"]})


def test_dtf_plugins_lists_kind_status_and_source(monkeypatch, tmp_path):
    write_module(tmp_path, "listed_plugin", PLUGIN_MODULE)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setenv("DTF_PLUGINS", "listed_plugin")
    task_file = tmp_path / "run.yaml"
    task_file.write_text(
        "tasks: [{type: test, paths: [t]}]\nplugins: ['listed_plugin:Scheduler']\n"
    )

    result = CliRunner().invoke(plugins_command, ["--json", "--task-file", str(task_file)])

    assert result.exit_code == 0, result.output
    listed = {p["name"]: p for p in json.loads(result.output)}
    assert listed["listed_plugin"]["kind"] == "reporter"
    assert listed["listed_plugin"]["status"] == "active"
    assert listed["listed_plugin:Scheduler"]["source"] == "task file"
    table = CliRunner().invoke(plugins_command, [])
    assert "listed_plugin" in table.output and "reporter" in table.output


def _planned(queue: str, nodeids: list[str]):
    items = [SimpleNamespace(nodeid=n) for n in nodeids]
    return SimpleNamespace(queue=queue, hardware="cpu", items=items, estimated_s=1.0)


def _task_plan(batches):
    spec = SimpleNamespace(type="test", name=None)
    return SimpleNamespace(position=0, spec=spec, queue="cpu", priority=5, batches=batches)


def test_a_scheduler_plugin_chooses_the_sending_order_and_a_bad_answer_is_ignored():
    batches = [_planned("cpu", ["a"]), _planned("cpu", ["b", "c"]), _planned("cpu", ["d"])]
    answers = iter([[2, 0, 1], [0, 0, 1]])
    seen = []

    class Scheduler:
        dtf_plugin_kind = "scheduler"

        @hookimpl
        def dtf_schedule_batches(self, task, batches):
            seen.append((task, batches))
            return next(answers)

    register(Scheduler())

    assert ordered_batches("r1", _task_plan(batches)) == [batches[2], batches[0], batches[1]]
    assert ordered_batches("r1", _task_plan(batches)) == batches  # [0, 0, 1] is no permutation
    task, described = seen[0]
    assert task["run_id"] == "r1"
    assert described[1] == {
        "position": 1,
        "queue": "cpu",
        "hardware": "cpu",
        "size": 2,
        "estimated_s": 1.0,
        "nodeids": ["b", "c"],
    }


def _store_run(database_url: str, run_id: str) -> None:
    from dtf.db.models import Run

    with session_scope(database_url) as session:
        session.add(Run(id=run_id, workdir="/tmp", spec={}))


def test_the_worker_registry_fires_registered_failed_recovered_and_disconnected(database_url):
    from dtf.workers.registry import Registry

    seen: list[tuple[str, dict]] = []

    class WorkerWatcher:
        dtf_plugin_kind = "monitoring"

        @hookimpl
        def dtf_worker_registered(self, worker):
            seen.append(("registered", worker))

        @hookimpl
        def dtf_worker_failed(self, worker):
            seen.append(("failed", worker))

        @hookimpl
        def dtf_worker_recovered(self, worker):
            seen.append(("recovered", worker))

        @hookimpl
        def dtf_worker_disconnected(self, worker):
            seen.append(("disconnected", worker))

    register(WorkerWatcher())
    registry = Registry(
        database_url, hostname="w1@box", queues=["cpu", "cuda"], inventory={},
        concurrency=2, interval=60,
    )  # fmt: skip

    registry.write("online")
    registry.write("online")  # a heartbeat, not a new registration
    registry.set_health("cuda", {"ok": True, "reason": None})
    registry.set_health("cuda", {"ok": False, "reason": "matmul differs from the CPU"})
    registry.set_health("cuda", {"ok": False, "reason": "matmul differs from the CPU"})
    registry.set_health("cuda", {"ok": True, "reason": None})
    registry.write("offline")

    assert [event for event, _ in seen] == ["registered", "failed", "recovered", "disconnected"]
    failed = seen[1][1]
    assert (failed["hostname"], failed["queue"], failed["reason"]) == (
        "w1@box",
        "cuda",
        "matmul differs from the CPU",
    )
    assert seen[0][1]["queues"] == ["cpu", "cuda"] and seen[-1][1]["state"] == "offline"


def test_tasks_are_created_assigned_or_cancelled_with_what_the_database_holds(database_url):
    from dtf.db.models import Batch, Run, RunTask
    from dtf.plugins.coordinator import run_sent, run_stored
    from dtf.scheduling.canvas import HeaderTask

    with session_scope(database_url) as session:
        session.add(Run(id="r1", workdir="/w", spec={}))
        session.flush()
        session.add_all(
            [
                RunTask(id=1, run_id="r1", position=0, type="test", queue="cuda", workdir="/w",
                        timeout=60),
                RunTask(id=2, run_id="r1", position=1, type="command", queue="cpu",
                        workdir="/w", timeout=60),
            ]
        )  # fmt: skip
        session.flush()
        session.add_all(
            [
                Batch(id="b1", run_id="r1", task_id=1, position=0, queue="cuda",
                      hardware="cuda", size=12),
            ]
        )  # fmt: skip
    headers = [
        HeaderTask("batch", "b1", "cuda", 7, 600.0, tests=12),
        HeaderTask("command", "2", "cpu", 5, 60.0),
        HeaderTask("benchmark", "job-1", "cuda", 5, 60.0),
    ]
    seen: list[tuple[str, dict]] = []

    class TaskWatcher:
        dtf_plugin_kind = "monitoring"

        @hookimpl
        def dtf_task_created(self, task):
            seen.append(("created", task))

        @hookimpl
        def dtf_task_assigned(self, task):
            seen.append(("assigned", task))

        @hookimpl
        def dtf_task_cancelled(self, task):
            seen.append(("cancelled", task))

    register(TaskWatcher())

    run_stored(database_url, "r1", headers)
    run_sent(database_url, "r1", headers, sent=True)
    run_sent(database_url, "r1", headers, sent=False)

    assert [(event, t["kind"], t["id"]) for event, t in seen[:3]] == [
        ("created", "batch", "b1"),
        ("created", "command", "2"),
        ("created", "benchmark", "job-1"),
    ]
    batch = seen[0][1]
    assert (batch["queue"], batch["hardware"], batch["size"], batch["priority"]) == (
        "cuda",
        "cuda",
        12,
        7,
    )
    assert [e for e, _ in seen[3:]] == ["assigned"] * 3 + ["cancelled"] * 3
    assert {t["status"] for e, t in seen if e == "cancelled"} == {"cancelled"}


def test_a_plugin_in_the_project_directory_loads_without_pythonpath(monkeypatch, tmp_path):
    project = tmp_path / "project"
    (project / "tests").mkdir(parents=True)
    (project / "pyproject.toml").write_text("")
    write_module(project, "project_dir_plugin", PLUGIN_MODULE)
    monkeypatch.chdir(project / "tests")  # typed below the project root
    monkeypatch.setattr(sys, "path", [p for p in sys.path if p not in ("", ".")])
    monkeypatch.setenv("DTF_PLUGINS", "project_dir_plugin")

    assert fire("dtf_task_created", task={"id": "b1"}) == ["module"]
    # Appended: an installed module of the same name would still win.
    assert sys.path[-2:] == [str((project / "tests").resolve()), str(project.resolve())]


def test_a_plugin_that_fails_to_load_is_tried_and_reported_once(monkeypatch, tmp_path, caplog):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("DTF_PLUGINS", "missing_everywhere")
    caplog.set_level(logging.WARNING, logger="dtf.plugins")

    dtf_plugins.plugin_manager()
    dtf_plugins.load_plugins(["missing_everywhere", "missing_everywhere"], source="task file")
    dtf_plugins.load_plugins(["missing_everywhere"], source="task file")

    warnings = [r.getMessage() for r in caplog.records if "not loaded" in r.getMessage()]
    assert len(warnings) == 1, warnings
    assert "cannot import missing_everywhere" in warnings[0]
    assert f"looked on sys.path and in the project: {tmp_path.resolve()}" in warnings[0]


def test_a_module_whose_own_import_fails_says_what_it_misses(monkeypatch, tmp_path):
    write_module(tmp_path, "needs_more", "import not_installed_anywhere\n")
    monkeypatch.syspath_prepend(str(tmp_path))

    (info,) = dtf_plugins.load_plugins(["needs_more"], source="DTF_PLUGINS")

    assert info.error == "cannot import needs_more: No module named 'not_installed_anywhere'"


class Printer:
    dtf_plugin_kind = "monitoring"

    @hookimpl
    def dtf_test_finished(self, result):
        print(f"seen {result['nodeid']}")

    @hookimpl
    def dtf_worker_registered(self, worker):
        print("registered", file=sys.stderr)


def test_what_a_worker_side_hook_prints_is_kept_for_the_run_and_printed_once(
    monkeypatch, tmp_path, capsys
):
    from dtf.config import load_settings
    from dtf.plugins import manager, output

    settings = load_settings({"DTF_HOME": str(tmp_path / "home")})
    monkeypatch.setattr(manager, "output_sink", output.keeper(settings))
    register(Printer(), name="printer")

    fire("dtf_test_finished", result={"run_id": "r1", "nodeid": "t.py::a"})
    fire("dtf_test_finished", result={"run_id": "r1", "nodeid": "t.py::b"})
    fire("dtf_worker_registered", worker={"hostname": "w"})  # no run: the worker log only

    logged = capsys.readouterr()  # the worker's own streams (its log) still get it
    assert logged.out == "seen t.py::a\nseen t.py::b\n"
    assert logged.err == "registered\n"
    output.print_kept(settings.home, "r1")
    assert capsys.readouterr().out == "seen t.py::a\nseen t.py::b\n"
    assert not output.output_file(settings.home, "r1").exists()
    output.print_kept(settings.home, "r1")  # nothing left: nothing printed
    assert capsys.readouterr().out == ""
