"""Run specifications: the schema of what a user submits, and its loading and validation.

A run holds one or more tasks (pytest runs, shell commands, model benchmarks). Every
validation failure surfaces as a :class:`SpecError` whose message is a single line naming
the source, the field and the problem.
"""

from __future__ import annotations

import difflib
import json
import re
from collections.abc import Sequence
from pathlib import Path
from types import UnionType
from typing import Annotated, Any, Literal, NoReturn, Union, get_args, get_origin

import yaml
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    TypeAdapter,
    ValidationError,
    field_validator,
    model_validator,
)

HARDWARE_KINDS: tuple[str, ...] = ("cpu", "cuda", "rocm", "mps", "webgpu", "webnn")
DEFAULT_TEST_TIMEOUT: float = 300.0
DEFAULT_PRIORITY = 5

_Priority = Annotated[int, Field(ge=0, le=9)]
_PositiveFloat = Annotated[float, Field(gt=0)]
_NonNegativeFloat = Annotated[float, Field(ge=0)]
_NonEmptyStr = Annotated[str, Field(min_length=1)]

#: The longest run or task name, plugin target and benchmark model or runtime: what
#: their columns hold (``runs.name``, ``run_tasks.name``, ``integration_outcomes.integration``:
#: 200; ``benchmark_results.model`` and ``.runtime``: 255; ``.shape``: 64).
MAX_NAME_CHARS = 200
MAX_MODEL_CHARS = 255
MAX_SHAPE_CHARS = 64
#: The largest task file read, and the most values a YAML one may hold once its aliases
#: are expanded (a "billion laughs" file is refused before it is built).
MAX_TASK_FILE_BYTES = 1024 * 1024
MAX_YAML_VALUES = 100_000
#: The deepest a task file's lists and objects may nest (dtf's own fields need under 10).
MAX_NESTING = 32
_Name = Annotated[str, Field(max_length=MAX_NAME_CHARS)]
_PLUGIN_TARGET = re.compile(r"^[A-Za-z_][\w.]*(:[A-Za-z_][\w.]*)?$")


def _check_plugin_target(value: str) -> str:
    if not _PLUGIN_TARGET.match(value):
        raise ValueError(f"expected a plugin as module or module:attr, got {value!r}")
    return value


_PluginTarget = Annotated[
    str, Field(max_length=MAX_NAME_CHARS), AfterValidator(_check_plugin_target)
]


class SpecError(ValueError):
    """A run specification is malformed; ``str(err)`` is one line naming source and field."""


class _Model(BaseModel):
    # Specs travel as JSON (database, broker), where inf/nan do not exist.
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)


class Requirements(_Model):
    """What a worker must offer to run a task."""

    hardware: list[str] = Field(default_factory=lambda: ["cpu"])
    min_memory_gb: _NonNegativeFloat | None = None
    min_gpu_memory_gb: _NonNegativeFloat | None = None
    min_cuda_compute: _NonNegativeFloat | None = None
    gpu_count: Annotated[int, Field(ge=1)] | None = None
    browser: str | None = None
    priority: _Priority | None = None
    timeout: _PositiveFloat | None = None
    #: tests marked with the same model name share a batch (one model load)
    model: str | None = None
    #: the test runs alone on its worker (it needs the whole machine or GPU)
    exclusive: bool = False
    #: TestRail case ids the test reports to ("C123" or 123; not a routing constraint)
    testrail: list[int] | None = None

    @field_validator("testrail", mode="before")
    @classmethod
    def _parse_case_ids(cls, value: Any) -> list[int] | None:
        if value is None:
            return None
        ids: list[int] = []
        for case in value if isinstance(value, (list, tuple)) else [value]:
            text = "" if isinstance(case, bool) else str(case).strip()
            digits = text[1:] if text[:1] in ("C", "c") else text
            if not digits.isdigit() or int(digits) == 0:
                raise ValueError(f"not a TestRail case id: {case!r} (expected like 'C123' or 123)")
            ids.append(int(digits))
        return ids

    @field_validator("hardware", mode="before")
    @classmethod
    def _normalise_hardware(cls, value: Any) -> list[str]:
        kinds = [value] if isinstance(value, str) else value
        if not isinstance(kinds, list) or not all(isinstance(k, str) for k in kinds):
            raise ValueError(
                f"expected a hardware kind or a list of them, got {_describe_value(value)}"
            )
        if not kinds:
            raise ValueError("must list at least one hardware kind")
        normalised: list[str] = []
        for kind in kinds:
            name = kind.strip().lower()
            if name not in HARDWARE_KINDS:
                raise ValueError(f"unknown hardware {kind!r} (known: {', '.join(HARDWARE_KINDS)})")
            if name not in normalised:
                normalised.append(name)
        return normalised


