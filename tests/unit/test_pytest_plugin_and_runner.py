"""The dtf pytest plugin and run_pytest_batch, against real pytest child processes.

Every runner test runs under both start methods: "spawn" (a new interpreter per child)
and "fork" (warm children forked from this process, see dtf.executor.warm).
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import textwrap
import threading
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import pytest

from dtf.executor import pytest_runner, warm
from dtf.executor.collect import Collection, collect
from dtf.executor.pytest_runner import BatchOutcome, run_pytest_batch
from dtf.executor.records import MAX_TEXT_BYTES, OUTCOMES, TestRecord, bounded

SUITE = Path(__file__).resolve().parents[1] / "suites" / "outcomes"
UNSTABLE_FILES = ("test_crash.py", "test_hang.py")


def write_suite(root: Path, files: dict[str, str]) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    (root / "pytest.ini").write_text("")
    for name, body in files.items():
        (root / name).write_text(textwrap.dedent(body))
    return root


@dataclass
class Run:
    collection: Collection
    records: list[TestRecord]
    threads: set[int]
    outcome: BatchOutcome

    def of(self, nodeid: str) -> list[tuple[str, str]]:
        return [(r.outcome, r.when) for r in self.records if r.nodeid == nodeid]

    def record(self, nodeid: str) -> TestRecord:
        (found,) = [r for r in self.records if r.nodeid == nodeid]
        return found


def run_batch(nodeids: list[str], root: Path, **kwargs) -> tuple[list[TestRecord], BatchOutcome]:
    records: list[TestRecord] = []
    kwargs.setdefault("test_timeout", 30.0)
    outcome = run_pytest_batch(nodeids, root, on_record=records.append, **kwargs)
    return records, outcome


@pytest.fixture(scope="module", params=["spawn", "fork"])
def start_method(request: pytest.FixtureRequest) -> str:
    if request.param == "fork" and (reason := warm.fork_unsafe_reason()):
        pytest.skip(f"cannot fork warm children in this process: {reason}")
    return request.param


@pytest.fixture(scope="module")
def suite_run(start_method: str) -> Run:
    collection = collect([], SUITE)
    records: list[TestRecord] = []
    threads: set[int] = set()

    def on_record(record: TestRecord) -> None:
        threads.add(threading.get_ident())
        records.append(record)

    outcome = run_pytest_batch(
        [item.nodeid for item in collection.items],
        SUITE,
        test_timeout=2.0,
        on_record=on_record,
        start_method=start_method,
    )
    return Run(collection, records, threads, outcome)


def plain_pytest_counts(root: Path, *args: str) -> Counter[str]:
    """Counts from the summary line of a plain pytest run (no dtf plugin)."""
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", *args],
        cwd=root,
        capture_output=True,
        text=True,
        check=False,
    )
    summary = proc.stdout.strip().splitlines()[-1]
    assert " in " in summary, proc.stdout
    counts: Counter[str] = Counter()
    for number, word in re.findall(r"(\d+) (\w+)", summary):
        word = {"errors": "error"}.get(word, word)
        if word in OUTCOMES:
            counts[word] += int(number)
    return counts


def test_counts_equal_plain_pytest(suite_run: Run) -> None:
    expected = plain_pytest_counts(
        SUITE,
        "--continue-on-collection-errors",
        *(f"--ignore={name}" for name in UNSTABLE_FILES),
    )
    ours = Counter(r.outcome for r in suite_run.records if not r.nodeid.startswith(UNSTABLE_FILES))
    ours.update(e.outcome for e in suite_run.collection.errors)
    assert ours == expected
    # The suite really contains every outcome pytest reports.
    assert set(expected) == {"passed", "failed", "skipped", "xfailed", "xpassed", "error"}


def test_batch_counts_match_the_records(suite_run: Run) -> None:
    assert suite_run.outcome.counts == dict(Counter(r.outcome for r in suite_run.records))


def test_crashing_test_is_one_crashed_record_and_the_rest_still_run(suite_run: Run) -> None:
    assert suite_run.of("test_crash.py::test_before_crash") == [("passed", "call")]
    assert suite_run.of("test_crash.py::test_crash") == [("crashed", "run")]
    assert suite_run.of("test_crash.py::test_after_crash") == [("passed", "call")]
    assert "exited with code 3" in suite_run.record("test_crash.py::test_crash").longrepr


def test_hanging_test_times_out_and_the_rest_still_run(suite_run: Run) -> None:
    assert suite_run.of("test_hang.py::test_hang") == [("timed_out", "run")]
    assert suite_run.of("test_hang.py::test_after_hang") == [("passed", "call")]
    record = suite_run.record("test_hang.py::test_hang")
    assert record.longrepr == "test exceeded its timeout of 2s"


def test_a_new_child_follows_each_crash_and_hang(suite_run: Run, start_method: str) -> None:
    assert suite_run.outcome.children == 3
    assert suite_run.outcome.start_methods == [start_method] * 3
    crash_exit, hang_exit, _ = suite_run.outcome.exit_codes
    assert crash_exit == 3
    assert hang_exit < 0  # killed by a signal


def test_records_arrive_in_run_order_on_the_calling_thread(suite_run: Run) -> None:
    wanted = [item.nodeid for item in suite_run.collection.items]
    assert list(dict.fromkeys(r.nodeid for r in suite_run.records)) == wanted
    assert suite_run.threads == {threading.get_ident()}


def test_odd_node_ids_round_trip(suite_run: Run) -> None:
    wanted = [item.nodeid for item in suite_run.collection.items]
    odd = [n for n in wanted if "test_odd_ids[" in n] + ["test_outcomes.py::test_grüße"]
    assert len(odd) == 8
    for nodeid in odd:
        assert suite_run.of(nodeid) == [("passed", "call")], nodeid


def test_outcome_rules(suite_run: Run) -> None:
    expected = {
        "test_outcomes.py::test_failed": [("failed", "call")],
        "test_outcomes.py::test_skipped_marker": [("skipped", "setup")],
        "test_outcomes.py::test_skipped_runtime": [("skipped", "call")],
        "test_outcomes.py::test_xfailed": [("xfailed", "call")],
        "test_outcomes.py::test_xfailed_runtime": [("xfailed", "call")],
        "test_outcomes.py::test_xfailed_not_run": [("xfailed", "setup")],
        "test_outcomes.py::test_xpassed": [("xpassed", "call")],
        "test_outcomes.py::test_xpassed_strict": [("failed", "call")],
        "test_outcomes.py::test_setup_error": [("error", "setup")],
        "test_outcomes.py::test_teardown_error_after_pass": [
            ("passed", "call"),
            ("error", "teardown"),
        ],
        "test_outcomes.py::test_teardown_error_after_failure": [
            ("failed", "call"),
            ("error", "teardown"),
        ],
    }
    assert {nodeid: suite_run.of(nodeid) for nodeid in expected} == expected
    assert "setup boom" in suite_run.record("test_outcomes.py::test_setup_error").longrepr
    assert (
        "skipped at runtime" in suite_run.record("test_outcomes.py::test_skipped_runtime").longrepr
    )


def test_captured_output_is_in_the_record(suite_run: Run) -> None:
    printed = suite_run.record("test_outcomes.py::test_prints")
    assert printed.stdout == "hello on stdout\n"
    assert printed.stderr == "hello on stderr\n"
    failed = suite_run.record("test_outcomes.py::test_failed")
    assert "output of a failing test" in failed.stdout
    assert "assert (1 + 1) == 3" in failed.longrepr


def test_records_stream_while_the_child_runs(tmp_path: Path, start_method: str) -> None:
    # test_second waits for a file that on_record writes when test_first's record
    # arrives; it can only pass if records are delivered while the child is running.
    flag = tmp_path / "first-arrived"
    root = write_suite(
        tmp_path / "suite",
        {
            "test_stream.py": """
        import os, time
        from pathlib import Path

        def test_first():
            pass

        def test_second():
            flag = Path(os.environ["DTF_TEST_FLAG"])
            while not flag.exists():
                time.sleep(0.01)
    """
        },
    )
    seen: list[TestRecord] = []

    def on_record(record: TestRecord) -> None:
        seen.append(record)
        if record.nodeid.endswith("test_first"):
            flag.touch()

    run_pytest_batch(
        ["test_stream.py::test_first", "test_stream.py::test_second"],
        root,
        test_timeout=30.0,
        on_record=on_record,
        env={"DTF_TEST_FLAG": str(flag)},
        start_method=start_method,
    )
    assert [(r.nodeid, r.outcome) for r in seen] == [
        ("test_stream.py::test_first", "passed"),
        ("test_stream.py::test_second", "passed"),
    ]


def test_only_the_selected_ids_run_in_the_given_order(tmp_path: Path, start_method: str) -> None:
    root = write_suite(
        tmp_path,
        {
            "test_a.py": "def test_1():\n    pass\n\ndef test_2():\n    pass\n",
            "test_b.py": "def test_3():\n    pass\n",
        },
    )
    wanted = ["test_b.py::test_3", "test_a.py::test_2"]
    records, outcome = run_batch(wanted, root, start_method=start_method)
    assert [(r.nodeid, r.outcome) for r in records] == [(n, "passed") for n in wanted]
    assert outcome == BatchOutcome(
        counts={"passed": 2},
        children=1,
        exit_codes=[0],
        startup_s=outcome.startup_s,
        start_methods=[start_method],
    )
    assert outcome.startup_s > 0


def test_module_failing_to_import_gives_error_records(tmp_path: Path, start_method: str) -> None:
    root = write_suite(
        tmp_path,
        {
            "test_ok.py": "def test_ok():\n    pass\n",
            "test_broken.py": """
            import module_missing_on_this_worker

            def test_one():
                pass

            def test_two():
                pass
        """,
        },
    )
    wanted = ["test_broken.py::test_one", "test_ok.py::test_ok", "test_broken.py::test_two"]
    records, outcome = run_batch(wanted, root, start_method=start_method)
    assert [(r.nodeid, r.outcome, r.when) for r in records] == [
        ("test_ok.py::test_ok", "passed", "call"),
        ("test_broken.py::test_one", "error", "run"),
        ("test_broken.py::test_two", "error", "run"),
    ]
    for record in records[1:]:
        assert "collection of test_broken.py failed" in record.longrepr
        assert "No module named 'module_missing_on_this_worker'" in record.longrepr
    assert outcome.children == 1


def test_unknown_ids_and_missing_files_are_errors(tmp_path: Path, start_method: str) -> None:
    root = write_suite(tmp_path, {"test_a.py": "def test_a():\n    pass\n"})
    wanted = ["test_a.py::test_a", "test_a.py::test_gone", "test_gone.py::test_x"]
    records, outcome = run_batch(wanted, root, start_method=start_method)
    assert sorted((r.nodeid, r.outcome) for r in records) == [
        ("test_a.py::test_a", "passed"),
        ("test_a.py::test_gone", "error"),
        ("test_gone.py::test_x", "error"),
    ]
    by_id = {r.nodeid: r for r in records}
    assert "did not run" in by_id["test_a.py::test_gone"].longrepr
    assert "file not found on this worker: test_gone.py" in by_id["test_gone.py::test_x"].longrepr
    assert outcome.children == 1


def test_usage_error_gives_error_records_without_looping(tmp_path: Path, start_method: str) -> None:
    two_tests = "def test_a():\n    pass\n\ndef test_b():\n    pass\n"
    root = write_suite(tmp_path, {"test_a.py": two_tests})
    records, outcome = run_batch(
        ["test_a.py::test_a", "test_a.py::test_b"],
        root,
        extra_args=["--no-such-option"],
        start_method=start_method,
    )
    assert [(r.outcome, r.when) for r in records] == [("error", "run")] * 2
    assert "exited with code 4" in records[0].longrepr
    assert "unrecognized arguments: --no-such-option" in records[0].longrepr
    assert outcome.children == 1
    assert outcome.exit_codes == [4]


def test_segfault_is_a_crash_with_the_signal_and_stderr(tmp_path: Path, start_method: str) -> None:
    root = write_suite(
        tmp_path,
        {
            "test_segv.py": """
        import ctypes

        def test_segv():
            ctypes.string_at(0)

        def test_after():
            pass
    """
        },
    )
    records, outcome = run_batch(
        ["test_segv.py::test_segv", "test_segv.py::test_after"], root, start_method=start_method
    )
    assert [(r.outcome, r.when) for r in records] == [("crashed", "run"), ("passed", "call")]
    assert "SIGSEGV" in records[0].longrepr
    assert "Fatal Python error" in records[0].longrepr  # faulthandler's dump, from stderr
    assert outcome.children == 2


def test_crash_in_teardown_adds_a_crashed_record(tmp_path: Path, start_method: str) -> None:
    root = write_suite(
        tmp_path,
        {
            "test_td.py": """
        import os
        import pytest

        @pytest.fixture
        def dies_in_teardown():
            yield
            os._exit(7)

        def test_passes(dies_in_teardown):
            pass

        def test_after():
            pass
    """
        },
    )
    records, _ = run_batch(
        ["test_td.py::test_passes", "test_td.py::test_after"], root, start_method=start_method
    )
    assert [(r.nodeid, r.outcome) for r in records] == [
        ("test_td.py::test_passes", "passed"),
        ("test_td.py::test_passes", "crashed"),
        ("test_td.py::test_after", "passed"),
    ]


def test_stalled_collection_is_killed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, start_method: str
) -> None:
    monkeypatch.setattr(pytest_runner, "STALL_TIMEOUT_FLOOR", 0.5)
    root = write_suite(
        tmp_path,
        {
            "test_stuck.py": """
        import time
        time.sleep(3600)

        def test_a():
            pass
    """
        },
    )
    records, outcome = run_batch(
        ["test_stuck.py::test_a"], root, test_timeout=0.5, start_method=start_method
    )
    assert [(r.outcome, r.when) for r in records] == [("error", "run")]
    assert "made no progress" in records[0].longrepr
    assert outcome.children == 1
    assert outcome.exit_codes[0] < 0


def test_failing_callback_stops_the_child(tmp_path: Path, start_method: str) -> None:
    pid_file = tmp_path / "pid"
    root = write_suite(
        tmp_path / "suite",
        {
            "test_slow.py": """
        import os, time
        from pathlib import Path

        def test_first():
            pass

        def test_slow():
            Path(os.environ["DTF_PID_FILE"]).write_text(str(os.getpid()))
            time.sleep(3600)
    """
        },
    )

    def on_record(record: TestRecord) -> None:
        for _ in range(3000):  # let the child get into test_slow
            if pid_file.exists() and pid_file.read_text():
                break
            time.sleep(0.01)
        raise RuntimeError("database is down")

    with pytest.raises(RuntimeError, match="database is down"):
        run_pytest_batch(
            ["test_slow.py::test_first", "test_slow.py::test_slow"],
            root,
            test_timeout=30.0,
            on_record=on_record,
            env={"DTF_PID_FILE": str(pid_file)},
            start_method=start_method,
        )
    with pytest.raises(ProcessLookupError):
        os.kill(int(pid_file.read_text()), 0)


def test_plugin_is_inert_but_registers_the_marker(tmp_path: Path) -> None:
    root = write_suite(
        tmp_path,
        {
            "test_m.py": """
        import pytest

        @pytest.mark.dtf(hardware="cpu")
        def test_m():
            pass
    """
        },
    )
    cmd = [sys.executable, "-m", "pytest", "-p", "dtf.pytest_plugin", "-p", "no:cacheprovider"]
    run = subprocess.run(
        [*cmd, "--strict-markers"], cwd=root, capture_output=True, text=True, check=False
    )
    assert run.returncode == 0, run.stdout
    assert sorted(p.name for p in root.iterdir() if p.name != "__pycache__") == [
        "pytest.ini",
        "test_m.py",
    ]
    markers = subprocess.run(
        [*cmd, "--markers"], cwd=root, capture_output=True, text=True, check=True
    )
    assert "@pytest.mark.dtf(**requirements)" in markers.stdout


def test_record_round_trips_through_a_dict() -> None:
    record = TestRecord(
        nodeid="t.py::test[a b]",
        outcome="failed",
        when="call",
        duration=1.5,
        longrepr="boom",
        stdout="out",
        stderr=None,
    )
    assert TestRecord.from_dict({"event": "result", **record.to_dict()}) == record
    with pytest.raises(ValueError):
        TestRecord(nodeid="t.py::t", outcome="exploded", when="call")


def test_bounded_keeps_head_and_tail() -> None:
    assert bounded(None) is None
    assert bounded("short") == "short"
    text = "HEAD" + "x" * (MAX_TEXT_BYTES * 2) + "TAIL"
    cut = bounded(text)
    assert cut.startswith("HEAD")
    assert cut.endswith("TAIL")
    assert re.search(r"\.\.\. \[\d+ bytes cut\] \.\.\.", cut)
    assert len(cut.encode()) <= MAX_TEXT_BYTES
    number = int(re.search(r"\[(\d+) bytes cut\]", cut).group(1))
    assert len(cut.encode()) - len(cut.split("\n")[1]) - 2 + number == len(text.encode())
    # A multi-byte character split by the cut is dropped, not mangled.
    wide = bounded("ü" * 1000, limit=301)
    assert wide.startswith("ü" * 50)
    assert wide.endswith("ü" * 50)
    assert len(wide.encode()) <= 301


class HandTheSecondHalf(pytest_runner.Handoff):
    """Says a slot is idle the ``idle_at``-th time it is asked (the first time is when
    the batch starts, the next ones while its child runs tests)."""

    def __init__(self, idle_at: int | tuple[int, ...] = 1) -> None:
        self.handed: list[list[str]] = []
        self.asked = 0
        self.idle_at = idle_at if isinstance(idle_at, tuple) else (idle_at,)

    def wanted(self) -> bool:
        self.asked += 1
        return self.asked in self.idle_at

    def first_to_hand(self, pending: list[str], measured, startup_s: float) -> str | None:
        return pending[len(pending) // 2]

    def hand(self, nodeids: list[str]) -> None:
        self.handed.append(nodeids)


def sleepy_suite(root: Path, count: int) -> list[str]:
    """A module of ``count`` tests of 0.2 s sharing a module fixture; their node ids."""
    write_suite(
        root,
        {
            "test_slow.py": f"""
                import time
                import pytest

                @pytest.fixture(scope="module")
                def shared():
                    yield "set up once"

                @pytest.mark.parametrize("n", range({count}))
                def test_slow(n, shared):
                    time.sleep(0.2)
            """
        },
    )
    return [f"test_slow.py::test_slow[{n}]" for n in range(count)]


def test_handoff_gives_the_tests_not_started_to_another_worker(
    tmp_path: Path, start_method: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(pytest_runner, "HANDOFF_CHECK_S", 0.0)
    nodeids = sleepy_suite(tmp_path, 8)
    handoff = HandTheSecondHalf(idle_at=2)  # no slot idle at the start; one later
    records, outcome = run_batch(nodeids, tmp_path, start_method=start_method, handoff=handoff)

    (handed,) = handoff.handed
    ran = [r.nodeid for r in records]
    # Every test either ran here or was handed away, in order, never both.
    assert ran + handed == nodeids
    assert 1 <= len(handed) < len(nodeids) - 1  # handed while the child ran tests
    assert outcome.handed_off == handed
    assert outcome.counts == {"passed": len(ran)}
    # The child stopped cleanly after its share: no second child, no error records.
    assert outcome.children == 1 and outcome.exit_codes == [0]


def test_handoff_that_fails_leaves_the_tests_to_this_batch(
    tmp_path: Path, start_method: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(pytest_runner, "HANDOFF_CHECK_S", 0.0)

    class BrokerDown(HandTheSecondHalf):
        def hand(self, nodeids: list[str]) -> None:
            raise ConnectionError("broker unreachable")

    nodeids = sleepy_suite(tmp_path, 6)
    records, outcome = run_batch(
        nodeids, tmp_path, start_method=start_method, handoff=BrokerDown(idle_at=2)
    )
    assert sorted(r.nodeid for r in records) == sorted(nodeids)
    assert {r.outcome for r in records} == {"passed"}
    assert outcome.handed_off == []


def test_a_slot_idle_when_the_batch_starts_gets_half_before_anything_is_collected(
    tmp_path: Path, start_method: str
) -> None:
    root = write_suite(
        tmp_path,
        {
            "test_a.py": "def test_1():\n    pass\n\ndef test_2():\n    pass\n",
            "test_b.py": "def test_3():\n    pass\n\ndef test_4():\n    pass\n",
        },
    )
    nodeids = ["test_a.py::test_1", "test_a.py::test_2", "test_b.py::test_3", "test_b.py::test_4"]
    handoff = HandTheSecondHalf()
    records, outcome = run_batch(nodeids, root, start_method=start_method, handoff=handoff)
    assert handoff.handed == [nodeids[2:]]
    assert [r.nodeid for r in records] == nodeids[:2]
    assert outcome.handed_off == nodeids[2:] and outcome.children == 1


def test_a_batch_may_hand_off_twice_and_never_hands_a_test_twice(
    tmp_path: Path, start_method: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(pytest_runner, "HANDOFF_CHECK_S", 0.0)
    nodeids = sleepy_suite(tmp_path, 16)
    handoff = HandTheSecondHalf(idle_at=(2, 3, 4, 5, 6, 7, 8))
    records, outcome = run_batch(nodeids, tmp_path, start_method=start_method, handoff=handoff)

    assert len(handoff.handed) >= 2
    handed = [n for part in handoff.handed for n in part]
    ran = [r.nodeid for r in records]
    assert sorted(ran + handed) == sorted(nodeids) and len(set(handed)) == len(handed)
    assert outcome.handed_off == handed and outcome.exit_codes == [0]


def test_a_stopped_task_ends_the_child_after_its_current_test_and_runs_no_more(
    tmp_path: Path, start_method: str
) -> None:
    root = write_suite(
        tmp_path,
        {
            "test_many.py": """
            import os, time
            import pytest

            @pytest.mark.parametrize("i", range(30))
            def test_step(i):
                # Later tests wait for the stop, so that it comes while one runs.
                deadline = time.monotonic() + 30
                while i and not os.path.exists("stopped") and time.monotonic() < deadline:
                    time.sleep(0.01)
                # The stop reaches the child a moment after "stopped" exists: without
                # this, a loaded machine runs every later test before it arrives.
                time.sleep(0.2 if i else 0)
            """,
            "test_more.py": "def test_later():\n    pass\n",
        },
    )
    nodeids = [f"test_many.py::test_step[{i}]" for i in range(30)] + ["test_more.py::test_later"]
    records: list[TestRecord] = []
    outcome = run_pytest_batch(
        nodeids,
        root,
        test_timeout=30,
        on_record=records.append,
        start_method=start_method,
        # -x as the worker sees it: the task stopped once a test had a result.
        stop=lambda: "after_test" if records and not (root / "stopped").touch() else None,
    )
    ran = [r.nodeid for r in records]
    assert ran and len(ran) < len(nodeids)
    assert outcome.stopped == [n for n in nodeids if n not in ran]
    assert "test_more.py::test_later" in outcome.stopped
    assert all(r.outcome == "passed" for r in records)


def test_a_batch_of_a_task_stopped_before_it_began_runs_nothing(tmp_path: Path) -> None:
    root = write_suite(tmp_path, {"test_one.py": "def test_one():\n    pass\n"})
    records: list[TestRecord] = []
    outcome = run_pytest_batch(
        ["test_one.py::test_one"], root, test_timeout=30, on_record=records.append,
        stop=lambda: "after_test",
    )  # fmt: skip
    assert (records, outcome.stopped, outcome.children) == ([], ["test_one.py::test_one"], 0)


def test_a_cancelled_run_ends_the_child_at_once_and_its_test_in_flight_gets_no_result(
    tmp_path: Path, start_method: str
) -> None:
    root = write_suite(
        tmp_path,
        {
            "test_long.py": """
            import time

            def test_quick():
                pass

            def test_long():
                time.sleep(60)

            def test_after():
                pass
            """,
        },
    )
    nodeids = ["test_long.py::test_quick", "test_long.py::test_long", "test_long.py::test_after"]
    records: list[TestRecord] = []
    outcome = run_pytest_batch(
        nodeids,
        root,
        test_timeout=120,
        on_record=records.append,
        start_method=start_method,
        stop=lambda: "now" if records else None,  # cancelled once a test had a result
    )
    assert [(r.nodeid, r.outcome) for r in records] == [("test_long.py::test_quick", "passed")]
    assert outcome.stopped == ["test_long.py::test_long", "test_long.py::test_after"]
    assert outcome.incidents == 0  # ended by dtf for the cancel: no crash to recover
