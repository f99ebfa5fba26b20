"""Reports of a real run: `dtf run --report FORMAT=FILE` and `dtf report`, on the embedded
default with local workers serving ``cpu`` and (forced) ``cuda``.

The run is made once for the module: the outcomes suite plus two CUDA-marked tests.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import sqlite3
import subprocess
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import pytest
from dtf.workers.detection.browser import find_browser
from lxml import etree
from lxml import html as lxml_html

from dtf.reporting.junit import _names
from tests.support.processes import SUITES, clean_env, run_dtf

pytestmark = pytest.mark.integration

JUNIT_XSD = Path(__file__).parents[1] / "data" / "junit-10.xsd"
FORMATS = {"junit": "r.xml", "json": "r.json", "markdown": "r.md", "html": "r.html"}
GPU_TESTS = """\
import pytest

pytestmark = pytest.mark.dtf(hardware="cuda")


def test_kernel():
    pass


def test_kernel_mismatch():
    assert [1.0, 2.0] == [1.0, 2.5]
"""
FAILING = {"failed", "error", "crashed", "timed_out"}


@dataclass
class ReportedRun:
    suite: Path
    out: Path
    env: dict[str, str]
    proc: subprocess.CompletedProcess
    data: dict  # the JSON report
    counts: dict[str, int]  # `dtf status --json` counts

    def path(self, fmt: str) -> Path:
        return self.out / FORMATS[fmt]


@pytest.fixture(scope="module")
def reported(tmp_path_factory) -> ReportedRun:
    root = tmp_path_factory.mktemp("reports")
    suite, out = root / "suite", root / "out"
    shutil.copytree(SUITES / "outcomes", suite)
    (suite / "test_gpu.py").write_text(GPU_TESTS)
    out.mkdir()
    env = clean_env(DTF_FORCE_QUEUES="cuda")
    targets = [arg for fmt, name in FORMATS.items() for arg in ("--report", f"{fmt}={out / name}")]
    proc = run_dtf(
        "run", ".", "-k", "not test_hang", "--workers", "2", "--timeout", "30", *targets,
        env=env, cwd=suite,
    )  # fmt: skip
    assert proc.returncode == 1, proc.stdout + proc.stderr
    status = json.loads(run_dtf("status", "--json", env=env, cwd=suite).stdout)
    data = json.loads((out / FORMATS["json"]).read_text())
    return ReportedRun(suite, out, env, proc, data, status["counts"])


def _item_places(data: dict) -> dict[str, tuple[str, str | None]]:
    """nodeid -> (hardware, worker) from the JSON report's rows."""
    hardware = {b["id"]: b["hardware"] for b in data["batches"]}
    worker = {r["nodeid"]: r["worker"] for r in data["results"]}
    return {
        i["nodeid"]: (hardware.get(i["batch_id"], "cpu"), worker[i["nodeid"]])
        for i in data["items"]
    }


def test_the_run_writes_every_report_it_was_asked_for(reported):
    assert "Traceback" not in reported.proc.stdout + reported.proc.stderr
    for fmt in FORMATS:
        assert reported.path(fmt).stat().st_size > 0, fmt
    assert reported.counts["failed"] == 4 and reported.counts["crashed"] == 1
    assert {b["hardware"] for b in reported.data["batches"]} == {"cpu", "cuda"}


def test_junit_validates_against_the_jenkins_schema_one_case_per_test_id(reported):
    schema = etree.XMLSchema(etree.parse(str(JUNIT_XSD)))
    doc = etree.parse(str(reported.path("junit")))
    assert schema.validate(doc), schema.error_log

    places = _item_places(reported.data)
    rows_by_test: dict[str, set[str]] = {}
    for r in reported.data["results"]:
        rows_by_test.setdefault(r["nodeid"], set()).add(r["outcome"])
    # pytest's rule: a failure plus a teardown error are two cases of the same test.
    doubled = [n for n, outcomes in rows_by_test.items() if {"failed", "error"} <= outcomes]
    cases = []
    for suite in doc.iterfind("testsuite"):
        props = {p.get("name"): p.get("value") for p in suite.iterfind("properties/property")}
        for case in suite.iterfind("testcase"):
            cases.append((case.get("classname"), case.get("name")))
            nodeid = next(n for n in places if _names(n) == cases[-1])
            assert (props["hardware"], props.get("worker")) == places[nodeid], nodeid
    assert set(cases) == {_names(n) for n in places}
    assert len(cases) == len(places) + len(doubled)

    root = doc.getroot()
    counts = reported.counts
    assert int(root.get("failures")) == counts["failed"]
    assert int(root.get("errors")) == counts["error"] + counts["crashed"]
    skipped = sum(int(s.get("skipped")) for s in root)
    assert skipped == counts["skipped"] + counts["xfailed"]


