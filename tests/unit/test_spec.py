"""Behaviour of run specifications: schema, loading, one-line errors, resolved values."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from dtf.spec import (
    DEFAULT_TEST_TIMEOUT,
    HARDWARE_KINDS,
    BenchmarkTask,
    CommandTask,
    RunSpec,
    SpecError,
    TestTask,
    load_run_spec,
    parse_run_spec,
    run_spec_to_json,
    spec_from_cli,
)

KNOWN = "known: cpu, cuda, rocm, mps, webgpu, webnn"

LEGACY_BENCHMARK = {
    "type": "benchmark",
    "priority": 1,
    "config": {
        "model": "bert-base-uncased",
        "batch_sizes": [1, 2, 4, 8, 16],
        "precision": "fp16",
        "iterations": 100,
    },
    "requirements": {"hardware": ["cuda"], "min_memory_gb": 8, "min_cuda_compute": 7.5},
    "timeout_seconds": 1800,
    "retry_policy": {"max_retries": 3, "retry_delay_seconds": 60},
}

MIXED_RUN = {
    "name": "nightly",
    "labels": {"branch": "main"},
    "tasks": [
        {"type": "test", "paths": ["tests/unit", "tests/x.py::test_y"], "keyword": "fast"},
        {"type": "command", "command": ["make", "lint"], "env": {"CI": "1"}},
    ],
}


def _error(data: object, source: str = "run.json") -> str:
    with pytest.raises(SpecError) as info:
        parse_run_spec(data, source)
    return str(info.value)


def _task(**fields: object) -> dict[str, object]:
    return {"type": "test", "paths": ["tests"], **fields}


# Accepted shapes


def test_legacy_benchmark_task_is_accepted_as_is() -> None:
    spec = parse_run_spec(LEGACY_BENCHMARK)

    (task,) = spec.tasks
    assert isinstance(task, BenchmarkTask)
    assert task.priority == 1
    assert task.config.model == "bert-base-uncased"
    assert task.config.batch_sizes == [1, 2, 4, 8, 16]
    assert task.config.precision == "fp16"
    assert task.config.iterations == 100
    assert task.config.warmup == 10
    assert task.requirements.hardware == ["cuda"]
    assert task.requirements.min_memory_gb == 8
    assert task.requirements.min_cuda_compute == 7.5
    assert task.timeout_seconds == 1800
    assert task.retry_policy.max_retries == 3
    assert task.retry_policy.retry_delay_seconds == 60


def test_run_with_test_and_command_tasks() -> None:
    spec = parse_run_spec(MIXED_RUN)

    assert spec.name == "nightly"
    assert spec.labels == {"branch": "main"}
    test, command = spec.tasks
    assert isinstance(test, TestTask)
    assert test.paths == ["tests/unit", "tests/x.py::test_y"]
    assert test.keyword == "fast"
    assert test.pytest_args == []
    assert isinstance(command, CommandTask)
    assert command.command == ["make", "lint"]
    assert command.env == {"CI": "1"}


def test_defaults() -> None:
    (task,) = parse_run_spec(_task()).tasks

    assert task.requirements.hardware == ["cpu"]
    assert task.retry_policy.max_retries == 3
    assert task.retry_policy.retry_delay_seconds == 0
    assert task.workdir is None
    assert task.name is None


def test_a_bare_list_of_tasks_is_a_run() -> None:
    spec = parse_run_spec([_task(), {"type": "command", "command": "echo hi"}])

    assert [task.type for task in spec.tasks] == ["test", "command"]
    assert spec.name is None


def test_a_single_task_object_is_a_run_of_one_task() -> None:
    spec = parse_run_spec(_task(name="only"))

    assert isinstance(spec, RunSpec)
    assert [task.name for task in spec.tasks] == ["only"]


def test_hardware_is_a_string_or_an_ordered_list_normalised_to_lower_case() -> None:
    one = parse_run_spec(_task(requirements={"hardware": "CUDA"})).tasks[0]
    many = parse_run_spec(_task(requirements={"hardware": ["ROCm", "cuda", "cpu"]})).tasks[0]

    assert one.requirements.hardware == ["cuda"]
    assert many.requirements.hardware == ["rocm", "cuda", "cpu"]
    assert set(HARDWARE_KINDS) == {"cpu", "cuda", "rocm", "mps", "webgpu", "webnn"}


def test_a_string_command_is_kept_for_the_shell() -> None:
    (task,) = parse_run_spec({"type": "command", "command": "pytest -q | tee log"}).tasks

    assert task.command == "pytest -q | tee log"


def test_benchmark_config_keeps_unknown_keys() -> None:
    data = {"type": "benchmark", "config": {"model": "resnet50", "input_shape": [3, 224, 224]}}

    (task,) = parse_run_spec(data).tasks

    assert task.config.runtime == "pytorch"
    assert task.config.batch_sizes == [1]
    assert task.config.precision == "fp32"
    assert run_spec_to_json(parse_run_spec(data))["tasks"][0]["config"]["input_shape"] == [
        3,
        224,
        224,
    ]


# Resolved values


@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        ({"priority": 8, "requirements": {"priority": 2}}, 8),
        ({"priority": 0, "requirements": {"priority": 2}}, 0),
        ({"requirements": {"priority": 2}}, 2),
        ({}, 5),
    ],
)
def test_effective_priority_is_task_then_requirements_then_5(
    fields: dict[str, object], expected: int
) -> None:
    (task,) = parse_run_spec(_task(**fields)).tasks

    assert task.effective_priority == expected


@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        ({"timeout": 10, "requirements": {"timeout": 20}, "timeout_seconds": 30}, 10),
        ({"requirements": {"timeout": 20}, "timeout_seconds": 30}, 20),
        ({"timeout_seconds": 30}, 30),
        ({}, DEFAULT_TEST_TIMEOUT),
    ],
)
def test_effective_timeout_is_task_then_requirements_then_timeout_seconds_then_default(
    fields: dict[str, object], expected: float
) -> None:
    test = parse_run_spec(_task(**fields)).tasks[0]
    command = parse_run_spec({"type": "command", "command": "true", **fields}).tasks[0]

    assert test.effective_timeout == expected
    assert command.effective_timeout == expected


def test_default_timeout_is_five_minutes() -> None:
    assert DEFAULT_TEST_TIMEOUT == 300.0


def test_benchmark_effective_timeout_uses_timeout_seconds() -> None:
    (task,) = parse_run_spec(LEGACY_BENCHMARK).tasks

    assert task.effective_timeout == 1800
    assert task.effective_priority == 1


# One-line errors


@pytest.mark.parametrize(
    ("data", "message"),
    [
        pytest.param(
            {"tasks": [_task(requirements={"hardwre": "cuda"})]},
            "run.json: tasks[0].requirements: unknown field 'hardwre' (did you mean 'hardware'?)",
            id="unknown-field-with-suggestion",
        ),
        pytest.param(
            {"tasks": [_task()], "lables": {}},
            "run.json: unknown field 'lables' (did you mean 'labels'?)",
            id="unknown-run-field",
        ),
        pytest.param(
            {"tasks": [_task(zzz=1)]},
            "run.json: tasks[0]: unknown field 'zzz'",
            id="unknown-field-without-suggestion",
        ),
        pytest.param(
            {"tasks": [_task(requirements={"hardware": ["cpu", "cuad"]})]},
            f"run.json: tasks[0].requirements.hardware: unknown hardware 'cuad' ({KNOWN})",
            id="unknown-hardware",
        ),
        pytest.param(
            {"tasks": [_task(requirements={"hardware": []})]},
            "run.json: tasks[0].requirements.hardware: must list at least one hardware kind",
            id="empty-hardware",
        ),
        pytest.param(
            {"tasks": [_task(priority="high")]},
            "run.json: tasks[0].priority: expected an integer, got string 'high'",
            id="wrong-type",
        ),
        pytest.param(
            {"tasks": [_task(paths="tests")]},
            "run.json: tasks[0].paths: expected a list, got string 'tests'",
            id="wrong-type-list",
        ),
        pytest.param(
            {"tasks": [{"type": "command", "command": 5}]},
            "run.json: tasks[0].command: expected a string or a list of strings, got integer 5",
            id="wrong-command-type",
        ),
        pytest.param(
            {"tasks": [_task(paths=[""])]},
            "run.json: tasks[0].paths[0]: must not be empty",
            id="empty-path",
        ),
        pytest.param(
            {"tasks": [_task(pytest_args=["-v", "--pdb"])]},
            "run.json: tasks[0].pytest_args: dtf cannot hand --pdb to pytest: a debugger needs "
            "the terminal, and dtf's tests run in worker processes; run pytest",
            id="pytest-args-pdb",
        ),
        pytest.param(
            {"tasks": [_task(pytest_args=["-n4"])]},
            "run.json: tasks[0].pytest_args: dtf cannot hand -n to pytest: dtf spreads the "
            "tests over its workers itself; leave xdist's options out",
            id="pytest-args-xdist",
        ),
        pytest.param(
            {"tasks": [{"type": "command", "command": "  "}]},
            "run.json: tasks[0].command: must not be empty",
            id="empty-command",
        ),
        pytest.param({"tasks": []}, "run.json: tasks: must not be empty", id="empty-tasks"),
        pytest.param({"name": "x"}, "run.json: missing required field 'tasks'", id="missing-tasks"),
        pytest.param(
            {"tasks": [{"type": "bench"}]},
            "run.json: tasks[0].type: unknown task type 'bench' "
            "(allowed: test, command, benchmark)",
            id="unknown-type",
        ),
        pytest.param(
            {"tasks": [{"paths": ["tests"]}]},
            "run.json: tasks[0]: missing required field 'type' (allowed: test, command, benchmark)",
            id="missing-type",
        ),
        pytest.param(
            {"tasks": [_task(timeout=-5)]},
            "run.json: tasks[0].timeout: must be > 0, got -5",
            id="negative-timeout",
        ),
        pytest.param(
            {"tasks": [_task(timeout_seconds=0)]},
            "run.json: tasks[0].timeout_seconds: must be > 0, got 0",
            id="zero-timeout-seconds",
        ),
        pytest.param(
            {"tasks": [_task(timeout_seconds=float("nan"))]},
            "run.json: tasks[0].timeout_seconds: must be a finite number, got nan",
            id="nan-timeout",
        ),
        pytest.param(
            {"tasks": [_task(priority=10)]},
            "run.json: tasks[0].priority: must be <= 9, got 10",
            id="priority-too-high",
        ),
        pytest.param(
            {"tasks": [_task(requirements={"priority": -1})]},
            "run.json: tasks[0].requirements.priority: must be >= 0, got -1",
            id="priority-negative",
        ),
        pytest.param(
            {"tasks": [_task(retry_policy={"max_retries": -1})]},
            "run.json: tasks[0].retry_policy.max_retries: must be >= 0, got -1",
            id="negative-retries",
        ),
        pytest.param(
            {"tasks": [{"type": "benchmark", "config": {"model": "m", "batch_sizes": [1, 0]}}]},
            "run.json: tasks[0].config.batch_sizes[1]: must be >= 1, got 0",
            id="batch-size-zero",
        ),
        pytest.param(
            {"tasks": [{"type": "benchmark", "config": {"model": "m", "precision": "fp64"}}]},
            "run.json: tasks[0].config.precision: "
            "expected 'fp32', 'fp16', 'bf16' or 'int8', got string 'fp64'",
            id="unknown-precision",
        ),
        pytest.param(
            {"tasks": [{"type": "benchmark", "config": {}}]},
            "run.json: tasks[0].config: missing required field 'model'",
            id="missing-model",
        ),
        pytest.param(
            {"tasks": [{"type": "command", "command": "env", "env": {"DEBUG": 1}}]},
            "run.json: tasks[0].env.DEBUG: expected a string, got integer 1",
            id="env-value-not-string",
        ),
        pytest.param(
            {"tasks": ["tests/unit"]},
            "run.json: tasks[0]: expected an object, got string 'tests/unit'",
            id="task-not-an-object",
        ),
        pytest.param(
            "tests/unit",
            "run.json: expected a run object, a list of tasks or a task object, "
            "got string 'tests/unit'",
            id="top-level-not-an-object",
        ),
    ],
)
def test_invalid_run_is_one_line_naming_file_field_and_problem(data: object, message: str) -> None:
    assert _error(data) == message


def test_errors_in_a_single_task_file_are_located_relative_to_the_task() -> None:
    assert _error(_task(requirements={"hardware": "cuad"})) == (
        f"run.json: requirements.hardware: unknown hardware 'cuad' ({KNOWN})"
    )
    assert _error({"type": "tst"}) == (
        "run.json: type: unknown task type 'tst' (allowed: test, command, benchmark)"
    )
    assert _error({"paths": ["a"]}) == (
        "run.json: missing required field 'type' (allowed: test, command, benchmark)"
    )


def test_errors_in_a_bare_list_are_located_as_tasks() -> None:
    assert _error([_task(), _task(pathz=[])]) == (
        "run.json: tasks[1]: unknown field 'pathz' (did you mean 'paths'?)"
    )


def test_only_the_first_error_is_reported() -> None:
    message = _error({"tasks": [_task(priority=99, timeout=-1)]})

    assert message == "run.json: tasks[0].priority: must be <= 9, got 99"


def test_error_messages_never_span_lines() -> None:
    message = _error({"tasks": [_task(requirements={"hardware": "a\nb"})]})

    assert "\n" not in message
    assert message.startswith("run.json: tasks[0].requirements.hardware: unknown hardware")


def test_source_defaults_to_task_file() -> None:
    with pytest.raises(SpecError, match=r"^task file: tasks: must not be empty$"):
        parse_run_spec({"tasks": []})


def test_spec_error_is_a_value_error() -> None:
    assert issubclass(SpecError, ValueError)


# Files


def _write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def test_loads_json_file(tmp_path: Path) -> None:
    path = _write(tmp_path, "run.json", json.dumps(MIXED_RUN))

    assert load_run_spec(path) == parse_run_spec(MIXED_RUN)


@pytest.mark.parametrize("name", ["run.yaml", "run.yml"])
def test_loads_yaml_file(tmp_path: Path, name: str) -> None:
    text = """\
