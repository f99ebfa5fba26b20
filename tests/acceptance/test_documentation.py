"""The documentation works as written: every code block of the README, docs/ and the
worker image's notes is executed or checked, read from the documents themselves.

``bash`` blocks run line by line in a shell, in a small project laid out as the README
assumes (``examples/``, ``tests/``, ``run.json``), on the embedded default and on Redis +
PostgreSQL; their HTML-comment directives (tests/support/doc_snippets.py) say what cannot
run here and why. Task files and tasks are validated as ``dtf`` reads them, Python is
executed, other formats parsed, and a block showing a command's output has that output's
shape. The only changes made to a command before it runs: deployment URLs
(``redis://...``, ``postgresql+psycopg2://...``) become the test's own services,
``/tmp`` the test's own temporary folder, and ``RUN`` the latest run's id.
"""

from __future__ import annotations

import configparser
import contextlib
import json
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.support.doc_snippets import DOCUMENTS, REPO, Snippet, snippets
from tests.support.processes import clean_env

pytestmark = pytest.mark.integration

SNIPPETS = snippets()
SHELL_RUNS = [
    pytest.param(snippet, setup, id=f"{snippet.id}[{setup}]")
    for snippet in SNIPPETS
    if snippet.lang == "bash"
    for setup in snippet.setups
]

#: A command's trailing comment (two spaces or more, then #).
_COMMENT = re.compile(r"\s{2,}#.*$")

_PRELUDE = r"""
doc_pids=()
doc_stop() { for pid in "${doc_pids[@]}"; do kill -TERM -- "-$pid" 2>/dev/null; done; wait; }
trap doc_stop EXIT
doc_latest_run() {
  dtf status --json | python -c 'import json, sys; print(json.load(sys.stdin)["run_id"])'
}
doc_online() {
  dtf workers --json 2>/dev/null | python -c \
    'import json, sys; print(sum(w["state"] == "online" for w in json.load(sys.stdin)))' \
    2>/dev/null || echo 0
}
doc_alive() { kill -0 "$1" 2>/dev/null || { echo "doc-test: '$2' ended" >&2; exit 98; }; }
doc_wait_worker() { while [ "$(doc_online)" -le "$1" ]; do doc_alive "$2" "$3"; sleep 0.2; done; }
doc_wait_port() {
  until (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; do doc_alive "$2" "$3"; sleep 0.2; done
}
doc_check() {
  case " $2 " in *" $3 "*) ;; *) echo "doc-test: '$1' exited $3, expected $2" >&2; exit 99;; esac
}
"""


def shell_script(snippet: Snippet, services: dict[str, str], tmp: Path) -> str:
    """The block as a bash script: each command checked for the exit code it promises."""
    lines = [_PRELUDE]
    for command in snippet.commands():
        rule = snippet.rule_for(command)
        if rule is not None and rule.kind == "skip":
            lines.append(f"echo {shlex.quote(f'# skipped: {command} ({rule.reason})')} >&2")
            continue
        runnable = _with_services(command, services)
        runnable = re.sub(r"(?<![\w/.])/tmp\b", str(tmp), runnable)
        runnable = re.sub(r"\bRUN\b", '"$(doc_latest_run)"', runnable)
        quoted = shlex.quote(command)
        lines.append(f"echo {shlex.quote('+ ' + command)} >&2")
        if rule is not None and rule.kind == "background":
            runnable = _COMMENT.sub("", runnable)
            lines.append("doc_before=$(doc_online)")
            lines.append(f"setsid {runnable} >>background.log 2>&1 &")
            lines.append("doc_pids+=($!); echo $! >> background.pids")
            if "flower" in runnable:
                lines.append(f"doc_wait_port 5555 $! {quoted}")
            else:
                lines.append(f'doc_wait_worker "$doc_before" $! {quoted}')
        elif command.startswith("export "):
            lines.append(runnable)  # in this shell: later commands see it
        else:
            expected = rule.codes if rule is not None and rule.kind == "exit" else (0,)
            # Each example starts where the reader is: a `cd` in one does not move the next.
            lines.append(f"( {runnable}\n)")
            lines.append(f"doc_check {quoted} '{' '.join(map(str, expected))}' $?")
    return "\n".join(lines) + "\n"


