"""What the dtf command prints for a group without a subcommand, and the names of its
arguments in --help."""

from __future__ import annotations

import pytest

from dtf.cli import main


def _dtf(capsys, *argv: str) -> tuple[int, str, str]:
    try:
        main(list(argv))
        code = 0
    except SystemExit as exc:
        code = exc.code or 0
    out, err = capsys.readouterr()
    return code, out, err


@pytest.mark.parametrize("group", [[], ["recovery"], ["baseline"]])
def test_a_group_without_a_subcommand_prints_its_help(capsys, group):
    code, out, err = _dtf(capsys, *group)
    assert code == 0, err
    assert "error" not in err
    assert out.startswith(f"Usage: dtf {' '.join(group)}".rstrip())
    assert "Commands:" in out


@pytest.mark.parametrize(
    "command, usage",
    [
        (["status"], "[RUN]"), (["report"], "[RUN]"), (["logs"], "RUN [TEST_ID]"),
        (["wait"], "RUN"), (["cancel"], "RUN"), (["recovery", "events"], "[RUN]"),
        (["baseline", "set"], "RUN"), (["baseline", "show"], "[RUN]"), (["matrix"], "[RUN]"),
    ],
)  # fmt: skip
def test_every_command_names_the_run_argument_RUN(capsys, command, usage):
    code, out, _ = _dtf(capsys, *command, "--help")
    assert code == 0
    first = out.splitlines()[0]
    assert first == f"Usage: dtf {' '.join(command)} [OPTIONS] {usage}"
    assert "RUN_ID" not in out
