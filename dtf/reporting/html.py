"""A run as one self-contained HTML file: inline CSS, SVG charts and a little vanilla JS.

Nothing is loaded from the network (the page's Content-Security-Policy forbids it).
The page is a list of sections, each a function ``(report) -> str`` of HTML.
The test table can be filtered by text and outcome; the filter lives in the URL's
fragment (``report.html#outcome=failed&q=gpu``), so a filtered view can be linked.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime
from html import escape

from dtf.executor.records import bounded
from dtf.reporting.charts import bar_chart, stacked_chart
from dtf.reporting.model import (
    NO_WORKER,
    OUTCOME_ORDER,
    Group,
    RunReport,
    TestEntry,
    outcome_rank,
)
from dtf.reporting.text import counts_text, error_excerpt, label, seconds

Section = Callable[[RunReport], str]

#: Bytes of a test's error and output kept in the page (head and tail of longer texts).
TEXT_BYTES = 16 * 1024
#: Failures shown with their error; the test table below has every one.
FAILURE_BLOCKS = 100
#: Bars in the module chart; the rest are summed into one.
MODULE_BARS = 20

_CSP = "default-src 'none'; style-src 'unsafe-inline'; script-src 'unsafe-inline'; img-src data:"

CSS = """
:root { --fg:#1f2328; --muted:#59636e; --line:#d1d9e0; --bg:#fff; --soft:#f6f8fa; }
* { box-sizing: border-box; }
body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", sans-serif; color: var(--fg);
       background: var(--bg); margin: 0; padding: 24px 32px 64px; }
h1 { font-size: 22px; margin: 0 0 4px; } h2 { font-size: 17px; margin: 32px 0 10px; }
code, pre, .mono { font-family: ui-monospace, SFMono-Regular, Menlo, Consolas, monospace;
       font-size: 12.5px; }
pre { background: var(--soft); border: 1px solid var(--line); border-radius: 6px;
      padding: 8px 10px; overflow-x: auto; white-space: pre-wrap; word-break: break-word;
      margin: 6px 0; }
.muted { color: var(--muted); }
.badge { display: inline-block; padding: 1px 8px; border-radius: 10px; color: #fff;
         font-size: 12px; font-weight: 600; vertical-align: middle; }
.cards { display: flex; flex-wrap: wrap; gap: 10px; margin: 14px 0; }
.card { border: 1px solid var(--line); border-radius: 8px; padding: 8px 14px; min-width: 96px; }
.card .n { font-size: 22px; font-weight: 600; } .card .k { color: var(--muted); font-size: 12px; }
table { border-collapse: collapse; width: 100%; }
th, td { text-align: left; padding: 4px 8px; border-bottom: 1px solid var(--line);
         vertical-align: top; }
th { background: var(--soft); font-weight: 600; position: sticky; top: 0; }
td.num, th.num { text-align: right; white-space: nowrap; }
details summary { cursor: pointer; }
.filters { display: flex; gap: 10px; align-items: center; margin: 8px 0; }
.filters input { flex: 1; max-width: 420px; padding: 5px 8px; border: 1px solid var(--line);
                 border-radius: 6px; font: inherit; }
.filters select { padding: 5px 8px; border: 1px solid var(--line); border-radius: 6px;
                  font: inherit; }
