"""Which runtime runs on which hardware kind, in which precisions.

Checked when a run is planned, so that an impossible combination is a
one-line error before anything is queued.
"""

from __future__ import annotations

#: runtime -> hardware kind -> precisions it offers there
PRECISIONS: dict[str, dict[str, tuple[str, ...]]] = {
    "pytorch": {
        "cpu": ("fp32", "bf16", "int8"),
        "cuda": ("fp32", "fp16", "bf16"),
        "rocm": ("fp32", "fp16", "bf16"),
        "mps": ("fp32", "fp16"),
    },
    "onnxruntime": {
        "cpu": ("fp32",),
        "cuda": ("fp32", "fp16"),
        "rocm": ("fp32", "fp16"),
    },
}
#: bf16 needs tensor cores of this generation (Ampere) or newer on CUDA
BF16_MIN_CUDA_COMPUTE = 8.0


def is_callable_runtime(runtime: str) -> bool:
    return runtime not in PRECISIONS


def unsupported(runtime: str, hardware: str, precision: str) -> str | None:
    """Why ``runtime`` cannot benchmark in ``precision`` on ``hardware``; None when it can.

    A callable runtime decides for itself (it may raise when it is run).
    """
    if is_callable_runtime(runtime):
        return None
    kinds = PRECISIONS[runtime]
    if hardware not in kinds:
        return (
            f"runtime {runtime} cannot run on {hardware} (it runs on {', '.join(kinds)}); "
            "use a callable runtime 'module:function' for other hardware"
        )
    if precision not in kinds[hardware]:
        return (
            f"{precision} is not available with {runtime} on {hardware} "
            f"(it offers {', '.join(kinds[hardware])})"
        )
    return None


def extra_requirements(runtime: str, hardware: str, precision: str) -> dict[str, float]:
    """Requirements a worker must meet for this combination, on top of the task's."""
    if hardware == "cuda" and precision == "bf16" and not is_callable_runtime(runtime):
        return {"min_cuda_compute": BF16_MIN_CUDA_COMPUTE}
    return {}
