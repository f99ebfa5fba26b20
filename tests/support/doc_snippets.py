"""The code blocks of dtf's documentation, and how the documentation test runs each.

A fenced block may be preceded by an HTML comment (invisible once rendered)::

    <!-- doc-test: embedded cluster
    background celery -A dtf worker
    exit 1 -Q cuda -- refused: this machine has no CUDA device
    skip docker -- no Docker engine on the test machine
    -->

The first line names the set-ups a ``bash`` block runs on (``embedded``: the default,
no server; ``cluster``: Redis + PostgreSQL with a worker), or says ``not run -- WHY``;
a block that shows what a command prints says ``output of COMMAND``.
Each further line is a rule for the block's commands that contain its text: ``skip``
(with the reason), ``background`` (started, waited for until it serves, stopped at the
end), ``exit N[,M]`` (the exit codes the text promises). A ``bash`` block without a comment
runs on both set-ups. Other blocks are checked by their language.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
#: The documentation the test covers: the README and docs/, and the worker image's notes.
DOCUMENTS = ("README.md", "docs/*.md", "workers/README.md")
SETUPS = ("embedded", "cluster")

_BLOCK = re.compile(
    r"(?:<!-- doc-test:(?P<directive>.*?)-->\n)?^```(?P<lang>[\w-]*)\n(?P<body>.*?)^```",
    re.MULTILINE | re.DOTALL,
)


@dataclass
class Rule:
    kind: str  # skip | background | exit
    text: str
    reason: str = ""
    codes: tuple[int, ...] = (0,)


@dataclass
class Snippet:
    document: str
    line: int
    lang: str
    body: str
    setups: tuple[str, ...] = SETUPS
    not_run: str = ""
    output_of: str = ""  # the command whose output the block shows
    rules: list[Rule] = field(default_factory=list)

    @property
    def id(self) -> str:
        return f"{self.document}:{self.line}"

    def rule_for(self, command: str) -> Rule | None:
        return next((rule for rule in self.rules if rule.text in command), None)

    def commands(self) -> list[str]:
        """The block's command lines (comments and blank lines left out)."""
        return [
            line.strip()
            for line in self.body.splitlines()
            if line.strip() and not line.lstrip().startswith("#")
        ]


def _parse_directive(snippet: Snippet, directive: str) -> None:
    first, *rest = [line.strip() for line in directive.strip().splitlines() if line.strip()]
    if first.startswith("output of "):
        snippet.output_of = first.removeprefix("output of ").strip()
        snippet.setups = ()
        return
    if first.startswith("not run"):
        snippet.not_run = first.partition("--")[2].strip()
        if not snippet.not_run:
            raise ValueError(f"{snippet.id}: 'not run' needs a reason after --")
        snippet.setups = ()
    else:
        snippet.setups = tuple(first.split())
        unknown = set(snippet.setups) - set(SETUPS)
        if unknown:
            raise ValueError(f"{snippet.id}: unknown set-up {sorted(unknown)}")
    for line in rest:
        spec, _, reason = line.partition(" -- ")
        kind, _, text = spec.partition(" ")
        if kind == "exit":
            code, _, text = text.partition(" ")
            codes = tuple(int(c) for c in code.split(","))
            snippet.rules.append(Rule("exit", text.strip(), reason.strip(), codes))
        elif kind in ("skip", "background"):
            if kind == "skip" and not reason.strip():
                raise ValueError(f"{snippet.id}: 'skip {text}' needs a reason after --")
            snippet.rules.append(Rule(kind, text.strip(), reason.strip()))
        else:
            raise ValueError(f"{snippet.id}: unknown rule {line!r}")


def snippets() -> list[Snippet]:
    """Every fenced block of the documents, with its directive applied."""
    found = []
    for pattern in DOCUMENTS:
        for path in sorted(REPO.glob(pattern)):
            text = path.read_text()
            for match in _BLOCK.finditer(text):
                start = match.start("lang") - 3
                snippet = Snippet(
                    document=str(path.relative_to(REPO)),
                    line=text.count("\n", 0, start) + 1,
                    lang=match.group("lang"),
                    body=match.group("body"),
                )
                if match.group("directive") is not None:
                    _parse_directive(snippet, match.group("directive"))
                found.append(snippet)
    return found