class RetryPolicy(_Model):
    """Recovery budget of each test (or batch) of a task, and the base of its back-off.

    ``max_retries``: recoveries one test or batch may get (retries, reassignments) before
    it ends as an infrastructure error or as crashed; ``retry_delay_seconds`` is added to
    the exponential back-off of a retry in place. See docs/recovery.md.
    """

    max_retries: Annotated[int, Field(ge=0)] = 3
    retry_delay_seconds: _NonNegativeFloat = 0.0


#: Built-in benchmark runtimes; anything else must be a user's ``module:function``.
BENCHMARK_RUNTIMES: tuple[str, ...] = ("pytorch", "onnxruntime")
_CALLABLE_RUNTIME = re.compile(r"^[A-Za-z_][\w.]*:[A-Za-z_]\w*$")
_InputShape = Annotated[list[Annotated[int, Field(ge=1)]], Field(min_length=1)]


class BenchmarkConfig(_Model):
    """What to benchmark and how (docs/benchmarks.md).

    Unknown keys are kept so that older task files parse; the planner refuses
    them (except the legacy ``input_shape``), so a typo never goes unnoticed.
    """

    model_config = ConfigDict(extra="allow")

    model: Annotated[str, Field(min_length=1, max_length=MAX_MODEL_CHARS)]
    #: "pytorch", "onnxruntime" or a user's callable "module:function"
    runtime: Annotated[str, Field(max_length=MAX_MODEL_CHARS)] = "pytorch"
    batch_sizes: Annotated[list[Annotated[int, Field(ge=1)]], Field(min_length=1)] = Field(
        default_factory=lambda: [1]
    )
    #: text models: tokens per input; one measurement per length
    sequence_lengths: list[Annotated[int, Field(ge=1)]] = Field(default_factory=list)
    #: other models: the shape of one input, batch dimension left out
    input_shapes: list[_InputShape] = Field(default_factory=list)
    precision: Literal["fp32", "fp16", "bf16", "int8"] = "fp32"
    iterations: Annotated[int, Field(ge=1)] = 100
    warmup: Annotated[int, Field(ge=0)] = 10
    #: a regression against the baseline fails the run (exit 1)
    fail_on_regression: bool = False
    #: the smallest slowdown of the median that counts as a regression (0.05: 5%)
    regression_threshold: Annotated[float, Field(gt=0, le=10)] = 0.05
    #: hardware kinds without a live worker are recorded as not run instead of refusing the run
    skip_missing_hardware: bool = False
    #: passed to the runtime: a callable gets them all; pytorch/onnxruntime read "threads"
    options: dict[str, Any] = Field(default_factory=dict)

    @field_validator("runtime")
    @classmethod
    def _check_runtime(cls, value: str) -> str:
        if value in BENCHMARK_RUNTIMES or _CALLABLE_RUNTIME.match(value):
            return value
        raise ValueError(
            f"unknown runtime {value!r}: use {', '.join(BENCHMARK_RUNTIMES)} "
            "or a callable as 'module:function'"
        )

    @model_validator(mode="after")
    def _one_kind_of_shape(self) -> BenchmarkConfig:
        if self.sequence_lengths and self.input_shapes:
            raise ValueError("give sequence_lengths or input_shapes, not both")
        for shape in self.shapes():
            label = "x".join(str(d) for d in shape)  # as dtf.benchmarking.plan.shape_label
            if len(label) > MAX_SHAPE_CHARS:
                raise ValueError(
                    f"input shape {label[:24]}... is {len(label)} characters written out, "
                    f"longer than the {MAX_SHAPE_CHARS} allowed"
                )
        return self

    def shapes(self) -> list[list[int]]:
        """One entry per measured input shape; ``[]`` lets the runtime choose."""
        if self.sequence_lengths:
            return [[length] for length in self.sequence_lengths]
        if self.input_shapes:
            return [list(shape) for shape in self.input_shapes]
        legacy = (self.model_extra or {}).get("input_shape")
        return [list(legacy)] if isinstance(legacy, list) and legacy else [[]]


