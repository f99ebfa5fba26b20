"""A pytest child that dtf killed (a test past its timeout) and one killed from outside
(a SIGKILL as the kernel's OOM killer or an operator sends it, a SIGTERM from another
process) are told apart, and recovered differently: against real pytest children."""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

import pytest

from dtf.db.models import RecoveryEvent, RecoveryStat, Run, Worker
from dtf.db.schema import ensure_schema
from dtf.db.session import session_scope
from dtf.executor.pytest_runner import (
    BatchOutcome,
    Decision,
    Incident,
    RecoveryHooks,
    run_pytest_batch,
)
from dtf.executor.records import TestRecord
from dtf.inventory import CpuInfo, Inventory
from dtf.recovery import classes as fc
from dtf.recovery import engine, policy
from dtf.recovery import strategies as st
from dtf.tasks import execute, store

SUITE = """
import os, pathlib, signal, time

def test_sleeps():
    time.sleep(600)

def test_kills_itself():
    os.kill(os.getpid(), signal.SIGKILL)

def test_waits_for_an_operator():
    pid_file = pathlib.Path(__file__).with_name("child.pid")
    tmp = pid_file.with_suffix(".tmp")
    tmp.write_text(str(os.getpid()))
    os.replace(tmp, pid_file)
    time.sleep(600)

def test_after():
    pass
"""

SLEEPS = "test_kills.py::test_sleeps"
KILLS_ITSELF = "test_kills.py::test_kills_itself"
OPERATOR = "test_kills.py::test_waits_for_an_operator"
AFTER = "test_kills.py::test_after"

#: Another process, as an operator at a shell: waits for the test's pid, then kills it.
OPERATOR_KILL = """
import os, pathlib, sys, time
pid_file, signum = pathlib.Path(sys.argv[1]), int(sys.argv[2])
while not pid_file.exists():
    time.sleep(0.01)
os.kill(int(pid_file.read_text()), signum)
"""


class Recorder(RecoveryHooks):
    """Records each incident; isolates (as the runner's default does)."""

    def __init__(self) -> None:
        self.incidents: list[Incident] = []

    def decide(self, incident: Incident) -> Decision:
        self.incidents.append(incident)
        return super().decide(incident)


@pytest.fixture
def suite(tmp_path: Path) -> Path:
    (tmp_path / "pytest.ini").write_text("")
    (tmp_path / "test_kills.py").write_text(SUITE)
    return tmp_path


def run(root: Path, nodeids: list[str], **kwargs) -> tuple[list[TestRecord], BatchOutcome]:
    records: list[TestRecord] = []
    kwargs.setdefault("test_timeout", 60.0)
    outcome = run_pytest_batch(nodeids, root, on_record=records.append, **kwargs)
    return records, outcome


def outcome_of(records: list[TestRecord], nodeid: str) -> str:
    (found,) = [r.outcome for r in records if r.nodeid == nodeid and r.when != "setup"]
    return found


# -- the classification itself ---------------------------------------------------------


def classify(code: int, stderr: str = "", **kwargs) -> str:
    kwargs.setdefault("killed_by_us", False)
    kwargs.setdefault("memory_limited", False)
    return fc.classify_child_exit(code, stderr, **kwargs)


def test_a_child_dtf_killed_hung_whatever_signal_ended_it():
    for code in (-signal.SIGTERM, -signal.SIGKILL, 0, 1):
        assert classify(code, killed_by_us=True) == fc.HANG
    # what the child printed before does not make dtf's kill anything else
    assert classify(-signal.SIGKILL, "MemoryError", killed_by_us=True) == fc.HANG


def test_a_kill_signal_dtf_did_not_send_is_a_kill_from_outside():
    for signum in (signal.SIGKILL, signal.SIGTERM, signal.SIGHUP, signal.SIGINT):
        assert classify(-signum) == fc.KILLED


