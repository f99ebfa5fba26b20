"""Benchmark task specs: the fields, their one-line errors, and legacy shapes."""

from __future__ import annotations

import pytest

from dtf.benchmarking.plan import check_benchmark, plan_jobs, shape_label
from dtf.errors import BadInput
from dtf.spec import SpecError, parse_run_spec


def _benchmark(**config: object) -> dict:
    return {"type": "benchmark", "config": {"model": "m", **config}}


def _error(data: object) -> str:
    with pytest.raises(SpecError) as info:
        parse_run_spec(data, "run.json")
    return str(info.value)


def test_a_full_benchmark_task_parses() -> None:
    (task,) = parse_run_spec(
        {
            "type": "benchmark",
            "config": {
                "model": "all-MiniLM-L6-v2", "runtime": "pytorch", "batch_sizes": [1, 8],
                "sequence_lengths": [16, 128], "precision": "bf16", "warmup": 2,
                "iterations": 30, "fail_on_regression": True, "regression_threshold": 0.1,
                "skip_missing_hardware": True, "options": {"threads": 2},
            },
            "requirements": {"hardware": ["cuda", "cpu"]},
        }
    ).tasks  # fmt: skip

    assert task.config.shapes() == [[16], [128]]
    assert task.config.fail_on_regression and task.config.regression_threshold == 0.1
    assert task.config.options == {"threads": 2}
    assert task.requirements.hardware == ["cuda", "cpu"]


@pytest.mark.parametrize("runtime", ["pytorch", "onnxruntime", "my_pkg.bench:load", "m:f"])
def test_runtimes_are_built_in_or_a_callable(runtime: str) -> None:
    (task,) = parse_run_spec(_benchmark(runtime=runtime)).tasks
    assert task.config.runtime == runtime


def test_an_unknown_runtime_is_a_one_line_error() -> None:
    assert _error(_benchmark(runtime="tensorflow")) == (
        "run.json: config.runtime: unknown runtime 'tensorflow': use pytorch, onnxruntime "
        "or a callable as 'module:function'"
    )


def test_sequence_lengths_and_input_shapes_exclude_each_other() -> None:
    message = _error(_benchmark(sequence_lengths=[8], input_shapes=[[3, 8, 8]]))
    assert message == "run.json: config: give sequence_lengths or input_shapes, not both"


def test_input_shapes_and_the_legacy_input_shape_give_shapes() -> None:
    (task,) = parse_run_spec(_benchmark(input_shapes=[[3, 224, 224], [3, 64, 64]])).tasks
    (legacy,) = parse_run_spec(_benchmark(input_shape=[3, 224, 224])).tasks

    assert task.config.shapes() == [[3, 224, 224], [3, 64, 64]]
    assert legacy.config.shapes() == [[3, 224, 224]]
    assert [shape_label(s) for s in task.config.shapes()] == ["3x224x224", "3x64x64"]
    assert parse_run_spec(_benchmark()).tasks[0].config.shapes() == [[]]


def test_empty_batch_sizes_are_refused() -> None:
    assert _error(_benchmark(batch_sizes=[])) == "run.json: config.batch_sizes: must not be empty"


def _checked(position: int = 0, hardware: object = "cpu", **config: object) -> None:
    (task,) = parse_run_spec({**_benchmark(**config), "requirements": {"hardware": hardware}}).tasks
    check_benchmark(position, task)


def test_an_unknown_config_key_is_refused_when_planned_with_a_suggestion() -> None:
    with pytest.raises(BadInput, match=r"^tasks\[0\]\.config: unknown field 'fail_on_regresion' "
                                       r"\(did you mean 'fail_on_regression'\?\)$"):  # fmt: skip
        _checked(fail_on_regresion=True)


def test_a_precision_the_hardware_lacks_is_refused() -> None:
    with pytest.raises(BadInput) as info:
        _checked(hardware=["cuda", "cpu"], precision="fp16")
    assert str(info.value) == (
        "tasks[0].config: fp16 is not available with pytorch on cpu (it offers fp32, bf16, int8)"
    )


def test_a_runtime_that_cannot_use_the_hardware_is_refused() -> None:
    with pytest.raises(BadInput, match="runtime onnxruntime cannot run on webgpu"):
        _checked(hardware="webgpu", runtime="onnxruntime")


def test_a_callable_runtime_decides_its_hardware_and_precision_itself() -> None:
    _checked(hardware=["webgpu", "cpu"], runtime="bench:load", precision="fp16")


def test_one_job_per_hardware_kind_and_batch_size() -> None:
    (task,) = parse_run_spec(
        {**_benchmark(batch_sizes=[1, 8, 32], sequence_lengths=[16, 64]),
         "requirements": {"hardware": ["cuda", "cpu"]}}
    ).tasks  # fmt: skip

    jobs = plan_jobs(task)

    assert [(j.hardware, j.batch_size) for j in jobs] == [
        ("cuda", 1), ("cuda", 8), ("cuda", 32), ("cpu", 1), ("cpu", 8), ("cpu", 32),
    ]  # fmt: skip
    assert all(j.shapes == [[16], [64]] for j in jobs)
