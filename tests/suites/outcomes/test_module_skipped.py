"""A module skipped as a whole: pytest counts it as one skipped."""

import pytest

pytest.importorskip("dtf_module_that_is_not_installed")


def test_never_runs():
    pass
