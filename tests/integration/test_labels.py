"""Run labels end to end: a task file's ``labels:`` are stored with the run (PostgreSQL,
Redis, a real worker), shown by ``dtf status`` and ``dtf report``, select a run for
``dtf report --label``, reach the task file's plugins; migration 0009 copies older runs' labels."""

from __future__ import annotations

import json
import os
import textwrap
from datetime import datetime, timedelta, timezone

import pytest
from sqlalchemy import create_engine, text

from dtf.db.schema import upgrade
from tests.support.processes import run_dtf

pytestmark = pytest.mark.integration

HOOK_LOGGER = """
    import json, os

    from dtf.plugins import hookimpl

    dtf_plugin_kind = "monitoring"

    def _log(hook, run):
        with open(os.environ["HOOK_LOG"], "a") as file:
            file.write(json.dumps({"hook": hook, "id": run["id"], "labels": run["labels"]}) + "\\n")


    @hookimpl
    def dtf_run_submitted(run):
        _log("dtf_run_submitted", run)


    @hookimpl
    def dtf_run_finished(run, summary):
        _log("dtf_run_finished", run)
"""


def _task_file(path, labels: dict[str, str]) -> str:
    lines = ["tasks:", "  - type: test", "    paths: [test_ok.py]", "plugins: [label_logger]"]
    lines += ["labels:"]
    lines += [f"  {key}: {json.dumps(value)}" for key, value in labels.items()]
    path.write_text("\n".join(lines) + "\n")
    return str(path)


def test_labels_are_stored_shown_selected_and_given_to_plugins(tmp_path, cluster_env, start_worker):
    (tmp_path / "test_ok.py").write_text("def test_ok():\n    pass\n")
    plugins = tmp_path / "plugins"
    plugins.mkdir()
    (plugins / "label_logger.py").write_text(textwrap.dedent(HOOK_LOGGER))
    log = tmp_path / "hooks.jsonl"
    env = {
        **cluster_env,
        "PYTHONPATH": os.pathsep.join(filter(None, [str(plugins), os.environ.get("PYTHONPATH")])),
        "HOOK_LOG": str(log),
    }
    start_worker(cluster_env, queues="cpu", name="labels")

    runs = {}
    for name, labels in [
        ("old", {"branch": "main", "pr": "1"}),
        ("mid", {"branch": "main", "pr": "2", "note": "x=y z"}),
        ("new", {"branch": "dev"}),
    ]:
        task_file = _task_file(tmp_path / f"{name}.yaml", labels)
        submitted = run_dtf("submit", "--task-file", task_file, env=env, cwd=tmp_path)
        assert submitted.returncode == 0, submitted.stderr
        runs[name] = submitted.stdout.strip()
        waited = run_dtf("wait", runs[name], env=env, cwd=tmp_path)
        assert waited.returncode == 0, waited.stdout + waited.stderr

    # Stored with the run, in a column of its own.
    engine = create_engine(cluster_env["DTF_DATABASE_URL"])
    with engine.connect() as connection:
        stored = dict(connection.execute(text("SELECT id, labels FROM runs")).all())
    engine.dispose()
    assert stored[runs["mid"]] == {"branch": "main", "pr": "2", "note": "x=y z"}
    assert stored[runs["new"]] == {"branch": "dev"}

    # dtf status, JSON and text.
    status = run_dtf("status", runs["mid"], "--json", env=env, cwd=tmp_path)
    assert status.returncode == 0, status.stderr
    assert json.loads(status.stdout)["labels"] == {"branch": "main", "pr": "2", "note": "x=y z"}
    text_status = run_dtf("status", runs["mid"], env=env, cwd=tmp_path)
    assert "labels: branch=main, note=x=y z, pr=2" in text_status.stdout

    # dtf report: the JSON report holds them; --label picks the most recent run carrying all.
    def reported(*args: str) -> str:
        proc = run_dtf("report", "--format", "json", *args, env=env, cwd=tmp_path)
        assert proc.returncode == 0, proc.stderr
        return json.loads(proc.stdout)["run"]

    assert reported()["id"] == runs["new"]
    assert reported()["labels"] == {"branch": "dev"}
    assert reported("--label", "branch=main")["id"] == runs["mid"]
    assert reported("--label", "branch=main", "--label", "pr=1")["id"] == runs["old"]
    assert reported("--label", "note=x=y z")["id"] == runs["mid"]
    assert reported(runs["old"], "--label", "branch=main")["id"] == runs["old"]
    # `dtf results` is the same command.
    results = run_dtf("results", "--label", "pr=1", env=env, cwd=tmp_path)
    assert json.loads(results.stdout)["run"]["id"] == runs["old"]
    markdown = run_dtf("report", "--format", "markdown", "--label", "pr=2", env=env, cwd=tmp_path)
    assert "`branch=main` · `note=x=y z` · `pr=2`" in markdown.stdout

    for args, says in [
        (["--label", "branch=nope"], "no run carries the label(s) branch=nope"),
        ([runs["new"], "--label", "branch=main"], f"run {runs['new']} does not carry"),
        (["--label", "branch"], "--label 'branch': expected KEY=VALUE"),
    ]:
        refused = run_dtf("report", *args, env=env, cwd=tmp_path)
        assert refused.returncode == 2, refused.stdout + refused.stderr
        assert refused.stderr.startswith("dtf: error: ") and refused.stderr.count("\n") == 1
        assert says in refused.stderr

    # The task file's plugin: the run payload of dtf_run_submitted (dtf submit) and of
    # dtf_run_finished (dtf wait, which loads the run's plugins itself) carries the labels.
    events = [json.loads(line) for line in log.read_text().splitlines()]
    for hook in ("dtf_run_submitted", "dtf_run_finished"):
        seen = {e["id"]: e["labels"] for e in events if e["hook"] == hook}
        assert seen == {run_id: stored[run_id] for run_id in runs.values()}, hook


def test_the_migration_copies_the_labels_of_runs_stored_before_it(database_url):
    from alembic import command

    from dtf.db.schema import alembic_config

    command.upgrade(alembic_config(database_url), "0008")
    engine = create_engine(database_url)
    created = datetime(2026, 1, 1, tzinfo=timezone.utc)
    specs = {
        "labelled": {"tasks": [], "labels": {"branch": "main", "pr": "7"}},
        "unlabelled": {"tasks": []},
    }
    with engine.begin() as connection:
        for n, (run_id, spec) in enumerate(specs.items()):
            connection.execute(
                text(
                    "INSERT INTO runs (id, status, spec, workdir, created_at) "
                    "VALUES (:id, 'passed', :spec, '/w', :created)"
                ),
                {"id": run_id, "spec": json.dumps(spec), "created": created + timedelta(n)},
            )
    engine.dispose()

    upgrade(database_url)

    engine = create_engine(database_url)
    with engine.connect() as connection:
        rows = connection.execute(text("SELECT id, labels FROM runs")).all()
    engine.dispose()
    labels = {
        run_id: value if isinstance(value, dict) else json.loads(value) for run_id, value in rows
    }
    assert labels == {"labelled": {"branch": "main", "pr": "7"}, "unlabelled": {}}
