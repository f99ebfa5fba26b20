"""collect() against real pytest child processes."""

from __future__ import annotations

import os
import textwrap
from pathlib import Path

import pytest

from dtf.executor.collect import CollectedItem, Collection, CollectionFailed, collect

SUITE = Path(__file__).resolve().parents[1] / "suites" / "outcomes"


def write_suite(root: Path, files: dict[str, str]) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    (root / "pytest.ini").write_text("")
    for name, body in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(textwrap.dedent(body))
    return root


@pytest.fixture(scope="module")
def suite() -> Collection:
    return collect([], SUITE)


def by_id(collection: Collection) -> dict[str, CollectedItem]:
    return {item.nodeid: item for item in collection.items}


def test_collects_every_item_with_its_file(suite: Collection) -> None:
    items = by_id(suite)
    assert "test_outcomes.py::test_passed" in items
    assert "test_outcomes.py::test_odd_ids[a b]" in items
    assert "test_outcomes.py::test_odd_ids[colon::x]" in items
    assert "test_outcomes.py::test_grüße" in items
    assert "test_markers.py::TestGpu::test_closest_wins" in items
    assert [n for n in items if n.startswith("test_crash.py")] == [
        "test_crash.py::test_before_crash",
        "test_crash.py::test_crash",
        "test_crash.py::test_after_crash",
    ]
    assert {item.path for item in suite.items} == {
        "test_outcomes.py",
        "test_markers.py",
        "test_crash.py",
        "test_hang.py",
    }
    assert all(item.nodeid.startswith(item.path + "::") for item in suite.items)


def test_import_error_is_a_collection_error_record(suite: Collection) -> None:
    (error,) = [r for r in suite.errors if r.outcome == "error"]
    assert (error.nodeid, error.outcome, error.when) == ("test_import_error.py", "error", "collect")
    assert "No module named 'dtf_module_that_does_not_exist'" in error.longrepr
    assert not any(item.path == "test_import_error.py" for item in suite.items)


def test_a_module_skipped_whole_is_one_skipped_record(suite: Collection) -> None:
    (skipped,) = [r for r in suite.errors if r.outcome == "skipped"]
    assert (skipped.nodeid, skipped.when) == ("test_module_skipped.py", "collect")
    assert "dtf_module_that_is_not_installed" in skipped.longrepr
    assert not any(item.path == "test_module_skipped.py" for item in suite.items)


def test_requirements_come_from_dtf_markers(suite: Collection) -> None:
    items = by_id(suite)
    assert items["test_outcomes.py::test_requires_cpu"].requirements == {
        "hardware": "cpu",
        "min_memory_gb": 1,
    }
    assert items["test_outcomes.py::test_passed"].requirements == {}
    # Method beats class beats module; keys are merged.
    assert items["test_markers.py::TestGpu::test_closest_wins"].requirements == {
        "hardware": ["cpu"],
        "min_memory_gb": 2,
        "timeout": 60,
    }
    assert items["test_markers.py::test_module_level_only"].requirements == {
        "hardware": "cpu",
        "min_memory_gb": 1,
    }


def test_paths_limit_the_collection() -> None:
    collection = collect(["test_crash.py"], SUITE)
    assert [item.path for item in collection.items] == ["test_crash.py"] * 3
    assert collection.errors == []


def test_keyword_deselects(suite: Collection) -> None:
    collection = collect([], SUITE, keyword="odd_ids and not colon")
    expected = [n for n in by_id(suite) if "test_odd_ids[" in n and "colon" not in n]
    assert [item.nodeid for item in collection.items] == expected
    assert len(expected) == 6


def test_markexpr_deselects() -> None:
    collection = collect([], SUITE, markexpr="dtf")
    assert sorted(item.nodeid for item in collection.items) == [
        "test_markers.py::TestGpu::test_closest_wins",
        "test_markers.py::test_module_level_only",
        "test_outcomes.py::test_requires_cpu",
    ]


def test_empty_selection_is_not_an_error() -> None:
    assert collect(["test_crash.py"], SUITE, keyword="no_such_test") == Collection([], [])


def test_strict_markers_know_the_dtf_marker() -> None:
    collection = collect(["test_markers.py"], SUITE, extra_args=["--strict-markers"])
    assert len(collection.items) == 2


