"""Equivalence with plain pytest on real third-party suites (benchmarks/equivalence).

Two cells of the matrix, each run with ``python -m pytest`` and with ``dtf run`` on the
embedded default; their JUnit counts and every test's outcome must be equal:

- toolz 1.2.0 (dtf's ``test`` extra pins it): ``--pyargs toolz`` from another folder, the
  tests shipped inside the installed package, run from site-packages. Needs no network.
- iniconfig 2.3.1: ``../iniconfig-2.3.1/testing`` from a folder beside the unpacked sdist
  (a path outside the working directory; src/ layout, testpaths in pyproject.toml). Its
  sdist comes from PyPI and it is installed into a small virtual environment of its own,
  both kept in the cache (``$DTF_EQUIVALENCE_CACHE``, else ~/.cache/dtf-equivalence), so
  only a first run needs PyPI; ``python -m benchmarks.equivalence --prepare-only
  --project iniconfig`` fetches them ahead.

The whole matrix (five projects) is ``python -m benchmarks.equivalence``; its results
are in benchmarks/equivalence/README.md.
"""

from __future__ import annotations

import textwrap

import pytest

from benchmarks.equivalence import harness, junit
from benchmarks.equivalence.projects import by_name

pytestmark = pytest.mark.integration


def _assert_equal(result: harness.CellResult) -> None:
    assert result.equal, "\n".join([result.short(), *result.details()])
    assert result.pytest.report.counts["tests"] > 0


def test_toolz_pyargs_from_site_packages(tmp_path):
    # Covers toolz/sandbox/tests/test_parallel.py::test_fold, which opens a
    # multiprocessing.Pool: it fails under dtf ("daemonic processes are not allowed to
    # have children") while a forked pytest child keeps its pool process's daemon flag
    # (DTF_EXECUTOR=spawn passes). See benchmarks/equivalence/README.md.
    project = by_name("toolz")
    setup = harness.prepare(project, tmp_path / "work", mode="current")
    result = harness.run_cell(setup, project.cell("pyargs"), tmp_path / "cell")
    _assert_equal(result)


def test_iniconfig_sdist_from_a_sibling_folder(tmp_path):
    project = by_name("iniconfig")
    setup = harness.prepare(project, tmp_path / "work", mode="venv")
    result = harness.run_cell(setup, project.cell("sibling"), tmp_path / "cell")
    _assert_equal(result)


# The comparison itself, on JUnit files written here.

PYTEST_XML = """\
<?xml version="1.0" encoding="utf-8"?>
<testsuites name="pytest tests"><testsuite name="pytest" errors="1" failures="1"
 skipped="2" tests="6">
<testcase classname="tests.test_a" name="test_ok" />
<testcase classname="tests.test_a" name="test_bad"><failure message="x" /></testcase>
<testcase classname="tests.test_a" name="test_bad"><error message="teardown" /></testcase>
<testcase classname="tests.test_a" name="test_skip"><skipped type="pytest.skip" /></testcase>
<testcase classname="tests.test_a" name="test_xf"><skipped type="pytest.xfail" /></testcase>
<testcase classname="tests.test_a.C" name="test_p[1]" />
</testsuite></testsuites>
"""


def _write(path, text):
    path.write_text(textwrap.dedent(text))
    return junit.read(path)


def test_reading_pytest_junit(tmp_path):
    report = _write(tmp_path / "p.xml", PYTEST_XML)
    assert report.counts == {"tests": 6, "failures": 1, "errors": 1, "skipped": 2}
    assert report.outcomes[("tests.test_a", "test_bad")] == ("error", "failure")
    assert report.outcomes[("tests.test_a", "test_xf")] == ("xfailed",)
    assert report.outcomes[("tests.test_a.C", "test_p[1]")] == ("passed",)


def test_a_difference_names_the_counts_and_the_tests(tmp_path):
    ours = _write(tmp_path / "p.xml", PYTEST_XML)
    # dtf's shape: several <testsuite>s, summed; one test errored instead of passing,
    # the teardown error of test_bad is missing.
    theirs = _write(
        tmp_path / "d.xml",
        """\
        <testsuites tests="5"><testsuite tests="3" failures="1" errors="1" skipped="0">
        <testcase classname="tests.test_a" name="test_ok"><error message="gone" /></testcase>
        <testcase classname="tests.test_a" name="test_bad"><failure message="x" /></testcase>
        <testcase classname="tests.test_a.C" name="test_p[1]" />
        </testsuite><testsuite tests="2" failures="0" errors="0" skipped="2">
        <testcase classname="tests.test_a" name="test_skip"><skipped type="pytest.skip"/></testcase>
        <testcase classname="tests.test_a" name="test_xf"><skipped type="pytest.xfail"/></testcase>
        </testsuite></testsuites>
        """,
    )
    difference = junit.compare(ours, theirs)
    assert difference.counts == {"tests": (6, 5)}
    assert difference.tests == {
        ("tests.test_a", "test_ok"): (("passed",), ("error",)),
        ("tests.test_a", "test_bad"): (("error", "failure"), ("failure",)),
    }
    assert difference.first(1) == ["tests.test_a::test_bad: error/failure vs failure"]
    assert not junit.compare(ours, ours)