class _TaskBase(_Model):
    # Declared here so that ``type`` comes first in dumps; subclasses narrow it.
    type: str
    name: _Name | None = None
    priority: _Priority | None = None
    requirements: Requirements = Field(default_factory=Requirements)
    timeout_seconds: _PositiveFloat | None = None
    retry_policy: RetryPolicy = Field(default_factory=RetryPolicy)

    @property
    def effective_priority(self) -> int:
        """The task's priority, else its requirements', else the default (5); 9 is most urgent."""
        for value in (self.priority, self.requirements.priority):
            if value is not None:
                return value
        return DEFAULT_PRIORITY

    @property
    def effective_timeout(self) -> float:
        """Seconds allowed per test (test tasks), per command (command tasks), else per task."""
        own = getattr(self, "timeout", None)
        for value in (own, self.requirements.timeout, self.timeout_seconds):
            if value is not None:
                return value
        return DEFAULT_TEST_TIMEOUT


class TestTask(_TaskBase):
    """Run pytest on ``paths`` (files, directories, node ids; none: pytest's default) with
    ``pytest_args``, as ``pytest [pytest_args] [paths]`` typed in ``workdir`` would."""

    # Keeps pytest from collecting this class when a test module imports it.
    __test__ = False

    type: Literal["test"] = "test"
    paths: list[_NonEmptyStr] = Field(default_factory=list)
    keyword: str | None = None
    markers: str | None = None
    pytest_args: list[str] = Field(default_factory=list)

    @field_validator("pytest_args")
    @classmethod
    def _check_pytest_args(cls, value: list[str]) -> list[str]:
        from dtf.pytest_args import maxfail_of, refused_option

        refused = refused_option(value)
        if refused is not None:
            option, why = refused
            raise ValueError(f"dtf cannot hand {option} to pytest: {why}")
        maxfail_of(value)  # a --maxfail that is no number is refused here
        return value

    @property
    def maxfail(self) -> int | None:
        """Failures after which the run stops (``-x``: 1, ``--maxfail N``); None: no limit."""
        from dtf.pytest_args import maxfail_of

        return maxfail_of(self.pytest_args)

    workdir: str | None = None
    timeout: _PositiveFloat | None = None
    #: what stays in one batch: a module unless too long ("module"), a whole file
    #: ("file", xdist's loadfile), a class or module scope ("scope", loadscope), nothing
    grouping: Literal["module", "file", "scope", "none"] = "module"
    #: no batch is expected to run longer than this (seconds)
    max_batch_seconds: _PositiveFloat | None = None
    #: cut the tests into this many batches of equal expected duration instead
    #: of big-first, small-last batches sized by the workers' slots
    batches: Annotated[int, Field(ge=1)] | None = None
    #: reruns of a failed test; one that passes on a rerun is reported flaky (off: 0)
    reruns: Annotated[int, Field(ge=0, le=10)] = 0
    #: address-space limit of the pytest child in MiB; a test that exceeds it is
    #: reported out_of_memory and the worker goes on (None: no limit)
    memory_limit_mb: Annotated[float, Field(ge=64)] | None = None


class CommandTask(_TaskBase):
    """Run a command: a string goes through the shell, a list is executed directly."""

    type: Literal["command"] = "command"
    command: str | list[str]
    env: dict[str, str] = Field(default_factory=dict)
    workdir: str | None = None
    timeout: _PositiveFloat | None = None

    @field_validator("command", mode="before")
    @classmethod
    def _check_command(cls, value: Any) -> Any:
        # Checked by hand: pydantic's errors for ``str | list[str]`` name union members.
        if isinstance(value, str):
            if not value.strip():
                raise ValueError("must not be empty")
        elif isinstance(value, list) and all(isinstance(part, str) for part in value):
            if not value:
                raise ValueError("must not be empty")
        else:
            raise ValueError(
                f"expected a string or a list of strings, got {_describe_value(value)}"
            )
        return value


class BenchmarkTask(_TaskBase):
    """Benchmark a model on each hardware kind of ``requirements.hardware``.

    Every (hardware kind, batch size) becomes one job on that kind's queue; the
    timeout (``timeout_seconds``) applies to each job, model load included.
    """

    type: Literal["benchmark"] = "benchmark"
    config: BenchmarkConfig
    #: where the benchmark runs (a callable runtime's module, relative model paths are found
    #: there), relative to where dtf is invoked; default that directory
    workdir: str | None = None


