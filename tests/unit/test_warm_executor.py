"""The warm ("fork") start method of run_pytest_batch, against real forked pytest children."""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
import types
from collections.abc import Iterator
from pathlib import Path

import pytest

from dtf.executor import pytest_runner, warm
from dtf.executor.collect import collect
from dtf.executor.pytest_runner import BatchOutcome, run_pytest_batch
from dtf.executor.records import TestRecord

SUITE = Path(__file__).resolve().parents[1] / "suites" / "outcomes"


@pytest.fixture(autouse=True)
def _forkable() -> None:
    if reason := warm.fork_unsafe_reason():
        pytest.skip(f"cannot fork warm children in this process: {reason}")


@pytest.fixture
def fresh_warnings(monkeypatch: pytest.MonkeyPatch) -> None:
    """Forget which fallbacks were already logged, so this test sees its own."""
    monkeypatch.setattr(pytest_runner, "_warned", set())


def write_suite(root: Path, files: dict[str, str]) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    (root / "pytest.ini").write_text("")
    for name, body in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(textwrap.dedent(body))
    return root


def run_batch(nodeids: list[str], root: Path, **kwargs) -> tuple[list[TestRecord], BatchOutcome]:
    records: list[TestRecord] = []
    kwargs.setdefault("test_timeout", 30.0)
    outcome = run_pytest_batch(nodeids, root, on_record=records.append, **kwargs)
    return records, outcome


def comparable(record: TestRecord) -> tuple:
    return (record.nodeid, record.outcome, record.when, record.longrepr, record.stdout,
            record.stderr)  # fmt: skip


def test_fork_gives_the_same_records_as_spawn() -> None:
    nodeids = [item.nodeid for item in collect([], SUITE).items]
    runs = {
        method: run_batch(nodeids, SUITE, test_timeout=1.0, start_method=method)
        for method in ("spawn", "fork")
    }
    (spawn_records, spawn), (fork_records, fork) = runs["spawn"], runs["fork"]
    assert [comparable(r) for r in fork_records] == [comparable(r) for r in spawn_records]
    assert fork.counts == spawn.counts
    assert fork.exit_codes == spawn.exit_codes
    assert fork.children == spawn.children == 3
    assert fork.start_methods == ["fork"] * 3
    assert spawn.start_methods == ["spawn"] * 3


def test_user_modules_do_not_leak_between_forked_batches(tmp_path: Path) -> None:
    def suite(name: str) -> Path:
        return write_suite(
            tmp_path / name,
            {
                "conftest.py": f"""
                import pytest

                @pytest.fixture
                def suite_name():
                    return "{name}"
                """,
                "helpers.py": f'NAME = "{name}"\n',
                "test_it.py": f"""
                import helpers

                def test_own_modules(suite_name):
                    assert helpers.NAME == "{name}"
                    assert suite_name == "{name}"
                """,
            },
        )

    for name in ("first", "second", "first"):
        records, outcome = run_batch(["test_it.py::test_own_modules"], suite(name),
                                     start_method="fork")  # fmt: skip
        assert [(r.outcome, r.longrepr) for r in records] == [("passed", None)], name
        assert outcome.start_methods == ["fork"]
    # The parent never imported the code under test.
    assert "helpers" not in sys.modules
    assert "test_it" not in sys.modules


def test_another_thread_makes_it_spawn_and_say_why(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, fresh_warnings: None
) -> None:
    root = write_suite(tmp_path, {"test_a.py": "def test_a():\n    pass\n"})
    stop = threading.Event()
    thread = threading.Thread(target=stop.wait, name="busy-thread")
    thread.start()
    try:
        with caplog.at_level(logging.WARNING, logger=pytest_runner.__name__):
            records, outcome = run_batch(["test_a.py::test_a"], root, start_method="fork")
    finally:
        stop.set()
        thread.join()
    assert [r.outcome for r in records] == ["passed"]
    assert outcome.start_methods == ["spawn"]
    assert "busy-thread" in caplog.text
    assert "instead of forking" in caplog.text
    # With the thread gone it forks again.
    _, outcome = run_batch(["test_a.py::test_a"], root, start_method="fork")
    assert outcome.start_methods == ["fork"]


