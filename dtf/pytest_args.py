"""pytest's own options handed through dtf (``dtf run PATHS -- ARGS``, a task's ``pytest_args``).

They reach every collection and every batch unchanged, so pytest decides with them as it
would alone. The few that cannot mean the same thing when the tests run as batches in
many processes are refused, each with the reason. ``-x`` and ``--maxfail`` are the run's:
dtf takes them out of what pytest gets and stops the whole run (:func:`maxfail_of`).
"""

from __future__ import annotations

from collections.abc import Sequence

_DEBUGGER = "a debugger needs the terminal, and dtf's tests run in worker processes; run pytest"
_XDIST = "dtf spreads the tests over its workers itself; leave xdist's options out"
_CACHE = (
    "it needs pytest's cache of the last run, which dtf's batches do not keep; "
    "select tests with -k, -m or node ids"
)
_INFO = "it shows information instead of running tests; run pytest with it"

#: option -> why dtf refuses it (long options also match as ``--opt=value``)
REFUSED: dict[str, str] = {
    "--pdb": _DEBUGGER,
    "--trace": _DEBUGGER,
    "--pdbcls": _DEBUGGER,
    "-n": _XDIST,
    "--numprocesses": _XDIST,
    "--maxprocesses": _XDIST,
    "--dist": _XDIST,
    "-d": _XDIST,
    "--tx": _XDIST,
    "-f": _XDIST,
    "--looponfail": _XDIST,
    "--lf": _CACHE,
    "--last-failed": _CACHE,
    "--ff": _CACHE,
    "--failed-first": _CACHE,
    "--nf": _CACHE,
    "--new-first": _CACHE,
    "--sw": _CACHE,
    "--stepwise": _CACHE,
    "--sw-skip": _CACHE,
    "--stepwise-skip": _CACHE,
    "--cache-show": _CACHE,
    "--junitxml": "dtf writes the run's JUnit XML itself: use dtf's --junit-xml FILE",
    "--junit-xml": "dtf writes the run's JUnit XML itself: use dtf's --junit-xml FILE",
    "--basetemp": "every batch would empty the same directory while the others use it",
    "--collect-only": _INFO,
    "--co": _INFO,
    "-h": _INFO,
    "--help": _INFO,
    "-V": _INFO,
    "--version": _INFO,
    "--fixtures": _INFO,
    "--funcargs": _INFO,
    "--fixtures-per-test": _INFO,
    "--markers": _INFO,
}

# Short flags combine (-svf, -vn4): a refused flag inside such a word counts.
_SHORT_FLAGS = {name[1] for name in REFUSED if len(name) == 2}


def refused_option(args: Sequence[str]) -> tuple[str, str] | None:
    """The first option of ``args`` dtf cannot hand to pytest, with the reason; else None.

    Words after ``--`` are pytest's positional arguments, never options."""
    for word in args:
        if word == "--":
            return None
        if word.startswith("--"):
            name = word.split("=", 1)[0]
            if name in REFUSED:
                return name, REFUSED[name]
        elif word.startswith("-") and len(word) > 1:
            for flag in _short_flags(word):
                if flag in _SHORT_FLAGS:
                    return f"-{flag}", REFUSED[f"-{flag}"]
    return None


def _short_flags(word: str) -> str:
    """The flags of a word like ``-xvs``; stops at a flag that takes a value (-k, -m, -p, ...),
    whose value is the rest of the word."""
    takes_value = set("kmpoWcrn")
    flags = ""
    for char in word[1:]:
        flags += char
        if char in takes_value:
            break
    return flags


def maxfail_of(args: Sequence[str]) -> int | None:
    """The run's ``-x`` (1) or ``--maxfail N``, the last one given; None: no limit."""
    return _split_maxfail(args)[0]


def without_maxfail(args: Sequence[str]) -> list[str]:
    """``args`` less ``-x``, ``--exitfirst`` and ``--maxfail``: each batch gets the rest, and
    dtf stops the run as a whole."""
    return _split_maxfail(args)[1]


def _split_maxfail(args: Sequence[str]) -> tuple[int | None, list[str]]:
    maxfail: int | None = None
    kept: list[str] = []
    words = iter(args)
    for word in words:
        if word == "--":
            kept += [word, *words]
            break
        if word in ("-x", "--exitfirst"):
            maxfail = 1
        elif word == "--maxfail":
            maxfail = _count(next(words, ""))
        elif word.startswith("--maxfail="):
            maxfail = _count(word.split("=", 1)[1])
        elif word.startswith("-") and not word.startswith("--") and "x" in _short_flags(word):
            flags = _short_flags(word)
            maxfail = 1
            rest = flags.replace("x", "", 1) + word[1 + len(flags) :]
            kept += [f"-{rest}"] if rest else []
        else:
            kept.append(word)
    return (maxfail or None), kept


def _count(text: str) -> int:
    """pytest's --maxfail value (0: no limit); not a number: pytest's own error later."""
    try:
        return max(0, int(text))
    except ValueError:
        raise ValueError(f"--maxfail: expected a number, got {text!r}") from None
