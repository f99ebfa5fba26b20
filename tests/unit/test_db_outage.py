"""How long a waiting command rides out an unreachable database, and what it says."""

from __future__ import annotations

import pytest

from dtf.db.outage import DEFAULT_OUTAGE_S, LAST_PAUSE_S, DatabaseOutage, outage_limit
from dtf.errors import BadInput, DatabaseUnreachable, InfrastructureError

URL = "postgresql://dtf:s3cret@db:5432/dtf?sslpassword=s3cret"
REFUSED = DatabaseUnreachable("cannot reach the database", "Connection refused")


def test_the_limit_is_five_minutes_unless_set():
    assert outage_limit({}) == DEFAULT_OUTAGE_S == 300
    assert outage_limit({"DTF_DB_OUTAGE_S": ""}) == 300
    assert outage_limit({"DTF_DB_OUTAGE_S": "30"}) == 30
    assert outage_limit({"DTF_DB_OUTAGE_S": "0"}) == 0  # give up at the first error


@pytest.mark.parametrize("value", ["-1", "soon", "inf", "nan"])
def test_a_limit_that_is_no_number_of_seconds_is_refused(value):
    with pytest.raises(BadInput, match=f"DTF_DB_OUTAGE_S must be a number of seconds.*{value}"):
        outage_limit({"DTF_DB_OUTAGE_S": value})


def outage(limit_s: float, said: list[str]) -> DatabaseOutage:
    return DatabaseOutage(URL, "r1", said.append, limit_s=limit_s, resume="`dtf wait r1` resumes")


def test_one_line_when_the_database_goes_one_when_it_is_back():
    said: list[str] = []
    watch = outage(60, said)
    watch.answered()
    assert said == []
    pauses = [watch.failed(REFUSED) for _ in range(6)]
    assert said == [
        "dtf: lost the database at postgresql://dtf:***@db:5432/dtf?sslpassword=*** "
        "(Connection refused); run r1 goes on, and dtf tries again for up to 60 s "
        "(DTF_DB_OUTAGE_S)"
    ]
    assert pauses == sorted(pauses) and pauses[-1] == LAST_PAUSE_S
    watch.answered()
    watch.answered()
    assert len(said) == 2 and said[1].startswith("dtf: the database is back after 0 s;")
    assert said[1].endswith("following run r1")


def test_past_the_limit_it_gives_up_naming_the_problem_and_how_to_resume():
    said: list[str] = []
    with pytest.raises(InfrastructureError) as info:
        outage(0, said).failed(REFUSED)
    assert str(info.value) == (
        "the database at postgresql://dtf:***@db:5432/dtf?sslpassword=*** has been "
        "unreachable for 0 s (Connection refused); `dtf wait r1` resumes"
    )
    assert not isinstance(info.value, DatabaseUnreachable)  # no one waits this one out
