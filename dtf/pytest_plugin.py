"""pytest plugin used inside dtf's pytest child processes (load with ``-p dtf.pytest_plugin``).

Options, each independent; without any of them the plugin only registers the ``dtf`` marker:

* ``--dtf-collect-out FILE``: after collection (with -k/-m applied) write the selected items
  and the collection errors to FILE as one JSON document.
* ``--dtf-select FILE``: run only the node ids listed in FILE (one JSON string per line),
  in that order.
* ``--dtf-files FILE``: collect only the files listed in FILE (one JSON string per line,
  relative to the invocation directory), so that a batch given the run's own arguments
  (and so pytest's own rootdir, ini file, conftests and node ids) imports only its files.
* ``--dtf-events FILE``: append one JSON line per event to FILE, flushed at once:
  ``{"event": "start", "nodeid"}``, ``{"event": "result", **TestRecord.to_dict()}``,
  ``{"event": "finish", "nodeid"}`` and ``{"event": "collect_error", **TestRecord.to_dict()}``.
* ``--dtf-handoff FILE``: after each test, look for FILE (written by the runner, JSON
  ``{"first": NODEID}``): if NODEID has not started yet, drop it and every test after it
  from this session and write ``{"event": "handoff", "first": NODEID}``; otherwise
  ``{"event": "handoff", "first": null}``. Another worker runs what was handed off.
"""

from __future__ import annotations

import json
import os
import zlib
from pathlib import Path
from typing import IO, Any

import pytest

from dtf.executor.records import OUTCOMES, TestRecord, bounded

MARKER_HELP = (
    "dtf(**requirements): what a worker needs to run this test, "
    "e.g. dtf(hardware='cuda', min_memory_gb=16)"
)
TESTRAIL_MARKER_HELP = (
    "testrail(*case_ids): the TestRail cases this test reports to, e.g. testrail('C123')"
)
# Summary categories of pytest_report_teststatus that are results; "" means "not counted".
_COUNTED = frozenset(OUTCOMES)

_config_key = pytest.StashKey["_DtfState"]()


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("dtf", "dtf distributed testing (internal)")
    group.addoption(
        "--dtf-collect-out",
        metavar="FILE",
        default=None,
        help="write the collected items and collection errors to FILE as JSON",
    )
    group.addoption(
        "--dtf-collect-shard",
        metavar="I/N",
        default=None,
        help="with --dtf-collect-out: collect only the files of shard I of N",
    )
    group.addoption(
        "--dtf-select",
        metavar="FILE",
        default=None,
        help="run only the node ids in FILE (JSON lines), in that order",
    )
    group.addoption(
        "--dtf-files",
        metavar="FILE",
        default=None,
        help="collect only the files in FILE (JSON lines, relative to the invocation directory)",
    )
    group.addoption(
        "--dtf-handoff",
        metavar="FILE",
        default=None,
        help="hand the tests from the node id in FILE on to another worker",
    )
    group.addoption(
        "--dtf-events",
        metavar="FILE",
        default=None,
        help="append per-test events to FILE as JSON lines",
    )
    group.addoption(
        "--dtf-rewrite-cache",
        metavar="DIR",
        default=None,
        help="keep assertion-rewritten test modules in DIR when bytecode may not be written",
    )


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", MARKER_HELP)
    config.addinivalue_line("markers", TESTRAIL_MARKER_HELP)
    opts = config.option
    if opts.dtf_rewrite_cache:
        from dtf.executor.rewrite_cache import install

        install(Path(opts.dtf_rewrite_cache), config)
    if opts.dtf_collect_out or opts.dtf_select or opts.dtf_events:
        # dtf is the distributor: an `-n` from the project's addopts would start xdist
        # workers inside each batch (xdist's own configure runs after this one).
        if getattr(opts, "dist", "no") != "no" or getattr(opts, "numprocesses", None):
            opts.dist, opts.numprocesses = "no", None
        state = _DtfState(config)
        config.stash[_config_key] = state
        config.pluginmanager.register(state, "dtf-state")


def pytest_unconfigure(config: pytest.Config) -> None:
    state = config.stash.get(_config_key, None)
    if state is not None:
        state.close()


