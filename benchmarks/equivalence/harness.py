"""Run each cell of the matrix with plain pytest and with ``dtf run``; compare the JUnit.

Preparing a project (``prepare``): its release is fetched with pip into the cache folder
(``$DTF_EQUIVALENCE_CACHE``, else ``$XDG_CACHE_HOME/dtf-equivalence``, else
``~/.cache/dtf-equivalence``), its sdist unpacked into the work folder, and, in the
``venv`` mode, the package and its test dependencies installed into a virtual environment
of its own (``<cache>/venvs/<project>``). That environment also sees the packages of the
interpreter running this harness (dtf, celery, ...) through a ``.pth`` file that adds
their site-packages *after* its own, so dtf's local workers and pytest children (which
run with the interpreter that runs dtf) import the project's pinned packages first. The
``current`` mode uses this interpreter as it is (the project must be installed in it).

Running a cell (``run_cell``): in the cell's folder, with the same interpreter and the same
environment (no ``DTF_*``/``PYTEST_*`` settings from outside, a fresh ``DTF_HOME`` outside
the project, ``DTF_LOCAL_WORKERS_IDLE=0``, ``DTF_CI=none``):

    python -m pytest [--pyargs] [PYTEST_ARGS] PATHS --junitxml=pytest.xml
    python -m dtf run PATHS --wait --junit-xml dtf.xml [-- [--pyargs] [PYTEST_ARGS]]

A cell is equal when both wrote JUnit, the counts (tests, failures, errors, skipped) are
equal, every test id (classname and name) has the same outcome(s), and, where pytest
exited 0 or 1, dtf exited with the same code.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import shlex
import shutil
import subprocess
import sys
import sysconfig
import tarfile
import tempfile
import time
import zipfile
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

from benchmarks.equivalence import junit
from benchmarks.equivalence.projects import Cell, Project

CACHE_ENV = "DTF_EQUIVALENCE_CACHE"
BRIDGE_PTH = "zz_dtf_equivalence_bridge.pth"
DEFAULT_TIMEOUT = 300.0


class SetupError(Exception):
    """A project could not be prepared (download, unpack, install); one line."""


def cache_dir() -> Path:
    if os.environ.get(CACHE_ENV):
        return Path(os.environ[CACHE_ENV])
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "dtf-equivalence"


@contextlib.contextmanager
def locked(path: Path) -> Iterator[None]:
    """Hold an exclusive lock on ``path`` (two harnesses sharing a cache take turns)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _pip(*args: str, python: str | None = None, log: Path | None = None) -> None:
    command = [sys.executable, "-m", "pip", "--disable-pip-version-check", "--no-input"]
    if python:
        command += ["--python", python]
    command += list(args)
    proc = subprocess.run(command, capture_output=True, text=True)
    if log:
        log.parent.mkdir(parents=True, exist_ok=True)
        with open(log, "a") as out:
            out.write(f"$ {' '.join(command)}\n{proc.stdout}{proc.stderr}\n")
    if proc.returncode != 0:
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-1:] or ["(no output)"]
        raise SetupError(f"pip {args[0]} failed (exit {proc.returncode}): {tail[0]}")


# ---------------------------------------------------------------------------------------
# preparing a project


@dataclass
class Setup:
    project: Project
    python: str  # the interpreter both sides run with
    root: Path  # the project root: the unpacked sdist, or the installed package's folder
    outside: Path  # a folder beside the root (sdist) or elsewhere (installed)
    dtf_source: str = ""  # a folder put first on PYTHONPATH for both sides: dtf from there
    dtf_file: str = ""  # where both sides import dtf from


def _archive(folder: Path) -> Path | None:
    found = sorted(p for p in folder.glob("*") if p.name.endswith((".tar.gz", ".zip")))
    return found[0] if found else None


