"""What a runtime hands the measuring loop, and what a user's callable runtime receives.

A callable runtime ``module:function`` is imported once in the warm measurement
process (the task's working directory is on ``sys.path``) and called once per job::

    def load(request: LoadRequest) -> Loaded | tuple[run, make_inputs]:
        model = ...  # load it on request.device in request.precision
        return Loaded(run=lambda inputs: model(inputs),
                      make_inputs=lambda batch_size, shape: ...)

``make_inputs(batch_size, shape)`` builds the inputs of one measurement
(``shape`` is the list from ``sequence_lengths``/``input_shapes``, ``[]``
when none was given); it is not timed. ``run(inputs)`` is the timed call.
On a GPU, dtf synchronises the device around each call when torch is
loaded, so asynchronous work is counted. The time ``load`` takes is the
model's load time. Raise :class:`ModelNotOnDisk` when the weights are not
there: dtf never downloads them.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class LoadRequest:
    """What to load, where: the benchmark's config as one job sees it."""

    model: str
    hardware: str  # the kind: cpu, cuda, rocm, mps, webgpu, webnn
    device: str  # the device string a framework takes: "cpu", "cuda:0", "mps"
    precision: str  # fp32, fp16, bf16 or int8
    workdir: str
    options: dict[str, Any] = field(default_factory=dict)


@dataclass
class Loaded:
    """A loaded model: the timed call and the factory of its inputs."""

    run: Callable[[Any], Any]
    make_inputs: Callable[[int, list[int]], Any]
    #: what to record besides dtf's own findings, e.g. {"weights": "/models/x"}
    environment: dict[str, Any] = field(default_factory=dict)


class ModelNotOnDisk(Exception):
    """The model's weights are not on this machine; the message says where dtf looked."""


def as_loaded(value: Any, where: str) -> Loaded:
    """Accept a :class:`Loaded` or a ``(run, make_inputs)`` pair from a callable runtime."""
    if isinstance(value, Loaded):
        return value
    if isinstance(value, tuple) and len(value) == 2 and all(callable(v) for v in value):
        return Loaded(run=value[0], make_inputs=value[1])
    raise TypeError(
        f"{where} returned {type(value).__name__}; it must return "
        "dtf.benchmarking.Loaded(run, make_inputs) or a (run, make_inputs) pair"
    )
