"""The result record of one test, shared by the pytest plugin, the runner and the planner."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

OUTCOMES: tuple[str, ...] = (
    "passed",
    "failed",
    "skipped",
    "xfailed",
    "xpassed",
    "error",
    "crashed",
    "timed_out",
    # recovery (docs/recovery.md): the child hit its memory limit; a test given up on at
    # level 5 (an infrastructure error, not a test failure); failed, then passed on a rerun
    "out_of_memory",
    "infra_error",
    "flaky",
)
WHENS: tuple[str, ...] = ("setup", "call", "teardown", "collect", "run")
MAX_TEXT_BYTES = 64 * 1024
# Room kept for the cut marker, so a bounded text stays within the limit.
_MARKER_ROOM = 64


def bounded(text: str | None, limit: int = MAX_TEXT_BYTES) -> str | None:
    """Keep head and tail of an over-long text with a '... [N bytes cut] ...' marker in between.

    The limit counts UTF-8 bytes; texts within it are returned unchanged.
    """
    if text is None:
        return None
    data = text.encode("utf-8", errors="surrogatepass")
    if len(data) <= limit:
        return text
    keep = max(limit - _MARKER_ROOM, 2)
    # "ignore" drops a multi-byte character split by the cut instead of mangling it.
    head = data[: keep // 2].decode("utf-8", errors="ignore")
    tail = data[len(data) - (keep - keep // 2) :].decode("utf-8", errors="ignore")
    cut = len(data) - len(head.encode("utf-8")) - len(tail.encode("utf-8"))
    return f"{head}\n... [{cut} bytes cut] ...\n{tail}"


@dataclass(frozen=True)
class TestRecord:
    """One result of one test, as counted by pytest's terminal summary.

    ``when`` is the pytest phase the result comes from, ``"collect"`` for a collection
    error, or ``"run"`` when the runner decided it (crash, timeout, never ran).
    ``duration`` covers the test's phases since its previous record: setup + call for a
    call result, the teardown alone for a teardown error.
    """

    __test__ = False  # not a test class, despite the name

    nodeid: str
    outcome: str
    when: str
    duration: float = 0.0
    longrepr: str | None = None
    stdout: str | None = None
    stderr: str | None = None
    #: 1, then 2.. for the reruns of a failed test
    attempt: int = 1
    #: a subtest's result (unittest's subTest, pytest's subtests): "#N description",
    #: N counting the test's subtest reports; "" for the test's own result
    subtest: str = ""

    def __post_init__(self) -> None:
        if self.outcome not in OUTCOMES:
            raise ValueError(f"unknown outcome {self.outcome!r}; expected one of {OUTCOMES}")
        if self.when not in WHENS:
            raise ValueError(f"unknown phase {self.when!r}; expected one of {WHENS}")

    def to_dict(self) -> dict:
        """Plain JSON-serialisable dict of the record's fields."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> TestRecord:
        """Build a record from ``to_dict`` output; unknown keys (e.g. ``"event"``) are ignored."""
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in names})
