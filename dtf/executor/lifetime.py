"""Child processes that do not outlive the worker process that started them."""

from __future__ import annotations

import ctypes
import signal
import sys

_PR_SET_PDEATHSIG = 1


def die_with_parent() -> None:
    """``preexec_fn``: the kernel kills this child when its parent dies (Linux only).

    A worker killed mid-batch must not leave its pytest child running tests
    that the redelivered batch runs again elsewhere.
    """
    if sys.platform.startswith("linux"):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
