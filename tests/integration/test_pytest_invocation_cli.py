"""`dtf run` takes paths and pytest's own arguments as pytest does, wherever it is typed."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest
from junitparser import JUnitXml

from tests.support.processes import clean_env, pytest_counts, run_dtf

pytestmark = pytest.mark.integration

PROJECT = {
    "pyproject.toml": """
        [tool.pytest.ini_options]
        testpaths = ["tests"]
        markers = ["slow: a slow test"]
    """,
    "conftest.py": """
        import pytest

        @pytest.fixture
        def answer():
            return 42
    """,
    "tests/test_a.py": """
        import pytest

        def test_uses_the_root_conftest(answer):
            assert answer == 42

        def test_fails():
            assert 1 == 2

        @pytest.mark.slow
        def test_slow():
            pass
    """,
    "tests/sub/test_b.py": """
        def test_b():
            pass
    """,
}


@pytest.fixture
def project(tmp_path: Path) -> Path:
    root = tmp_path / "proj"
    for name, body in PROJECT.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(textwrap.dedent(body).lstrip())
    (tmp_path / "elsewhere").mkdir()
    return root


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    return clean_env(DTF_HOME=str(tmp_path / "home"))


def junit_cases(path: Path) -> dict[tuple[str, str], str]:
    cases = {}
    for suite in JUnitXml.fromfile(str(path)):
        for case in suite:
            kinds = [type(r).__name__.lower() for r in case.result]
            cases[(case.classname, case.name)] = kinds[0] if kinds else "passed"
    return cases


def pytest_junit(args: list[str], cwd: Path, out: Path) -> dict[tuple[str, str], str]:
    pytest_counts(*args, f"--junitxml={out}", cwd=cwd)
    return junit_cases(out)


def test_a_path_outside_the_directory_runs_as_pytest_runs_it(project, env, tmp_path):
    elsewhere = tmp_path / "elsewhere"
    proc = run_dtf(
        "run", "../proj/tests", "--workers", "1", "--junit-xml", "dtf.xml", env=env, cwd=elsewhere
    )  # fmt: skip
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "file not found" not in proc.stdout
    expected = pytest_junit(["../proj/tests"], elsewhere, tmp_path / "plain.xml")
    assert junit_cases(elsewhere / "dtf.xml") == expected
    assert ("tests.test_a", "test_fails") in expected


def test_no_paths_and_pytest_arguments_after_a_double_dash(project, env, tmp_path):
    proc = run_dtf(
        "run", "--workers", "1", "--junit-xml", "dtf.xml", "--label", "branch=dev", "--",
        "-m", "not slow", "-o", "xfail_strict=true", env=env, cwd=project,
    )  # fmt: skip
    assert proc.returncode == 1, proc.stdout + proc.stderr
    status = json.loads(run_dtf("status", "--json", env=env, cwd=project).stdout)
    assert status["labels"] == {"branch": "dev"}
    expected = pytest_junit(["-m", "not slow"], project, tmp_path / "plain.xml")
    assert junit_cases(project / "dtf.xml") == expected
    assert ("tests.test_a", "test_slow") not in expected
    assert ("tests.sub.test_b", "test_b") in expected


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["tests/nope"], "file or directory not found: tests/nope"),
        (["no_such_module_xyz", "--", "--pyargs"], "module or package not found"),
        (["tests", "--", "--no-such-option"], "unrecognized arguments: --no-such-option"),
        (["tests", "--", "--pdb"], "dtf cannot hand --pdb to pytest"),
        (["tests", "--", "-n", "2"], "dtf cannot hand -n to pytest"),
        (["../proj", "--code", "bundle"], "is outside it"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(project, env, tmp_path, args, message):
    cwd = tmp_path / "elsewhere" if args[0].startswith("..") else project
    proc = run_dtf("run", "--workers", "1", *args, env=env, cwd=cwd)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "Traceback" not in proc.stdout + proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and message in lines[0], proc.stderr


SUBTESTS = """
import unittest


class T(unittest.TestCase):
    def test_sub(self):
        for i in range(3):
            with self.subTest(i=i):
                self.assertLess(i, 5)

    def test_subfail(self):
        for i in range(3):
            with self.subTest(i=i):
                self.assertLess(i, 2)


def test_fixture(subtests):
    for i in range(3):
        with subtests.test(msg="step", i=i):
            assert i != 1


def test_plain():
    pass
"""


def junit_totals(path: Path) -> dict[str, int]:
    xml = JUnitXml.fromfile(str(path))
    return {key: sum(getattr(s, key) for s in xml) for key in ("tests", "failures", "errors")}


def test_subtests_count_as_pytest_counts_them(env, tmp_path):
    root = tmp_path / "subtests"
    root.mkdir()
    (root / "test_subtests.py").write_text(SUBTESTS)
    proc = run_dtf("run", "--workers", "1", "--junit-xml", "dtf.xml", env=env, cwd=root)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    pytest_counts(f"--junitxml={tmp_path / 'plain.xml'}", cwd=root)
    assert junit_totals(root / "dtf.xml") == junit_totals(tmp_path / "plain.xml")
    assert junit_cases(root / "dtf.xml") == junit_cases(tmp_path / "plain.xml")
    # pytest -q's closing line: 3 failed, 4 passed, 7 subtests passed
    status = json.loads(run_dtf("status", "--json", env=env, cwd=root).stdout)
    assert status["counts"] == pytest_counts(cwd=root) | {"subtests passed": 7}
