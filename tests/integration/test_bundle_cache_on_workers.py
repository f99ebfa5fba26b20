"""A worker's bundle cache with real processes (issue 16, items 5 and 7): a test that
damages its bundle does not break the next run of the same code; a bundle over the
worker's unpacked limit is refused naming it; unpacking a new bundle removes those
unused for DTF_BUNDLE_CACHE_DAYS."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest

from tests.support.processes import run_dtf

pytestmark = pytest.mark.integration

DELETES_ITS_DATA = """
from pathlib import Path


def test_reads_then_deletes_its_data():
    data = Path(__file__).with_name("data.txt")
    assert data.read_text() == "the bundle's data"
    data.unlink()
"""


def project(tmp_path: Path, **files: str | bytes) -> Path:
    root = tmp_path / "project"
    root.mkdir()
    (root / "pytest.ini").write_text("[pytest]\n")
    for name, content in files.items():
        path = root / name.replace("__", ".")
        if isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(content)
    return root


def bundled_run(env: dict[str, str], root: Path) -> dict:
    """Submit ``root`` as a bundle, wait for the run, and return its results."""
    submitted = run_dtf("submit", ".", "--code", "bundle", env=env, cwd=root)
    assert submitted.returncode == 0, submitted.stderr
    run_id = submitted.stdout.strip()
    run_dtf("wait", run_id, env=env, cwd=root)
    results = run_dtf("results", run_id, env=env, cwd=root)
    assert results.returncode == 0, results.stderr
    return json.loads(results.stdout)


def test_a_file_a_test_deleted_is_back_for_the_next_run(tmp_path, cluster_env, start_worker):
    start_worker(cluster_env)
    root = project(tmp_path, test_data__py=DELETES_ITS_DATA, data__txt="the bundle's data")

    first = bundled_run(cluster_env, root)
    cache = Path(cluster_env["DTF_HOME"]) / "bundles" / first["run"]["bundle"]
    assert first["summary"]["counts"] == {"passed": 1}
    assert not (cache / "data.txt").exists()  # the test did delete it

    second = bundled_run(cluster_env, root)
    assert second["run"]["bundle"] == first["run"]["bundle"]
    assert second["summary"]["counts"] == {"passed": 1}


def test_a_bundle_over_the_workers_unpacked_limit_is_refused_naming_it(
    tmp_path, cluster_env, start_worker
):
    start_worker({**cluster_env, "DTF_BUNDLE_MAX_UNPACKED_MB": "8"})
    zeros = bytes(16 * 2**20)  # 16 MiB that pack to a few KiB
    root = project(tmp_path, test_ok__py="def test_ok():\n    pass\n", zeros__bin=zeros)

    data = bundled_run(cluster_env, root)

    assert data["summary"]["counts"] == {"infra_error": 1}
    (result,) = data["results"]
    assert "more than 8 MB, the limit of DTF_BUNDLE_MAX_UNPACKED_MB" in result["longrepr"]
    assert not (Path(cluster_env["DTF_HOME"]) / "bundles" / data["run"]["bundle"]).exists()
    # The bundle's fault, not the worker's: given up at once, the worker not quarantined.
    workers = run_dtf("workers", "--json", env=cluster_env, cwd=tmp_path)
    assert [w["quarantined_at"] for w in json.loads(workers.stdout)] == [None]
    events = run_dtf("recovery", "events", data["run"]["id"], "--json", env=cluster_env,
                     cwd=tmp_path)  # fmt: skip
    assert json.loads(events.stdout) == []


def test_the_worker_removes_bundles_unused_for_the_cache_days(tmp_path, cluster_env, start_worker):
    start_worker({**cluster_env, "DTF_BUNDLE_CACHE_DAYS": "7"})
    cache = Path(cluster_env["DTF_HOME"]) / "bundles"
    old, recent = "0" * 64, "1" * 64
    for sha, days in ((old, 8), (recent, 6)):
        (cache / sha).mkdir(parents=True)
        (cache / sha / "test_gone.py").write_text("")
        manifest = cache / f"{sha}.manifest"
        manifest.write_text(json.dumps({"version": 1, "entries": {}}))
        then = time.time() - days * 86400
        os.utime(manifest, (then, then))

    data = bundled_run(cluster_env, project(tmp_path, test_ok__py="def test_ok():\n    pass\n"))

    assert data["summary"]["counts"] == {"passed": 1}
    assert not (cache / old).exists() and not (cache / f"{old}.manifest").exists()
    assert (cache / recent).is_dir() and (cache / data["run"]["bundle"]).is_dir()


def test_a_starting_worker_removes_bundles_unused_for_the_cache_days(cluster_env, start_worker):
    cache = Path(cluster_env["DTF_HOME"]) / "bundles"
    old = "2" * 64
    (cache / old).mkdir(parents=True)
    manifest = cache / f"{old}.manifest"
    manifest.write_text(json.dumps({"version": 1, "entries": {}}))
    then = time.time() - 8 * 86400
    os.utime(manifest, (then, then))

    worker = start_worker({**cluster_env, "DTF_BUNDLE_CACHE_DAYS": "7"})

    while (cache / old).exists():
        assert worker.process.poll() is None, worker.stderr_text()
        time.sleep(0.1)
    assert not manifest.exists()
