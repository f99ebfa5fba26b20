from dataclasses import dataclass

from dtf.scheduling.batching import BATCHES_PER_SLOT, make_batches


@dataclass(frozen=True)
class Item:
    path: str
    nodeid: str


def items(layout: dict[str, int]) -> list[Item]:
    return [Item(path, f"{path}::t{i}") for path, n in layout.items() for i in range(n)]


def test_no_items_no_batches():
    assert make_batches([], slots=4) == []


def test_every_item_lands_in_exactly_one_batch():
    tests = items({"a.py": 7, "b.py": 3, "c.py": 11})
    batches = make_batches(tests, slots=2)
    assert sorted(i.nodeid for b in batches for i in b) == sorted(i.nodeid for i in tests)


def test_never_more_batches_than_tests_or_than_slots_allow():
    assert len(make_batches(items({"a.py": 2}), slots=8)) == 2
    assert len(make_batches(items({f"m{i}.py": 5 for i in range(40)}), slots=2)) <= (
        2 * BATCHES_PER_SLOT
    )


def test_small_modules_stay_whole():
    batches = make_batches(items({"a.py": 2, "b.py": 2, "c.py": 2, "d.py": 2}), slots=1)
    for batch in batches:
        paths = {i.path for i in batch}
        for path in paths:
            assert sum(1 for i in batch if i.path == path) == 2


def test_batches_are_balanced_by_count():
    sizes = [len(b) for b in make_batches(items({"a.py": 30, "b.py": 30}), slots=2)]
    assert max(sizes) - min(sizes) <= max(sizes) // 2


def test_order_inside_a_module_is_kept():
    tests = items({"a.py": 9})
    for batch in make_batches(tests, slots=1):
        assert batch == sorted(batch, key=lambda i: int(i.nodeid.rsplit("t", 1)[1]))
