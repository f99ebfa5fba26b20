"""The benchmark child process: real measurements of a user's callable, crashes kept apart."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from dtf.benchmarking.runner import run_job

CALLABLES = textwrap.dedent(
    """
    import os
    import time

    from dtf.benchmarking import Loaded, ModelNotOnDisk


    def sleeper(request):
        delay = request.options["delay"]
        return Loaded(
            run=lambda inputs: time.sleep(delay * len(inputs)),
            make_inputs=lambda batch_size, shape: [0] * batch_size,
            environment={"seen": [request.model, request.device, request.precision]},
        )


    def pair(request):
        return (lambda inputs: inputs, lambda batch_size, shape: shape)


    def dies_on_long_inputs(request):
        def run(shape):
            if shape[0] >= 64:
                os._exit(9)
        return (run, lambda batch_size, shape: shape)


    def killed_once_on_long_inputs(request):
        # The first process to measure a long shape is killed (as the OOM killer would);
        # the marker file tells the next one it already happened.
        marker = os.path.join(request.workdir, "killed-once")

        def run(shape):
            if shape[0] >= 64 and not os.path.exists(marker):
                open(marker, "w").close()
                os.kill(os.getpid(), 9)
        return (run, lambda batch_size, shape: shape)


    def raises_on_long_inputs(request):
        def run(shape):
            if shape[0] >= 64:
                raise MemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
        return (run, lambda batch_size, shape: shape)


    def hangs(request):
        return (lambda inputs: time.sleep(60), lambda batch_size, shape: None)


    def weights_missing(request):
        raise ModelNotOnDisk("model 'm' is not on disk: /models/m is empty")


    def broken_loader(request):
        raise ValueError("unsupported layer Foo")


    def wrong_contract(request):
        return 42
    """
)


@pytest.fixture
def project(tmp_path: Path) -> Path:
    (tmp_path / "bench_callables.py").write_text(CALLABLES)
    return tmp_path


def _job(project: Path, function: str, **fields: object) -> dict:
    job = {
        "model": "toy", "runtime": f"bench_callables:{function}", "hardware": "cpu",
        "precision": "fp32", "workdir": str(project), "options": {}, "batch_size": 2,
        "shapes": [[]], "warmup": 1, "iterations": 5,
    }  # fmt: skip
    return {**job, **fields}


def _statuses(outcome) -> dict[str, tuple[str, str | None]]:
    return {label: (shape.status, shape.error) for label, shape in outcome.shapes.items()}


def test_every_iteration_is_timed_and_the_environment_recorded(project: Path) -> None:
    job = _job(project, "sleeper", options={"delay": 0.002}, batch_size=3, iterations=6)

    outcome = run_job(job, cwd=str(project), timeout=60)

    shape = outcome.shapes[""]
    assert shape.status == "done"
    assert len(shape.samples) == 6
    assert all(s >= 3 * 0.002 for s in shape.samples)  # the sleep is inside the timed call
    assert shape.peak_rss_mb > 0
    assert outcome.load_s >= 0
    assert outcome.environment["seen"] == ["toy", "cpu", "fp32"]
    assert outcome.environment["python"] and outcome.environment["device"]
    assert outcome.children == 1


def test_a_run_and_make_inputs_pair_is_accepted(project: Path) -> None:
    outcome = run_job(_job(project, "pair", shapes=[[8], [16]]), cwd=str(project), timeout=60)
    assert _statuses(outcome) == {"8": ("done", None), "16": ("done", None)}


def test_a_crash_loses_only_its_shape_and_the_rest_run_in_a_new_child(project: Path) -> None:
    job = _job(project, "dies_on_long_inputs", shapes=[[8], [64], [16]])

    outcome = run_job(job, cwd=str(project), timeout=60)

    assert _statuses(outcome) == {
        "8": ("done", None),
        "64": ("failed", "the benchmark process exited with code 9"),
        "16": ("done", None),
    }
    assert outcome.children == 2


def test_a_shape_whose_process_died_is_measured_again_as_the_retry_policy_allows(
    project: Path,
) -> None:
    job = _job(project, "killed_once_on_long_inputs", shapes=[[8], [64], [16]])

    outcome = run_job(job, cwd=str(project), timeout=60, max_retries=1)

    assert _statuses(outcome) == {"8": ("done", None), "64": ("done", None), "16": ("done", None)}
    assert (outcome.children, outcome.retries) == (2, 1)


def test_without_retries_left_a_shape_whose_process_died_fails(project: Path) -> None:
    job = _job(project, "dies_on_long_inputs", shapes=[[64], [8]])

    outcome = run_job(job, cwd=str(project), timeout=60, max_retries=2)

    assert _statuses(outcome) == {
        "64": ("failed", "the benchmark process exited with code 9"),
        "8": ("done", None),
    }
    assert (outcome.children, outcome.retries) == (4, 2)


def test_an_error_in_one_shape_fails_that_shape_only(project: Path) -> None:
    job = _job(project, "raises_on_long_inputs", shapes=[[64], [8]])

    outcome = run_job(job, cwd=str(project), timeout=60)

    status, error = _statuses(outcome)["64"]
    assert status == "failed"
    assert error == "out of memory: CUDA out of memory. Tried to allocate 2.00 GiB"
    assert outcome.shapes["8"].status == "done"
    assert outcome.children == 1


def test_a_job_past_its_timeout_is_killed(project: Path) -> None:
    outcome = run_job(_job(project, "hangs", shapes=[[1], [2]]), cwd=str(project), timeout=3)

    assert _statuses(outcome) == {
        "1": ("failed", "timed out: the job's timeout of 3s ran out while measuring it"),
        "2": ("failed", "timed out: the job's timeout of 3s ran out before it was reached"),
    }


def test_weights_not_on_disk_are_broken_not_failed(project: Path) -> None:
    outcome = run_job(_job(project, "weights_missing"), cwd=str(project), timeout=60)
    assert _statuses(outcome) == {"": ("broken", "model 'm' is not on disk: /models/m is empty")}


def test_a_model_that_will_not_load_fails(project: Path) -> None:
    outcome = run_job(_job(project, "broken_loader"), cwd=str(project), timeout=60)
    assert _statuses(outcome) == {
        "": ("failed", "loading failed: ValueError: unsupported layer Foo")
    }


def test_a_callable_that_breaks_the_contract_says_what_it_must_return(project: Path) -> None:
    outcome = run_job(_job(project, "wrong_contract"), cwd=str(project), timeout=60)
    status, error = _statuses(outcome)[""]
    assert status == "failed"
    assert "bench_callables:wrong_contract returned int; it must return" in error


def test_a_callable_that_cannot_be_imported_fails_with_where_it_looked(project: Path) -> None:
    job = _job(project, "sleeper", runtime="no_such_module:load")
    status, error = _statuses(run_job(job, cwd=str(project), timeout=60))[""]
    assert status == "failed"
    assert f"cannot import no_such_module for runtime no_such_module:load from {project}" in error


def test_a_packaged_model_that_is_not_installed_is_named(project: Path) -> None:
    job = _job(project, "", runtime="pytorch", model="no-such-model")

    status, error = _statuses(run_job(job, cwd=str(project), timeout=60))[""]

    assert status == "broken"
    assert error.startswith("model 'no-such-model' is not on disk: not a path under")
    assert "dtf never downloads weights" in error


def _onnx_embedding_model(path: Path) -> None:
    """input_ids [batch, sequence] (int64) -> embeddings [batch, sequence, 4] (float)."""
    onnx = pytest.importorskip("onnx")
    pytest.importorskip("onnxruntime")
    from onnx import TensorProto, helper, numpy_helper

    numpy = pytest.importorskip("numpy")
    table = numpy_helper.from_array(numpy.arange(40, dtype=numpy.float32).reshape(10, 4), "table")
    graph = helper.make_graph(
        [helper.make_node("Gather", ["table", "input_ids"], ["embeddings"])],
        "embed",
        [helper.make_tensor_value_info("input_ids", TensorProto.INT64, ["batch", "sequence"])],
        [helper.make_tensor_value_info("embeddings", TensorProto.FLOAT, None)],
        initializer=[table],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    onnx.save(model, str(path))


def test_an_onnx_model_runs_with_inputs_shaped_from_its_signature(project: Path) -> None:
    _onnx_embedding_model(project / "embed.onnx")
    job = _job(project, "", runtime="onnxruntime", model="embed.onnx", shapes=[[16], [64]])

    outcome = run_job(job, cwd=str(project), timeout=60)

    assert _statuses(outcome) == {"16": ("done", None), "64": ("done", None)}
    assert outcome.environment["providers"] == ["CPUExecutionProvider"]
    assert outcome.environment["weights"] == str(project / "embed.onnx")


def test_a_shape_that_does_not_fit_the_onnx_input_fails(project: Path) -> None:
    _onnx_embedding_model(project / "embed.onnx")
    job = _job(project, "", runtime="onnxruntime", model="embed.onnx", shapes=[[8, 3]])

    status, error = _statuses(run_job(job, cwd=str(project), timeout=60))["8x3"]

    assert status == "failed"
    assert "input_ids has shape ['batch', 'sequence'], which [8, 3] does not fit" in error


def test_an_onnx_model_refuses_a_precision_it_was_not_exported_in(project: Path) -> None:
    onnx = pytest.importorskip("onnx")
    from onnx import TensorProto, helper

    graph = helper.make_graph(
        [helper.make_node("Relu", ["pixels"], ["out"])],
        "relu",
        [helper.make_tensor_value_info("pixels", TensorProto.FLOAT, ["batch", 3])],
        [helper.make_tensor_value_info("out", TensorProto.FLOAT, None)],
    )
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)]),
              str(project / "relu.onnx"))  # fmt: skip
    job = _job(project, "", runtime="onnxruntime", model="relu.onnx", precision="fp16")

    status, error = _statuses(run_job(job, cwd=str(project), timeout=60))[""]

    assert status == "failed"
    assert error == (
        "loading failed: ValueError: precision fp16 does not match the model's input pixels "
        "(tensor(float)); export the model in that precision"
    )


@pytest.mark.filterwarnings("ignore:`torch.jit.script` is deprecated:DeprecationWarning")
def test_a_torchscript_model_runs_in_bf16_with_input_shapes(project: Path) -> None:
    torch = pytest.importorskip("torch")
    model = torch.jit.script(torch.nn.Sequential(torch.nn.Linear(6, 3), torch.nn.ReLU()))
    model.save(str(project / "tiny.pt"))
    job = _job(project, "", runtime="pytorch", model="tiny.pt", precision="bf16",
               shapes=[[6], [5, 6]])  # fmt: skip

    outcome = run_job(job, cwd=str(project), timeout=120)

    assert _statuses(outcome) == {"6": ("done", None), "5x6": ("done", None)}
    assert outcome.environment["weights"] == str(project / "tiny.pt")
    assert outcome.environment["libraries"]["torch"] == torch.__version__