def fetch_sdist(project: Project, cache: Path) -> Path:
    """The release's source archive, downloaded once into ``<cache>/downloads``."""
    folder = cache / "downloads" / f"{project.dist}-{project.version}"
    archive = _archive(folder)
    if archive:
        return archive
    folder.mkdir(parents=True, exist_ok=True)
    _pip(
        "download", "--quiet", "--no-deps", "--no-binary", ":all:", "--dest", str(folder),
        project.requirement, log=cache / "logs" / f"{project.name}.log",
    )  # fmt: skip
    archive = _archive(folder)
    if not archive:
        raise SetupError(f"pip download left no sdist of {project.requirement} in {folder}")
    return archive


def unpack(archive: Path, into: Path) -> Path:
    """Unpack a fresh copy; return its single top folder (the project root)."""
    if into.exists():
        shutil.rmtree(into)
    into.mkdir(parents=True)
    if archive.name.endswith(".zip"):
        with zipfile.ZipFile(archive) as zf:
            zf.extractall(into)
    else:
        with tarfile.open(archive) as tf:
            tf.extractall(into, filter="data")
    tops = [p for p in into.iterdir() if p.is_dir()]
    if len(tops) != 1:
        raise SetupError(f"{archive.name} does not hold one top folder")
    return tops[0]


def _requirements(project: Project) -> list[str]:
    import pytest

    # The same pytest as the interpreter with dtf runs, so only the project differs.
    return [project.requirement, *project.test_deps, f"pytest=={pytest.__version__}"]


def _query(python: str, code: str, env: dict[str, str] | None = None) -> str:
    env = env or _base_env()
    # Not in this checkout: ``python -c`` puts the working directory first on sys.path.
    proc = subprocess.run(
        [python, "-c", code], capture_output=True, text=True, env=env, cwd=tempfile.gettempdir()
    )
    if proc.returncode != 0:
        tail = proc.stderr.strip().splitlines()[-1:] or ["(no output)"]
        raise SetupError(f"{python} -c ... failed: {tail[0]}")
    return proc.stdout.strip()


def ensure_venv(project: Project, cache: Path) -> str:
    """A virtual environment with the project and its test deps; its python."""
    venv = cache / "venvs" / project.name
    python = str(venv / "bin" / "python")
    own_site = sysconfig.get_paths()["purelib"]
    want = {
        "requirements": _requirements(project),
        "base": sys.executable,
        "bridge": own_site,
        "v": 2,
    }
    marker = venv / "dtf-equivalence.json"
    if marker.is_file() and json.loads(marker.read_text()) == want:
        return python
    shutil.rmtree(venv, ignore_errors=True)
    proc = subprocess.run(
        [sys.executable, "-m", "venv", "--without-pip", str(venv)], capture_output=True, text=True
    )
    if proc.returncode != 0:
        raise SetupError(f"python -m venv {venv} failed: {proc.stderr.strip()[-200:]}")
    log = cache / "logs" / f"{project.name}.log"
    # Installed before the bridge exists, so pip sees an empty environment.
    _pip("install", "--quiet", *want["requirements"], python=python, log=log)
    freeze = subprocess.run(
        [sys.executable, "-m", "pip", "--python", python, "list", "--format", "freeze"],
        capture_output=True, text=True,
    )  # fmt: skip
    (venv / "pip-list.txt").write_text(freeze.stdout)
    venv_site = _query(python, "import sysconfig; print(sysconfig.get_paths()['purelib'])")
    Path(venv_site, BRIDGE_PTH).write_text(f"import site; site.addsitedir({own_site!r})\n")
    marker.write_text(json.dumps(want))
    return python


def _check_installed(project: Project, python: str) -> None:
    code = f"import importlib.metadata as m; print(m.version({project.dist!r}))"
    try:
        version = _query(python, code)
    except SetupError:
        version = "not installed"
    if version != project.version:
        raise SetupError(
            f"{project.dist} is {version} in {python}, not {project.version}: "
            f"pip install {project.requirement} {' '.join(project.test_deps)}"
        )