Task = Annotated[TestTask | CommandTask | BenchmarkTask, Field(discriminator="type")]

_TASK_MODELS: dict[str, type[_TaskBase]] = {
    "test": TestTask,
    "command": CommandTask,
    "benchmark": BenchmarkTask,
}


class RunSpec(_Model):
    """A submitted run: one or more tasks."""

    name: _Name | None = None
    tasks: Annotated[list[Task], Field(min_length=1)]
    #: ``key: value`` strings stored with the run, shown by status and reports, given to
    #: plugins, and selecting runs (``dtf report --label key=value``); see dtf/labels.py
    labels: dict[str, str] = Field(default_factory=dict)

    @field_validator("labels")
    @classmethod
    def _check_labels(cls, value: dict[str, str]) -> dict[str, str]:
        from dtf.labels import check_labels

        return check_labels(value)

    #: where workers find the test code: "path" (the same path on every machine)
    #: or "bundle" (the project directory packed and fetched by each worker)
    code: Literal["path", "bundle"] = "path"
    #: recoveries the whole run may spend before it gives up on what is left
    retry_budget: Annotated[int, Field(ge=0)] = 50
    #: plugins the submitting CLI loads for this run, each ``module`` or ``module:attr``
    plugins: list[_PluginTarget] = Field(default_factory=list)
    #: non-secret settings per integration (``dtf.integrations.github.comment: false``);
    #: each integration checks its own keys, tokens come from the environment only
    integrations: dict[str, dict[str, Any]] = Field(default_factory=dict)


_TASK_ADAPTER: TypeAdapter[Any] = TypeAdapter(Task)
_RUN_ADAPTER: TypeAdapter[RunSpec] = TypeAdapter(RunSpec)


def parse_run_spec(data: object, source: str = "task file") -> RunSpec:
    """Validate already-decoded data: a run object, a bare list of tasks, or one task object."""
    if data is None:
        _fail(source, "", "is empty")
    _check_nesting(data, source)
    if isinstance(data, list):
        data = {"tasks": data}
    if not isinstance(data, dict):
        _fail(
            source,
            "",
            f"expected a run object, a list of tasks or a task object, got {_describe_value(data)}",
        )
    if _is_single_task(data):
        # Locations stay relative to the task: that is what the user wrote.
        task = _validate(_TASK_ADAPTER, Task, data, source)
        return RunSpec(tasks=[task])
    return _validate(_RUN_ADAPTER, RunSpec, data, source)


def _check_nesting(data: object, source: str) -> None:
    # Without recursion: the data may nest deeper than Python's own limit (or hold itself).
    stack: list[tuple[object, int]] = [(data, 0)]
    while stack:
        value, depth = stack.pop()
        if not isinstance(value, (dict, list)):
            continue
        if depth >= MAX_NESTING:
            _fail(source, "", f"lists and objects nest deeper than {MAX_NESTING} levels")
        children = value.values() if isinstance(value, dict) else value
        stack += [(child, depth + 1) for child in children]


def load_run_spec(path: str | Path) -> RunSpec:
    """Load a JSON or YAML run file (by extension; otherwise JSON, then YAML)."""
    source = str(path)
    file = Path(path)
    if not file.exists():
        _fail(source, "", "no such file")
    if file.is_dir():
        _fail(source, "", "is a directory")
    text = _read_task_file(file, source)
    if not text.strip():
        _fail(source, "", "is empty")

    suffix = file.suffix.lower()
    if suffix == ".json":
        data = _load_json(text, source)
    elif suffix in (".yaml", ".yml"):
        data = _load_yaml(text, source)
    else:
        try:
            data = json.loads(text)
        except (json.JSONDecodeError, RecursionError):
            try:
                data = _parse_yaml(text, source)
            except yaml.YAMLError:
                # Neither parses: report in the format the file most likely meant to use.
                if text.lstrip()[:1] in ("{", "["):
                    _load_json(text, source)
                _load_yaml(text, source)
    return parse_run_spec(data, source)


def with_pytest_args(spec: RunSpec, pytest_args: Sequence[str]) -> RunSpec:
    """``spec`` with ``pytest_args`` added to every test task's own (``dtf run -f F -- ARGS``)."""
    if not pytest_args:
        return spec
    data = run_spec_to_json(spec)
    for task in data["tasks"]:
        if task.get("type") == "test":
            task["pytest_args"] = [*task.get("pytest_args", []), *pytest_args]
    return parse_run_spec(data, "command line")