def _with_services(command: str, services: dict[str, str]) -> str:
    if not services:
        return command
    command = re.sub(r"redis://[^\s'\"]+", services["redis"], command)
    return re.sub(r"postgresql\+psycopg2://[^\s'\"]+", services["postgres"], command)


def project_as_the_docs_assume(root: Path) -> Path:
    """A user's project: the repository's examples, a tests/ folder, a task file."""
    project = root / "project"
    shutil.copytree(REPO / "examples", project / "examples")
    shutil.copy(REPO / "examples" / "run.json", project / "run.json")
    tests = project / "tests"
    shutil.copytree(REPO / "examples" / "sample_suite", tests)
    (tests / "unit").mkdir()
    (tests / "unit" / "test_unit.py").write_text("def test_unit():\n    assert True\n")
    (tests / "test_x.py").write_text("def test_y():\n    assert True\n")
    (project / "pyproject.toml").write_text(
        '[tool.pytest.ini_options]\ntestpaths = ["tests"]\nmarkers = ["slow"]\n'
    )
    # `cd /tmp && dtf run ~/proj/tests`: a second project in the reader's home.
    home = root / "home"
    shutil.copytree(REPO / "examples" / "sample_suite", home / "proj" / "tests")
    (home / "proj" / "pyproject.toml").write_text("[tool.pytest.ini_options]\n")
    return project


@pytest.mark.parametrize(("snippet", "setup"), SHELL_RUNS)
def test_each_shell_example_works_as_written(snippet, setup, tmp_path, request):
    project = project_as_the_docs_assume(tmp_path)
    env = clean_env(HOME=str(tmp_path / "home"), GITHUB_STEP_SUMMARY=str(tmp_path / "summary"))
    env["PATH"] = f"{Path(sys.executable).parent}:{env['PATH']}"
    services: dict[str, str] = {}
    if setup == "cluster":
        services = {
            "redis": request.getfixturevalue("redis_url"),
            "postgres": request.getfixturevalue("postgres_url"),
        }
        env.update(DTF_BROKER_URL=services["redis"], DTF_DATABASE_URL=services["postgres"])
        init = subprocess.run(["dtf", "init-db"], env=env, cwd=project, capture_output=True)
        assert init.returncode == 0, init.stderr
        start_worker = request.getfixturevalue("start_worker")
        start_worker(env, queues=None, name="docs", cwd=project)

    (tmp_path / "tmp").mkdir()
    script = shell_script(snippet, services, tmp_path / "tmp")
    try:
        ran = subprocess.run(
            ["bash", "-c", script], env=env, cwd=project, capture_output=True, text=True,
            timeout=900,
        )  # fmt: skip
    finally:
        # The script stops what it started; if it was killed, this does (no stray Flower).
        pids = project / "background.pids"
        for pid in pids.read_text().split() if pids.exists() else []:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(int(pid), signal.SIGKILL)

    background = project / "background.log"
    assert ran.returncode == 0, (
        f"{snippet.id} on the {setup} set-up:\n{ran.stderr[-6000:]}\n{ran.stdout[-3000:]}"
        + (background.read_text(errors="replace")[-3000:] if background.exists() else "")
    )


def test_every_block_that_does_not_run_says_why():
    for snippet in SNIPPETS:
        if snippet.lang == "bash" and not snippet.setups:
            assert snippet.not_run, snippet.id
        for rule in snippet.rules:
            assert rule.kind != "skip" or rule.reason, (snippet.id, rule)
            assert any(rule.text in command for command in snippet.commands()), (
                f"{snippet.id}: the rule {rule.kind} {rule.text!r} matches no command"
            )