def importable_source(source: Path, into: Path) -> Path:
    """A folder to put on PYTHONPATH for the dtf of a source tree (``dtf/``, ``workers/``,
    ``integrations/``): ``into/dtf`` links to its files, with ``workers`` and
    ``integrations`` inside, where an install puts them (``dtf.workers``, ...)."""
    if not (source / "dtf" / "__init__.py").is_file():
        raise SetupError(f"--dtf-source {source}: no dtf/__init__.py there")
    if into.exists():
        shutil.rmtree(into)
    package = into / "dtf"
    package.mkdir(parents=True)
    for entry in (source / "dtf").iterdir():
        (package / entry.name).symlink_to(entry.resolve())
    for folder in ("workers", "integrations"):
        (package / folder).symlink_to((source / folder).resolve())
    return into


def prepare(
    project: Project,
    work: Path,
    *,
    cache: Path | None = None,
    mode: str = "venv",
    dtf_source: str = "",
) -> Setup:
    """Fetch, unpack and install what ``project``'s cells need; ``work`` gets a fresh tree."""
    cache = cache or cache_dir()
    with locked(cache / "locks" / f"{project.name}.lock"):
        if mode == "venv":
            python = ensure_venv(project, cache)
        elif mode == "current":
            python = sys.executable
            _check_installed(project, python)
        else:
            raise SetupError(f"unknown mode {mode!r}: venv or current")
        archive = fetch_sdist(project, cache) if project.tests_from == "sdist" else None
    base = work / project.name
    if archive:
        root = unpack(archive, base / "src")
        outside = base / "src" / "elsewhere"  # beside the root
    else:
        code = f"import os, {project.package} as p; print(os.path.dirname(p.__file__))"
        root = Path(_query(python, code))
        if base.exists():
            shutil.rmtree(base)
        outside = base / "elsewhere"
    outside.mkdir(parents=True)
    if not (root / project.test_dir).is_dir():
        raise SetupError(f"{project.name}: no {project.test_dir}/ in {root}")
    if dtf_source:
        dtf_source = str(importable_source(Path(dtf_source), base / "dtf-source"))
    setup = Setup(project, python, root, outside, dtf_source)
    env = cell_env(setup, base / "dtf-home")
    setup.dtf_file = _query(python, "import dtf; print(dtf.__file__)", env)
    return setup


# ---------------------------------------------------------------------------------------
# running a cell


@dataclass
class Side:
    command: list[str]
    cwd: str
    exit_code: int | None  # None: killed at the timeout
    seconds: float
    log: str
    report: junit.Report | None = None
    note: str = ""  # dtf's error line, pytest's closing line, or why there is no report


@dataclass
class CellResult:
    project: str
    cell: str
    pytest: Side
    dtf: Side
    problems: list[str] = field(default_factory=list)
    difference: junit.Difference | None = None

    @property
    def equal(self) -> bool:
        return not self.problems

    def short(self) -> str:
        """The table's entry."""
        if self.equal:
            return "equal"
        for name, side in (("pytest", self.pytest), ("dtf", self.dtf)):
            if side.exit_code is None:
                return f"DIFF: {name} timed out"
        if self.dtf.report is None:
            return f"DIFF: dtf wrote no JUnit (exit {self.dtf.exit_code})"
        if self.pytest.report is None:
            return f"DIFF: pytest wrote no JUnit (exit {self.pytest.exit_code})"
        if self.difference:
            return f"DIFF: {self.difference.describe_counts() or 'outcomes'}".rstrip()
        return "DIFF: " + "; ".join(self.problems)

    def details(self) -> list[str]:
        lines = []
        for name, side in (("pytest", self.pytest), ("dtf", self.dtf)):
            counts = (
                " ".join(f"{k}={v}" for k, v in side.report.counts.items())
                + f" ({side.report.cases} <testcase>s)"
                if side.report
                else "no JUnit"
            )
            exit_code = "timed out" if side.exit_code is None else f"exit {side.exit_code}"
            lines.append(f"{name}: {exit_code}, {side.seconds:.1f} s, {counts}")
            lines.append(f"  $ (cd {shlex.quote(side.cwd)} && {shlex.join(side.command)})")
            if side.report and side.report.counts["tests"] != side.report.cases:
                extra = side.report.counts["tests"] - side.report.cases
                lines.append(
                    f"  its tests= counts {extra} more than its <testcase>s (pytest counts the "
                    "report of every subtest, e.g. unittest's subTest, in tests=)"
                )
            if side.note:
                lines.append(f"  said: {side.note}")
        lines.extend(f"problem: {p}" for p in self.problems)
        if self.difference and self.difference.tests:
            lines.append(f"differing tests: {self.difference.outcome_summary()}")
            lines.extend(f"  {line}" for line in self.difference.first(3))
        return lines

    def to_json(self) -> dict:
        def side(s: Side) -> dict:
            data = asdict(s)
            data["report"] = s.report.counts if s.report else None
            return data

        return {
            "project": self.project,
            "cell": self.cell,
            "equal": self.equal,
            "short": self.short(),
            "problems": self.problems,
            "pytest": side(self.pytest),
            "dtf": side(self.dtf),
            "differing_tests": [
                {"id": junit.format_id(k), "pytest": list(a), "dtf": list(b)}
                for k, (a, b) in sorted(self.difference.tests.items())
            ]
            if self.difference
            else [],
        }


