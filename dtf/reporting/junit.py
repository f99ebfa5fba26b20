"""JUnit XML of a run, shaped like pytest's ``--junitxml`` so CI tools read it the same way.

The document validates against the JUnit schema of Jenkins' xUnit plugin
(``junit-10.xsd``, also used by pytest's own tests; tests/data/README.md). That
schema has no ``<properties>`` inside a ``<testcase>``, so the tests are grouped in
one ``<testsuite>`` per hardware kind and worker, whose properties name both.
It also knows Surefire's ``flakyFailure``/``rerunFailure`` elements: a rerun test's
earlier attempts (``TestEntry.earlier``) can go into its case as those.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Callable
from itertools import groupby

from dtf.reporting.model import NOT_RUN, CommandEntry, Result, RunReport, TestEntry

_ERROR_LIKE = ("error", "crashed", "timed_out", "out_of_memory", "infra_error")
_MESSAGE_CHARS = 500
_TALLY = {"failure": "failures", "error": "errors", "skipped": "skipped"}


def junit_xml(report: RunReport) -> str:
    """One ``<testcase>`` per test id (a teardown error after a failure adds one, as in
    pytest), one ``<testsuite>`` per (hardware, worker), commands in a suite of their own.
    A run stopped by -x / --maxfail leaves out the tests it never ran, as pytest does."""
    root = ET.Element("testsuites", name=report.title)
    shown = [
        t for t in report.tests if not (report.stopped and report.done and t.outcome == NOT_RUN)
    ]
    for (hardware, worker), tests in groupby(sorted(shown, key=_place), key=_place):
        suite = _suite(report, hardware, worker)
        unseen = 0
        for test in tests:
            cases = testcases(test, run_done=report.done)
            suite.extend(cases)
            unseen += _counted_without_a_case(test, cases)
        root.append(_tally(suite, unseen))
    commands = sorted(report.commands, key=lambda c: (c.queue, c.worker or "", c.position))
    for (queue, worker), group in groupby(commands, key=lambda c: (c.queue, c.worker)):
        suite = _suite(report, queue, worker, kind="commands")
        suite.extend(_command_case(c) for c in group)
        root.append(_tally(suite))
    for key in ("tests", "failures", "errors"):
        root.set(key, str(sum(int(s.get(key)) for s in root)))
    root.set("time", _seconds(sum(float(s.get("time")) for s in root)))
    ET.indent(root)
    return ET.tostring(root, encoding="unicode", xml_declaration=True) + "\n"


def _place(test: TestEntry) -> tuple[str, str]:
    return test.hardware, test.worker or ""


def _suite(report: RunReport, hardware: str, worker: str | None, kind: str = "") -> ET.Element:
    where = ", ".join(x for x in (kind, hardware, worker) if x)
    suite = ET.Element("testsuite", name=f"{report.title} [{where}]")
    if worker:
        suite.set("hostname", worker)
    if report.created_at:
        suite.set("timestamp", report.created_at.replace(microsecond=0).isoformat())
    props = ET.SubElement(suite, "properties")
    for name, value in (("dtf.run", report.run_id), ("hardware", hardware), ("worker", worker)):
        if value:
            ET.SubElement(props, "property", name=name, value=value)
    for key, value in report.labels.items():
        ET.SubElement(props, "property", name=f"dtf.label.{key}", value=value)
    return suite


def _counted_without_a_case(test: TestEntry, cases: list[ET.Element]) -> int:
    """Results pytest's JUnit XML counts in ``tests`` with no testcase of their own: a
    test with subtests counts each result line (a passing subtest adds none)."""
    if not any(result.subtest for result in test.results):
        return 0
    return max(0, len(test.results) - len(cases))


def _tally(suite: ET.Element, unseen: int = 0) -> ET.Element:
    totals = dict.fromkeys(("tests", "failures", "errors", "skipped"), 0)
    totals["tests"] = unseen
    seconds = 0.0
    for case in suite.iter("testcase"):
        totals["tests"] += 1
        seconds += float(case.get("time", "0"))
        for child in case:
            if child.tag in _TALLY:
                totals[_TALLY[child.tag]] += 1
    for key, value in totals.items():
        suite.set(key, str(value))
    suite.set("time", _seconds(seconds))
    return suite


def _seconds(value: float) -> str:
    return f"{value:.3f}"


def _names(nodeid: str) -> tuple[str, str]:
    """pytest's mangling: ``a/test_x.py::C::t[1]`` -> (``a.test_x.C``, ``t[1]``)."""
    base, bracket, params = nodeid.partition("[")  # a parameter id may hold "::"
    parts = base.split("::")
    parts[-1] += bracket + params
    module = parts[0].replace("/", ".").removesuffix(".py")
    if len(parts) == 1:
        return "", module
    return ".".join([module, *parts[1:-1]]), parts[-1]


