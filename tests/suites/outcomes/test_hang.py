import time


def test_hang():
    time.sleep(3600)


def test_after_hang():
    pass