def requirements_of(item: pytest.Item) -> dict:
    """Kwargs of the item's ``dtf`` markers, merged so that the closest marker wins,
    plus the case ids of its ``testrail`` markers under ``testrail``."""
    merged: dict = {}
    for mark in reversed(list(item.iter_markers("dtf"))):
        merged.update(mark.kwargs)
    # testrail("C1", "C2") and pytest-testrail's testrail(ids=("C1",)) both count.
    cases = [
        case
        for mark in item.iter_markers("testrail")
        for case in (*mark.args, *_as_list(mark.kwargs.get("ids")))
    ]
    if cases:
        own = merged.get("testrail")
        merged["testrail"] = [*_as_list(own), *cases]
    return merged


_NEVER_SHARDED = frozenset({"conftest.py", "__init__.py"})


def _parse_shard(value: str | None) -> tuple[int, int] | None:
    if not value:
        return None
    index, _, count = value.partition("/")
    return int(index), int(count)


def _as_list(value: Any) -> list:
    if value is None:
        return []
    return list(value) if isinstance(value, (list, tuple)) else [value]


def record_for(
    report: pytest.TestReport | pytest.CollectReport, config: pytest.Config, duration: float
) -> TestRecord | None:
    """The record pytest's summary would count for this report, or None if it counts none."""
    if not getattr(report, "count_towards_summary", True):
        return None
    status = config.hook.pytest_report_teststatus(report=report, config=config)
    outcome = status[0] if status else ""
    if outcome not in _COUNTED:
        return None
    return TestRecord(
        nodeid=report.nodeid,
        outcome=outcome,
        when=report.when or "call",
        duration=duration,
        longrepr=bounded(_longrepr_text(report)),
        stdout=bounded(getattr(report, "capstdout", "") or None),
        stderr=bounded(getattr(report, "capstderr", "") or None),
    )


def subtest_description(report: pytest.TestReport) -> str | None:
    """A subtest report's description, ``(i=2)`` or ``[msg]``; None for any other report
    (pytest's own subtests since 9.0, and the pytest-subtests plugin before it)."""
    context = getattr(report, "context", None)
    if context is None or not hasattr(context, "kwargs"):
        return None
    describe = getattr(report, "_sub_test_description", None)
    return describe() if callable(describe) else "(<subtest>)"


def subtest_record(report: pytest.TestReport, subtest: str) -> TestRecord:
    """A subtest's result, each counted as pytest's JUnit XML counts it (whatever the
    terminal's verbosity shows)."""
    if report.passed:
        outcome = "passed"
    elif report.failed:
        outcome = "failed" if report.when == "call" else "error"
    else:
        outcome = "xfailed" if hasattr(report, "wasxfail") else "skipped"
    return TestRecord(
        nodeid=report.nodeid,
        outcome=outcome,
        when=report.when or "call",
        duration=report.duration or 0.0,
        longrepr=bounded(_longrepr_text(report)),
        stdout=bounded(getattr(report, "capstdout", "") or None),
        stderr=bounded(getattr(report, "capstderr", "") or None),
        subtest=subtest,
    )


def _longrepr_text(report: pytest.TestReport | pytest.CollectReport) -> str | None:
    longrepr = report.longrepr
    if not longrepr:
        return None
    # A skip's longrepr is (path, lineno, reason).
    if isinstance(longrepr, tuple) and len(longrepr) == 3:
        path, lineno, reason = longrepr
        return f"{path}:{lineno}: {reason}" if lineno is not None else f"{path}: {reason}"
    return str(longrepr)