def testcases(test: TestEntry, *, run_done: bool = True) -> list[ET.Element]:
    """Usually one case; a failure plus a teardown error make two, as in pytest (schema rule:
    a case holds one outcome element)."""
    classname, name = _names(test.nodeid)
    outcomes = [e for e in (outcome_element(r) for r in test.results) if e is not None]
    if test.outcome == NOT_RUN:
        outcomes = [_not_run_element(run_done)]
    cases = []
    for outcome in outcomes or [None]:
        case = ET.Element("testcase", classname=classname, name=name)
        if outcome is not None:
            case.append(outcome)
        cases.append(case)
    first = cases[0]
    first.set("time", _seconds(test.duration))
    first.extend(rerun_elements(test))
    stdout = "".join(r.stdout or "" for r in test.results)
    stderr = "".join(r.stderr or "" for r in test.results)
    if stdout:
        ET.SubElement(first, "system-out").text = stdout
    if stderr:
        ET.SubElement(first, "system-err").text = stderr
    return cases


def rerun_elements(test: TestEntry) -> list[ET.Element]:
    """Earlier failed attempts of a rerun test, as Maven Surefire writes them:
    ``flakyFailure``/``flakyError`` when it passed in the end, else
    ``rerunFailure``/``rerunError``."""
    passed_in_the_end = not any(r.failing for r in test.results)
    prefix = "flaky" if passed_in_the_end else "rerun"
    elements = []
    for row in test.earlier:
        if not row.failing:
            continue
        kind = "Failure" if row.outcome == "failed" else "Error"
        element = ET.Element(
            prefix + kind,
            message=_first_line(row),
            type=f"attempt {row.attempt}: {row.outcome}",
        )
        ET.SubElement(element, "stackTrace").text = row.longrepr or ""
        if row.stdout:
            ET.SubElement(element, "system-out").text = row.stdout
        if row.stderr:
            ET.SubElement(element, "system-err").text = row.stderr
        elements.append(element)
    return elements


def _first_line(row: Result) -> str:
    """What went wrong in one line: pytest's first ``E`` line, else the text's first line."""
    lines = [line.strip() for line in (row.longrepr or "").strip().splitlines()]
    errors = [line[1:].strip() for line in lines if line.startswith("E ")]
    return (errors or lines or [row.outcome])[0][:_MESSAGE_CHARS]


def _failure(row: Result) -> ET.Element:
    return ET.Element("failure", message=_first_line(row))


def _error(row: Result) -> ET.Element:
    if row.when == "collect":
        message = "collection failure"
    else:
        message = f"{row.outcome}: {_first_line(row)}"[:_MESSAGE_CHARS]
    return ET.Element("error", message=message, type=row.outcome)


def _skipped(row: Result) -> ET.Element:
    kind = "pytest.xfail" if row.outcome == "xfailed" else "pytest.skip"
    return ET.Element("skipped", type=kind, message=_first_line(row))


#: outcome -> the element its case holds; an outcome not here (passed, xpassed) holds none.
OUTCOME_ELEMENTS: dict[str, Callable[[Result], ET.Element]] = {
    "failed": _failure,
    **dict.fromkeys(_ERROR_LIKE, _error),
    "skipped": _skipped,
    "xfailed": _skipped,
}


def outcome_element(row: Result) -> ET.Element | None:
    build = OUTCOME_ELEMENTS.get(row.outcome)
    if build is None:
        return None
    element = build(row)
    element.text = row.longrepr or ""
    return element


def _not_run_element(run_done: bool) -> ET.Element:
    if run_done:
        return ET.Element("error", type="not_run", message="not run: its batch never finished")
    return ET.Element("skipped", type="dtf.pending", message="not run yet: the run is running")


def _command_case(command: CommandEntry) -> ET.Element:
    case = ET.Element("testcase", classname="dtf.command", name=command.name)
    if command.duration is not None:
        case.set("time", _seconds(command.duration))
    if command.status == "broken":
        ET.SubElement(case, "error", message=(command.output or "")[:_MESSAGE_CHARS], type="broken")
    elif command.status == "timed_out" or command.exit_code:
        message = "timed out" if command.status == "timed_out" else f"exit code {command.exit_code}"
        ET.SubElement(case, "failure", message=message).text = command.output
    if command.output:
        ET.SubElement(case, "system-out").text = command.output
    return case