.charts { display: flex; flex-wrap: wrap; gap: 24px; }
svg.chart { max-width: 100%; height: auto; font-size: 12px; }
svg.chart text { fill: var(--fg); } svg.chart .bar rect { fill: #0969da; }
.failure { border-left: 3px solid #cf222e; padding-left: 10px; margin: 12px 0; }
.o-passed { background: #1a7f37; fill: #1a7f37; } .o-failed { background: #cf222e; fill: #cf222e; }
.o-error { background: #bc4c00; fill: #bc4c00; } .o-crashed { background: #8250df; fill: #8250df; }
.o-timed_out { background: #9a6700; fill: #9a6700; }
.o-out_of_memory { background: #a40e26; fill: #a40e26; }
.o-infra_error { background: #6e7781; fill: #6e7781; }
.o-flaky { background: #bf8700; fill: #bf8700; }
.o-skipped { background: #8c959f; fill: #8c959f; }
.o-xfailed { background: #57606a; fill: #57606a; }
.o-xpassed { background: #2da44e; fill: #2da44e; }
.o-not_run { background: #afb8c1; fill: #afb8c1; }
.o-running, .o-pending { background: #0969da; }
"""

SCRIPT = """
(function () {
  var rows = Array.prototype.slice.call(document.querySelectorAll("#tests tbody tr"));
  var text = document.getElementById("filter-text");
  var outcome = document.getElementById("filter-outcome");
  var shown = document.getElementById("shown");
  function matches(row, q, o) {
    if (o === "failing" && row.dataset.failing !== "1") return false;
    if (o && o !== "failing" && row.dataset.outcome !== o) return false;
    return !q || row.textContent.toLowerCase().indexOf(q) !== -1;
  }
  function apply(remember) {
    var q = text.value.trim().toLowerCase(), o = outcome.value, n = 0;
    rows.forEach(function (row) {
      var ok = matches(row, q, o);
      row.hidden = !ok;
      if (ok) n += 1;
    });
    shown.textContent = String(n);
    if (!remember) return;
    var params = new URLSearchParams();
    if (text.value.trim()) params.set("q", text.value.trim());
    if (o) params.set("outcome", o);
    var hash = params.toString();
    try { history.replaceState(null, "", hash ? "#" + hash : location.pathname); } catch (e) {}
  }
  function fromHash() {
    var params = new URLSearchParams(location.hash.replace(/^#/, ""));
    text.value = params.get("q") || "";
    outcome.value = params.get("outcome") || "";
    if (outcome.selectedIndex < 0) outcome.value = "";
    apply(false);
  }
  text.addEventListener("input", function () { apply(true); });
  outcome.addEventListener("change", function () { apply(true); });
  window.addEventListener("hashchange", fromHash);
  fromHash();
})();
"""


def _when(value: datetime | None) -> str:
    return value.replace(microsecond=0).isoformat(sep=" ") if value else "-"


def _badge(outcome: str) -> str:
    return f'<span class="badge o-{escape(outcome)}">{escape(label(outcome))}</span>'


def _num(value: object) -> str:
    return f'<td class="num">{escape(str(value))}</td>'


def summary(report: RunReport) -> str:
    cards = [(label(o), n, o) for o, n in report.counts.items()]
    missing = report.total - report.finished
    if missing:
        cards.append(("not run" if report.done else "remaining", missing, "not_run"))
    if report.flaky and "flaky" not in report.counts:
        cards.append(("flaky", len(report.flaky), "flaky"))
    card_html = "".join(
        f'<div class="card" data-count="{escape(key)}"><div class="n">{n}</div>'
        f'<div class="k"><span class="badge o-{escape(key)}">&nbsp;</span> {escape(name)}</div>'
        "</div>"
        for name, n, key in [("tests", report.total, "tests"), *cards]
    )
    facts = [
        ("run", f"<code>{escape(report.run_id)}</code>"),
        ("submitted", escape(_when(report.created_at))),
        ("finished", escape(_when(report.finished_at))),
        ("wall time", escape(seconds(report.wall_s))),
        ("time in tests", escape(seconds(report.test_s))),
        ("workers", escape(", ".join(g.name for g in report.by_worker if g.name != NO_WORKER))),
    ]
    for key, value in report.ci.items():
        if key == "build_url" and value.startswith(("https://", "http://")):
            facts.append(("build", f'<a href="{escape(value)}">{escape(value)}</a>'))
        else:
            facts.append((key.replace("_", " "), f"<code>{escape(value)}</code>"))
    if report.labels:
        facts.append(
            (
                "labels",
                " ".join(
                    f'<code class="label">{escape(k)}={escape(v)}</code>'
                    for k, v in report.labels.items()
                ),
            )
        )
    fact_rows = "".join(f"<tr><th>{escape(k)}</th><td>{v}</td></tr>" for k, v in facts)
    problems = "".join(
        f'<pre class="problem">{escape(line)}</pre>'
        for line in ([report.error] if report.error else []) + report.broken
    )
    return (
        f"<header><h1>{escape(report.title)} {_badge(report.status)}</h1>"
        f'<div class="muted" id="counts-line">{escape(counts_text(report))}</div></header>'
        f'<section id="summary"><div class="cards">{card_html}</div>{problems}'
        f'<table class="facts" style="width:auto">{fact_rows}</table></section>'
    )


def failures(report: RunReport) -> str:
    found = report.failures
    commands = [c for c in report.commands if c.failing]
    if not found and not commands:
        return ""
    blocks = []
    for test, result in found[:FAILURE_BLOCKS]:
        if result is None:
            what, text = "not run", "its batch never finished"
        else:
            when = f" at {result.when}" if result.when in ("setup", "teardown") else ""
            what, text = label(result.outcome) + when, result.longrepr
        excerpt = "\n".join(error_excerpt(text, max_lines=8))
        blocks.append(
            f'<div class="failure"><div>{_badge(result.outcome if result else "not_run")} '
            f'<code class="nodeid">{escape(test.nodeid)}</code> '
            f'<span class="muted">{escape(what)} · {escape(test.hardware)} · '
            f"{escape(test.worker or '-')}</span></div><pre>{escape(excerpt)}</pre></div>"
        )
    left_out = len(found) - len(blocks)
    if left_out > 0:
        blocks.append(
            f'<p class="muted" id="failures-left-out">... and {left_out} more failures: '
            '<a href="#outcome=failing">show every failing test</a> in the table below</p>'
        )
    for command in commands:
        tail = "\n".join((command.output or "").strip().splitlines()[-8:])
        blocks.append(
            f'<div class="failure"><div>{_badge("failed")} command '
            f'<code>{escape(command.name)}</code> <span class="muted">{escape(command.status)}, '
            f"exit code {escape(str(command.exit_code))}</span></div>"
            f"<pre>{escape(tail)}</pre></div>"
        )
    total = len(found) + len(commands)
    return f'<section id="failures"><h2>Failures ({total})</h2>{"".join(blocks)}</section>'


def _duration_rows(groups: Sequence[Group], bars: int) -> list[tuple[str, float]]:
    ranked = sorted(groups, key=lambda g: (-g.duration, g.name))
    rows = [(g.name, g.duration) for g in ranked[:bars]]
    rest = ranked[bars:]
    if rest:
        rows.append((f"{len(rest)} other modules", sum(g.duration for g in rest)))
    return rows


def charts(report: RunReport) -> str:
    if not report.tests:
        return ""
    hardware = stacked_chart(
        [(g.name, g.counts) for g in report.by_hardware], OUTCOME_ORDER, "Outcomes by hardware"
    )
    modules = bar_chart(
        _duration_rows(report.by_module, MODULE_BARS), "Time in tests by module", seconds
    )
    workers = bar_chart(
        [(g.name, g.duration) for g in report.by_worker], "Time in tests by worker", seconds
    )
    return (
        '<section id="charts"><h2>Charts</h2><div class="charts">'
        f'<figure id="chart-hardware"><figcaption>Outcomes by hardware</figcaption>{hardware}'
        "</figure>"
        f'<figure id="chart-workers"><figcaption>Time in tests by worker</figcaption>{workers}'
        "</figure>"
        f'<figure id="chart-modules"><figcaption>Time in tests by module</figcaption>{modules}'
        "</figure></div>"
        f"{_group_table('hardware', report.by_hardware)}{_group_table('worker', report.by_worker)}"
        "</section>"
    )


def _group_table(first: str, groups: Sequence[Group]) -> str:
    outcomes = sorted({o for g in groups for o in g.counts}, key=outcome_rank)
    head = "".join(f'<th class="num">{escape(label(o))}</th>' for o in outcomes)
    rows = "".join(
        f"<tr><td>{escape(g.name)}</td>{_num(g.tests)}"
        + "".join(_num(g.counts.get(o, 0)) for o in outcomes)
        + f"{_num(seconds(g.duration))}</tr>"
        for g in groups
    )
    return (
        f'<h2>By {escape(first)}</h2><table id="by-{escape(first)}"><thead><tr>'
        f'<th>{escape(first)}</th><th class="num">tests</th>{head}'
        f'<th class="num">time in tests</th></tr></thead><tbody>{rows}</tbody></table>'
    )


def flaky(report: RunReport) -> str:
    if not report.flaky:
        return ""
    rows = "".join(
        f"<tr><td><code>{escape(t.nodeid)}</code></td><td>{escape(t.hardware)}</td>"
        f"<td>{escape(t.worker or '-')}</td>"
        f"{_num(t.attempts if t.attempts > 1 else '-')}</tr>"
        for t in report.flaky
    )
    return (
        f'<section id="flaky"><h2>Flaky tests ({len(report.flaky)})</h2><table><thead><tr>'
        '<th>test</th><th>hardware</th><th>worker</th><th class="num">passed on attempt</th>'
        f"</tr></thead><tbody>{rows}</tbody></table></section>"
    )


def slowest(report: RunReport) -> str:
    tests = report.slowest(10)
    if not tests:
        return ""
    rows = "".join(
        f"<tr><td><code>{escape(t.nodeid)}</code></td><td>{_badge(t.outcome)}</td>"
        f"<td>{escape(t.hardware)}</td><td>{escape(t.worker or '-')}</td>"
        f"{_num(seconds(t.duration))}</tr>"
        for t in tests
    )
    return (
        '<section id="slowest"><h2>Slowest tests</h2><table><thead><tr><th>test</th>'
        '<th>outcome</th><th>hardware</th><th>worker</th><th class="num">time</th></tr></thead>'
        f"<tbody>{rows}</tbody></table></section>"
    )


def _details(test: TestEntry) -> str:
    parts = []
    for result in test.earlier + test.results:
        texts = [
            (f"{label(result.outcome)} ({result.when}, attempt {result.attempt})", result.longrepr),
            ("stdout", result.stdout),
            ("stderr", result.stderr),
        ]
        parts += [
            f'<div class="muted">{escape(title)}</div>'
            f"<pre>{escape(bounded(text, TEXT_BYTES))}</pre>"
            for title, text in texts
            if text
        ]
    if not parts:
        return f'<code class="nodeid">{escape(test.nodeid)}</code>'
    return (
        f'<details><summary><code class="nodeid">{escape(test.nodeid)}</code></summary>'
        f"{''.join(parts)}</details>"
    )


def tests(report: RunReport) -> str:
    options = "".join(
        f'<option value="{escape(o)}">{escape(label(o))}</option>' for o in report.outcomes
    )
    rows = "".join(
        f'<tr data-outcome="{escape(t.outcome)}" data-failing="{int(t.failing)}">'
        f"<td>{_details(t)}</td><td>{_badge(t.outcome)}</td><td>{escape(t.hardware)}</td>"
        f"<td>{escape(t.worker or '-')}</td>{_num(seconds(t.duration))}</tr>"
        for t in report.tests
    )
    return (
        f'<section id="all-tests"><h2>Tests</h2><div class="filters">'
        '<input id="filter-text" type="search" placeholder="filter: test id, worker, error text"'
        ' aria-label="filter tests by text">'
        '<select id="filter-outcome" aria-label="filter tests by outcome">'
        f'<option value="">all outcomes</option><option value="failing">failing</option>{options}'
        f'</select><span class="muted">showing <b id="shown">{len(report.tests)}</b> of '
        f'<b id="total">{len(report.tests)}</b></span></div>'
        '<table id="tests"><thead><tr><th>test</th><th>outcome</th><th>hardware</th>'
        f'<th>worker</th><th class="num">time</th></tr></thead><tbody>{rows}</tbody></table>'
        "</section>"
    )


def commands(report: RunReport) -> str:
    if not report.commands:
        return ""
    rows = "".join(
        f"<tr><td><code>{escape(c.name)}</code></td><td>{escape(c.status)}</td>"
        f"{_num('-' if c.exit_code is None else c.exit_code)}<td>{escape(c.queue)}</td>"
        f"<td>{escape(c.worker or '-')}</td>{_num(seconds(c.duration))}"
        f"<td><pre>{escape(bounded(c.output or '', TEXT_BYTES))}</pre></td></tr>"
        for c in report.commands
    )
    return (
        '<section id="commands"><h2>Commands</h2><table><thead><tr><th>command</th>'
        '<th>status</th><th class="num">exit</th><th>queue</th><th>worker</th>'
        f'<th class="num">time</th><th>output</th></tr></thead><tbody>{rows}</tbody></table>'
        "</section>"
    )


def matrix(report: RunReport) -> str:
    from dtf.benchmarking.matrix import matrix_html, report_matrix

    table = matrix_html(report_matrix(report.records))
    return f'<section id="matrix"><h2>Model x hardware</h2>{table}</section>' if table else ""


#: The page's sections, in order; a new one is a function added here.
SECTIONS: list[Section] = [summary, failures, charts, matrix, flaky, slowest, tests, commands]


def render_html(report: RunReport, sections: Sequence[Section] = SECTIONS) -> str:
    body = "\n".join(s for s in (section(report) for section in sections) if s)
    title = f"{report.title}: {report.status}"
    return (
        "<!DOCTYPE html>\n"
        '<html lang="en"><head><meta charset="utf-8">'
        f'<meta http-equiv="Content-Security-Policy" content="{_CSP}">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{escape(title)}</title><style>{CSS}</style></head>\n"
        f"<body>\n{body}\n<script>{SCRIPT}</script>\n</body></html>\n"
    )