def _base_env() -> dict[str, str]:
    """This environment less what would steer either side: DTF_*, PYTEST_* (set inside a
    pytest run: PYTEST_CURRENT_TEST, PYTEST_XDIST_WORKER, ...), PYTHONPATH, VIRTUAL_ENV."""
    drop = {"PYTHONPATH", "VIRTUAL_ENV", "PYTHONHOME"}
    return {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("DTF_", "PYTEST_")) and k not in drop
    }


def cell_env(setup: Setup, home: Path) -> dict[str, str]:
    env = _base_env()
    env["PATH"] = f"{Path(setup.python).parent}{os.pathsep}{env.get('PATH', '')}"
    env["DTF_HOME"] = str(home)  # outside the project: nothing of dtf's lands in its tree
    env["DTF_LOCAL_WORKERS_IDLE"] = "0"  # no warm workers left behind
    env["DTF_CI"] = "none"
    if setup.dtf_source:
        env["PYTHONPATH"] = setup.dtf_source
    return env


def cell_paths(setup: Setup, cell: Cell) -> tuple[Path, list[str]]:
    """The cell's working folder and its PATHS arguments."""
    cwd = setup.root if cell.cwd == "root" else setup.outside
    values = {
        "tests": setup.project.test_dir,
        "root": str(setup.root),
        "rel_root": os.path.relpath(setup.root, setup.outside),
        "package": setup.project.package,
    }
    return cwd, [p.format(**values) for p in cell.paths]


def commands(
    setup: Setup, cell: Cell, pytest_xml: Path, dtf_xml: Path, dtf_args: Sequence[str] = ()
) -> tuple[list[str], list[str]]:
    _, paths = cell_paths(setup, cell)
    extra = [*(["--pyargs"] if cell.pyargs else []), *setup.project.pytest_args]
    select = ["-m", setup.project.markers] if setup.project.markers else []
    select += ["-k", setup.project.keyword] if setup.project.keyword else []
    pytest_cmd = [setup.python, "-m", "pytest", *extra, *select, *paths]
    pytest_cmd.append(f"--junitxml={pytest_xml}")
    dtf_cmd = [setup.python, "-m", "dtf", "run", *paths, *select]
    dtf_cmd += ["--wait", "--junit-xml", str(dtf_xml)]
    dtf_cmd += list(dtf_args)
    if extra:
        dtf_cmd += ["--", *extra]
    return pytest_cmd, dtf_cmd


def _last_line(text: str, prefix: str = "") -> str:
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    if prefix:
        errors = [line for line in lines if line.startswith(prefix + " error:")]
        mine = errors or [line for line in lines if line.startswith(prefix)]
        if mine:
            return mine[-1][:300]
    return lines[-1][:300] if lines else ""


