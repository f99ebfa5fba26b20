"""The model x hardware matrix from a run's rows: states, fastest configuration, rendering."""

from __future__ import annotations

from dtf.benchmarking.matrix import matrix_html, matrix_markdown, report_matrix


def _benchmark(model: str, hardware: str, status: str = "done", **fields: object) -> dict:
    row = {
        "run_id": "r1", "model": model, "hardware": hardware, "status": status, "error": None,
        "batch_size": 1, "shape": "128", "precision": "fp32", "runtime": "pytorch",
        "throughput": 100.0, "latency_p50_ms": 10.0, "device": "cpu0",
    }  # fmt: skip
    return {**row, **fields}


def _records(benchmarks: list[dict], items: list[tuple[str | None, str, str | None]]) -> dict:
    """``items``: (model, hardware, outcome) of test items, one batch per hardware kind."""
    return {
        "run": {"id": "r1"},
        "batches": [{"id": f"b-{kind}", "hardware": kind} for kind in ("cpu", "cuda")],
        "items": [
            {
                "requirements": {"model": model} if model else {},
                "outcome": outcome,
                "batch_id": f"b-{kind}",
            }
            for model, kind, outcome in items
        ],
        "benchmarks": benchmarks,
    }


def test_cells_are_supported_failing_or_not_run() -> None:
    matrix = report_matrix(
        _records(
            [
                _benchmark("bert", "cpu", batch_size=1, throughput=90.0),
                _benchmark("bert", "cpu", batch_size=32, throughput=400.0, latency_p50_ms=80.0),
                _benchmark("bert", "cuda", status="failed", error="out of memory: ..."),
                _benchmark("t5", "cuda", status="broken", error="model 't5' is not on disk"),
            ],
            [
                ("bert", "cpu", "passed"),
                ("vit", "cpu", "failed"),
                ("vit", "cuda", "passed"),
                (None, "cpu", "failed"),
            ],
        )
    )

    assert matrix.models == ["bert", "t5", "vit"]
    assert matrix.hardware == ["cpu", "cuda"]
    assert matrix.cell("bert", "cpu").state == "supported"
    assert matrix.cell("bert", "cpu").fastest["batch_size"] == 32
    assert matrix.cell("bert", "cpu").describe() == (
        "supported: 400 items/s, p50 80 ms (batch 32, seq 128, fp32, pytorch)"
    )
    assert matrix.cell("bert", "cuda").describe() == "fails: 1 benchmark(s) failed"
    assert matrix.cell("t5", "cuda").describe() == "not run: model 't5' is not on disk"
    assert matrix.cell("t5", "cpu").describe() == "not run"
    assert matrix.cell("vit", "cpu").describe() == "fails: 1 test failed"
    assert matrix.cell("vit", "cuda").describe() == "supported: 1 test passed"


def test_the_matrix_renders_as_markdown_and_html() -> None:
    matrix = report_matrix(_records([_benchmark("a|b", "cpu")], [("a|b", "cuda", "failed")]))

    assert matrix_markdown(matrix).splitlines() == [
        "| model | cpu | cuda |",
        "| --- | --- | --- |",
        "| a\\|b | supported: 100 items/s, p50 10 ms (batch 1, seq 128, fp32, pytorch) "
        "| fails: 1 test failed |",
    ]
    page = matrix_html(matrix)
    assert "<th>a|b</th>" in page
    assert '<td><span class="badge o-failed">fails</span> 1 test failed</td>' in page


def test_a_run_without_models_has_no_matrix() -> None:
    matrix = report_matrix(_records([], [(None, "cpu", "passed")]))

    assert matrix.models == []
    assert matrix_markdown(matrix) == matrix_html(matrix) == ""
