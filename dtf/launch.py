"""Command lines for the Python processes dtf starts: ``python -m MODULE`` in which
``dtf`` is always dtf's own.

``python -m`` puts the current directory first on ``sys.path``; started in a project
that has a ``dtf.py`` or ``dtf/`` of its own, ``python -m celery -A dtf`` or
``-p dtf.pytest_plugin`` would import the project's instead. These commands import
``dtf`` before the directory is on ``sys.path``, then run the module as ``-m`` does.
"""

from __future__ import annotations

import sys

# `-c` puts "" first on sys.path, as `-m` puts the directory; `-P` (3.11+) puts nothing.
_BOOT = """\
import sys
if not getattr(sys.flags, "safe_path", False):
    del sys.path[0]
import dtf
if {keep_cwd} and not getattr(sys.flags, "safe_path", False):
    sys.path.insert(0, __import__("os").getcwd())
del dtf
# What `python -m` itself calls.
__import__("runpy")._run_module_as_main(sys.argv.pop(1), alter_argv=True)
"""


def python_module_command(
    module: str, *args: str, python: str = sys.executable, keep_cwd: bool = False
) -> list[str]:
    """``[python, -m, module, *args]`` that imports dtf's own ``dtf`` whatever the directory.

    ``keep_cwd``: the directory is on ``sys.path`` afterwards, as under ``python -m``
    (pytest children: ``python -m pytest`` makes a project's top-level modules
    importable); otherwise it is not (dtf's own processes: a project's files are
    imported only where a setting names them).
    """
    return [python, "-c", _BOOT.format(keep_cwd=keep_cwd), module, *args]
