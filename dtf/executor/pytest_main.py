"""``python -m dtf.executor.pytest_main ARGS``: ``python -m pytest ARGS`` for a spawned child,
leaving without the interpreter's teardown.

Once pytest has returned, tearing down an interpreter that imported a suite's
dependencies (numpy, scipy, sympy, ...) and ran thousands of tests frees every object
and module one by one: 0.6-0.8 s of CPU for networkx's tests, per batch, spent while
another batch needs the core. What shutdown does that anyone can see still happens, as
a forked child does it (``warm.finish_like_interpreter_shutdown``): threading's exit
hooks, the non-daemon threads the tests left joined, atexit functions, output flushed.
An exception out of pytest itself takes the ordinary way out (traceback, exit code 1).
"""

from __future__ import annotations

import os
import sys

#: The module to run with ``python -m`` instead of ``pytest``.
PYTEST_MAIN = "dtf.executor.pytest_main"


def main() -> None:
    import _pytest.config
    import pytest

    from dtf.errors import exit_now, system_exit_code
    from dtf.executor.warm import finish_like_interpreter_shutdown, fresh_main

    # What sys.argv[0] and __main__ are under ``python -m pytest`` (multiprocessing's
    # spawn, for one, starts its children from __main__'s spec).
    sys.argv[0] = os.path.join(os.path.dirname(pytest.__file__), "__main__.py")
    fresh_main()
    # What pytest/__main__.py calls: _console_main since pytest 9.1 deprecated console_main.
    console_main = getattr(_pytest.config, "_console_main", None) or pytest.console_main
    try:
        code = console_main()
    except SystemExit as exc:
        code = system_exit_code(exc)
    finish_like_interpreter_shutdown()
    exit_now(int(code))


if __name__ == "__main__":
    main()
