"""Rendering the report model: JUnit XML against the Jenkins schema, JSON, Markdown, HTML."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from lxml import etree
from sqlalchemy import create_engine, inspect
from sqlalchemy.orm import Session

from dtf.cli_report import format_for, parse_target
from dtf.db.models import Base, Batch, Run, RunTask, TestItem, TestResult
from dtf.errors import BadInput
from dtf.reporting import FORMAT_NAMES
from dtf.reporting.formats import FORMATS
from dtf.reporting.html import SECTIONS as HTML_SECTIONS
from dtf.reporting.html import render_html
from dtf.reporting.json_report import render_json
from dtf.reporting.junit import junit_xml
from dtf.reporting.markdown import MAX_CHARS, SECTIONS, code, render_markdown
from dtf.reporting.model import Result, RunReport, TestEntry, load_report
from dtf.reporting.text import error_excerpt
from tests.unit.test_report_model import store_sample_run

JUNIT_XSD = Path(__file__).parents[1] / "data" / "junit-10.xsd"


@pytest.fixture(scope="module")
def junit_schema() -> etree.XMLSchema:
    return etree.XMLSchema(etree.parse(str(JUNIT_XSD)))


def _report(status: str = "failed") -> RunReport:
    engine = create_engine("sqlite://")
    Base.metadata.create_all(engine)
    with Session(engine) as session:
        store_sample_run(session, status=status)
        return load_report(session, "r1")


def _valid(schema: etree.XMLSchema, xml: str) -> etree._Element:
    doc = etree.fromstring(xml.encode("utf-8"))
    assert schema.validate(doc), schema.error_log
    return doc


def test_the_cli_offers_every_format():
    assert tuple(FORMATS) == FORMAT_NAMES


# --- JUnit -----------------------------------------------------------------------------


def test_junit_validates_and_groups_tests_by_hardware_and_worker(junit_schema):
    doc = _valid(junit_schema, junit_xml(_report()))

    suites = {
        s.get("name"): {p.get("name"): p.get("value") for p in s.iterfind("properties/property")}
        for s in doc.iterfind("testsuite")
    }
    assert suites == {
        "nightly [cpu, w1@a]": {"dtf.run": "r1", "hardware": "cpu", "worker": "w1@a"},
        "nightly [cuda]": {"dtf.run": "r1", "hardware": "cuda"},
        "nightly [commands, cpu, w1@a]": {"dtf.run": "r1", "hardware": "cpu", "worker": "w1@a"},
    }
    cases = [(c.get("classname"), c.get("name")) for c in doc.iter("testcase")]
    assert len(cases) == len(set(cases)) == 6  # five test ids and one command
    assert ("pkg.test_gpu", "test_big") in cases
    assert (doc.get("tests"), doc.get("failures"), doc.get("errors")) == ("6", "2", "2")


def test_junit_says_why_a_case_failed(junit_schema):
    doc = _valid(junit_schema, junit_xml(_report()))
    case = {c.get("name"): c for c in doc.iter("testcase")}

    failure = case["test_bad"].find("failure")
    assert failure.get("message") == "assert 1 == 2"
    assert "assert 1 == 2" in failure.text
    assert case["test_teardown"].find("error").get("message") == "error: RuntimeError: boom"
    assert case["test_big"].find("error").get("type") == "not_run"
    assert case["lint"].find("failure").get("message") == "exit code 3"
    assert case["test_ok"].find("*") is None


def test_junit_of_a_running_run_skips_what_has_not_run_yet(junit_schema):
    doc = _valid(junit_schema, junit_xml(_report(status="running")))
    big = next(c for c in doc.iter("testcase") if c.get("name") == "test_big")
    assert big.find("skipped").get("type") == "dtf.pending"


def test_the_schema_takes_surefire_rerun_elements_and_rejects_unknown_ones(junit_schema):
    """Reruns will add Surefire's flakyFailure/rerunFailure to a case: the schema (pytest's
    copy of Jenkins' junit-10.xsd) declares them, so the document stays valid."""
    doc = _valid(junit_schema, junit_xml(_report()))
    case = next(c for c in doc.iter("testcase") if c.get("name") == "test_flaky")
    flaky = etree.SubElement(case, "flakyFailure", type="AssertionError", message="boom")
    etree.SubElement(flaky, "stackTrace").text = "E boom"
    etree.SubElement(flaky, "system-out").text = "first try"
    etree.SubElement(case, "rerunFailure", type="AssertionError", message="boom")
    assert junit_schema.validate(doc), junit_schema.error_log

    etree.SubElement(case, "properties")  # not allowed inside a testcase by this schema
    assert not junit_schema.validate(doc)


# --- JSON ------------------------------------------------------------------------------


def test_json_holds_every_column_of_every_row():
    data = json.loads(render_json(_report()))

    def columns(model) -> set[str]:
        return {c.key for c in inspect(model).column_attrs}

    assert set(data["run"]) == columns(Run)
    assert all(set(t) == columns(RunTask) for t in data["tasks"])
    assert all(set(b) == columns(Batch) | {"attempts"} for b in data["batches"])
    assert all(set(i) == columns(TestItem) for i in data["items"])
    assert all(set(r) == columns(TestResult) for r in data["results"])
    assert (len(data["tasks"]), len(data["batches"]), len(data["items"])) == (2, 2, 5)
    assert len(data["results"]) == 5
    assert data["run"]["created_at"] == "2026-01-02T03:04:05"  # SQLite keeps no zone
    assert data["workers"] == [{"hostname": "w1@a"}]  # no longer registered
    assert data["summary"]["counts"] == {"passed": 3, "failed": 1, "error": 1}
    assert data["summary"]["flaky"] == 1
    assert [g["name"] for g in data["breakdown"]["hardware"]] == ["cpu", "cuda"]


