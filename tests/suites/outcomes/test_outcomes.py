"""Every outcome pytest can report, plus node ids that are awkward to pass around."""

import sys

import pytest


@pytest.fixture
def broken_setup():
    raise RuntimeError("setup boom")


@pytest.fixture
def broken_teardown():
    yield
    raise RuntimeError("teardown boom")


def test_passed():
    assert 1 + 1 == 2


def test_failed():
    print("output of a failing test")
    assert 1 + 1 == 3


@pytest.mark.skip(reason="skipped by marker")
def test_skipped_marker():
    raise AssertionError("never runs")


def test_skipped_runtime():
    pytest.skip("skipped at runtime")


@pytest.mark.xfail(reason="known bug")
def test_xfailed():
    assert False


def test_xfailed_runtime():
    pytest.xfail("known at runtime")


@pytest.mark.xfail(run=False, reason="not even run")
def test_xfailed_not_run():
    raise AssertionError("never runs")


@pytest.mark.xfail(reason="was a bug", strict=False)
def test_xpassed():
    pass


@pytest.mark.xfail(reason="must fail", strict=True)
def test_xpassed_strict():
    pass


def test_setup_error(broken_setup):
    pass


def test_teardown_error_after_pass(broken_teardown):
    pass


def test_teardown_error_after_failure(broken_teardown):
    assert False


@pytest.mark.parametrize(
    "value",
    ["a b", "ü", "x/y", "[br]", "colon::x", 'quo"te', "it's"],
    ids=lambda value: value,
)
def test_odd_ids(value):
    assert value


def test_grüße():
    assert "ß".upper() == "SS"


def test_prints():
    print("hello on stdout")
    print("hello on stderr", file=sys.stderr)


@pytest.mark.dtf(hardware="cpu", min_memory_gb=1)
def test_requires_cpu():
    pass
