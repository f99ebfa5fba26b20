"""What a run spec may hold: names that fit their database columns, task files of a
bounded size, YAML whose aliases cannot explode, nesting that stays shallow. Each
refusal is one SpecError line naming the file, the field and the limit."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from sqlalchemy import String

from dtf.db.models import BenchmarkBaseline, BenchmarkResult, IntegrationOutcome, Run, RunTask
from dtf.spec import (
    MAX_MODEL_CHARS,
    MAX_NAME_CHARS,
    MAX_NESTING,
    MAX_SHAPE_CHARS,
    MAX_TASK_FILE_BYTES,
    MAX_YAML_VALUES,
    SpecError,
    load_run_spec,
    parse_run_spec,
)


def _error(data: object) -> str:
    with pytest.raises(SpecError) as info:
        parse_run_spec(data, "run.yaml")
    return str(info.value)


def _load_error(path: Path) -> str:
    with pytest.raises(SpecError) as info:
        load_run_spec(path)
    return str(info.value)


def _length(column) -> int:
    assert isinstance(column.type, String)
    return column.type.length


# Names and the columns they are stored in


def test_each_limit_is_what_its_column_holds():
    assert MAX_NAME_CHARS == _length(Run.__table__.c.name) == _length(RunTask.__table__.c.name)
    assert _length(IntegrationOutcome.__table__.c.integration) == MAX_NAME_CHARS  # plugins
    for table in (BenchmarkResult.__table__, BenchmarkBaseline.__table__):
        assert MAX_MODEL_CHARS == _length(table.c.model) == _length(table.c.runtime)
        assert _length(table.c.shape) == MAX_SHAPE_CHARS


def test_names_up_to_the_limit_are_accepted():
    name = "n" * MAX_NAME_CHARS
    spec = parse_run_spec({"name": name, "tasks": [{"type": "test", "name": name}]})
    assert spec.name == spec.tasks[0].name == name


def test_a_run_name_too_long_is_refused():
    assert _error({"name": "n" * 201, "tasks": [{"type": "test"}]}) == (
        "run.yaml: name: is 201 characters long, longer than the 200 allowed"
    )


@pytest.mark.parametrize("kind", [{"type": "test"}, {"type": "command", "command": "true"}])
def test_a_task_name_too_long_is_refused(kind):
    assert _error([{**kind, "name": "t" * 250}]) == (
        "run.yaml: tasks[0].name: is 250 characters long, longer than the 200 allowed"
    )


def test_a_plugin_target_too_long_is_refused():
    error = _error({"plugins": ["p" * 201], "tasks": [{"type": "test"}]})
    assert error == "run.yaml: plugins[0]: is 201 characters long, longer than the 200 allowed"


def test_benchmark_model_runtime_and_shape_too_long_are_refused():
    def benchmark(**config):
        return {"type": "benchmark", "config": {"model": "m", **config}}

    assert _error(benchmark(model="m" * 256)) == (
        "run.yaml: config.model: is 256 characters long, longer than the 255 allowed"
    )
    assert "config.runtime: is 300 characters long" in _error(benchmark(runtime="r" * 300))
    shape = _error(benchmark(input_shapes=[[123456789] * 8]))
    assert shape.startswith("run.yaml: config: input shape 123456789x123456789x")
    assert shape.endswith("is 79 characters written out, longer than the 64 allowed")


# Task files: size, YAML aliases, nesting

BILLION_LAUGHS = """\
tasks:
  - type: test
integrations:
  lol:
    a: &a ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]
    b: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a]
    c: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b]
    d: &d [*c, *c, *c, *c, *c, *c, *c, *c, *c]
    e: &e [*d, *d, *d, *d, *d, *d, *d, *d, *d]
    f: &f [*e, *e, *e, *e, *e, *e, *e, *e, *e]
    g: &g [*f, *f, *f, *f, *f, *f, *f, *f, *f]
    h: &h [*g, *g, *g, *g, *g, *g, *g, *g, *g]
    i: &i [*h, *h, *h, *h, *h, *h, *h, *h, *h]
"""


@pytest.mark.parametrize("name", ["bomb.yaml", "bomb.txt"])
def test_a_billion_laughs_file_is_refused_before_it_is_built(tmp_path, name):
    path = tmp_path / name
    path.write_text(BILLION_LAUGHS)
    assert _load_error(path) == (
        f"{path}: holds more than {MAX_YAML_VALUES} values once its YAML aliases are "
        "expanded: use fewer aliases, or split the run"
    )


def test_an_alias_that_holds_itself_is_refused(tmp_path):
    path = tmp_path / "run.yaml"
    path.write_text("tasks: &t\n  - type: test\n    paths: *t\n")
    assert _load_error(path) == (
        f"{path}: a YAML alias refers to a value that holds it (it never ends)"
    )


def test_aliases_that_expand_modestly_are_fine(tmp_path):
    path = tmp_path / "run.yaml"
    path.write_text(
        "tasks:\n"
        "  - {type: test, paths: [a], requirements: &gpu {hardware: [cuda]}}\n"
        "  - {type: test, paths: [b], requirements: *gpu}\n"
    )
    spec = load_run_spec(path)
    assert [t.requirements.hardware for t in spec.tasks] == [["cuda"], ["cuda"]]


def test_a_task_file_over_the_size_limit_is_refused(tmp_path):
    path = tmp_path / "run.json"
    path.write_text(json.dumps({"tasks": [{"type": "test"}]}) + " " * MAX_TASK_FILE_BYTES)
    assert _load_error(path) == (
        f"{path}: is larger than {MAX_TASK_FILE_BYTES} bytes, the most a task file may be"
    )


def test_a_device_is_read_no_further_than_the_limit():
    assert _load_error(Path("/dev/zero")) == (
        f"/dev/zero: is larger than {MAX_TASK_FILE_BYTES} bytes, the most a task file may be"
    )


def test_nesting_deeper_than_the_limit_is_refused():
    deep: object = "leaf"
    for _ in range(MAX_NESTING):
        deep = [deep]
    data = {"tasks": [{"type": "test"}], "integrations": {"x": {"y": deep}}}
    assert _error(data) == f"run.yaml: lists and objects nest deeper than {MAX_NESTING} levels"


@pytest.mark.parametrize(("name", "kind"), [("run.json", "JSON"), ("run.yaml", "YAML")])
def test_nesting_deeper_than_python_follows_is_one_line(tmp_path, name, kind):
    path = tmp_path / name
    path.write_text("[" * 100_000 + "]" * 100_000)
    assert _load_error(path) == f"{path}: not valid {kind}: nested too deeply"