def _same(stored, reported_value) -> bool:
    """A column as SQLite holds it and as the JSON report says it."""
    if isinstance(reported_value, (dict, list)):
        return json.loads(stored) == reported_value
    if isinstance(stored, str) and re.fullmatch(r"\d{4}-\d\d-\d\d[ T][\d:.]+", stored):
        return datetime.fromisoformat(stored) == datetime.fromisoformat(reported_value)
    return stored == reported_value


def test_json_holds_every_stored_field_of_the_run(reported):
    data = reported.data
    run_id = data["run"]["id"]
    db = sqlite3.connect(reported.suite / ".dtf" / "dtf.sqlite")
    db.row_factory = sqlite3.Row
    batch_ids = [b["id"] for b in data["batches"]]
    marks = ",".join("?" * len(batch_ids))
    tables = {
        "runs": ("SELECT * FROM runs WHERE id = ?", [run_id], [data["run"]]),
        "run_tasks": ("SELECT * FROM run_tasks WHERE run_id = ?", [run_id], data["tasks"]),
        "batches": ("SELECT * FROM batches WHERE run_id = ?", [run_id], data["batches"]),
        "attempts": (
            f"SELECT * FROM attempts WHERE batch_id IN ({marks})", batch_ids,
            [a for b in data["batches"] for a in b["attempts"]],
        ),
        "test_items": ("SELECT * FROM test_items WHERE run_id = ?", [run_id], data["items"]),
        "test_results": ("SELECT * FROM test_results WHERE run_id = ?", [run_id], data["results"]),
    }  # fmt: skip
    for table, (query, args, reported_rows) in tables.items():
        stored_rows = db.execute(query, args).fetchall()
        assert len(stored_rows) == len(reported_rows), table
        by_key = {r["id"]: r for r in reported_rows}
        for stored in stored_rows:
            row = by_key[stored["id"]]
            for column, value in dict(stored).items():
                assert _same(value, row[column]), (table, column)
    db.close()

    attempt_workers = {a["worker"] for b in data["batches"] for a in b["attempts"]}
    assert {w["hostname"] for w in data["workers"]} >= attempt_workers
    assert data["summary"]["counts"] == reported.counts
    assert data["summary"]["exit_code"] == 1


def test_markdown_fits_a_pull_request_comment_and_names_each_failure(reported):
    text = reported.path("markdown").read_text()

    assert len(text) < 65536
    assert text.startswith("## ❌ dtf run `")
    for outcome, n in reported.counts.items():
        assert f"| {outcome.replace('_', ' ')} | {n} |" in text
    for result in reported.data["results"]:
        if result["outcome"] in FAILING:
            assert f"`{result['nodeid']}`" in text
    assert "E       assert (1 + 1) == 3" in text
    assert "### Slowest tests" in text
    hardware = re.findall(r"^\| (cpu|cuda) \| (\d+) \|", text, flags=re.M)
    assert dict(hardware) == {"cpu": str(len(reported.data["items"]) - 2), "cuda": "2"}