# --- Markdown --------------------------------------------------------------------------


def test_markdown_has_totals_failures_flaky_slowest_and_hardware():
    text = render_markdown(_report())

    assert text.startswith("## ❌ dtf run `r1`: failed (nightly)")
    assert "| passed | 3 |" in text and "| not run | 1 |" in text
    assert "**FAILED** `pkg/test_a.py::test_bad` · cpu · w1@a" in text
    assert "E       assert 1 == 2" in text
    assert "**ERROR at teardown of** `pkg/test_b.py::test_teardown`" in text
    assert "**NOT RUN** `pkg/test_gpu.py::test_big` · cuda" in text
    assert "**COMMAND** `lint` exited 3" in text
    assert "**BROKEN** batch b2 on queue cuda: worker lost" in text
    assert "### Flaky (1)\n\n- `pkg/test_b.py::test_flaky`" in text
    assert "### Slowest tests" in text and "| `pkg/test_a.py::test_bad` | failed |" in text
    assert "| cuda | 1 | 0 | 0 | 0 | 1 | 0.00s |" in text


def _many_failures(n: int) -> RunReport:
    report = _report()
    error = "def test():\n" + "E   " + "x" * 300 + "\n" * 2 + "long line\n" * 1000
    report.tests = [
        TestEntry(
            nodeid=f"t/test_{i:05d}.py::test_fails", module=f"t/test_{i:05d}.py",
            outcome="failed", duration=float(i), hardware="cpu", worker="w",
            task=0, results=[Result(f"t/test_{i:05d}.py::test_fails", "failed", "call",
                                    float(i), error, None, None, "w")],
        )
        for i in range(n)
    ]  # fmt: skip
    report.commands, report.broken = [], []
    return report


def test_markdown_stays_under_githubs_comment_limit():
    text = render_markdown(_many_failures(3000))

    assert len(text) <= MAX_CHARS < 65536
    shown = text.count("**FAILED**")
    assert 0 < shown < 3000
    assert f"_... and {3000 - shown} more failures_" in text
    assert text.count("```") % 2 == 0  # every code block closed
    assert max(len(line) for line in text.splitlines()) < 400


def test_markdown_cut_at_the_last_resort_says_so():
    text = render_markdown(_report(), max_chars=300)
    assert len(text) <= 300
    assert text.endswith("_... report cut at 300 characters_\n")


def test_a_markdown_section_is_one_function():
    def matrix(report: RunReport, items: int) -> str:
        return f"### Model x hardware\n\n{len(report.tests)} tests"

    text = render_markdown(_report(), sections=[*SECTIONS, matrix])
    assert text.rstrip().endswith("### Model x hardware\n\n5 tests")


def test_code_spans_survive_backticks():
    assert code("t.py::test[a`b]") == "`` t.py::test[a`b] ``"
    assert code("plain") == "`plain`"


def test_error_excerpt_prefers_pytests_error_lines():
    text = "def test():\n>   assert f()\nE   assert False\nE    +  where False = f()\n\nt.py:3: Err"
    assert error_excerpt(text) == ["E   assert False", "E    +  where False = f()", "t.py:3: Err"]
    assert error_excerpt("worker lost\nsecond\nthird", max_lines=2) == ["worker lost", "second"]
    assert error_excerpt("E " + "y" * 500, width=20) == ["E " + "y" * 17 + "…"]


# --- HTML ------------------------------------------------------------------------------


def test_html_is_self_contained_and_escapes_what_tests_print():
    report = _report()
    hostile = "t.py::test_x[<script>alert(1)</script>]"
    report.tests[0].nodeid = hostile
    page = render_html(report)

    assert page.count("<script>") == 1  # ours, at the end
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "Content-Security-Policy" in page and "default-src 'none'" in page
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:)?//""", page)
    assert page.count('<svg class="chart"') == 3
    assert len(re.findall(r'<tr data-outcome="', page)) == len(report.tests)


def test_html_shows_the_first_failures_and_links_the_rest_in_the_table():
    page = render_html(_many_failures(150))

    assert "<h2>Failures (150)</h2>" in page
    assert page.count('<div class="failure">') == 100
    assert '... and 50 more failures: <a href="#outcome=failing">' in page
    assert len(re.findall(r'<tr data-outcome="failed"', page)) == 150


def test_an_html_section_is_one_function():
    def matrix(report: RunReport) -> str:
        return f'<section id="matrix">{len(report.tests)} tests</section>'

    page = render_html(_report(), sections=[*HTML_SECTIONS, matrix])
    assert '<section id="matrix">5 tests</section>' in page


# --- the command line ------------------------------------------------------------------


def test_report_targets_are_format_and_file(tmp_path):
    assert parse_target(f"HTML={tmp_path}/r.html") == ("html", f"{tmp_path}/r.html")
    for bad, says in [
        ("html", "expected FORMAT=FILE"),
        ("=x.html", "expected FORMAT=FILE"),
        ("pdf=x.pdf", "unknown format 'pdf'; use one of junit, json, markdown, html"),
        (f"json={tmp_path}/missing/r.json", "folder"),
        (f"json={tmp_path}", "it is a folder"),
    ]:
        with pytest.raises(BadInput, match=re.escape(says)):
            parse_target(bad)


def test_the_format_follows_the_output_file_unless_given():
    assert format_for(None, "out/report.HTML") == "html"
    assert format_for(None, "r.md") == "markdown"
    assert format_for(None, "r.xml") == "junit"
    assert format_for(None, "r.txt") == "json"
    assert format_for(None, None) == "json"
    assert format_for("markdown", "r.xml") == "markdown"
