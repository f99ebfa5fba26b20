"""pytest's own options: which dtf refuses, and -x / --maxfail taken as the task's."""

from __future__ import annotations

import pytest

from dtf.pytest_args import maxfail_of, refused_option, without_maxfail


@pytest.mark.parametrize(
    ("args", "refused"),
    [
        (["--pdb"], "--pdb"),
        (["-v", "-n", "4"], "-n"),
        (["-nauto"], "-n"),
        (["--dist=loadfile"], "--dist"),
        (["-svf"], "-f"),
        (["--lf"], "--lf"),
        (["--junitxml", "out.xml"], "--junitxml"),
        (["--co"], "--co"),
        (["-v", "--", "--pdb"], None),  # after "--": a path named --pdb
        (["-k", "not slow", "-m", "gpu", "-p", "no:randomly", "-x"], None),
    ],
)
def test_refused_options_are_found_wherever_they_are(args, refused):
    found = refused_option(args)
    assert (found[0] if found else None) == refused


@pytest.mark.parametrize(
    ("args", "maxfail", "rest"),
    [
        (["-x"], 1, []),
        (["--exitfirst", "-v"], 1, ["-v"]),
        (["-xvs", "-k", "x"], 1, ["-vs", "-k", "x"]),
        (["-vx"], 1, ["-v"]),
        (["--maxfail", "3", "-q"], 3, ["-q"]),
        (["--maxfail=2"], 2, []),
        (["--maxfail=2", "-x"], 1, []),  # the last one wins, as in pytest
        (["--maxfail=0"], None, []),  # pytest's "no limit"
        (["-kx"], None, ["-kx"]),  # -k's value, not -x
        (["--", "-x"], None, ["--", "-x"]),
        ([], None, []),
    ],
)
def test_x_and_maxfail_are_the_tasks_and_leave_the_rest(args, maxfail, rest):
    assert maxfail_of(args) == maxfail
    assert without_maxfail(args) == rest


def test_a_maxfail_that_is_no_number_is_refused():
    with pytest.raises(ValueError, match="--maxfail: expected a number, got 'many'"):
        maxfail_of(["--maxfail", "many"])


def test_a_refused_flag_inside_combined_short_flags_is_found():
    assert refused_option(["-svn2"]) is not None
    assert refused_option(["-vf"]) is not None
    assert refused_option(["-vs"]) is None
