import sys

import pytest


def test_upper():
    assert "dtf".upper() == "DTF"


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX paths only")
def test_posix_join():
    import posixpath

    assert posixpath.join("a", "b") == "a/b"


@pytest.mark.dtf(hardware="cpu")
def test_marked_for_cpu():
    assert sum(range(100)) == 4950