@pytest.mark.parametrize("method", ["spawn", "fork"])
def test_startup_is_reported(tmp_path: Path, method: str) -> None:
    root = write_suite(tmp_path, {"test_a.py": "def test_a():\n    pass\n"})
    _, outcome = run_batch(["test_a.py::test_a"], root, start_method=method)
    assert outcome.startup_s > 0
    assert outcome.start_methods == [method]


@pytest.mark.parametrize("method", ["spawn", "fork"])
def test_a_child_whose_tests_left_a_thread_pool_running_exits_as_pytest_would(
    tmp_path: Path, method: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Interpreter shutdown tells a ThreadPoolExecutor nobody shut down to stop before it
    # joins the threads; a child that only joined them would wait for ever.
    monkeypatch.setattr(pytest_runner, "STALL_TIMEOUT_FLOOR", 20.0)  # a hang fails sooner
    root = write_suite(
        tmp_path,
        {
            "test_pool.py": """
            from concurrent.futures import ThreadPoolExecutor

            POOL = ThreadPoolExecutor(max_workers=2)

            def test_uses_a_pool_it_never_shuts_down():
                assert POOL.submit(lambda: 41 + 1).result() == 42
        """
        },
    )
    records, outcome = run_batch(
        ["test_pool.py::test_uses_a_pool_it_never_shuts_down"], root, start_method=method,
        test_timeout=5.0,
    )  # fmt: skip
    assert [r.outcome for r in records] == ["passed"]
    assert outcome.start_methods == [method]
    assert outcome.exit_codes == [0]


def test_startup_without_any_test_is_the_first_childs_life(tmp_path: Path) -> None:
    root = write_suite(tmp_path, {"test_a.py": "import no_such_module_here\n"})
    records, outcome = run_batch(["test_a.py::test_a"], root, start_method="fork")
    assert [r.outcome for r in records] == ["error"]
    assert outcome.startup_s > 0
    _, nothing = run_batch(["test_gone.py::test_x"], root, start_method="fork")
    assert nothing.startup_s == 0.0
    assert nothing.children == 0


def test_forked_child_that_crashes_is_reported_and_the_rest_runs(tmp_path: Path) -> None:
    root = write_suite(
        tmp_path,
        {
            "test_c.py": """
            import os, signal

            def test_before():
                pass

            def test_exit():
                os._exit(5)

            def test_between():
                pass

            def test_killed():
                os.kill(os.getpid(), signal.SIGKILL)

            def test_after():
                pass
            """
        },
    )
    wanted = [f"test_c.py::{name}" for name in ("before", "exit", "between", "killed", "after")]
    wanted = [n.replace("::", "::test_") for n in wanted]
    records, outcome = run_batch(wanted, root, start_method="fork")
    assert [(r.nodeid.split("::")[1], r.outcome) for r in records] == [
        ("test_before", "passed"),
        ("test_exit", "crashed"),
        ("test_between", "passed"),
        # A SIGKILL dtf did not send reads as an outside kill (OOM killer, operator):
        # retried, then an infrastructure error, never the test's fault.
        ("test_killed", "infra_error"),
        ("test_after", "passed"),
    ]
    assert "exited with code 5" in records[1].longrepr
    assert "SIGKILL" in records[3].longrepr
    assert outcome.start_methods == ["fork"] * 3
    assert outcome.exit_codes[:2] == [5, -signal.SIGKILL]


def test_forked_child_gets_env_cwd_and_its_own_output_without_touching_the_parent(
    tmp_path: Path,
) -> None:
    root = write_suite(
        tmp_path / "suite",
        {
            "test_env.py": """
            import logging, os, sys

            def test_env(tmp_path):
                assert os.environ["DTF_WARM_PROBE"] == "yes"
                assert os.getcwd() == os.environ["DTF_EXPECTED_CWD"]
                assert sys.argv[0].endswith(os.path.join("pytest", "__main__.py"))
                assert sys.path[0] == os.getcwd()
                logging.getLogger("some.library").error("logged in the child")
                os.environ["DTF_SET_BY_CHILD"] = "1"
                os.write(1, b"raw fd output\\n")
            """
        },
    )
    log_file = tmp_path / "parent.log"
    handler = logging.FileHandler(log_file)
    logging.getLogger().addHandler(handler)
    cwd = os.getcwd()
    try:
        records, outcome = run_batch(
            ["test_env.py::test_env"],
            root,
            start_method="fork",
            env={"DTF_WARM_PROBE": "yes", "DTF_EXPECTED_CWD": str(root)},
        )
    finally:
        logging.getLogger().removeHandler(handler)
        handler.close()
    assert [(r.outcome, r.longrepr) for r in records] == [("passed", None)]
    assert records[0].stdout == "raw fd output\n"
    assert outcome.start_methods == ["fork"]
    assert os.getcwd() == cwd
    assert "DTF_WARM_PROBE" not in os.environ
    assert "DTF_SET_BY_CHILD" not in os.environ
    # The child's log records went to pytest's capture, not to the parent's handlers.
    assert "logged in the child" not in log_file.read_text()


def test_forked_child_sees_the_process_state_a_spawned_one_sees(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, parent_ignores_sigterm: None
) -> None:
    # Things the parent changed at run time that a new interpreter would not have.
    monkeypatch.syspath_prepend(str(tmp_path / "parent-only"))
    root_logger = logging.getLogger()
    monkeypatch.setattr(root_logger, "handlers", [*root_logger.handlers, logging.NullHandler()])
    monkeypatch.setattr(root_logger, "level", logging.DEBUG)
    root = write_suite(
        tmp_path / "suite",
        {
            "test_probe.py": """
            import json, logging, os, signal, sys

            def test_probe():
                main = sys.modules["__main__"]
                state = {
                    "path": sys.path,
                    "argv0": sys.argv[0],
                    "main": getattr(main.__spec__, "name", None),
                    "cwd": os.getcwd(),
                    "sigterm": str(signal.getsignal(signal.SIGTERM)),
                    "sigint": str(signal.getsignal(signal.SIGINT)),
                    "root_handlers": sorted(
                        type(h).__name__ for h in logging.getLogger().handlers
                    ),
                    "root_level": logging.getLogger().level,
                    "stdin": os.path.realpath("/proc/self/fd/0"),
                }
                with open(os.environ["DTF_PROBE_OUT"], "w") as fh:
                    json.dump(state, fh)
            """
        },
    )
    seen = {}
    for method in ("spawn", "fork"):
        out = tmp_path / f"{method}.json"
        records, outcome = run_batch(
            ["test_probe.py::test_probe"],
            root,
            start_method=method,
            env={"DTF_PROBE_OUT": str(out)},
        )
        assert [(r.outcome, r.longrepr) for r in records] == [("passed", None)]
        assert outcome.start_methods == [method]
        seen[method] = json.loads(out.read_text())
    assert seen["fork"] == seen["spawn"]
    assert seen["fork"]["path"][0] == str(root)
    assert str(tmp_path / "parent-only") not in seen["fork"]["path"]


def test_python_env_variables_make_it_spawn(tmp_path: Path, fresh_warnings: None) -> None:
    root = write_suite(
        tmp_path,
        {
            "test_p.py": """
            import sys

            def test_path():
                assert "/dtf-extra-path" in sys.path
            """
        },
    )
    records, outcome = run_batch(
        ["test_p.py::test_path"], root, start_method="fork", env={"PYTHONPATH": "/dtf-extra-path"}
    )
    assert [r.outcome for r in records] == ["passed"]
    assert outcome.start_methods == ["spawn"]


def test_relative_pythonpath_makes_it_spawn(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fresh_warnings: None
) -> None:
    root = write_suite(
        tmp_path,
        {
            "lib/shared_helper.py": "VALUE = 42\n",
            "test_r.py": """
            import shared_helper

            def test_rel():
                assert shared_helper.VALUE == 42
            """,
        },
    )
    monkeypatch.setenv("PYTHONPATH", "lib")
    records, outcome = run_batch(["test_r.py::test_rel"], root, start_method="fork")
    assert [(r.outcome, r.longrepr) for r in records] == [("passed", None)]
    assert outcome.start_methods == ["spawn"]


def test_a_suite_module_named_like_a_parent_module_makes_it_spawn(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fresh_warnings: None
) -> None:
    # As if the worker had imported a package that the suite under test also contains
    # (say, a checkout of dtf itself): a fork would hand the suite the parent's copy.
    parents_copy = types.ModuleType("dtf_shadow_probe")
    parents_copy.WHOSE = "parent"
    monkeypatch.setitem(sys.modules, "dtf_shadow_probe", parents_copy)
    root = write_suite(
        tmp_path,
        {
            "dtf_shadow_probe.py": 'WHOSE = "suite"\n',
            "test_s.py": """
            import dtf_shadow_probe

            def test_whose():
                assert dtf_shadow_probe.WHOSE == "suite"
            """,
        },
    )
    records, outcome = run_batch(["test_s.py::test_whose"], root, start_method="fork")
    assert [(r.outcome, r.longrepr) for r in records] == [("passed", None)]
    assert outcome.start_methods == ["spawn"]


@pytest.fixture
def parent_ignores_sigterm() -> Iterator[None]:
    """A Python-level SIGTERM handler in the parent, as a Celery pool process has."""
    previous = signal.signal(signal.SIGTERM, lambda *_: None)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def test_parent_signal_handlers_are_not_inherited(
    tmp_path: Path, parent_ignores_sigterm: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(pytest_runner, "KILL_GRACE", 60.0)
    root = write_suite(
        tmp_path,
        {
            "test_h.py": """
            import time

            def test_hang():
                time.sleep(3600)

            def test_after():
                pass
            """
        },
    )
    started = time.monotonic()
    records, outcome = run_batch(
        ["test_h.py::test_hang", "test_h.py::test_after"], root, test_timeout=0.5,
        start_method="fork",
    )  # fmt: skip
    assert [r.outcome for r in records] == ["timed_out", "passed"]
    # SIGTERM ended it: the parent's handler would have ignored it until the KILL_GRACE.
    assert outcome.exit_codes[0] == -signal.SIGTERM
    assert time.monotonic() - started < 60.0


def test_start_method_choice(monkeypatch: pytest.MonkeyPatch, fresh_warnings: None) -> None:
    resolve = pytest_runner._resolve_start_method
    monkeypatch.delenv("DTF_EXECUTOR", raising=False)
    linux = sys.platform.startswith("linux")
    assert resolve(None, sys.executable) == ("fork" if linux else "spawn")
    assert resolve(None, "/other/python") == "spawn"
    assert resolve("fork", "/other/python") == "spawn"
    assert resolve("spawn", sys.executable) == "spawn"
    monkeypatch.setenv("DTF_EXECUTOR", "spawn")
    assert resolve(None, sys.executable) == "spawn"
    assert resolve("fork", sys.executable) == "fork"
    monkeypatch.setenv("DTF_EXECUTOR", "fork")
    assert resolve(None, sys.executable) == "fork"
    monkeypatch.setenv("DTF_EXECUTOR", "bogus")
    assert resolve(None, sys.executable) == ("fork" if linux else "spawn")
    with pytest.raises(ValueError, match="start_method"):
        resolve("forkserver", sys.executable)


def test_compare_start_up_of_spawn_and_fork(tmp_path: Path) -> None:
    """Not an assertion on time: prints the numbers (run with -s to see them)."""
    root = write_suite(tmp_path, {"test_one.py": "def test_one():\n    pass\n"})
    warm.warm_up()
    lines = []
    for method in ("spawn", "fork"):
        startups = []
        began = time.perf_counter()
        for _ in range(10):
            records, outcome = run_batch(["test_one.py::test_one"], root, start_method=method)
            assert [r.outcome for r in records] == ["passed"]
            startups.append(outcome.startup_s)
        total = time.perf_counter() - began
        lines.append(
            f"{method:>5}: 10 one-test batches in {total:.3f}s "
            f"({total / 10 * 1000:.0f} ms per batch, "
            f"start-up {sum(startups) / 10 * 1000:.0f} ms mean, "
            f"{min(startups) * 1000:.0f} ms min)"
        )
    print("\n" + "\n".join(lines))


def test_a_failed_fork_spawns_instead(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fresh_warnings: None
) -> None:
    def no_fork() -> int:
        raise BlockingIOError(11, "Resource temporarily unavailable")

    monkeypatch.setattr(os, "fork", no_fork)
    root = write_suite(tmp_path, {"test_a.py": "def test_a():\n    pass\n"})
    records, outcome = run_batch(["test_a.py::test_a"], root, start_method="fork")
    assert [r.outcome for r in records] == ["passed"]
    assert outcome.start_methods == ["spawn"]


def test_a_child_that_fails_before_pytest_leaves_with_os_exit(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    parent = os.getpid()

    def broken_child_main(*args: object) -> int:
        raise RuntimeError(f"child setup failed (forked from {parent})")

    # Inherited by the fork: its setup raises before pytest starts.
    monkeypatch.setattr(warm, "_child_main", broken_child_main)
    root = write_suite(tmp_path, {"test_a.py": "def test_a():\n    pass\n"})
    records, outcome = run_batch(["test_a.py::test_a"], root, start_method="fork")
    # Only this process got here: the child left through os._exit, never returning.
    assert os.getpid() == parent
    assert [(r.outcome, r.when) for r in records] == [("error", "run")]
    assert f"exited with code {warm.CHILD_FAILED}" in records[0].longrepr
    assert "RuntimeError: child setup failed" in records[0].longrepr
    assert outcome.exit_codes == [warm.CHILD_FAILED]
    assert outcome.startup_s > 0


def test_installed_pytest_plugins_are_preloaded_with_their_asserts_rewritten() -> None:
    # In a fresh interpreter: this test process's pytest has imported them already.
    code = textwrap.dedent(
        """
        import json, sys
        from dtf.executor import warm
        loaded = warm.preload_entry_point_plugins()
        loader = type(sys.modules["xdist.plugin"].__loader__).__name__
        print(json.dumps({"loaded": loaded, "loader": loader}))
        """
    )
    env = {k: v for k, v in os.environ.items() if k != "PYTEST_DISABLE_PLUGIN_AUTOLOAD"}
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, env=env
    ).stdout
    result = json.loads(out)
    assert "xdist.plugin" in result["loaded"]
    assert result["loader"] == "AssertionRewritingHook"


def test_plugins_whose_code_is_outside_site_packages_are_left_to_the_children(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # An editable install (pip install -e) puts the checkout, maybe the project under
    # test, on the path: forked children must import it themselves.
    (tmp_path / "pytest_checkout_plugin.py").write_text("")
    monkeypatch.syspath_prepend(str(tmp_path))
    assert not warm._installed_in_site_packages("pytest_checkout_plugin")
    assert warm._installed_in_site_packages("xdist")


def test_a_forked_child_registers_the_preloaded_plugins_without_warnings(tmp_path: Path) -> None:
    root = write_suite(
        tmp_path,
        {
            "test_plugins.py": """
                def test_xdist_is_registered(request):
                    assert request.config.pluginmanager.has_plugin("xdist")
            """
        },
    )
    warm.warm_up()
    records, outcome = run_batch(
        ["test_plugins.py::test_xdist_is_registered"],
        root,
        start_method="fork",
        extra_args=["-W", "error::pytest.PytestAssertRewriteWarning"],
    )
    assert outcome.start_methods == ["fork"]
    assert [(r.outcome, r.longrepr) for r in records] == [("passed", None)]


def test_a_child_forked_from_a_daemonic_pool_process_may_start_processes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import multiprocessing

    if warm.fork_unsafe_reason():
        pytest.skip("cannot fork warm children in this process")
    # What a Celery pool process is: multiprocessing's current process is a daemon.
    current = multiprocessing.current_process()
    monkeypatch.setattr(current, "_config", {**current._config, "daemon": True})
    root = write_suite(
        tmp_path,
        {
            "test_pool.py": """
            import multiprocessing

            def test_a_pool_of_its_own():
                with multiprocessing.get_context("fork").Pool(2) as pool:
                    assert pool.map(abs, [-1, -2]) == [1, 2]
            """
        },
    )
    records, _ = run_batch(["test_pool.py::test_a_pool_of_its_own"], root, start_method="fork")
    assert [(r.outcome, r.longrepr) for r in records] == [("passed", None)]
