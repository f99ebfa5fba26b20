"""JUnit XML of a run, shaped like pytest's ``--junitxml`` so CI tools read it the same way."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from itertools import groupby

from sqlalchemy import select
from sqlalchemy.orm import Session

from dtf.db.models import Run, RunTask, TestResult

_ERROR_LIKE = ("error", "crashed", "timed_out")


def junit_xml(session: Session, run_id: str) -> str:
    """One ``<testcase>`` per test id (a teardown error joins its test's case)."""
    run = session.get(Run, run_id)
    results = session.scalars(
        select(TestResult).filter_by(run_id=run_id).order_by(TestResult.nodeid, TestResult.id)
    ).all()
    suite = ET.Element("testsuite", name=run.name or f"dtf run {run_id}", hostname="dtf")
    totals = {"tests": 0, "failures": 0, "errors": 0, "skipped": 0}
    duration = 0.0
    for nodeid, group in groupby(results, key=lambda r: r.nodeid):
        rows = list(group)
        duration += sum(r.duration for r in rows)
        for case in _testcases(nodeid, rows):
            suite.append(case)
            totals["tests"] += 1
            for child in case:
                tag = {"failure": "failures", "error": "errors", "skipped": "skipped"}.get(
                    child.tag
                )
                if tag:
                    totals[tag] += 1
    for command in session.scalars(select(RunTask).filter_by(run_id=run_id, type="command")):
        suite.append(_command_case(command))
        totals["tests"] += 1
        if command.status == "broken":
            totals["errors"] += 1
        elif command.exit_code or command.status == "timed_out":
            totals["failures"] += 1
    for key, value in totals.items():
        suite.set(key, str(value))
    suite.set("time", f"{duration:.3f}")
    if run.created_at:
        suite.set("timestamp", run.created_at.replace(microsecond=0).isoformat())
    root = ET.Element("testsuites")
    root.append(suite)
    ET.indent(root)
    return ET.tostring(root, encoding="unicode", xml_declaration=True) + "\n"


def _names(nodeid: str) -> tuple[str, str]:
    """pytest's mangling: ``a/test_x.py::C::t[1]`` -> (``a.test_x.C``, ``t[1]``)."""
    base, bracket, params = nodeid.partition("[")  # a parameter id may hold "::"
    parts = base.split("::")
    parts[-1] += bracket + params
    module = parts[0].replace("/", ".").removesuffix(".py")
    if len(parts) == 1:
        return "", module
    return ".".join([module, *parts[1:-1]]), parts[-1]


def _testcases(nodeid: str, rows: list[TestResult]) -> list[ET.Element]:
    """Usually one case; a failure plus a teardown error make two, as in pytest (schema rule)."""
    classname, name = _names(nodeid)
    outcomes = [e for e in (_outcome_element(r) for r in rows) if e is not None] or [None]
    cases = []
    for outcome in outcomes:
        case = ET.Element("testcase", classname=classname, name=name)
        cases.append(case)
        if outcome is not None:
            case.append(outcome)
    first = cases[0]
    first.set("time", f"{sum(r.duration for r in rows):.3f}")
    worker = next((r.worker for r in rows if r.worker), None)
    if worker:
        props = ET.Element("properties")
        ET.SubElement(props, "property", name="worker", value=worker)
        first.insert(0, props)
    stdout = "".join(r.stdout or "" for r in rows)
    stderr = "".join(r.stderr or "" for r in rows)
    if stdout:
        ET.SubElement(first, "system-out").text = stdout
    if stderr:
        ET.SubElement(first, "system-err").text = stderr
    return cases


def _outcome_element(row: TestResult) -> ET.Element | None:
    text = row.longrepr or ""
    first = text.strip().splitlines()[-1] if text.strip() else row.outcome
    if row.outcome == "failed":
        element = ET.Element("failure", message=first[:500])
    elif row.outcome in _ERROR_LIKE:
        message = {"collect": "collection failure"}.get(row.when, f"{row.outcome}: {first}"[:500])
        element = ET.Element("error", message=message, type=row.outcome)
    elif row.outcome in ("skipped", "xfailed"):
        kind = "pytest.xfail" if row.outcome == "xfailed" else "pytest.skip"
        element = ET.Element("skipped", type=kind, message=first[:500])
    else:
        return None
    element.text = text
    return element


def _command_case(command: RunTask) -> ET.Element:
    name = command.name or f"command[{command.position}]"
    case = ET.Element("testcase", classname="dtf.command", name=name)
    if command.started_at and command.finished_at:
        case.set("time", f"{(command.finished_at - command.started_at).total_seconds():.3f}")
    if command.status == "broken":
        ET.SubElement(case, "error", message=(command.output or "")[:500], type="broken")
    elif command.status == "timed_out" or command.exit_code:
        message = "timed out" if command.status == "timed_out" else f"exit code {command.exit_code}"
        ET.SubElement(case, "failure", message=message).text = command.output
    if command.output:
        ET.SubElement(case, "system-out").text = command.output
    return case