def test_a_sigkill_not_sent_by_dtf_while_an_oom_kill_was_counted_is_out_of_memory():
    assert classify(-signal.SIGKILL, oom_killed=True) == fc.OOM
    # the OOM killer sends nothing but SIGKILL
    assert classify(-signal.SIGTERM, oom_killed=True) == fc.KILLED
    assert classify(-signal.SIGSEGV, oom_killed=True) == fc.CRASH


def test_faults_of_the_test_itself_stay_crashes_and_memory_errors_oom():
    assert classify(-signal.SIGSEGV) == fc.CRASH
    assert classify(-signal.SIGABRT) == fc.CRASH
    assert classify(3) == fc.CRASH
    assert classify(-signal.SIGKILL, "MemoryError") == fc.OOM
    assert classify(-signal.SIGABRT, "std::bad_alloc") == fc.OOM
    assert classify(-signal.SIGABRT, "failed to alloc", memory_limited=True) == fc.OOM


def test_the_oom_kill_count_is_read_from_the_first_file_that_has_one(tmp_path, monkeypatch):
    events = tmp_path / "memory.events"
    events.write_text("low 0\nhigh 0\nmax 0\noom 2\noom_kill 1\noom_group_kill 0\n")
    vmstat = tmp_path / "vmstat"
    vmstat.write_text("nr_free_pages 1\noom_kill 7\n")
    missing = tmp_path / "memory.oom_control"
    monkeypatch.setattr(fc, "_oom_counter_paths", lambda: [missing, events, vmstat])
    counter = fc.OomKills()
    assert (counter.path, counter.count) == (events, 1)
    assert not counter.rose()
    events.write_text("oom 3\noom_kill 2\n")
    assert counter.rose()
    monkeypatch.setattr(fc, "_oom_counter_paths", lambda: [missing])
    assert not fc.OomKills().rose()  # nothing readable: never claims an OOM kill


def test_the_oom_kill_count_of_this_machine_is_readable_as_a_number():
    counter = fc.OomKills()
    if counter.path is None:
        pytest.skip("no OOM-kill count readable here")
    assert counter.count >= 0 and counter.rose() in (False, True)


# -- real children: the runner's classification -----------------------------------------


@pytest.mark.parametrize("method", ["fork", "spawn"])
def test_a_test_past_its_timeout_is_killed_by_dtf_and_hangs(suite, method):
    hooks = Recorder()
    records, _ = run(suite, [SLEEPS, AFTER], test_timeout=1.0, recovery=hooks,
                     start_method=method)  # fmt: skip
    assert [(i.failure_class, i.nodeid) for i in hooks.incidents] == [(fc.HANG, SLEEPS)]
    assert outcome_of(records, SLEEPS) == "timed_out"
    assert outcome_of(records, AFTER) == "passed"


@pytest.mark.parametrize("method", ["fork", "spawn"])
def test_a_test_killed_by_sigkill_not_from_dtf_is_killed_from_outside(suite, method):
    hooks = Recorder()
    records, outcome = run(suite, [KILLS_ITSELF, AFTER], recovery=hooks, start_method=method)
    assert outcome.exit_codes[0] == -signal.SIGKILL
    assert [(i.failure_class, i.nodeid) for i in hooks.incidents] == [(fc.KILLED, KILLS_ITSELF)]
    assert "killed from outside, not by dtf" in hooks.incidents[0].detail
    # not the test's fault: without a policy it is the infrastructure's error, not a crash
    assert outcome_of(records, KILLS_ITSELF) == "infra_error"
    assert outcome_of(records, AFTER) == "passed"


