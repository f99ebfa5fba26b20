"""Riding out a database outage while a command waits for a run.

The workers keep their results while the database is away and store them once it is
back; a command that only follows the run need not give up either. It tries again with
back-off for up to ``DTF_DB_OUTAGE_S`` seconds (default :data:`DEFAULT_OUTAGE_S`),
saying once that the database went away and once that it is back.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Mapping

from dtf.config import redact
from dtf.errors import BadInput, DatabaseUnreachable, InfrastructureError

OUTAGE_ENV = "DTF_DB_OUTAGE_S"
DEFAULT_OUTAGE_S = 300.0
#: The pause after each failed try doubles from the first to the last.
FIRST_PAUSE_S, LAST_PAUSE_S = 0.5, 2.0


def outage_limit(env: Mapping[str, str] | None = None) -> float:
    """Seconds a waiting command rides out an unreachable database (``DTF_DB_OUTAGE_S``)."""
    text = (os.environ if env is None else env).get(OUTAGE_ENV, "").strip()
    if not text:
        return DEFAULT_OUTAGE_S
    try:
        seconds = float(text)
    except ValueError:
        seconds = -1.0
    if not 0 <= seconds < float("inf"):
        raise BadInput(f"{OUTAGE_ENV} must be a number of seconds, 0 or more; got {text!r}")
    return seconds


class DatabaseOutage:
    """Tells a polling loop how long to pause after each failed try, and when to give up.

    ``say`` prints a line; ``resume`` ends the give-up line: what the user can do next.
    """

    def __init__(
        self,
        url: str,
        run_id: str,
        say: Callable[[str], None],
        *,
        limit_s: float,
        resume: str,
    ) -> None:
        self.url, self.run_id, self.say = url, run_id, say
        self.limit_s, self.resume = limit_s, resume
        self.since: float | None = None
        self.pause = FIRST_PAUSE_S

    def failed(self, exc: DatabaseUnreachable) -> float:
        """Note a failed try; the seconds to pause before the next one. Past the limit:
        InfrastructureError naming the problem and ``resume``."""
        now = time.monotonic()
        if self.since is None:
            self.since, self.pause = now, FIRST_PAUSE_S
            self.say(
                f"dtf: lost the database at {redact(self.url)} ({exc.reason}); run "
                f"{self.run_id} goes on, and dtf tries again for up to {self.limit_s:g} s "
                f"({OUTAGE_ENV})"
            )
        down_s = now - self.since
        if down_s >= self.limit_s:
            raise InfrastructureError(
                f"the database at {redact(self.url)} has been unreachable for {down_s:.0f} s "
                f"({exc.reason}); {self.resume}"
            ) from exc
        pause, self.pause = self.pause, min(self.pause * 2, LAST_PAUSE_S)
        return min(pause, self.limit_s - down_s)

    def answered(self) -> None:
        """Note a try that worked: says the database is back when it had been away."""
        if self.since is not None:
            down_s = time.monotonic() - self.since
            self.since = None
            self.say(f"dtf: the database is back after {down_s:.0f} s; following run {self.run_id}")
