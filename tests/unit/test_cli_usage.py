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