@pytest.mark.parametrize(
    ("method", "signum"),
    [("fork", signal.SIGKILL), ("spawn", signal.SIGKILL), ("fork", signal.SIGTERM)],
)
def test_an_operators_kill_from_another_process_is_killed_from_outside(suite, method, signum):
    operator = subprocess.Popen(
        [sys.executable, "-c", OPERATOR_KILL, str(suite / "child.pid"), str(int(signum))]
    )
    try:
        hooks = Recorder()
        records, outcome = run(suite, [OPERATOR, AFTER], recovery=hooks, start_method=method)
        assert operator.wait() == 0
    finally:
        if operator.poll() is None:
            operator.kill()
            operator.wait()
    assert outcome.exit_codes[0] == -signum
    assert [(i.failure_class, i.nodeid) for i in hooks.incidents] == [(fc.KILLED, OPERATOR)]
    assert outcome_of(records, OPERATOR) == "infra_error"
    assert outcome_of(records, AFTER) == "passed"


def test_a_sigkill_while_the_kernel_counted_an_oom_kill_is_out_of_memory(suite, monkeypatch):
    """The real child dies of SIGKILL; the kernel's count is made to rise meanwhile."""
    counts = iter(range(100))

    class Rising(fc.OomKills):
        def __init__(self) -> None:
            self.path, self.count = Path("/proc/vmstat"), next(counts)

        def rose(self) -> bool:
            return next(counts) > self.count

    monkeypatch.setattr(fc, "OomKills", Rising)
    hooks = Recorder()
    records, _ = run(suite, [KILLS_ITSELF], recovery=hooks)
    assert [i.failure_class for i in hooks.incidents] == [fc.OOM]
    assert "kernel's OOM killer" in hooks.incidents[0].detail
    assert outcome_of(records, KILLS_ITSELF) == "out_of_memory"


# -- the policy: the classes are recovered differently ------------------------------------


def test_the_policy_never_blames_a_killed_test_and_moves_it_instead_of_splitting():
    names = {
        level: [s.name for s in st.candidates(fc.KILLED, level, "test")]
        for level in range(1, st.CRITICAL + 1)
    }
    assert names == {1: ["retry_test"], 2: [], 3: ["move_test"], 4: [], 5: ["give_up"]}
    unknown = [
        s.name
        for level in range(1, st.CRITICAL + 1)
        for s in st.candidates(fc.KILLED, level, "test", culprit_known=False)
    ]
    assert unknown == ["retry_rest", "move_test", "give_up"]  # no bisect
    # a hang is isolated as timed_out at once (level 3); a crash is bisected
    assert policy.start_level(fc.HANG, {}, "test") == 3
    assert policy.choose(fc.HANG, 3, {}, "test").name == "isolate_test"
    assert policy.choose(fc.CRASH, 3, {}, "test", culprit_known=False).name == "bisect"
    # as a batch: another worker first, never in place, never split, never quarantined
    assert policy.start_level(fc.KILLED, {}, "batch") == 3
    assert policy.choose(fc.KILLED, 3, {}, "batch").name == "reassign_worker"
    batch = {s.name for s in st.STRATEGIES if s.context == "batch" and s.treats(fc.KILLED)}
    assert batch == {"reassign_worker", "other_hardware"}


# -- real children and the real policy, with its table in a database ---------------------


@pytest.fixture
def db(tmp_path: Path) -> str:
    url = f"sqlite:///{tmp_path / 'dtf.sqlite'}"
    ensure_schema(url, create=True)
    with session_scope(url) as session:
        session.add(Run(id="run-1", workdir=str(tmp_path)))
    return url


def work() -> store.BatchWork:
    return store.BatchWork(
        run_id="run-1", attempt_id=0, workdir=".", bundle=None, test_timeout=1.0,
        pytest_args=[], items={}, batch_id="batch-1", queue="cpu", hardware="cpu",
        hardware_kinds=["cpu"],
    )  # fmt: skip


def events(db: str) -> list[tuple[str, str, int, str]]:
    with session_scope(db) as session:
        rows = session.query(RecoveryEvent).order_by(RecoveryEvent.id).all()
        return [(e.failure_class, e.strategy, e.level, e.status) for e in rows]


def table(db: str) -> set[tuple[str, str]]:
    with session_scope(db) as session:
        return {(r.failure_class, r.strategy) for r in session.query(RecoveryStat).all()}