def spec_from_cli(
    paths: Sequence[str],
    *,
    keyword: str | None = None,
    markers: str | None = None,
    hardware: Sequence[str] | str | None = None,
    timeout: float | None = None,
    priority: int | None = None,
    workdir: str | None = None,
    pytest_args: Sequence[str] = (),
) -> RunSpec:
    """Build a one-test-task run from ``dtf run`` arguments, validated like a task file."""
    if isinstance(hardware, str):
        hardware = hardware.split(",")
    elif hardware:
        hardware = [part for kind in hardware for part in kind.split(",")]
    task: dict[str, Any] = {
        "type": "test",
        "paths": list(paths),
        "pytest_args": list(pytest_args),
        "keyword": keyword,
        "markers": markers,
        "workdir": workdir,
        "timeout": timeout,
        "priority": priority,
    }
    # An empty sequence is what an unused repeatable option yields: keep the default.
    if hardware:
        task["requirements"] = {"hardware": list(hardware)}
    return parse_run_spec(
        {key: value for key, value in task.items() if value is not None}, "command line"
    )


def run_spec_to_json(spec: RunSpec) -> dict[str, Any]:
    """A JSON-safe dict of ``spec`` that :func:`parse_run_spec` turns back into an equal spec."""
    return spec.model_dump(mode="json")


def _is_single_task(data: dict[Any, Any]) -> bool:
    if "tasks" in data:
        return False
    return "type" in data or not set(data) <= set(RunSpec.model_fields)


def _read_task_file(file: Path, source: str) -> str:
    """The file's UTF-8 text, refused past MAX_TASK_FILE_BYTES; a pipe or a device is
    read no further than that."""
    too_big = f"is larger than {MAX_TASK_FILE_BYTES} bytes, the most a task file may be"
    try:
        if file.is_file():
            if file.stat().st_size > MAX_TASK_FILE_BYTES:
                _fail(source, "", too_big)
            return file.read_text(encoding="utf-8")
        with file.open("rb") as stream:
            data = stream.read(MAX_TASK_FILE_BYTES + 1)
        if len(data) > MAX_TASK_FILE_BYTES:
            _fail(source, "", too_big)
        return data.decode("utf-8")
    except UnicodeDecodeError:
        _fail(source, "", "cannot read: not UTF-8 text")
    except OSError as err:
        _fail(source, "", f"cannot read: {err.strerror or err}")