def assert_one_line(message: str) -> None:
    assert "\n" not in message
    assert "Traceback" not in message


def test_missing_path_fails_with_pytests_message() -> None:
    with pytest.raises(CollectionFailed) as failed:
        collect(["tests/nope"], SUITE)
    assert str(failed.value) == "file or directory not found: tests/nope"


def test_bad_keyword_fails_with_pytests_message() -> None:
    with pytest.raises(CollectionFailed) as failed:
        collect([], SUITE, keyword="odd_ids and")
    message = str(failed.value)
    assert_one_line(message)
    assert message.startswith("Wrong expression passed to '-k': odd_ids and")


def test_bad_markexpr_fails_with_pytests_message() -> None:
    with pytest.raises(CollectionFailed) as failed:
        collect([], SUITE, markexpr="dtf or (")
    assert_one_line(str(failed.value))
    assert "'-m'" in str(failed.value)


def test_unknown_option_fails_with_argparses_complaint() -> None:
    with pytest.raises(CollectionFailed) as failed:
        collect([], SUITE, extra_args=["--no-such-option"])
    assert str(failed.value) == "unrecognized arguments: --no-such-option"


def test_broken_conftest_fails_with_the_import_error(tmp_path: Path) -> None:
    root = write_suite(
        tmp_path,
        {
            "conftest.py": "import conftest_dependency_missing\n",
            "test_a.py": "def test_a():\n    pass\n",
        },
    )
    with pytest.raises(CollectionFailed) as failed:
        collect([], root)
    message = str(failed.value)
    assert_one_line(message)
    assert "conftest" in message
    assert "No module named 'conftest_dependency_missing'" in message


def test_timeout_fails(tmp_path: Path) -> None:
    root = write_suite(
        tmp_path,
        {
            "test_slow_import.py": """
            import time
            time.sleep(3600)

            def test_a():
                pass
        """,
        },
    )
    with pytest.raises(CollectionFailed, match=r"timed out after 0\.5s"):
        collect([], root, timeout=0.5)


def test_node_ids_are_relative_to_the_rootdir_pytest_finds_above_the_directory(
    tmp_path: Path,
) -> None:
    # pytest.ini one level up makes that folder the rootdir, as it does for plain pytest;
    # each item's path stays relative to the directory the collection ran in.
    write_suite(tmp_path, {"sub/test_a.py": "def test_a():\n    pass\n"})
    collection = collect([], tmp_path / "sub")
    assert collection.items == [CollectedItem("sub/test_a.py::test_a", "test_a.py", {})]
    assert (collection.rootdir, collection.inifile) == (
        str(tmp_path),
        str(tmp_path / "pytest.ini"),
    )


@pytest.mark.parametrize("shards", [2, 3])
def test_sharded_collection_equals_one_childs(suite: Collection, shards: int) -> None:
    sharded = collect([], SUITE, shards=shards)
    assert sharded.items == suite.items
    assert [e.to_dict() for e in sharded.errors] == [e.to_dict() for e in suite.errors]


def test_a_real_suite_collected_in_shards_is_the_same_in_the_same_order() -> None:
    import toolz

    package = Path(toolz.__file__).parent
    whole = collect(["tests"], package, shards=1)
    sharded = collect(["tests"], package, shards=2)
    assert len(whole.items) > 100
    assert sharded.items == whole.items


def test_a_large_suite_of_directories_is_sharded_and_files_are_not(tmp_path: Path) -> None:
    from dtf.executor.collect import MAX_SHARDS, SHARD_MIN_FILES, shard_count

    files = {
        f"pkg{i % 5}/test_m{i}.py": "def test_a():\n    pass\n" for i in range(SHARD_MIN_FILES)
    }
    write_suite(tmp_path, files)
    assert shard_count([], tmp_path) == min(len(os.sched_getaffinity(0)), MAX_SHARDS)
    assert shard_count(["pkg0", "pkg1"], tmp_path) == 1  # a few files: one child
    assert shard_count(["pkg0/test_m0.py"], tmp_path) == 1
    assert len(collect([], tmp_path).items) == SHARD_MIN_FILES
