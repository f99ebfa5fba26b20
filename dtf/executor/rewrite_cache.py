"""Keep pytest's assertion-rewritten test modules where Python may not write bytecode.

pytest rewrites the asserts of every test module it imports (read, parse,
rewrite, compile) and caches the result beside the module, in ``__pycache__``;
with ``PYTHONDONTWRITEBYTECODE`` set (as in many container images) it caches
nothing, and every pytest process pays the rewrite again for every module it
imports: ~65 % of collecting networkx's tests. xdist pays it once per worker;
dtf runs a suite as many pytest processes (the planner's collection, then each
batch its own modules) and would pay it once per process. So in its pytest
children dtf keeps those rewritten modules itself, in the user's cache folder,
never beside the sources: pytest's own pyc format, checked against the source's
hash on every read, one file per test module (a changed module overwrites its
entry). Without ``PYTHONDONTWRITEBYTECODE`` pytest's own cache does the job and
this one stays out of the way. ``DTF_REWRITE_CACHE=0`` turns it off;
``DTF_REWRITE_CACHE=DIR`` keeps the modules in DIR.
"""

from __future__ import annotations

import hashlib
import os
import sys
from collections.abc import Mapping
from pathlib import Path


def cache_dir(env: Mapping[str, str] | None = None) -> Path | None:
    """Where pytest children keep rewritten modules, or None when turned off."""
    env = os.environ if env is None else env
    setting = env.get("DTF_REWRITE_CACHE", "").strip()
    if setting == "0":
        return None
    if setting and setting != "1":
        return Path(setting)
    root = env.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(root) / "dtf" / "assert-rewrite"


def rewrite_cache_args(env: Mapping[str, str] | None) -> list[str]:
    """The pytest option that gives a child with environment ``env`` the cache."""
    folder = cache_dir(env)
    return [f"--dtf-rewrite-cache={folder}"] if folder is not None else []


def install(folder: Path, config) -> bool:
    """Make this pytest process read and write rewritten modules in ``folder`` while it
    may not write bytecode; False when not needed or when this pytest is unlike the
    versions it was written against (pytest then works as it always does)."""
    if not sys.dont_write_bytecode:
        return False
    try:
        from _pytest.assertion import rewrite
    except ImportError:
        return False
    needed = ("AssertionRewritingHook", "assertstate_key", "_read_pyc", "_rewrite_test",
              "_write_pyc", "PYTEST_TAG")  # fmt: skip
    if not all(hasattr(rewrite, name) for name in needed):
        return False
    hook_class = rewrite.AssertionRewritingHook
    if getattr(hook_class.exec_module, "dtf_cached", False):
        return True
    # The assertion-pass hook changes what rewriting produces.
    variant = f"{rewrite.PYTEST_TAG}-{bool(config.getini('enable_assertion_pass_hook'))}"
    folder = folder / variant

    def exec_module(self, module) -> None:
        fn = Path(module.__spec__.origin)
        state = self.config.stash[rewrite.assertstate_key]
        self._rewritten_names[module.__name__] = fn
        pyc = folder / (hashlib.sha256(str(fn).encode()).hexdigest()[:32] + ".pyc")
        code = rewrite._read_pyc(fn, pyc, state.trace)
        if code is None:
            source_hash, code = rewrite._rewrite_test(fn, self.config)
            self._writing_pyc = True
            try:
                folder.mkdir(parents=True, exist_ok=True)
                rewrite._write_pyc(state, code, source_hash, pyc)
            except OSError:
                pass  # a cache that cannot be written costs only the next rewrite
            finally:
                self._writing_pyc = False
        exec(code, module.__dict__)

    exec_module.dtf_cached = True  # type: ignore[attr-defined]
    hook_class.exec_module = exec_module
    return True