def _load_json(text: str, source: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError as err:
        _fail(source, "", f"not valid JSON: line {err.lineno} column {err.colno}: {err.msg}")
    except RecursionError:
        _fail(source, "", "not valid JSON: nested too deeply")


def _parse_yaml(text: str, source: str) -> Any:
    from dtf.safe_yaml import UnsafeYaml, safe_load

    try:
        return safe_load(text, MAX_YAML_VALUES)
    except UnsafeYaml as err:
        _fail(source, "", str(err))


def _load_yaml(text: str, source: str) -> Any:
    try:
        return _parse_yaml(text, source)
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        problem = getattr(err, "problem", None) or str(err)
        if mark is None:
            _fail(source, "", f"not valid YAML: {problem}")
        _fail(
            source,
            "",
            f"not valid YAML: line {mark.line + 1} column {mark.column + 1}: {problem}",
        )


def _validate(adapter: TypeAdapter[Any], root: Any, data: Any, source: str) -> Any:
    try:
        return adapter.validate_python(data)
    except ValidationError as err:
        location, problem = _explain(err.errors()[0], root)
        _fail(source, location, problem)


def _fail(source: str, location: str, problem: str) -> NoReturn:
    line = ": ".join(part for part in (source, location, problem) if part)
    raise SpecError(re.sub(r"\s*[\r\n]+\s*", " ", line).strip())


_TYPE_NOUNS = {
    "int_type": "an integer",
    "int_parsing": "an integer",
    "int_from_float": "an integer",
    "float_type": "a number",
    "float_parsing": "a number",
    "string_type": "a string",
    "bool_type": "true or false",
    "bool_parsing": "true or false",
    "list_type": "a list",
    "dict_type": "an object",
    "model_type": "an object",
    "model_attributes_type": "an object",
}


def _explain(error: Any, root: Any) -> tuple[str, str]:
    """Turn one pydantic error into (location, problem)."""
    kind = error["type"]
    ctx = error.get("ctx", {})
    value = error.get("input")
    loc = error["loc"]
    location, _ = _walk(root, loc)
    parent_location, parent = _walk(root, loc[:-1])
    key = str(loc[-1]) if loc else ""
    allowed = ", ".join(_TASK_MODELS)

    if kind == "extra_forbidden":
        problem = f"unknown field {key!r}"
        fields = list(parent.model_fields) if _is_model(parent) else []
        match = difflib.get_close_matches(key, fields, n=1)
        if match:
            problem += f" (did you mean {match[0]!r}?)"
        return parent_location, problem
    if kind == "missing":
        return parent_location, f"missing required field {key!r}"
    if kind == "union_tag_not_found":
        return location, f"missing required field 'type' (allowed: {allowed})"
    if kind == "union_tag_invalid":
        return _join(location, "type"), f"unknown task type {ctx['tag']!r} (allowed: {allowed})"
    if kind == "value_error":
        return location, str(ctx.get("error", error["msg"]))
    if kind in _TYPE_NOUNS:
        return location, f"expected {_TYPE_NOUNS[kind]}, got {_describe_value(value)}"
    if kind in ("too_short", "string_too_short") and ctx.get("min_length") == 1:
        return location, "must not be empty"
    if kind == "string_too_long":
        limit = ctx["max_length"]
        return location, f"is {len(value)} characters long, longer than the {limit} allowed"
    bounds = {"greater_than": ">", "greater_than_equal": ">=", "less_than_equal": "<="}
    if kind in bounds:
        limit = next(iter(ctx.values()))
        return location, f"must be {bounds[kind]} {limit:g}, got {value!r}"
    if kind == "finite_number":
        return location, f"must be a finite number, got {value!r}"
    if kind == "literal_error":
        return location, f"expected {ctx['expected']}, got {_describe_value(value)}"
    return location, str(error["msg"])


def _walk(root: Any, loc: tuple[int | str, ...]) -> tuple[str, Any]:
    """Render ``loc`` as ``tasks[0].requirements.hardware`` and return the type found there.

    Discriminator tags in ``loc`` select a task model and are not part of the rendered path.
    """
    path = ""
    current: Any = _unwrap(root)
    for segment in loc:
        tagged = _tagged_model(current, segment)
        if tagged is not None:
            current = tagged
            continue
        if isinstance(segment, int):
            path += f"[{segment}]"
        else:
            path = _join(path, segment)
        current = _unwrap(_child_type(current, segment))
    return path, current


def _unwrap(tp: Any) -> Any:
    while True:
        origin = get_origin(tp)
        if origin is Annotated:
            tp = get_args(tp)[0]
        elif origin in (Union, UnionType):
            members = [arg for arg in get_args(tp) if arg is not type(None)]
            if len(members) != 1:
                return tp
            tp = members[0]
        else:
            return tp


def _tagged_model(tp: Any, segment: int | str) -> Any:
    if get_origin(tp) not in (Union, UnionType) or not isinstance(segment, str):
        return None
    model = _TASK_MODELS.get(segment)
    return model if model in get_args(tp) else None


def _child_type(tp: Any, segment: int | str) -> Any:
    if _is_model(tp):
        field = tp.model_fields.get(segment)
        return field.annotation if field is not None else None
    args = get_args(tp)
    if get_origin(tp) is list and args:
        return args[0]
    if get_origin(tp) is dict and len(args) == 2:
        return args[1]
    return None


def _is_model(tp: Any) -> bool:
    return isinstance(tp, type) and issubclass(tp, BaseModel)


def _join(path: str, name: str) -> str:
    return f"{path}.{name}" if path else name


def _describe_value(value: Any) -> str:
    names = {
        type(None): "null",
        bool: "boolean",
        int: "integer",
        float: "number",
        str: "string",
        list: "list",
        dict: "object",
    }
    name = names.get(type(value), type(value).__name__)
    if isinstance(value, (list, dict)) or value is None:
        return name
    text = repr(value)
    if len(text) > 40:
        text = text[:37] + "..."
    return f"{name} {text}"


_REQUIREMENTS_ADAPTER: TypeAdapter[Requirements] = TypeAdapter(Requirements)


def parse_requirements(data: object, source: str) -> Requirements:
    """Validate requirements from elsewhere (a ``@pytest.mark.dtf`` marker), one-line errors."""
    return _validate(_REQUIREMENTS_ADAPTER, Requirements, data, source)
