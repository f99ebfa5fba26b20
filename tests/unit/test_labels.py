"""Run labels: parsing ``--label``, the task file's check, and every place a run shows them."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone
from pathlib import Path

import click
import pytest
from click.testing import CliRunner
from lxml import etree
from sqlalchemy.orm import Session

from dtf.db.models import Run
from dtf.errors import BadInput
from dtf.labels import (
    carries,
    label_callback,
    labels_text,
    latest_run_with_labels,
    parse_label,
    parse_labels,
    resolve_run_with_labels,
    with_labels,
)
from dtf.plugins.payloads import run_payload
from dtf.reporting.html import render_html
from dtf.reporting.json_report import render_json
from dtf.reporting.junit import junit_xml
from dtf.reporting.markdown import render_markdown
from dtf.reporting.model import load_report
from dtf.spec import SpecError, parse_run_spec, run_spec_to_json
from tests.unit.test_report_model import store_sample_run

JUNIT_XSD = Path(__file__).parents[1] / "data" / "junit-10.xsd"
LABELS = {"branch": "main", "pr": "17", "note": "a=b <&>"}
TASK = {"type": "command", "command": "true"}


# --- --label KEY=VALUE -----------------------------------------------------------------


@pytest.mark.parametrize(
    "value, expected",
    [
        ("branch=main", ("branch", "main")),
        ("expr=a=b", ("expr", "a=b")),  # split at the first '='
        (" team =ml", ("team", "ml")),
        ("empty=", ("empty", "")),
    ],
)
def test_a_label_is_key_equals_value(value, expected):
    assert parse_label(value) == expected


@pytest.mark.parametrize(
    "value, says",
    [
        ("branch", "--label 'branch': expected KEY=VALUE, e.g. branch=main"),
        ("=main", "--label '=main': a label key must not be empty"),
        ("  =main", "a label key must not be empty"),
        ("k=" + "v" * 1001, "value is longer than 1000 characters"),
        ("k" * 101 + "=v", "is longer than 100 characters"),
        ("k=a\nb", "value must not contain a line break"),
    ],
)
def test_a_bad_label_is_one_line_saying_why(value, says):
    with pytest.raises(BadInput) as err:
        parse_label(value)
    assert says in str(err.value)
    assert "\n" not in str(err.value)


def test_repeated_labels_make_a_dict_and_the_later_key_wins():
    assert parse_labels(["a=1", "b=2", "a=3"]) == {"a": "3", "b": "2"}
    assert parse_labels([]) == {}


def test_the_click_callback_turns_repeated_options_into_labels():
    @click.command()
    @click.option("--label", "labels", multiple=True, callback=label_callback)
    def show(labels):
        click.echo(json.dumps(labels, sort_keys=True))

    ok = CliRunner().invoke(show, ["--label", "a=1", "--label", "b=x=y"])
    assert ok.exit_code == 0 and json.loads(ok.output) == {"a": "1", "b": "x=y"}
    bad = CliRunner().invoke(show, ["--label", "nokey"])
    assert isinstance(bad.exception, BadInput)


def test_command_line_labels_join_the_task_files_and_win():
    spec = parse_run_spec({"tasks": [TASK], "labels": {"branch": "main", "team": "ml"}})
    merged = with_labels(spec, {"branch": "dev", "pr": "3"})
    assert merged.labels == {"branch": "dev", "team": "ml", "pr": "3"}
    assert spec.labels == {"branch": "main", "team": "ml"}
    assert with_labels(spec, {}) is spec


# --- the task file's labels ------------------------------------------------------------


def test_labels_of_a_task_file_survive_the_round_trip_through_json():
    spec = parse_run_spec({"tasks": [TASK], "labels": LABELS}, "run.yaml")
    assert spec.labels == LABELS
    assert parse_run_spec(run_spec_to_json(spec)).labels == LABELS


@pytest.mark.parametrize(
    "labels, says",
    [
        ({"": "x"}, "run.yaml: labels: a label key must not be empty"),
        ({"a=b": "x"}, "run.yaml: labels: label key 'a=b' must not contain '='"),
        ({"pr": 17}, "run.yaml: labels.pr: expected a string, got integer 17"),
        ({"a": "x\ny"}, "run.yaml: labels: label 'a': value must not contain a line break"),
        (["a"], "run.yaml: labels: expected an object, got list"),
    ],
)
def test_a_bad_label_in_a_task_file_is_refused_in_one_line(labels, says):
    with pytest.raises(SpecError) as err:
        parse_run_spec({"tasks": [TASK], "labels": labels}, "run.yaml")
    assert str(err.value) == says


# --- stored, found, shown --------------------------------------------------------------


T0 = datetime(2026, 1, 1, tzinfo=timezone.utc)


def _runs(session: Session, *labelled: tuple[str, dict[str, str]]) -> None:
    for n, (run_id, labels) in enumerate(labelled):
        session.add(
            Run(id=run_id, workdir="/w", labels=labels, created_at=T0 + timedelta(minutes=n))
        )
    session.commit()


def test_the_most_recent_run_carrying_every_label_is_found(session):
    _runs(
        session,
        ("old", {"branch": "main", "pr": "1"}),
        ("mid", {"branch": "main", "pr": "2"}),
        ("new", {"branch": "dev"}),
        ("bare", {}),
    )
    assert latest_run_with_labels(session, {"branch": "main"}) == "mid"
    assert latest_run_with_labels(session, {"pr": "1"}) == "old"
    assert latest_run_with_labels(session, {"branch": "main", "pr": "1"}) == "old"
    assert latest_run_with_labels(session, {"branch": "main", "pr": "3"}) is None
    assert latest_run_with_labels(session, {"branch": "Main"}) is None


def test_a_given_run_must_carry_the_labels_asked_for(session):
    _runs(session, ("a", {"branch": "main"}), ("b", {"branch": "dev"}))
    assert resolve_run_with_labels(session, None, {"branch": "main"}) == "a"
    assert resolve_run_with_labels(session, "b", {"branch": "dev"}) == "b"
    with pytest.raises(BadInput, match="run a does not carry the label"):
        resolve_run_with_labels(session, "a", {"branch": "dev"})
    with pytest.raises(BadInput, match=r"no run carries the label.*branch=x"):
        resolve_run_with_labels(session, None, {"branch": "x"})
    with pytest.raises(BadInput, match="no run with id 'zz'"):
        resolve_run_with_labels(session, "zz", {"branch": "dev"})


def test_carries_and_text():
    assert carries({"a": "1", "b": "2"}, {"a": "1"})
    assert not carries({"a": "1"}, {"a": "2"})
    assert not carries(None, {"a": "1"})
    assert carries(None, {})
    assert labels_text({"b": "2", "a": "1"}) == "a=1, b=2"


def test_plugins_get_the_stored_labels_in_the_run_payload(session):
    _runs(session, ("a", LABELS))
    assert run_payload(session.get(Run, "a"))["labels"] == LABELS


def _labelled_report(session: Session):
    store_sample_run(session)
    session.get(Run, "r1").labels = LABELS
    session.flush()
    return load_report(session, "r1")


def test_every_report_format_shows_the_labels(session):
    report = _labelled_report(session)
    assert report.labels == dict(sorted(LABELS.items()))

    assert json.loads(render_json(report))["run"]["labels"] == LABELS

    xml = junit_xml(report)
    doc = etree.fromstring(xml.encode("utf-8"))
    assert etree.XMLSchema(etree.parse(str(JUNIT_XSD))).validate(doc)
    for suite in doc.iterfind("testsuite"):
        props = {p.get("name"): p.get("value") for p in suite.iterfind("properties/property")}
        assert {k: props[f"dtf.label.{k}"] for k in LABELS} == LABELS

    markdown = render_markdown(report)
    assert "labels `branch=main` · `note=a=b <&>` · `pr=17`" in markdown

    html = render_html(report)
    assert "<th>labels</th>" in html
    assert '<code class="label">note=a=b &lt;&amp;&gt;</code>' in html


def test_a_run_without_labels_shows_none(session):
    store_sample_run(session)
    report = load_report(session, "r1")
    assert report.labels == {}
    assert "dtf.label." not in junit_xml(report)
    assert "labels" not in render_markdown(report)
    assert "<th>labels</th>" not in render_html(report)
    assert json.loads(render_json(report))["run"]["labels"] == {}
