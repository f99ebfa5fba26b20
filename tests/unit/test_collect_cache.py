"""An unchanged suite is not collected again; any change to its files is."""

import pytest

import dtf.scheduling.collect_cache as cache_module
from dtf.scheduling.collect_cache import cached_collect


@pytest.fixture
def suite(tmp_path):
    root = tmp_path / "suite"
    root.mkdir()
    (root / "pytest.ini").write_text("[pytest]\n")
    (root / "test_a.py").write_text("def test_one():\n    pass\n\ndef test_two():\n    pass\n")
    return root


@pytest.fixture
def no_collection(monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("collected although the cache should have answered")

    return lambda: monkeypatch.setattr(cache_module, "collect", refuse)


def nodeids(collection) -> list[str]:
    return [item.nodeid for item in collection.items]


def test_the_second_collection_of_an_unchanged_suite_comes_from_the_cache(
    suite, tmp_path, no_collection
):
    first = cached_collect(["."], suite, tmp_path / "cache")
    no_collection()
    assert nodeids(cached_collect(["."], suite, tmp_path / "cache")) == nodeids(first)
    assert nodeids(first) == ["test_a.py::test_one", "test_a.py::test_two"]


def test_a_changed_file_or_other_arguments_collect_again(suite, tmp_path):
    cached_collect(["."], suite, tmp_path / "cache")
    (suite / "test_a.py").write_text("def test_three():\n    pass\n")
    assert nodeids(cached_collect(["."], suite, tmp_path / "cache")) == ["test_a.py::test_three"]
    assert nodeids(cached_collect(["."], suite, tmp_path / "cache", keyword="nothing")) == []


def test_collections_with_errors_are_not_cached(suite, tmp_path):
    (suite / "test_broken.py").write_text("import no_such_module_anywhere\n")
    first = cached_collect(["."], suite, tmp_path / "cache")
    assert first.errors
    assert not list((tmp_path / "cache").glob("*.json"))


def test_the_cache_can_be_turned_off(suite, tmp_path, monkeypatch):
    monkeypatch.setenv("DTF_COLLECT_CACHE", "0")
    cached_collect(["."], suite, tmp_path / "cache")
    assert not (tmp_path / "cache").exists()
