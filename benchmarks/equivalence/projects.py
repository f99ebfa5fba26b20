"""The third-party projects and the invocation matrix, as data.

Each project is a real, unmodified release from PyPI, pinned. ``tests_from`` says where
its tests come from: ``"sdist"`` (the release's source archive, unpacked into the work
folder; the package itself is installed from PyPI as a wheel of the same version) or
``"installed"`` (the tests ship inside the package, and run from site-packages).

A cell's ``cwd`` is ``"root"`` (the project root: the unpacked sdist, or the installed
package's folder) or ``"outside"`` (a folder beside the project root, or any folder
outside it for an installed package). Its ``paths`` are templates:

- ``{tests}``: the project's test folder, relative to its root
- ``{root}``: the project root, absolute
- ``{rel_root}``: the project root relative to the ``outside`` folder (``../iniconfig-2.3.1``)
- ``{package}``: the import name (for ``--pyargs``)

``pyargs`` cells add ``--pyargs`` to the pytest arguments of both sides.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Cell:
    name: str
    cwd: str  # "root" or "outside"
    paths: tuple[str, ...] = ()
    pyargs: bool = False
    what: str = ""


@dataclass(frozen=True)
class Project:
    name: str  # the key used on the command line
    dist: str  # PyPI distribution name
    version: str
    package: str  # import name
    tests_from: str  # "sdist" or "installed"
    test_dir: str  # relative to the project root
    layout: str  # one line, for the table
    cells: tuple[Cell, ...]
    test_deps: tuple[str, ...] = ()  # what its tests import besides pytest (pinned)
    pytest_args: tuple[str, ...] = ()  # given to both sides (after dtf's `--`)
    #: ``-m`` for both sides (dtf has its own ``-m``): leaves out tests whose outcome is
    #: not a function of the code (timing tests), with the reason in ``why``
    markers: str = ""
    #: ``-k`` for both sides (dtf has its own ``-k``), for the same reasons or to keep a
    #: huge suite to a size a cell can run in well under a minute
    keyword: str = ""
    why: str = ""

    @property
    def requirement(self) -> str:
        return f"{self.dist}=={self.version}"

    def cell(self, name: str) -> Cell:
        for cell in self.cells:
            if cell.name == name:
                return cell
        raise KeyError(f"{self.name} has no cell {name!r}: {', '.join(c.name for c in self.cells)}")


NO_ARGS = Cell("no-args", "root", (), what="`pytest` in the project root")
TEST_DIR = Cell("test-dir", "root", ("{tests}",), what="`pytest TESTS` in the project root")
SIBLING = Cell(
    "sibling",
    "outside",
    ("{rel_root}/{tests}",),
    what="`pytest ../PROJ/TESTS` from a folder beside it",
)
ABSOLUTE = Cell(
    "absolute", "root", ("{root}/{tests}",), what="`pytest /abs/PROJ/TESTS` in the project root"
)
ABSOLUTE_OUTSIDE = Cell(
    "abs-outside",
    "outside",
    ("{root}/{tests}",),
    what="`pytest /abs/PROJ/TESTS` from a folder beside it",
)
PYARGS = Cell(
    "pyargs",
    "outside",
    ("{package}",),
    pyargs=True,
    what="`pytest --pyargs PKG` from another folder",
)

SDIST_CELLS = (NO_ARGS, TEST_DIR, SIBLING, ABSOLUTE, ABSOLUTE_OUTSIDE)

PROJECTS: tuple[Project, ...] = (
    Project(
        name="iniconfig",
        dist="iniconfig",
        version="2.3.1",
        package="iniconfig",
        tests_from="sdist",
        test_dir="testing",
        layout="src/ layout, tests in testing/ beside it; testpaths in pyproject.toml",
        cells=SDIST_CELLS,
    ),
    Project(
        name="toolz",
        dist="toolz",
        version="1.2.0",
        package="toolz",
        tests_from="installed",
        test_dir="tests",
        layout="tests inside the package (toolz/tests, toolz/sandbox/tests), from site-packages",
        cells=(
            Cell("no-args", "root", (), what="`pytest` in site-packages/toolz"),
            Cell("test-dir", "root", ("{tests}",), what="`pytest tests` in site-packages/toolz"),
            ABSOLUTE_OUTSIDE,
            PYARGS,
        ),
    ),
    Project(
        name="packaging",
        dist="packaging",
        version="26.4",
        package="packaging",
        tests_from="sdist",
        test_dir="tests",
        layout="src/ layout; pyproject addopts (-m 'not property', -p no:..., --strict-markers), "
        "markers, testpaths, filterwarnings=error, xfail_strict",
        cells=SDIST_CELLS,
        test_deps=("pretend==1.0.9", "hypothesis==6.170.27", "tomli_w==1.2.0"),
        keyword="not test_version.py and not test_requirements.py",
        why="the whole suite is 64,207 tests (51,524 in test_version.py), 85 s under plain "
        "pytest here; without those two modules it is ~7,300. The -k also meets the -m "
        "of addopts on both sides",
    ),
    Project(
        name="zipp",
        dist="zipp",
        version="4.1.2",
        package="zipp",
        tests_from="sdist",
        test_dir="tests",
        layout="flat layout (zipp/ at the root); pytest.ini addopts --doctest-modules "
        "--import-mode importlib, consider_namespace_packages",
        cells=SDIST_CELLS,
        test_deps=(
            "jaraco.itertools==6.4.3",
            "jaraco.functools==4.6.0",
            "more_itertools==11.2.1",
            "big-O==0.11.0",
            "pytest-ignore-flaky==2.2.1",
            "jaraco.test==5.7.0",
        ),
        markers="not flaky",
        why="tests/test_complexity.py's @pytest.mark.flaky tests time zipp with big-O and "
        "fail at random on a busy machine, under either runner",
    ),
    Project(
        name="pluggy",
        dist="pluggy",
        version="1.7.0",
        package="pluggy",
        tests_from="sdist",
        test_dir="testing",
        layout="src/ layout, testing/; [pytest] in tox.ini: testpaths, addopts -r a, "
        "filterwarnings=error, minversion",
        cells=SDIST_CELLS,
    ),
)


def by_name(name: str) -> Project:
    for project in PROJECTS:
        if project.name == name:
            return project
    raise KeyError(f"no project {name!r}: {', '.join(p.name for p in PROJECTS)}")