def test_recovery_isolates_a_hung_test_as_timed_out_at_once(suite, db):
    recovery = engine.TestRecovery(db, work(), "here", rand=lambda: 0.0)
    records, _ = run(suite, [SLEEPS, AFTER], test_timeout=1.0, recovery=recovery)
    assert outcome_of(records, SLEEPS) == "timed_out"
    assert outcome_of(records, AFTER) == "passed"
    assert events(db) == [(fc.HANG, "isolate_test", 3, "succeeded")]
    assert table(db) == {(fc.HANG, "isolate_test")}


def test_recovery_retries_a_killed_test_then_gives_up_without_blaming_it(suite, db):
    recovery = engine.TestRecovery(db, work(), "here", rand=lambda: 0.0)
    records, outcome = run(suite, [KILLS_ITSELF, AFTER], recovery=recovery)
    assert outcome_of(records, KILLS_ITSELF) == "infra_error"  # never "crashed"
    assert outcome_of(records, AFTER) == "passed"
    assert outcome.deferred == []
    # no other worker could take it: the level 3 move does not apply
    assert events(db) == [
        (fc.KILLED, "retry_test", 1, "failed"),
        (fc.KILLED, "give_up", 5, "failed"),
    ]
    assert table(db) == {(fc.KILLED, "retry_test"), (fc.KILLED, "give_up")}


def test_recovery_moves_a_killed_test_to_another_live_worker(suite, db):
    with session_scope(db) as session:
        inventory = Inventory("other", CpuInfo(cores=1, threads=1, memory_gb=1.0))
        session.add(
            Worker(hostname="other", queues=["cpu"], version="t", inventory=inventory.to_dict())
        )
    recovery = engine.TestRecovery(db, work(), "here", rand=lambda: 0.0)
    records, outcome = run(suite, [KILLS_ITSELF, AFTER], recovery=recovery)
    assert [r.nodeid for r in records if r.when != "setup"] == [AFTER]
    assert outcome.deferred == [KILLS_ITSELF]
    assert outcome.deferred_classes == {KILLS_ITSELF: fc.KILLED}
    assert events(db) == [(fc.KILLED, "retry_test", 1, "failed")]  # the move is the batch's

    # the batch task hands it to the batch-level recovery as a kill, not a broken env
    failure = execute._deferred(outcome, "here")
    assert failure.failure_class == fc.KILLED
    from dtf.submission import live_workers

    plan = engine.plan_batch_recovery(
        db, work(), failure.failure_class, failure.detail, failed_worker="here",
        live=live_workers(db), rand=lambda: 0.0,
    )  # fmt: skip
    assert (plan.strategy, plan.queue) == ("reassign_worker", "dtf.worker.other")
    assert events(db)[-1] == (fc.KILLED, "reassign_worker", 3, "started")


def test_an_unknown_culprits_kill_is_retried_unsplit_then_given_up_not_bisected(tmp_path, db):
    """Killed from outside while no test ran (here: in collection): the tests left run
    again together once; a second kill gives up on them (no other worker)."""
    (tmp_path / "pytest.ini").write_text("")
    (tmp_path / "conftest.py").write_text(
        "import os, signal\n"
        "def pytest_collection_finish(session):\n"
        "    os.kill(os.getpid(), signal.SIGKILL)\n"
    )
    (tmp_path / "test_a.py").write_text("def test_one():\n    pass\ndef test_two():\n    pass\n")
    ids = ["test_a.py::test_one", "test_a.py::test_two"]
    recovery = engine.TestRecovery(db, work(), "here", rand=lambda: 0.0)
    records, outcome = run(tmp_path, ids, recovery=recovery)
    assert outcome.children == 2
    assert sorted((r.nodeid, r.outcome) for r in records) == [
        (ids[0], "infra_error"),
        (ids[1], "infra_error"),
    ]
    assert events(db) == [
        (fc.KILLED, "retry_rest", 1, "failed"),
        (fc.KILLED, "give_up", 5, "failed"),
    ]
