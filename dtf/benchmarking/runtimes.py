"""The runtimes a benchmark loads its model with: PyTorch, ONNX Runtime, a user's callable.

Each has ``prepare`` (imports; not timed) and ``load`` (timed: the model's
load time), and returns a :class:`~dtf.benchmarking.contract.Loaded`.
"""

from __future__ import annotations

import importlib
import sys
from pathlib import Path
from typing import Any, Protocol

from dtf.benchmarking.contract import Loaded, LoadRequest, ModelNotOnDisk, as_loaded
from dtf.benchmarking.model_files import resolve_model

#: Sequence length of a text model when the task gives none.
DEFAULT_SEQUENCE_LENGTH = 128


class Runtime(Protocol):
    def prepare(self, request: LoadRequest) -> None: ...

    def load(self, request: LoadRequest) -> Loaded: ...


def device_for(hardware: str) -> str:
    """The device string frameworks take for a hardware kind (ROCm builds of torch say cuda)."""
    return {"cpu": "cpu", "cuda": "cuda:0", "rocm": "cuda:0", "mps": "mps"}.get(hardware, hardware)


def runtime_for(name: str) -> Runtime:
    if name == "pytorch":
        return PyTorchRuntime()
    if name == "onnxruntime":
        return OnnxRuntime()
    return CallableRuntime(name)


class PyTorchRuntime:
    """A TorchScript file, a sentence-transformers folder or a transformers folder."""

    def prepare(self, request: LoadRequest) -> None:
        self.path = resolve_model(request.model, request.workdir)
        import torch

        threads = request.options.get("threads")
        if threads:
            torch.set_num_threads(int(threads))
        if self.path.is_dir() and (self.path / "modules.json").exists():
            import sentence_transformers  # noqa: F401
        elif self.path.is_dir():
            import transformers  # noqa: F401

    def load(self, request: LoadRequest) -> Loaded:
        import torch

        dtype = {"fp16": torch.float16, "bf16": torch.bfloat16}.get(request.precision)
        model, tokenizer, keyword_inputs = self._load_model(request)
        model.eval()
        if request.precision == "int8":
            model = torch.ao.quantization.quantize_dynamic(model, {torch.nn.Linear}, torch.qint8)
        elif dtype is not None:
            model = model.to(dtype)
        model = model.to(request.device)
        float_dtype = dtype or torch.float32

        def make_inputs(batch_size: int, shape: list[int]) -> Any:
            if tokenizer is not None:
                if len(shape) > 1:
                    raise ValueError("a text model takes sequence_lengths, not input_shapes")
                length = shape[0] if shape else DEFAULT_SEQUENCE_LENGTH
                text = " ".join(["benchmark"] * length)
                features = tokenizer(
                    [text] * batch_size,
                    padding="max_length",
                    truncation=True,
                    max_length=length,
                    return_tensors="pt",
                )
                return {key: value.to(request.device) for key, value in features.items()}
            if not shape:
                raise ValueError("this model has no tokenizer: give config.input_shapes")
            return torch.randn(batch_size, *shape, dtype=float_dtype, device=request.device)

        def run(inputs: Any) -> Any:
            with torch.inference_mode():
                if isinstance(inputs, dict):
                    return model(inputs) if not keyword_inputs else model(**inputs)
                return model(inputs)

        return Loaded(run=run, make_inputs=make_inputs, environment={"weights": str(self.path)})

    def _load_model(self, request: LoadRequest) -> tuple[Any, Any, bool]:
        """(model, tokenizer or None, whether dict inputs go in as keyword arguments)."""
        path = self.path
        if path.is_file():
            import torch

            return torch.jit.load(str(path), map_location=request.device), None, True
        if (path / "modules.json").exists():
            from sentence_transformers import SentenceTransformer

            model = SentenceTransformer(str(path), device=request.device, local_files_only=True)
            return model, model.tokenizer, False
        if (path / "config.json").exists():
            from transformers import AutoModel, AutoTokenizer

            model = AutoModel.from_pretrained(str(path), local_files_only=True)
            has_tokenizer = any(
                (path / name).exists() for name in ("tokenizer.json", "tokenizer_config.json")
            )
            tokenizer = (
                AutoTokenizer.from_pretrained(str(path), local_files_only=True)
                if has_tokenizer
                else None
            )
            return model, tokenizer, True
        raise ModelNotOnDisk(
            f"{path} holds no model dtf can load with pytorch: expected a TorchScript file, "
            "a sentence-transformers folder (modules.json) or a transformers folder (config.json)"
        )


_ONNX_PROVIDERS = {
    "cpu": ["CPUExecutionProvider"],
    "cuda": ["CUDAExecutionProvider", "CPUExecutionProvider"],
    "rocm": ["ROCMExecutionProvider", "CPUExecutionProvider"],
}
_ONNX_FLOATS = {"fp32": "tensor(float)", "fp16": "tensor(float16)"}


