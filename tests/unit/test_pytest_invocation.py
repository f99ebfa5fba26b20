"""A run collects and runs its tests as plain pytest typed in the same directory would.

pytest's own rules decide rootdir, ini file, conftests and node ids; the batches (here:
two per invocation, split by file) reach the same ids and the same outcomes. Each case
compares dtf's collection and batch results with a plain pytest child's.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from dtf.executor.collect import CollectionFailed, collect
from dtf.executor.pytest_runner import run_pytest_batch
from dtf.executor.records import TestRecord

# Records plain pytest's node ids (its -rA summary shows them relative to the directory).
RECORDER = """
import json, os

def pytest_runtest_logreport(report):
    if report.when == "call" or report.failed:
        outcome = report.outcome if report.when == "call" else "error"
        with open(os.environ["RECORD_TO"], "a") as out:
            out.write(json.dumps([report.nodeid, outcome]) + "\\n")
"""


FILES = {
    # src layout: the library under src/, found through the ini's pythonpath
    "proj/pyproject.toml": """
        [tool.pytest.ini_options]
        testpaths = ["tests"]
        pythonpath = ["src"]
        markers = ["slow: a slow test"]
    """,
    "proj/alt.ini": """
        [pytest]
        python_functions = check_*
        pythonpath = src
    """,
    "proj/src/mylib/__init__.py": '''
        def double(x):
            """
            >>> double(2)
            4
            """
            return 2 * x
    ''',
    # conftests at three levels, each giving a fixture the tests below it use
    "proj/conftest.py": """
        import pytest

        @pytest.fixture
        def root_value():
            return 1
    """,
    "proj/tests/conftest.py": """
        import pytest

        @pytest.fixture
        def tests_value(root_value):
            return root_value + 1
    """,
    "proj/tests/test_top.py": """
        import pytest
        from mylib import double

        def test_uses_both_conftests(tests_value):
            assert double(tests_value) == 4

        def test_fails():
            assert double(1) == 3

        @pytest.mark.slow
        @pytest.mark.parametrize("n", [1, 2])
        def test_marked(n):
            pass

        def check_only_with_alt_ini():
            pass
    """,
    # a folder without __init__.py, with its own conftest
    "proj/tests/sub/conftest.py": """
        import pytest

        @pytest.fixture
        def sub_value(tests_value):
            return tests_value * 10
    """,
    "proj/tests/sub/test_deep.py": """
        def test_deep(sub_value):
            assert sub_value == 20
    """,
    # a package with __init__.py, whose basename repeats one above
    "proj/tests/pkg/__init__.py": "",
    "proj/tests/pkg/test_top.py": """
        def test_in_package(root_value):
            assert root_value == 1
    """,
    # a package installed elsewhere (as in site-packages) that ships its tests
    "site/shipped/__init__.py": "",
    "site/shipped/tests/__init__.py": "",
    "site/shipped/tests/test_shipped.py": """
        def test_shipped():
            pass

        def test_shipped_fails():
            assert False
    """,
    "elsewhere/.keep": "",
    "site/nodeid_recorder.py": RECORDER,
}


@pytest.fixture(scope="module")
def tree(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("invocations")
    for name, body in FILES.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(body).lstrip())
    return root


def plain_pytest(args: list[str], cwd: Path, env: dict[str, str]) -> dict[str, str]:
    """node id -> outcome, as plain pytest reports them."""
    record = cwd.parent / "plain-record.jsonl"
    record.unlink(missing_ok=True)
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-p", "nodeid_recorder",
         "-q", *args],
        cwd=cwd, env={**env, "RECORD_TO": str(record)}, capture_output=True, text=True,
        timeout=120,
    )  # fmt: skip
    assert record.exists(), proc.stdout + proc.stderr
    lines = [json.loads(line) for line in record.read_text().splitlines()]
    return dict(lines)


def dtf_pytest(opts: list[str], paths: list[str], cwd: Path, env: dict[str, str]) -> dict:
    """node id -> outcome: collected once, then run as two batches split by file."""
    collection = collect(paths, cwd, extra_args=opts)
    assert not collection.errors, collection.errors
    files = {item.nodeid: item.path for item in collection.items}
    by_file = list(dict.fromkeys(files.values()))
    halves = [set(by_file[: len(by_file) // 2]), set(by_file[len(by_file) // 2 :])]
    records: list[TestRecord] = []
    for half in halves:
        run_pytest_batch(
            [nodeid for nodeid, path in files.items() if path in half],
            cwd,
            args=[*opts, *paths],
            files=files,
            env=env,
            test_timeout=60,
            on_record=records.append,
            start_method="spawn",
        )
    outcomes = {record.nodeid: record.outcome for record in records}
    assert len(outcomes) == len(records) == len(files), records
    return outcomes


CASES = {
    "project root, no paths (testpaths)": ("proj", [], []),
    "project root, tests/": ("proj", [], ["tests"]),
    "below the rootdir, no paths": ("proj/tests", [], []),
    "sibling, ../proj/tests": ("elsewhere", [], ["../proj/tests"]),
    "sibling, absolute path": ("elsewhere", [], ["{root}/proj"]),
    "sibling, node ids": (
        "elsewhere",
        [],
        ["../proj/tests/test_top.py::test_fails", "../proj/tests/sub/test_deep.py"],
    ),
    "--rootdir": ("elsewhere", ["--rootdir", "../proj/tests"], ["../proj/tests"]),
    "-c another ini": ("elsewhere", ["-c", "../proj/alt.ini"], ["../proj/tests/test_top.py"]),
    "--import-mode=importlib": ("proj", ["--import-mode=importlib"], []),
    "-m and -o": ("proj", ["-m", "not slow", "-o", "xfail_strict=true"], ["tests"]),
    "doctests with --doctest-modules": ("proj", ["--doctest-modules"], ["src", "tests"]),
    "--pyargs into an installed package": ("elsewhere", ["--pyargs"], ["shipped"]),
}


@pytest.mark.parametrize(("cwd", "opts", "paths"), CASES.values(), ids=CASES.keys())
def test_same_ids_and_outcomes_as_plain_pytest(
    tree: Path, monkeypatch: pytest.MonkeyPatch, cwd: str, opts: list[str], paths: list[str]
) -> None:
    monkeypatch.setenv("PYTHONPATH", str(tree / "site"))
    monkeypatch.delenv("PYTEST_ADDOPTS", raising=False)
    env = dict(os.environ)
    paths = [p.format(root=tree) for p in paths]
    expected = plain_pytest([*opts, *paths], tree / cwd, env)
    assert dtf_pytest(opts, paths, tree / cwd, env) == expected


def test_a_batch_imports_only_its_own_files(tree: Path, tmp_path: Path) -> None:
    """The batch gets the run's arguments (a whole folder) but imports only its files."""
    project = tmp_path / "p"
    project.mkdir()
    (project / "test_mine.py").write_text("def test_mine():\n    pass\n")
    (project / "test_other.py").write_text("raise SystemExit('imported a file of another batch')\n")
    records: list[TestRecord] = []
    outcome = run_pytest_batch(
        ["test_mine.py::test_mine"],
        project,
        args=["."],
        files={"test_mine.py::test_mine": "test_mine.py"},
        test_timeout=60,
        on_record=records.append,
        start_method="spawn",
    )
    assert [(r.nodeid, r.outcome) for r in records] == [("test_mine.py::test_mine", "passed")]
    assert outcome.exit_codes == [0]