@pytest.mark.parametrize(
    "snippet", [s for s in SNIPPETS if s.lang == "json" and not s.output_of], ids=lambda s: s.id
)
def test_each_task_file_example_is_accepted_as_dtf_reads_it(snippet, tmp_path):
    from dtf.spec import load_run_spec

    document = json.loads(snippet.body)
    if "tasks" not in document:
        document = {"tasks": [document]}  # one task, as a task file's tasks list holds it
    task_file = tmp_path / "run.json"
    task_file.write_text(json.dumps(document))

    spec = load_run_spec(task_file)

    assert len(spec.tasks) == len(document["tasks"])


@pytest.mark.parametrize("snippet", [s for s in SNIPPETS if s.output_of], ids=lambda s: s.id)
def test_each_output_example_has_the_shape_of_the_real_output(snippet, tmp_path):
    shown = json.loads(snippet.body)
    ran = subprocess.run(
        shlex.split(snippet.output_of),
        env=clean_env(PATH=f"{Path(sys.executable).parent}:{clean_env()['PATH']}"),
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert ran.returncode == 0, ran.stderr
    real = json.loads(ran.stdout)
    assert _shape(shown) == _shape(real)


def _shape(value, depth: int = 2):
    """The keys of a JSON object, two levels down."""
    if isinstance(value, dict) and depth:
        return {key: _shape(item, depth - 1) for key, item in value.items()}
    return type(value).__name__ if depth else None


@pytest.mark.parametrize("snippet", [s for s in SNIPPETS if s.lang == "python"], ids=lambda s: s.id)
def test_each_python_example_runs(snippet, tmp_path):
    module = tmp_path / "example.py"
    module.write_text(snippet.body)
    ran = subprocess.run(
        [sys.executable, str(module)], cwd=tmp_path, capture_output=True, text=True, timeout=300
    )
    assert ran.returncode == 0, f"{snippet.id}:\n{ran.stderr}"


@pytest.mark.parametrize(
    "snippet", [s for s in SNIPPETS if s.lang in ("yaml", "ini")], ids=lambda s: s.id
)
def test_each_configuration_example_parses(snippet):
    if snippet.lang == "yaml":
        assert yaml.safe_load(snippet.body) is not None
    else:
        parser = configparser.ConfigParser()
        parser.read_string(snippet.body)
        assert parser.sections()


def inline_dtf_commands() -> dict[tuple[str, ...], set[str]]:
    """Every `dtf ...` written inline in the documents: its command words -> its options."""
    found: dict[tuple[str, ...], set[str]] = {}
    for pattern in DOCUMENTS:
        for path in sorted(REPO.glob(pattern)):
            for code in re.findall(r"`(dtf [^`]+)`", path.read_text()):
                words = code.split(" -- ")[0].split()
                path_words = tuple(
                    word for word in words[1:3] if re.fullmatch(r"[a-z][a-z-]*", word)
                )
                if not path_words:
                    continue
                tokens = [word.strip("[]()|\\.,") for word in words]
                options = {t.split("=")[0] for t in tokens if re.fullmatch(r"--[a-z][\w=-]*", t)}
                found.setdefault(path_words, set()).update(options)
    return found


def test_each_dtf_command_written_in_the_documents_exists_with_its_options():
    env = clean_env(DTF_COMMAND_SERVER="0")
    env["PATH"] = f"{Path(sys.executable).parent}:{env['PATH']}"
    commands = inline_dtf_commands()
    assert ("run",) in commands and ("cancel",) in commands
    for words, options in sorted(commands.items()):
        helped = subprocess.run(
            ["dtf", *words, "--help"], env=env, capture_output=True, text=True, timeout=120
        )
        if helped.returncode != 0 and len(words) == 2:  # `dtf run tests`: one command word
            words = words[:1]
            helped = subprocess.run(
                ["dtf", *words, "--help"], env=env, capture_output=True, text=True, timeout=120
            )
        assert helped.returncode == 0, f"dtf {' '.join(words)}: {helped.stderr}"
        missing = {o for o in options if not re.search(re.escape(o) + r"(?![\w-])", helped.stdout)}
        assert not missing, f"dtf {' '.join(words)} has no {sorted(missing)}"
