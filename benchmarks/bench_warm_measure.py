"""Warm measurement processes (issue 15 item 1): dtf's wall time for a MiniLM benchmark of
12 jobs on one worker against the jobs' own work, and whether the imports were paid once.

    python benchmarks/bench_warm_measure.py [--task-file benchmarks/minilm_warm_jobs.json]

Runs ``dtf run --task-file TASK_FILE --workers 1`` twice on a fresh DTF_HOME and
PostgreSQL database and the Redis broker (as bench.py does): the first run starts the
worker (cold), the second finds it and its measurement process warm. For each run, from
the rows in benchmark_results:

- wall: from the first job received to the last shape finished;
- work: the sum over jobs of the model's load, the warm-up calls and the timed calls;
- the measurement processes the jobs ran in, how many were started, and the seconds
  their imports took.

Target: wall / work <= 1.3 on the warm run; the first run imports once, not per job.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path

from sqlalchemy import create_engine, select
from sqlalchemy.orm import Session

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.bench import Services, check_redis_empty, dtf_state  # noqa: E402
from dtf.db.models import BenchmarkResult  # noqa: E402

TARGET = 1.3


def rows_by_run(db_url: str) -> dict[str, list[BenchmarkResult]]:
    engine = create_engine(db_url)
    with Session(engine) as session:
        rows = list(session.scalars(select(BenchmarkResult).order_by(BenchmarkResult.id)))
        session.expunge_all()
    engine.dispose()
    runs: dict[str, list[BenchmarkResult]] = {}
    for row in rows:
        runs.setdefault(row.run_id, []).append(row)
    return runs


def summarize(rows: list[BenchmarkResult]) -> dict:
    jobs: dict[str, list[BenchmarkResult]] = {}
    for row in rows:
        jobs.setdefault(row.job, []).append(row)
    work = 0.0
    processes: dict[int, dict] = {}
    for shapes in jobs.values():
        work += shapes[0].load_s or 0.0
        for row in shapes:
            work += row.environment.get("warmup_s", 0.0) + sum(row.samples)
            for process in row.environment.get("measurement_processes", []):
                if process["job"] == 1:
                    processes[process["pid"]] = process
    received = min(datetime.fromisoformat(row.environment["received_at"]) for row in rows)
    finished = max(row.finished_at for row in rows)
    wall = (finished - received).total_seconds()
    pids = {p["pid"] for row in rows for p in row.environment.get("measurement_processes", [])}
    return {
        "jobs": len(jobs),
        "statuses": sorted({row.status for row in rows}),
        "wall_s": wall,
        "work_s": work,
        "ratio": wall / work if work else float("nan"),
        "processes": len(pids),
        "started": len(processes),
        "imports_s": sum(p["prepare_s"] for p in processes.values()),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--task-file", default=str(ROOT / "benchmarks/minilm_warm_jobs.json"))
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/0")
    parser.add_argument("--pg-admin-dsn", default="host=127.0.0.1 port=5432 user=postgres")
    args = parser.parse_args(argv)
    services = Services(args.redis_url, args.pg_admin_dsn)
    check_redis_empty(services.redis_url)
    results = {}
    with dtf_state(services, "warm") as state:
        db_url = state.env["DTF_DATABASE_URL"]
        for label in ("first (cold worker)", "second (warm worker)"):
            before = set(rows_by_run(db_url))
            began = time.perf_counter()
            done = subprocess.run(
                [sys.executable, "-m", "dtf", "run", "--task-file", args.task_file,
                 "--workers", "1"],
                cwd=ROOT, env=state.env, capture_output=True, text=True,
            )  # fmt: skip
            command_s = time.perf_counter() - began
            new = [run for run in rows_by_run(db_url).items() if run[0] not in before]
            if done.returncode not in (0, 1) or len(new) != 1:
                print(done.stdout[-3000:], done.stderr[-3000:], sep="\n")
                return 1
            results[label] = {**summarize(new[0][1]), "command_s": command_s}
    print(f"{'run':<22} {'jobs':>4} {'wall s':>7} {'work s':>7} {'ratio':>6} "
          f"{'procs':>5} {'started':>7} {'imports s':>9} {'dtf run s':>9}  statuses")  # fmt: skip
    for label, r in results.items():
        print(f"{label:<22} {r['jobs']:>4} {r['wall_s']:>7.2f} {r['work_s']:>7.2f} "
              f"{r['ratio']:>6.3f} {r['processes']:>5} {r['started']:>7} "
              f"{r['imports_s']:>9.2f} {r['command_s']:>9.1f}  "
              f"{','.join(r['statuses'])}")  # fmt: skip
    cold, warm = results.values()
    met = warm["ratio"] <= TARGET
    once = cold["started"] == 1 and warm["started"] == 0
    print(f"warm ratio wall/work = {warm['ratio']:.3f} (target <= {TARGET}): "
          f"{'met' if met else 'NOT met'}")  # fmt: skip
    print(f"imports paid once: {'yes' if once else 'no'} (processes started: first run "
          f"{cold['started']} for {cold['jobs']} jobs, second run {warm['started']})")  # fmt: skip
    return 0 if met and once else 1


if __name__ == "__main__":
    sys.exit(main())
