"""Which way a batch starts its pytest child (dtf/tasks/execute.py)."""

from __future__ import annotations

import dataclasses

import pytest

from dtf.tasks.execute import FORK_MAX_BATCH_S, _start_method
from dtf.tasks.store import BatchWork

WORK = BatchWork(
    run_id="run", attempt_id=1, workdir=".", bundle=None, test_timeout=60.0, pytest_args=[],
    items={},
)  # fmt: skip


def with_estimate(seconds: float | None) -> BatchWork:
    return dataclasses.replace(WORK, estimated_s=seconds)


def test_short_batches_fork_and_long_ones_spawn(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DTF_EXECUTOR", raising=False)
    assert _start_method(with_estimate(1.0)) is None  # the runner's default: fork
    assert _start_method(with_estimate(None)) is None
    assert _start_method(with_estimate(FORK_MAX_BATCH_S + 1)) == "spawn"


def test_the_operators_choice_wins(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DTF_EXECUTOR", "fork")
    assert _start_method(with_estimate(FORK_MAX_BATCH_S * 10)) is None
