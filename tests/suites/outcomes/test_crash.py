import os


def test_before_crash():
    pass


def test_crash():
    os._exit(3)


def test_after_crash():
    pass
