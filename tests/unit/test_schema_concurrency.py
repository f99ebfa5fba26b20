"""Several dtf commands creating the embedded default's SQLite schema at once all succeed."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

CREATE = "from dtf.db.schema import ensure_schema; ensure_schema({url!r}, create=True)"


def test_dtf_commands_that_create_the_schema_together_all_succeed(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'dtf.sqlite'}"
    commands = [
        subprocess.Popen([sys.executable, "-c", CREATE.format(url=url)], stderr=subprocess.PIPE)
        for _ in range(6)
    ]
    failures = [proc.communicate()[1].decode()[-300:] for proc in commands if proc.wait()]
    assert failures == []
