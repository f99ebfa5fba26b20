"""Where Python may not write bytecode, dtf's pytest children share rewritten test modules."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from dtf.executor.rewrite_cache import cache_dir, rewrite_cache_args

FAILING = "def test_compare():\n    left = 1\n    assert left == {right}\n"


def run_pytest(suite: Path, cache: Path, *, dont_write: bool) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    if dont_write:
        env["PYTHONDONTWRITEBYTECODE"] = "1"
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "dtf.pytest_plugin",
         "--dtf-rewrite-cache", str(cache), str(suite)],
        cwd=suite, env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip


def cached_modules(cache: Path) -> list[Path]:
    return sorted(cache.rglob("*.pyc"))


def test_rewritten_modules_are_kept_in_the_cache_and_never_beside_the_sources(tmp_path):
    suite, cache = tmp_path / "suite", tmp_path / "cache"
    suite.mkdir()
    (suite / "test_a.py").write_text(FAILING.format(right=2))
    (suite / "test_b.py").write_text("def test_ok():\n    assert True\n")

    first = run_pytest(suite, cache, dont_write=True)
    written = {entry: entry.stat().st_mtime_ns for entry in cached_modules(cache)}
    second = run_pytest(suite, cache, dont_write=True)

    assert len(written) == 2
    assert {entry: entry.stat().st_mtime_ns for entry in cached_modules(cache)} == written
    assert not list(suite.rglob("__pycache__"))
    # Read back from the cache, the asserts are still rewritten: pytest explains them.
    for run in (first, second):
        assert "1 failed, 1 passed" in run.stdout
        assert "assert 1 == 2" in run.stdout


def test_an_edited_module_is_rewritten_again(tmp_path):
    suite, cache = tmp_path / "suite", tmp_path / "cache"
    suite.mkdir()
    module = suite / "test_a.py"
    module.write_text(FAILING.format(right=2))
    run_pytest(suite, cache, dont_write=True)
    [entry] = cached_modules(cache)
    before = entry.read_bytes()

    module.write_text(FAILING.format(right=3))
    edited = run_pytest(suite, cache, dont_write=True)

    assert "assert 1 == 3" in edited.stdout
    assert entry.read_bytes() != before


def test_where_bytecode_may_be_written_pytest_keeps_its_own_cache(tmp_path):
    suite, cache = tmp_path / "suite", tmp_path / "cache"
    suite.mkdir()
    (suite / "test_a.py").write_text(FAILING.format(right=2))

    run = run_pytest(suite, cache, dont_write=False)

    assert "assert 1 == 2" in run.stdout
    assert cached_modules(cache) == []
    assert list(suite.rglob("*-pytest-*.pyc"))


def test_the_cache_is_in_the_users_cache_folder_and_can_be_turned_off(tmp_path):
    env = {"XDG_CACHE_HOME": str(tmp_path)}

    assert cache_dir(env) == tmp_path / "dtf" / "assert-rewrite"
    # One word: pytest takes a word not starting with "-" for a path when it finds rootdir.
    assert rewrite_cache_args(env) == [f"--dtf-rewrite-cache={tmp_path / 'dtf' / 'assert-rewrite'}"]
    assert rewrite_cache_args({**env, "DTF_REWRITE_CACHE": "0"}) == []
    assert cache_dir({**env, "DTF_REWRITE_CACHE": str(tmp_path / "x")}) == tmp_path / "x"
