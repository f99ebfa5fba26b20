"""Batching: slowest first, big batches first, modules whole unless too long."""

from dataclasses import dataclass, field

from dtf.scheduling.batching import make_batches, min_batch_seconds
from dtf.scheduling.durations import UNKNOWN_TEST_S, DurationHistory


@dataclass(frozen=True)
class Item:
    path: str
    nodeid: str
    requirements: dict = field(default_factory=dict, hash=False)


def items(layout: dict[str, int]) -> list[Item]:
    return [Item(path, f"{path}::t{i}") for path, n in layout.items() for i in range(n)]


def seconds(durations: dict[str, float]):
    return lambda item: durations.get(item.nodeid, 0.01)


def total(batch, estimate) -> float:
    return sum(estimate(i) for i in batch)


def test_no_items_no_batches():
    assert make_batches([], slots=4) == []


def test_every_item_lands_in_exactly_one_batch():
    tests = items({"a.py": 7, "b.py": 3, "c.py": 11})
    batches = make_batches(tests, slots=2)
    assert sorted(i.nodeid for b in batches for i in b) == sorted(i.nodeid for i in tests)


def test_never_more_batches_than_tests():
    assert len(make_batches(items({"a.py": 3}), slots=8, min_batch_s=0)) <= 3


def test_the_slowest_work_goes_first_and_batches_shrink_toward_the_end():
    tests = items({"fast.py": 40, "slow.py": 2})
    estimate = seconds({"slow.py::t0": 30.0, "slow.py::t1": 20.0})
    batches = make_batches(tests, slots=2, estimate=estimate, min_batch_s=0.05)

    assert batches[0] == [Item("slow.py", "slow.py::t0")]
    assert batches[1] == [Item("slow.py", "slow.py::t1")]
    sizes = [total(b, estimate) for b in batches]
    assert sizes == sorted(sizes, reverse=True)


def test_a_module_stays_whole_unless_it_is_too_long_for_one_batch():
    tests = items({"a.py": 3, "b.py": 3, "huge.py": 10})
    estimate = seconds({f"huge.py::t{i}": 5.0 for i in range(10)})
    batches = make_batches(tests, slots=2, estimate=estimate, min_batch_s=0.01)

    assert sum(1 for b in batches if any(i.path == "a.py" for i in b)) == 1
    assert sum(1 for b in batches if any(i.path == "b.py" for i in b)) == 1
    assert sum(1 for b in batches if any(i.path == "huge.py" for i in b)) > 1


def test_file_grouping_never_splits_a_file():
    tests = items({"huge.py": 10, "b.py": 2})
    estimate = seconds({f"huge.py::t{i}": 5.0 for i in range(10)})
    batches = make_batches(tests, slots=2, estimate=estimate, grouping="file")
    assert sum(1 for b in batches if any(i.path == "huge.py" for i in b)) == 1


def test_scope_grouping_keeps_a_class_together():
    tests = [Item("t.py", f"t.py::TestA::test_{i}") for i in range(4)] + [
        Item("t.py", f"t.py::TestB::test_{i}") for i in range(4)
    ]
    batches = make_batches(tests, slots=4, grouping="scope", min_batch_s=0)
    for batch in batches:
        assert len({i.nodeid.split("::")[1] for i in batch}) == 1


def test_tests_of_one_model_share_a_batch():
    tests = [
        Item(f"m{i}.py", f"m{i}.py::test", {"model": "bert" if i % 2 else "gpt2"}) for i in range(8)
    ]
    batches = make_batches(tests, slots=4, min_batch_s=0)
    for batch in batches:
        assert len({i.requirements["model"] for i in batch}) == 1
    assert len(batches) == 2


def test_order_inside_a_module_is_kept():
    tests = items({"a.py": 9})
    for batch in make_batches(tests, slots=1):
        assert batch == sorted(batch, key=lambda i: int(i.nodeid.rsplit("t", 1)[1]))


def test_unknown_tests_are_estimated_from_their_module_then_the_suite():
    history = DurationHistory({"a.py::t0": 2.0, "a.py::t1": 4.0, "b.py::t0": 9.0})
    assert history.estimate("a.py::t0") == 2.0
    assert history.estimate("a.py::new") == 3.0
    assert history.estimate("c.py::new") == 5.0
    assert DurationHistory({}).estimate("x.py::t") == UNKNOWN_TEST_S


