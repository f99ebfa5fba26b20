"""Which tail of a running batch is handed to an idle slot (dtf/tasks/handoff.py)."""

from __future__ import annotations

from dtf.tasks.handoff import MIN_GAIN_S, BatchHandoff
from dtf.tasks.store import BatchWork

WORK = BatchWork(
    run_id="run", attempt_id=1, workdir=".", bundle=None, test_timeout=60.0, pytest_args=[],
    items={},
)  # fmt: skip


def handoff(estimates: dict[str, float]) -> BatchHandoff:
    return BatchHandoff("sqlite://", WORK, estimates, slots=2)


def test_the_tail_that_makes_both_batches_end_soonest_is_handed_off() -> None:
    pending = [f"m.py::t{i}" for i in range(6)]
    estimates = dict(zip(pending, [1.0, 1.0, 1.0, 1.0, 4.0, 0.5], strict=True))
    # 8.5 s in all: handing t4 and t5 over, both end after ~4.5-4.8 s.
    assert handoff(estimates).first_to_hand(pending, {}, startup_s=0.2) == "m.py::t4"


def test_nothing_is_handed_off_when_half_of_it_would_not_pay_for_a_new_start_up() -> None:
    pending = ["m.py::a", "m.py::b"]
    policy = handoff({"m.py::a": 1.0, "m.py::b": 1.0})
    # Handing b (1 s) over costs half of this batch's start-up (b is half its tests).
    assert policy.first_to_hand(pending, {}, startup_s=2 * (1.0 - MIN_GAIN_S) + 0.02) is None
    assert policy.first_to_hand(pending, {}, startup_s=0.5) == "m.py::b"
    # However fast the start-up was, a new batch costs at least MIN_STARTUP_S.
    short = handoff({"m.py::a": 0.5, "m.py::b": 0.5})
    assert short.first_to_hand(pending, {}, startup_s=0.0) is None


def test_the_new_batch_gets_less_than_half_when_it_must_collect_its_share_first() -> None:
    pending = [f"m{i}.py::t" for i in range(100)]
    policy = handoff(dict.fromkeys(pending, 0.05))  # 5 s left, in 100 modules
    # This batch collected them in 3 s; n handed tests cost the new batch 0.03 s each
    # to collect and 0.05 s to run, while this one runs the rest: 0.08 n = 5 - 0.05 n.
    first = policy.first_to_hand(pending, {}, startup_s=3.0)
    assert first == "m62.py::t"  # 38 tests, both done after ~3.1 s (instead of 5)


def test_without_history_tests_are_estimated_from_what_the_batch_measured() -> None:
    pending = ["slow.py::c", "slow.py::d", "fast.py::e"]
    measured = {"slow.py::a": 3.0, "slow.py::b": 5.0, "fast.py::x": 0.01}
    # slow.py's tests took 4 s on average here; fast.py's 0.01 s.
    assert handoff({}).first_to_hand(pending, measured, startup_s=0.5) == "slow.py::d"
    # Nothing measured and nothing known: 0.1 s each, not worth a new batch.
    assert handoff({}).first_to_hand(pending, {}, startup_s=0.0) is None


def test_a_single_slot_never_hands_off() -> None:
    assert BatchHandoff("sqlite://", WORK, {}, slots=1).wanted() is False


def test_handed_tests_move_to_a_new_batch_and_back_if_it_cannot_be_sent(tmp_path) -> None:
    from sqlalchemy import select

    from dtf.db.models import Batch, RunTask, TestItem
    from dtf.db.session import session_scope
    from dtf.tasks import store
    from tests.support.run_history import add_run, history_db

    with history_db(tmp_path) as session:
        run_id = add_run(session, 1, {}, status="running")
    db_url = f"sqlite:///{tmp_path / 'dtf.sqlite'}"
    with session_scope(db_url) as session:
        task_id = session.scalar(select(RunTask.id).filter_by(run_id=run_id))
        session.add(Batch(id="b1", run_id=run_id, task_id=task_id, position=0, queue="cpu",
                          size=4, test_timeout=30.0))  # fmt: skip
        session.flush()
        for n in range(4):
            session.add(TestItem(run_id=run_id, task_id=task_id, nodeid=f"t{n}", path="m.py",
                                 batch_id="b1"))  # fmt: skip

    new_id, time_limit = store.hand_off(db_url, "b1", ["t2", "t3"], estimated_s=2.0)

    def members(batch_id: str) -> list[str]:
        with session_scope(db_url) as session:
            return sorted(session.scalars(select(TestItem.nodeid).filter_by(batch_id=batch_id)))

    assert members(new_id) == ["t2", "t3"] and members("b1") == ["t0", "t1"]
    assert time_limit == 60.0
    store.take_back(db_url, "b1", new_id)
    assert members("b1") == ["t0", "t1", "t2", "t3"]
    with session_scope(db_url) as session:
        assert session.get(Batch, new_id) is None and session.get(Batch, "b1").size == 4