class OnnxRuntime:
    """An ``.onnx`` file (or a folder holding ``model.onnx``) in an InferenceSession."""

    def prepare(self, request: LoadRequest) -> None:
        import numpy  # noqa: F401
        import onnxruntime

        path = resolve_model(request.model, request.workdir)
        if path.is_dir():
            found = [path / "model.onnx"] if (path / "model.onnx").exists() else []
            found = found or sorted(path.glob("*.onnx"))
            if len(found) != 1:
                raise ModelNotOnDisk(f"{path} holds no single .onnx file (found {len(found)})")
            path = found[0]
        self.path = path
        wanted = _ONNX_PROVIDERS[request.hardware][0]
        available = onnxruntime.get_available_providers()
        if wanted not in available:
            raise RuntimeError(
                f"this onnxruntime has no {wanted} (it has {', '.join(available)}); "
                "install the onnxruntime build for this hardware"
            )

    def load(self, request: LoadRequest) -> Loaded:
        import numpy as np
        import onnxruntime

        options = onnxruntime.SessionOptions()
        if request.options.get("threads"):
            options.intra_op_num_threads = int(request.options["threads"])
        session = onnxruntime.InferenceSession(
            str(self.path), options, providers=_ONNX_PROVIDERS[request.hardware]
        )
        inputs = session.get_inputs()
        expected_float = _ONNX_FLOATS.get(request.precision)
        for meta in inputs:
            if meta.type.startswith("tensor(float") and meta.type != expected_float:
                raise ValueError(
                    f"precision {request.precision} does not match the model's input "
                    f"{meta.name} ({meta.type}); export the model in that precision"
                )
        rng = np.random.default_rng(0)

        def make_inputs(batch_size: int, shape: list[int]) -> dict[str, Any]:
            feeds = {}
            for meta in inputs:
                dims = _onnx_dims(meta.name, list(meta.shape), batch_size, shape)
                if meta.type.startswith("tensor(float"):
                    dtype = np.float16 if meta.type == "tensor(float16)" else np.float32
                    feeds[meta.name] = rng.standard_normal(dims).astype(dtype)
                else:  # token ids, masks, type ids: ones are valid for all of them
                    feeds[meta.name] = np.ones(dims, dtype=_onnx_int_type(meta.type))
            return feeds

        def run(feeds: dict[str, Any]) -> Any:
            return session.run(None, feeds)

        return Loaded(
            run=run,
            make_inputs=make_inputs,
            environment={"weights": str(self.path), "providers": session.get_providers()},
        )


def _onnx_dims(name: str, declared: list[Any], batch_size: int, shape: list[int]) -> list[int]:
    """Concrete dimensions: the batch first, then ``shape`` (all of them, or the free ones)."""
    if not declared:
        return []
    first = declared[0]
    if isinstance(first, int) and first > 0 and first != batch_size:
        raise ValueError(f"input {name} has a fixed batch dimension {first}, not {batch_size}")
    rest = declared[1:]
    if len(shape) == len(rest):
        for want, have in zip(rest, shape, strict=True):
            if isinstance(want, int) and want > 0 and want != have:
                raise ValueError(f"input {name} has shape {declared}, which {shape} does not fit")
        return [batch_size, *shape]
    free = iter(shape)
    dims = [batch_size]
    for dim in rest:
        if isinstance(dim, int) and dim > 0:
            dims.append(dim)
            continue
        value = next(free, None)
        if value is None:
            raise ValueError(
                f"input {name} has a free dimension {dim!r}: give sequence_lengths or input_shapes"
            )
        dims.append(value)
    left = list(free)
    if left:
        raise ValueError(f"input {name} has shape {declared}, which {shape} does not fit")
    return dims


def _onnx_int_type(onnx_type: str) -> str:
    return {
        "tensor(int32)": "int32",
        "tensor(bool)": "bool",
        "tensor(int8)": "int8",
        "tensor(uint8)": "uint8",
    }.get(onnx_type, "int64")


class CallableRuntime:
    """A user's ``module:function`` (see :mod:`dtf.benchmarking.contract`)."""

    def __init__(self, target: str) -> None:
        self.target = target

    def prepare(self, request: LoadRequest) -> None:
        module_name, _, function_name = self.target.partition(":")
        if request.workdir not in sys.path:
            sys.path.insert(0, request.workdir)
        try:
            module = importlib.import_module(module_name)
        except ImportError as exc:
            raise RuntimeError(
                f"cannot import {module_name} for runtime {self.target} from {request.workdir} "
                f"or the installed packages: {exc}"
            ) from exc
        function = getattr(module, function_name, None)
        if not callable(function):
            raise RuntimeError(f"{module_name} ({Path(module.__file__ or '?')}) has no function "
                               f"{function_name}")  # fmt: skip
        self.function = function

    def load(self, request: LoadRequest) -> Loaded:
        return as_loaded(self.function(request), self.target)