def test_no_batch_is_expected_to_run_longer_than_max_batch_s():
    tests = items({f"m{i}.py": 5 for i in range(8)})
    estimate = seconds({t.nodeid: 1.0 for t in tests})
    batches = make_batches(tests, slots=2, estimate=estimate, max_batch_s=3.0)
    assert max(total(b, estimate) for b in batches) <= 3.0
    assert sorted(i.nodeid for b in batches for i in b) == sorted(i.nodeid for i in tests)


def test_batch_count_gives_that_many_batches_of_equal_expected_duration():
    tests = items({f"m{i}.py": 3 for i in range(12)})
    estimate = seconds({t.nodeid: 1.0 for t in tests})
    batches = make_batches(tests, slots=2, estimate=estimate, batch_count=4)
    assert len(batches) == 4
    assert {total(b, estimate) for b in batches} == {9.0}


def test_batch_count_packs_the_longest_unit_alone_and_the_rest_around_it():
    tests = items({"long.py": 1, "a.py": 1, "b.py": 1, "c.py": 1})
    estimate = seconds({"long.py::t0": 6.0, "a.py::t0": 2.0, "b.py::t0": 2.0, "c.py::t0": 2.0})
    batches = make_batches(tests, slots=2, estimate=estimate, batch_count=2)
    assert [total(b, estimate) for b in batches] == [6.0, 6.0]
    assert batches[0] == [Item("long.py", "long.py::t0")]


def test_batch_count_never_exceeds_the_number_of_tests():
    assert len(make_batches(items({"a.py": 1, "b.py": 1}), slots=2, batch_count=10)) == 2


def test_an_exclusive_test_is_a_batch_of_its_own_even_inside_a_module():
    tests = [
        Item("m.py", "m.py::a"),
        Item("m.py", "m.py::whole_gpu", {"exclusive": True}),
        Item("m.py", "m.py::b"),
    ]
    for count in (None, 1):
        batches = make_batches(tests, slots=2, min_batch_s=100, batch_count=count)
        assert [Item("m.py", "m.py::whole_gpu", {"exclusive": True})] in batches
        assert [i.nodeid for b in batches if len(b) > 1 for i in b] == ["m.py::a", "m.py::b"]


def test_a_suite_whose_batches_start_slowly_gets_fewer_larger_batches():
    tests = items({f"m{i:02}.py": 10 for i in range(40)})
    estimate = seconds({t.nodeid: 0.1 for t in tests})  # 40 s of work
    quick = make_batches(tests, slots=2, estimate=estimate, min_batch_s=min_batch_seconds(0.05))
    slow = make_batches(tests, slots=2, estimate=estimate, min_batch_s=min_batch_seconds(0.8))
    assert min_batch_seconds(0.8) == 8.0 and min_batch_seconds(0.05) == 2.0
    assert len(slow) < len(quick)
    # Only the last batch, what is left, may be smaller.
    assert min(total(b, estimate) for b in slow[:-1]) >= 8.0 - 1e-9


def plan_of(tests: list[Item], history: DurationHistory):
    """The batches the planner cuts for ``tests`` on one 2-slot cpu worker."""
    from pathlib import Path

    from dtf.inventory import CpuInfo, Inventory
    from dtf.scheduling.planner import Plan, PlannedItem, TaskPlan, route_run
    from dtf.scheduling.routing import LiveWorker
    from dtf.spec import spec_from_cli

    spec = spec_from_cli(["."])
    task = TaskPlan(
        position=0, spec=spec.tasks[0], workdir=Path("/suite"), timeout=300, priority=5,
        requirements={"hardware": ["cpu"]},
        items=[PlannedItem(t.nodeid, t.path, {"hardware": ["cpu"]}) for t in tests],
    )  # fmt: skip
    cpu = Inventory("a", CpuInfo(cores=2, threads=2, memory_gb=8), {})
    worker = LiveWorker("w@a", frozenset({"cpu"}), cpu, concurrency=2)
    route_run(Plan(spec=spec, tasks=[task]), [worker], lambda suite, kind: history)
    return task.batches


def test_a_suite_with_no_history_is_cut_into_about_two_batches_per_slot():
    tests = items({f"m{i:03}.py": 20 for i in range(200)})  # 4000 tests, each one guess

    first = plan_of(tests, DurationHistory({}))
    known = plan_of(tests, DurationHistory({t.nodeid: 0.01 for t in tests}, startup_s=0.01))

    assert [len(b.items) for b in first] == [2000, 1000, 500, 500]
    # With history the planner trusts its estimates down to the start-up floor.
    assert len(known) > len(first)