def test_an_xdist_n_in_the_projects_addopts_does_not_start_xdist_in_a_batch(
    tmp_path: Path,
) -> None:
    pytest.importorskip("xdist")
    (tmp_path / "pytest.ini").write_text("[pytest]\naddopts = -n 2\n")
    # An xdist worker's config has workerinput (the environment may say otherwise: this
    # suite itself may run under xdist).
    (tmp_path / "test_worker.py").write_text(
        "def test_not_in_an_xdist_worker(request):\n"
        "    assert not hasattr(request.config, 'workerinput')\n"
    )
    collection = collect([], tmp_path)
    records: list[TestRecord] = []
    run_pytest_batch(
        [item.nodeid for item in collection.items],
        tmp_path,
        args=[],
        test_timeout=60,
        on_record=records.append,
        start_method="spawn",
    )
    assert [(r.nodeid, r.outcome) for r in records] == [
        ("test_worker.py::test_not_in_an_xdist_worker", "passed")
    ]


def test_a_pyargs_name_that_does_not_import_is_pytests_one_line(tmp_path: Path) -> None:
    with pytest.raises(CollectionFailed, match="module or package not found: no_such_pkg_xyz"):
        collect(["no_such_pkg_xyz"], tmp_path, extra_args=["--pyargs"])


def test_setup_cfg_testpaths_and_python_files_are_pytests_choice(tmp_path: Path) -> None:
    project = tmp_path / "cfgproj"
    files = {
        "setup.cfg": "[tool:pytest]\ntestpaths = checks\npython_files = check_*.py\n",
        "checks/check_one.py": "def test_one():\n    pass\n\ndef test_two():\n    assert 0\n",
        "checks/deeper/check_two.py": "def test_three():\n    pass\n",
        "checks/test_not_named_so.py": "def test_never():\n    pass\n",
    }
    for name, body in files.items():
        (project / name).parent.mkdir(parents=True, exist_ok=True)
        (project / name).write_text(body)
    env = {**os.environ, "PYTHONPATH": str(tmp_path)}
    (tmp_path / "nodeid_recorder.py").write_text(RECORDER)
    expected = plain_pytest([], project, env)
    assert set(expected) == {
        "checks/check_one.py::test_one",
        "checks/check_one.py::test_two",
        "checks/deeper/check_two.py::test_three",
    }
    assert dtf_pytest([], [], project, env) == expected