def _chromium(url: str, tmp_path: Path, screenshot: Path) -> lxml_html.HtmlElement:
    """The DOM of ``url`` after its scripts ran, in headless Chromium (and a screenshot)."""
    browser, missing = find_browser()
    if browser is None:
        if os.environ.get("CI"):
            pytest.fail(f"CI needs Chromium for the HTML report test: {missing}")
        pytest.skip(missing)
    profile = tmp_path / f"profile-{screenshot.stem}"
    proc = subprocess.run(
        [browser, "--headless", "--no-sandbox", "--disable-gpu",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--no-first-run", f"--user-data-dir={profile}", "--window-size=1280,2000",
         f"--screenshot={screenshot}", "--dump-dom", url],
        capture_output=True, text=True, timeout=90, stdin=subprocess.DEVNULL,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert screenshot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    return lxml_html.fromstring(proc.stdout)


def _rows(dom) -> list:
    return dom.xpath('//table[@id="tests"]/tbody/tr')


def test_the_html_report_renders_the_run_in_chromium(reported, tmp_path):
    page = reported.path("html")
    dom = _chromium(page.as_uri(), tmp_path, tmp_path / "report.png")

    assert len(_rows(dom)) == len(reported.data["items"])
    assert all(r.get("hidden") is None for r in _rows(dom))
    for outcome, n in reported.counts.items():
        (card,) = dom.xpath(f'//div[@data-count="{outcome}"]/div[@class="n"]')
        assert card.text_content() == str(n), outcome
    failing = dom.xpath('//section[@id="failures"]//code[@class="nodeid"]')
    assert "test_gpu.py::test_kernel_mismatch" in {c.text_content() for c in failing}
    (hardware_chart,) = dom.xpath('//figure[@id="chart-hardware"]/*[local-name()="svg"]')
    labels = {t.text_content() for t in hardware_chart.iter("{*}text")}
    assert {"cpu", "cuda"} <= labels
    (worker_chart,) = dom.xpath('//figure[@id="chart-workers"]/*[local-name()="svg"]')
    workers = {w["hostname"] for w in reported.data["workers"]}
    assert workers <= {t.text_content() for t in worker_chart.iter("{*}text")}
    assert dom.xpath('//figure[@id="chart-modules"]//*[local-name()="rect"]')


def test_the_html_table_filters_by_outcome_and_text_from_the_url(reported, tmp_path):
    page = reported.path("html")
    dom = _chromium(page.as_uri() + "#outcome=failed", tmp_path, tmp_path / "failed.png")

    shown = [r for r in _rows(dom) if r.get("hidden") is None]
    assert {r.get("data-outcome") for r in shown} == {"failed"}
    assert all(r.get("data-outcome") != "failed" for r in _rows(dom) if r not in shown)
    assert dom.get_element_by_id("shown").text_content() == str(len(shown))
    assert "test_gpu.py::test_kernel_mismatch" in " ".join(r.text_content() for r in shown)

    dom = _chromium(page.as_uri() + "#q=odd_ids", tmp_path, tmp_path / "odd.png")
    shown = [r for r in _rows(dom) if r.get("hidden") is None]
    assert len(shown) == 7
    assert all("test_odd_ids[" in r.text_content() for r in shown)


def test_dtf_report_renders_what_the_run_wrote(reported, tmp_path):
    run_id = reported.data["run"]["id"]
    for fmt in FORMATS:
        proc = run_dtf("report", run_id, "--format", fmt, env=reported.env, cwd=reported.suite)
        assert proc.returncode == 0, proc.stderr
        assert proc.stdout == reported.path(fmt).read_text(), fmt
    # The latest run by default, the format from the file's suffix.
    proc = run_dtf("report", "-o", str(tmp_path / "r.html"), env=reported.env, cwd=reported.suite)
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "r.html").read_text() == reported.path("html").read_text()
    # `dtf results` is the same command under its earlier name.
    results = run_dtf("results", env=reported.env, cwd=reported.suite)
    assert results.stdout == reported.path("json").read_text()


@pytest.mark.parametrize(
    "args, says",
    [
        (["run", ".", "--report", "pdf=r.pdf"], "unknown format 'pdf'"),
        (["run", ".", "--report", "html"], "expected FORMAT=FILE"),
        (["run", ".", "--report", "html=missing/r.html"], "folder missing does not exist"),
        (["run", ".", "--no-wait", "--report", "html=r.html"], "use --wait"),
        (["wait", "abc", "--report", "junit=."], "it is a folder"),
        (["report", "-o", "missing/r.md"], "folder missing does not exist"),
    ],
)
def test_a_bad_report_target_is_one_line_and_nothing_runs(tmp_path, args, says):
    (tmp_path / "test_ok.py").write_text("def test_ok():\n    pass\n")
    proc = run_dtf(*args, env=clean_env(), cwd=tmp_path)

    assert proc.returncode == 2
    assert proc.stderr.count("\n") == 1 and proc.stderr.startswith("dtf: error: ")
    assert says in proc.stderr
    assert not (tmp_path / ".dtf").exists()  # no database: nothing was submitted