def _run_side(
    command: list[str],
    cwd: Path,
    env: dict[str, str],
    xml: Path,
    log: Path,
    timeout: float,
    name: str,
) -> Side:
    start = time.perf_counter()
    with open(log, "w") as out:
        out.write(f"$ cd {shlex.quote(str(cwd))} && {shlex.join(command)}\n")
        out.flush()
        proc = subprocess.Popen(
            command, cwd=cwd, env=env, stdout=out, stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL, start_new_session=True,
        )  # fmt: skip
        try:
            code: int | None = proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            code = None
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, 9)  # its own session: the command and what it started
            proc.wait()
    seconds = time.perf_counter() - start
    text = log.read_text(errors="replace")
    side = Side(command, str(cwd), code, seconds, str(log))
    side.note = _last_line(text, "dtf:" if name == "dtf" else "")
    if code is None:
        side.note = f"killed after {timeout:.0f} s"
    if xml.is_file():
        try:
            side.report = junit.read(xml)
        except Exception as exc:  # a broken file is a result too
            side.note = f"unreadable JUnit: {exc}"
    return side


def run_cell(
    setup: Setup,
    cell: Cell,
    out: Path,
    *,
    timeout: float = DEFAULT_TIMEOUT,
    dtf_args: Sequence[str] = (),
) -> CellResult:
    """Both sides of one cell, one after the other; their files go under ``out``."""
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    cwd, _ = cell_paths(setup, cell)
    pytest_xml, dtf_xml = out / "pytest.xml", out / "dtf.xml"
    pytest_cmd, dtf_cmd = commands(setup, cell, pytest_xml, dtf_xml, dtf_args)
    env = cell_env(setup, out / "dtf-home")
    pytest_side = _run_side(pytest_cmd, cwd, env, pytest_xml, out / "pytest.log", timeout, "pytest")
    dtf_side = _run_side(dtf_cmd, cwd, env, dtf_xml, out / "dtf.log", timeout, "dtf")
    if dtf_side.exit_code is None:  # killed: make sure no local worker of it stays
        subprocess.run(
            [setup.python, "-m", "dtf", "stop-workers"], cwd=cwd, env=env,
            capture_output=True, timeout=120, check=False,
        )  # fmt: skip
    result = CellResult(setup.project.name, cell.name, pytest_side, dtf_side)
    for name, side in (("pytest", pytest_side), ("dtf", dtf_side)):
        if side.exit_code is None:
            result.problems.append(f"{name} timed out")
        if side.report is None:
            result.problems.append(f"{name} wrote no JUnit")
    if pytest_side.report and dtf_side.report:
        difference = junit.compare(pytest_side.report, dtf_side.report)
        if difference:
            result.difference = difference
            if difference.counts:
                result.problems.append(f"counts differ: {difference.describe_counts()}")
            if difference.tests:
                result.problems.append(
                    f"{len(difference.tests)} tests differ: {difference.outcome_summary()}"
                )
    if (
        pytest_side.exit_code in (0, 1)
        and dtf_side.exit_code is not None
        and dtf_side.exit_code != pytest_side.exit_code
    ):
        result.problems.append(
            f"exit codes differ: pytest {pytest_side.exit_code}, dtf {dtf_side.exit_code}"
        )
    (out / "result.json").write_text(json.dumps(result.to_json(), indent=2))
    return result


# ---------------------------------------------------------------------------------------
# the table


def table(rows: dict[str, dict[str, str]], cells: list[str], markdown: bool = False) -> str:
    """project x cell; an entry is ``equal``, a DIFF line, ``-`` (no such cell) or a setup error."""
    header = ["project", *cells]
    body = [[project, *(entries.get(c, "-") for c in cells)] for project, entries in rows.items()]
    if markdown:
        lines = ["| " + " | ".join(header) + " |", "|" + " --- |" * len(header)]
        lines += ["| " + " | ".join(row) + " |" for row in body]
        return "\n".join(lines)
    widths = [max(len(r[i]) for r in [header, *body]) for i in range(len(header))]
    return "\n".join(
        "  ".join(value.ljust(width) for value, width in zip(row, widths, strict=True)).rstrip()
        for row in [header, *body]
    )