name: nightly
labels: {branch: main}
tasks:
  - type: test
    paths: [tests/unit, "tests/x.py::test_y"]
    keyword: fast
  - type: command
    command: [make, lint]
    env: {CI: "1"}
"""
    assert load_run_spec(_write(tmp_path, name, text)) == parse_run_spec(MIXED_RUN)


def test_legacy_single_task_json_file_loads(tmp_path: Path) -> None:
    path = _write(tmp_path, "legacy.json", json.dumps(LEGACY_BENCHMARK, indent=2))

    (task,) = load_run_spec(str(path)).tasks

    assert isinstance(task, BenchmarkTask)


def test_bare_list_yaml_file_loads(tmp_path: Path) -> None:
    path = _write(tmp_path, "run.yaml", "- type: command\n  command: echo hi\n")

    assert [task.type for task in load_run_spec(path).tasks] == ["command"]


@pytest.mark.parametrize(
    "text", [json.dumps(_task()), "type: test\npaths: [tests]\n"], ids=["json", "yaml"]
)
def test_other_extensions_are_tried_as_json_then_yaml(tmp_path: Path, text: str) -> None:
    (task,) = load_run_spec(_write(tmp_path, "run.spec", text)).tasks

    assert task.paths == ["tests"]


def test_invalid_json_names_line_and_column(tmp_path: Path) -> None:
    path = _write(tmp_path, "run.json", '{\n  "tasks": [\n    {"type": "test" "paths": []}\n')

    with pytest.raises(SpecError) as info:
        load_run_spec(path)

    assert str(info.value) == f"{path}: not valid JSON: line 3 column 21: Expecting ',' delimiter"


def test_invalid_yaml_names_line_and_column(tmp_path: Path) -> None:
    path = _write(tmp_path, "run.yaml", "tasks:\n  - type: test\n paths: [a]\n")

    with pytest.raises(SpecError) as info:
        load_run_spec(path)

    assert str(info.value).startswith(f"{path}: not valid YAML: line 3 column 2: ")
    assert "\n" not in str(info.value)


def test_unparseable_file_of_unknown_extension_reports_json_when_it_looks_like_json(
    tmp_path: Path,
) -> None:
    path = _write(tmp_path, "run.txt", '{"tasks": [\n')

    with pytest.raises(SpecError, match=r": not valid JSON: line 2 column 1: "):
        load_run_spec(path)


def test_validation_errors_name_the_file(tmp_path: Path) -> None:
    path = _write(tmp_path, "run.yaml", "tasks:\n  - type: test\n    paths: [a]\n    timeout: -1\n")

    with pytest.raises(SpecError) as info:
        load_run_spec(path)

    assert str(info.value) == f"{path}: tasks[0].timeout: must be > 0, got -1"


def test_missing_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)

    with pytest.raises(SpecError, match=r"^run\.json: no such file$"):
        load_run_spec("run.json")


@pytest.mark.parametrize(
    ("name", "text"), [("run.json", ""), ("run.yaml", "  \n"), ("run.yml", "# nothing yet\n")]
)
def test_empty_file(tmp_path: Path, name: str, text: str) -> None:
    path = _write(tmp_path, name, text)

    with pytest.raises(SpecError) as info:
        load_run_spec(path)

    assert str(info.value) == f"{path}: is empty"


def test_directory_is_rejected(tmp_path: Path) -> None:
    with pytest.raises(SpecError) as info:
        load_run_spec(tmp_path)

    assert str(info.value) == f"{tmp_path}: is a directory"


def test_unreadable_file_is_rejected(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = _write(tmp_path, "run.json", "{}")

    def deny(*args: object, **kwargs: object) -> str:
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(Path, "read_text", deny)

    with pytest.raises(SpecError) as info:
        load_run_spec(path)

    assert str(info.value) == f"{path}: cannot read: Permission denied"


def test_non_utf8_file_is_rejected(tmp_path: Path) -> None:
    path = tmp_path / "run.json"
    path.write_bytes(b"\xff\xfe{}")

    with pytest.raises(SpecError) as info:
        load_run_spec(path)

    assert str(info.value) == f"{path}: cannot read: not UTF-8 text"


# Command line


def test_spec_from_cli_builds_one_test_task() -> None:
    spec = spec_from_cli(
        ["tests/unit", "tests/x.py::test_y"],
        keyword="fast and not slow",
        markers="not gpu",
        hardware="cpu",
        timeout=30,
        priority=7,
        workdir="/src/project",
    )

    (task,) = spec.tasks
    assert isinstance(task, TestTask)
    assert task.paths == ["tests/unit", "tests/x.py::test_y"]
    assert task.keyword == "fast and not slow"
    assert task.markers == "not gpu"
    assert task.requirements.hardware == ["cpu"]
    assert task.effective_timeout == 30
    assert task.effective_priority == 7
    assert task.workdir == "/src/project"


def test_spec_from_cli_defaults() -> None:
    (task,) = spec_from_cli(["tests"]).tasks

    assert task.requirements.hardware == ["cpu"]
    assert task.effective_timeout == DEFAULT_TEST_TIMEOUT
    assert task.effective_priority == 5
    assert task.keyword is None
    assert task.workdir is None


@pytest.mark.parametrize(
    "hardware", [["CUDA", "rocm"], ("cuda", "rocm"), "cuda,rocm", ["cuda,rocm"]]
)
def test_spec_from_cli_accepts_hardware_lists_and_comma_separated_kinds(
    hardware: object,
) -> None:
    (task,) = spec_from_cli(["tests"], hardware=hardware).tasks  # type: ignore[arg-type]

    assert task.requirements.hardware == ["cuda", "rocm"]


def test_spec_from_cli_treats_no_hardware_as_the_default() -> None:
    (task,) = spec_from_cli(["tests"], hardware=()).tasks

    assert task.requirements.hardware == ["cpu"]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        (
            {"paths": ["tests"], "hardware": "gpu"},
            f"command line: requirements.hardware: unknown hardware 'gpu' ({KNOWN})",
        ),
        ({"paths": [""]}, "command line: paths[0]: must not be empty"),
        (
            {"paths": [], "pytest_args": ["--pdb"]},
            "command line: pytest_args: dtf cannot hand --pdb to pytest: a debugger needs the "
            "terminal, and dtf's tests run in worker processes; run pytest",
        ),
        ({"paths": ["tests"], "timeout": -1}, "command line: timeout: must be > 0, got -1"),
        ({"paths": ["tests"], "priority": 11}, "command line: priority: must be <= 9, got 11"),
    ],
)
def test_spec_from_cli_is_validated_like_a_file(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(SpecError) as info:
        spec_from_cli(**kwargs)  # type: ignore[arg-type]

    assert str(info.value) == message


# Serialisation


@pytest.mark.parametrize(
    "data",
    [LEGACY_BENCHMARK, MIXED_RUN, _task(timeout=2.5, pytest_args=["-v"], workdir="sub")],
    ids=["legacy-benchmark", "mixed-run", "test-task"],
)
def test_run_spec_to_json_round_trips(data: object) -> None:
    spec = parse_run_spec(data)

    stored = run_spec_to_json(spec)

    assert json.loads(json.dumps(stored, allow_nan=False)) == stored
    assert parse_run_spec(stored) == spec
    assert [task["type"] for task in stored["tasks"]] == [task.type for task in spec.tasks]


def test_a_test_task_without_paths_runs_what_pytest_runs_without_any() -> None:
    (task,) = parse_run_spec({"tasks": [{"type": "test"}]}).tasks
    assert task.paths == []


@pytest.mark.parametrize(
    "args",
    [["-svn2"], ["--pdb"], ["--junitxml=out.xml"], ["--lf"], ["--dist", "load"]],
)
def test_pytest_options_that_cannot_work_distributed_are_refused(args: list[str]) -> None:
    assert "dtf cannot hand" in _error({"tasks": [_task(pytest_args=args)]})


@pytest.mark.parametrize(
    "args",
    [
        ["-p", "no:randomly", "-o", "xfail_strict=true", "-W", "error"],
        ["--import-mode=importlib", "--rootdir", "..", "-c", "setup.cfg", "--pyargs"],
        ["-k", "not slow", "-m", "not gpu", "-rA", "-vs"],
        ["--", "-x"],  # after "--", pytest reads a path named -x
    ],
)
def test_pytest_options_are_handed_through(args: list[str]) -> None:
    (task,) = parse_run_spec({"tasks": [_task(pytest_args=args)]}).tasks
    assert task.pytest_args == args