class _DtfState:
    """Per-session state of the plugin, active when one of its options is given."""

    def __init__(self, config: pytest.Config) -> None:
        self.config = config
        opts = config.option
        self.collect_out: str | None = opts.dtf_collect_out
        self.shard: tuple[int, int] | None = _parse_shard(opts.dtf_collect_shard)
        #: every file the collection walked, in its order (shards merge by it)
        self.walked: list[str] = []
        self.selection: list[str] | None = None
        if opts.dtf_select:
            self.selection = _read_selection(Path(opts.dtf_select))
        self.invocation_dir = config.invocation_params.dir
        #: with --dtf-files: the files to collect and every folder above them
        self.files: frozenset[str] | None = None
        self.folders: frozenset[str] = frozenset()
        if opts.dtf_files:
            self.files = frozenset(_read_selection(Path(opts.dtf_files)))
            self.folders = frozenset(_folders_above(self.files))
            # pytest has chosen rootdir, ini file and conftests from all the arguments;
            # a file argument of another batch is left out (pytest would otherwise say
            # "not found" for its node ids, or "no collectors" for it).
            config.args[:] = [arg for arg in config.args if self._argument_kept(arg)]
        self.events: IO[str] | None = None
        if opts.dtf_events:
            self.events = open(opts.dtf_events, "a", encoding="utf-8")  # noqa: SIM115
        self.items: list[dict] = []
        self.collect_errors: list[dict] = []
        # Phase time of each test not yet attributed to one of its records.
        self.pending_time: dict[str, float] = {}
        #: subtest reports so far, per test (their records are numbered)
        self.subtests: dict[str, int] = {}
        self.handoff: Path | None = Path(opts.dtf_handoff) if opts.dtf_handoff else None
        self.session: pytest.Session | None = None

    def close(self) -> None:
        if self.events is not None:
            self.events.close()
            self.events = None

    def emit(self, event: dict[str, Any]) -> None:
        if self.events is None:
            return
        # Flushed, not fsync'd: a line in the page cache outlives the child (killed or
        # crashed); only the machine going down loses it, and the batch with it.
        self.events.write(json.dumps(event) + "\n")
        self.events.flush()

    @pytest.hookimpl(trylast=True)
    def pytest_collection_modifyitems(
        self, config: pytest.Config, items: list[pytest.Item]
    ) -> None:
        if self.selection is None:
            return
        order = {nodeid: i for i, nodeid in enumerate(self.selection)}
        keep = sorted((it for it in items if it.nodeid in order), key=lambda it: order[it.nodeid])
        drop = [it for it in items if it.nodeid not in order]
        if drop:
            config.hook.pytest_deselected(items=drop)
        items[:] = keep

    def pytest_ignore_collect(self, collection_path: Path, config: pytest.Config) -> bool | None:
        if self.files is not None and collection_path.is_dir():
            # pytest never asks this of the arguments' own folders or those above them.
            return True if self._relative(collection_path) not in self.folders else None
        # Every shard walks the whole tree (conftests, ignores and patterns apply as
        # usual) and imports only its own share of the files: where the time goes.
        if self.shard is None or collection_path.name in _NEVER_SHARDED:
            return None
        if collection_path.is_dir():
            return None
        relative = self._relative(collection_path)
        self.walked.append(relative)
        index, count = self.shard
        return True if zlib.crc32(relative.encode()) % count != index else None

    @pytest.hookimpl(hookwrapper=True)
    def pytest_collect_file(self, file_path: Path, parent: pytest.Collector):
        # Also for files given as arguments (pytest_ignore_collect is not asked of those);
        # a collector not returned is never imported.
        outcome = yield
        if self.files is not None and self._relative(file_path) not in self.files:
            outcome.force_result([])

    def _argument_kept(self, arg: str) -> bool:
        """False for an argument that names a file (or tests in it) outside this batch."""
        target = arg.split("::", 1)[0]
        path = self.invocation_dir / target
        if self.config.option.pyargs and not path.exists():
            path = _module_file(target) or path
        return not path.is_file() or self._relative(path) in (self.files or ())

    def _relative(self, path: Path) -> str:
        return _relpath(Path(path), self.invocation_dir)

    def pytest_collectreport(self, report: pytest.CollectReport) -> None:
        if report.skipped and self.collect_out is not None:
            # A module skipped as a whole (importorskip, allow_module_level):
            # pytest counts it as one skipped, so the collection reports it.
            reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else None
            skipped = TestRecord(
                nodeid=report.nodeid,
                outcome="skipped",
                when="collect",
                longrepr=bounded(str(reason or _longrepr_text(report))),
            )
            self.collect_errors.append(skipped.to_dict())
            return
        if not report.failed:
            return
        record = TestRecord(
            nodeid=report.nodeid,
            outcome="error",
            when="collect",
            longrepr=bounded(_longrepr_text(report)),
        )
        self.collect_errors.append(record.to_dict())
        self.emit({"event": "collect_error", **record.to_dict()})

    def pytest_collection_finish(self, session: pytest.Session) -> None:
        if self.collect_out is None:
            return
        self.items = [
            {
                "nodeid": it.nodeid,
                "path": self._relative(it.path),
                "requirements": requirements_of(it),
            }
            for it in session.items
        ]

    def pytest_sessionfinish(self, session: pytest.Session, exitstatus: int) -> None:
        # pytest_collection_finish also runs after a usage error (e.g. a bad -k), so the
        # collection is written only here, where the exit status tells the two apart.
        if self.collect_out is None or exitstatus in (
            pytest.ExitCode.USAGE_ERROR,
            pytest.ExitCode.INTERNAL_ERROR,
            pytest.ExitCode.INTERRUPTED,
        ):
            return
        doc = {
            "rootdir": str(self.config.rootpath),
            "inifile": str(self.config.inipath) if self.config.inipath else None,
            "invocation_dir": str(self.invocation_dir),
            "items": self.items,
            "errors": self.collect_errors,
            "walked": self.walked,
        }
        tmp = Path(self.collect_out + ".tmp")
        tmp.write_text(json.dumps(doc, default=repr), encoding="utf-8")
        os.replace(tmp, self.collect_out)

    def pytest_runtest_logstart(self, nodeid: str) -> None:
        self.emit({"event": "start", "nodeid": nodeid})

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        description = subtest_description(report)
        if description is not None:
            self.subtests[report.nodeid] = number = self.subtests.get(report.nodeid, 0) + 1
            record = subtest_record(report, f"#{number} {description}")
            self.emit({"event": "result", **record.to_dict()})
            return
        spent = self.pending_time.get(report.nodeid, 0.0) + (report.duration or 0.0)
        record = record_for(report, self.config, spent)
        if record is None:
            self.pending_time[report.nodeid] = spent
            return
        self.pending_time.pop(report.nodeid, None)
        self.emit({"event": "result", **record.to_dict()})

    def pytest_sessionstart(self, session: pytest.Session) -> None:
        self.session = session

    def pytest_runtest_logfinish(self, nodeid: str) -> None:
        self.pending_time.pop(nodeid, None)
        self.emit({"event": "finish", "nodeid": nodeid})
        if self.handoff is not None and self.handoff.exists():
            self._hand_off(nodeid)

    def _hand_off(self, finished: str) -> None:
        """Drop the tests the runner hands to another worker, if none of them started."""
        try:
            first = json.loads(self.handoff.read_text(encoding="utf-8"))["first"]
            self.handoff.unlink()  # one answer per request; the runner may ask again
        except (OSError, ValueError, KeyError, TypeError):
            return  # not completely written yet: looked at again after the next test
        items = self.session.items if self.session is not None else []
        names = [item.nodeid for item in items]
        done = names.index(finished) if finished in names else len(names)
        cut = names.index(first) if first in names else -1
        if cut <= done:
            self.emit({"event": "handoff", "first": None})
            return
        # runtestloop iterates over this list: the loop ends before the first handed-off
        # test, and the session's teardown closes what the last test left set up.
        del items[cut:]
        self.emit({"event": "handoff", "first": first})


def _read_selection(path: Path) -> list[str]:
    with path.open(encoding="utf-8") as fh:
        return [json.loads(line) for line in fh if line.strip()]


def _module_file(name: str) -> Path | None:
    """The file of module ``name`` (``--pyargs``), None for a package or no module."""
    import importlib.util

    try:
        spec = importlib.util.find_spec(name)
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.origin or spec.submodule_search_locations is not None:
        return None
    return Path(spec.origin)


def _folders_above(files: frozenset[str]) -> set[str]:
    """Every folder that holds one of ``files`` (relative paths), at any depth, and ".".

    Relative to the invocation directory, a file outside it climbs through "..";
    those folders are listed too, so a walk from anywhere reaches the file."""
    folders = {"."}
    for name in files:
        parent = Path(name).parent
        while parent.as_posix() not in folders and parent != parent.parent:
            folders.add(parent.as_posix())
            parent = parent.parent
    return folders


def _relpath(path: Path, root: Path) -> str:
    try:
        return path.relative_to(root).as_posix()
    except ValueError:
        return Path(os.path.relpath(path, root)).as_posix()
