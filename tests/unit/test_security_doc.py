"""docs/security.md's figures are counted from the test suite: the tests named here are
collected by pytest, and their number is the one the document shows."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
DOC = REPO / "docs" / "security.md"

FIGURES = {
    "faults survived": [
        "tests/integration/test_faults_services.py",
        "tests/integration/test_faults_recovery.py",
        "tests/integration/test_worker_lost.py",
        "tests/integration/test_lost_cluster.py",
        "tests/integration/test_db_outage.py",
        "tests/integration/test_leftover_processes.py",
    ],
    "hostile inputs tried": [
        "tests/integration/test_bad_input_and_faults.py",
        "tests/integration/test_input_limits.py",
        "tests/unit/test_spec_limits.py",
        "tests/unit/test_bundle_archive.py",
        "tests/unit/test_bundle_pack_links.py",
        "tests/integration/test_signed_messages.py",
        "tests/integration/test_project_names.py",
        "tests/unit/test_worker_slots.py",
    ],
    "checks that no secret reaches an output": [
        "tests/integration/test_test_environment.py",
        "tests/unit/test_redact.py",
        "tests/integration/test_tls_services.py",
        "tests/unit/test_child_env.py",
    ],
}


def shown(label: str) -> int:
    row = next(line for line in DOC.read_text().splitlines() if line.startswith(f"| {label}"))
    return int(re.search(r"\|\s*(\d+)\s*\|\s*$", row).group(1))


def collected(files: list[str]) -> int:
    listing = subprocess.run(
        [sys.executable, "-m", "pytest", "--collect-only", "-q", "-p", "no:randomly", *files],
        cwd=REPO, capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    return sum("::" in line for line in listing.splitlines())


@pytest.mark.parametrize("label", FIGURES)
def test_each_figure_is_the_number_of_tests_that_check_it(label):
    assert shown(label) == collected(FIGURES[label])


def test_the_secrets_found_are_none():
    assert shown("secrets found in outputs") == 0
