"""Run labels: ``key=value`` pairs a run carries (``labels:`` in a task file, ``--label``).

Labels are stored with the run (``runs.labels``), shown by ``dtf status`` and every
report, handed to plugins in the run payload, and select a run for ``dtf report``
(``--label branch=main``: the most recent run carrying that label).

A key is 1..100 characters without ``=`` or a line break; a value is a string of at
most 1000 characters without a line break (it may be empty and may hold ``=``).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from dtf.errors import BadInput

MAX_KEY_CHARS = 100
MAX_VALUE_CHARS = 1000


def label_problem(key: str, value: str) -> str | None:
    """What is wrong with the label ``key=value``, or None when it is fine."""
    if not key.strip():
        return "a label key must not be empty"
    if "=" in key:
        return f"label key {key!r} must not contain '='"
    if len(key) > MAX_KEY_CHARS:
        return f"label key {key[:40]!r}... is longer than {MAX_KEY_CHARS} characters"
    if any(c in key for c in "\r\n"):
        return f"label key {key!r} must not contain a line break"
    if len(value) > MAX_VALUE_CHARS:
        return f"label {key!r}: value is longer than {MAX_VALUE_CHARS} characters"
    if any(c in value for c in "\r\n"):
        return f"label {key!r}: value must not contain a line break"
    return None


def check_labels(labels: Mapping[str, str]) -> dict[str, str]:
    """``labels`` as they are, or ValueError naming the first bad one (the spec's check)."""
    for key, value in labels.items():
        problem = label_problem(key, value)
        if problem:
            raise ValueError(problem)
    return dict(labels)


def parse_label(value: str, option: str = "--label") -> tuple[str, str]:
    """``branch=main`` -> ``("branch", "main")`` (split at the first ``=``; whitespace
    around the key is dropped), or BadInput with one line saying why not."""
    key, sep, text = value.partition("=")
    key = key.strip()
    if not sep:
        raise BadInput(f"{option} {value!r}: expected KEY=VALUE, e.g. branch=main")
    problem = label_problem(key, text)
    if problem:
        raise BadInput(f"{option} {value!r}: {problem}")
    return key, text


def parse_labels(values: Iterable[str], option: str = "--label") -> dict[str, str]:
    """Repeated ``--label KEY=VALUE`` options as a dict; a later key wins."""
    return dict(parse_label(value, option) for value in values)


def label_callback(ctx: Any, param: Any, values: Sequence[str]) -> dict[str, str]:
    """A click callback for a repeatable ``--label KEY=VALUE`` option."""
    return parse_labels(values, "--label")


def with_labels(spec: Any, labels: Mapping[str, str]) -> Any:
    """The run spec with ``labels`` added (they win over the task file's own)."""
    if not labels:
        return spec
    return spec.model_copy(update={"labels": {**spec.labels, **labels}})


def labels_of(run: Any) -> dict[str, str]:
    """A ``runs`` row's labels (migration 0009 copied older runs' from their spec)."""
    return dict(getattr(run, "labels", None) or {})


def carries(labels: Mapping[str, str] | None, wanted: Mapping[str, str]) -> bool:
    """True when ``labels`` hold every ``wanted`` key with that value."""
    labels = labels or {}
    return all(key in labels and labels[key] == value for key, value in wanted.items())


def labels_text(labels: Mapping[str, str], sep: str = ", ") -> str:
    """``branch=main, pr=17`` in key order."""
    return sep.join(f"{key}={value}" for key, value in sorted(labels.items()))


def latest_run_with_labels(session: Any, wanted: Mapping[str, str]) -> str | None:
    """The id of the most recent run that carries every ``wanted`` label, or None.

    Runs are read newest first, a few hundred at a time, until one matches: label
    values live in a JSON column, which SQLite and PostgreSQL query differently.
    """
    from sqlalchemy import select

    from dtf.db.models import Run

    query = (
        select(Run.id, Run.labels)
        .order_by(Run.created_at.desc(), Run.id.desc())
        .execution_options(yield_per=500)
    )
    for run_id, labels in session.execute(query):
        if carries(labels, wanted):
            return run_id
    return None


def resolve_run_with_labels(session: Any, run_id: str | None, wanted: Mapping[str, str]) -> str:
    """``dtf report``'s RUN with ``--label``: the given run, which must carry the labels,
    else the most recent run carrying them; BadInput saying which when there is none."""
    from dtf.db.models import Run

    if run_id is not None:
        run = session.get(Run, run_id)
        if run is None:
            raise BadInput(f"no run with id {run_id!r}; `dtf status` shows the latest")
        if not carries(labels_of(run), wanted):
            raise BadInput(f"run {run_id} does not carry the label(s) {labels_text(wanted)}")
        return run_id
    found = latest_run_with_labels(session, wanted)
    if found is None:
        raise BadInput(f"no run carries the label(s) {labels_text(wanted)}")
    return found
