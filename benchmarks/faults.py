"""What faults in the middle of a run cost ``dtf run``, against the same run without.

For each broker it writes a suite of about 20 s (8 modules of 5 tests, each sleeping
0.5 s), runs it once with plain pytest (the counts every dtf run must equal), and then,
for each scenario, on a fresh PostgreSQL database and a fresh broker:

  start two real workers     python -m celery -A dtf worker -Q cpu -c 1 (own process groups)
  time                       python -m dtf run . --batches 8  (8 batches of ~2.5 s)
  and a few seconds in (--fault-at, once a batch has stored a result) inject the fault:

  none            nothing: the time without fault
  worker-kill     SIGKILL to the whole process group of a worker whose batch is half
                  done (no replacement: the other worker carries the rest)
  worker-kill-replaced  the same, and a new worker (another node name) started at once,
                  as a supervisor or an autoscaler would: the capacity comes back, what
                  is left is finding the lost batch
  broker-restart  Redis: the private redis-server (no persistence: --appendonly no
                  --save "") shut down and started again, losing every queued message;
                  RabbitMQ: rabbitmqctl stop_app; rabbitmqctl start_app (the WHOLE local
                  broker, every vhost: fine for a benchmark, never in tests)
  db-stall        the TCP proxy every dtf process reaches PostgreSQL through drops its
                  connections and holds new ones unanswered for --db-stall seconds (30)

Workers and ``dtf run`` keep dtf's defaults (DTF_HEARTBEAT_INTERVAL 5 s: a worker is lost
after 15 s without a beat, the reconciler runs at every beat). Redis is a private
redis-server per scenario; RabbitMQ a private vhost per scenario, with quorum queues
(DTF_RABBITMQ_QUEUE_TYPE=quorum; --rabbitmq-queues classic for classic durable ones,
repeatable). The database is reached through tests/support/tcp_proxy.py in every
scenario, so that the times compare. --commit REV runs dtf as committed at REV (a ``git
archive`` put first on PYTHONPATH) instead of a working tree others may be editing.

Each row: wall time, overhead (minus the same broker's ``none`` row), the batches the
fault lost (an attempt ended ``lost``, or ``worker_lost``/``broker_unreachable``) and
their own time (the durations of their tests' results), counts against plain pytest's
and how many tests were stored twice (``dtf report RUN --format json``), the recoveries
dtf made. Targets (issue 17): a worker killed <= 20 s + the lost batches' time, a broker
restarted <= 30 s + the lost batches' time (stated for Redis; RabbitMQ rows are held to
the same bounds).

    python benchmarks/faults.py [--broker redis|rabbitmq]... [--scenario NAME]...
        [--rabbitmq-queues quorum|classic]... [--commit REV] [--json OUT]

Exit 1 when any count differs from pytest's or a test was stored twice.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import socket
import subprocess
import sys
import tarfile
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path[:0] = [str(HERE), str(REPO)]

from bench import PG_ADMIN_DSN, fresh_database, machine, pytest_counts, timed  # noqa: E402

from tests.support.processes import WorkerProcess, clean_env  # noqa: E402
from tests.support.tcp_proxy import TcpProxy  # noqa: E402

BROKERS = ("redis", "rabbitmq")
SCENARIOS = {
    "redis": ("none", "worker-kill", "worker-kill-replaced", "broker-restart", "db-stall"),
    "rabbitmq": ("none", "worker-kill", "worker-kill-replaced", "broker-restart"),
}
ALL_SCENARIOS = ("none", "worker-kill", "worker-kill-replaced", "broker-restart", "db-stall")
KILLS = ("worker-kill", "worker-kill-replaced")
#: Seconds a fault may cost on top of the lost batches' own time (issue 17, item 2).
TARGETS = {"worker-kill": 20.0, "worker-kill-replaced": 20.0, "broker-restart": 30.0}
MODULES, TESTS, SLEEP_S = 8, 5, 0.5
BATCHES = 8
WORKERS = ("fa", "fb")
RABBITMQ = "amqp://guest:guest@127.0.0.1:5672"
LOST_CLASSES = {"worker_lost", "broker_unreachable"}


@dataclass
class Outcome:
    broker: str
    scenario: str
    wall_s: float
    exit_code: int
    counts: dict[str, int]
    counts_ok: bool
    twice: int  # tests with more than one stored result of a phase
    fault_at_s: float | None = None  # seconds after dtf run started
    fault_s: float | None = None  # how long injecting the fault took (broker down, stall)
    fault_utc: str | None = None
    victim: str | None = None
    lost_batches: int = 0
    lost_s: float = 0.0
    detected_s: float | None = None  # fault -> first recovery event
    recoveries: dict[str, int] = field(default_factory=dict)
    errors: dict[str, int] = field(default_factory=dict)  # the attempts' commonest errors
    #: each recovery: seconds after the fault, class, strategy, worker, detail
    events: list[dict] = field(default_factory=list)
    overhead_s: float | None = None
    target_s: float | None = None
    met: bool | None = None
    note: str = ""
    output_tail: str = ""


# --- the code under test ----------------------------------------------------------------


@contextlib.contextmanager
def dtf_code(commit: str | None) -> Iterator[dict[str, str]]:
    """What every dtf process's environment needs to import dtf from ``commit`` (``git
    archive`` of dtf/, workers/ and integrations/, laid out as the editable install maps
    them) instead of the working tree, which others may be editing; {} for the tree."""
    if commit is None:
        yield {}
        return
    with tempfile.TemporaryDirectory(prefix="dtf-faults-code-") as tmp:
        archive = Path(tmp) / "code.tar"
        subprocess.run(["git", "-C", str(REPO), "archive", "-o", str(archive), commit,
                        "dtf", "workers", "integrations"], check=True)  # fmt: skip
        with tarfile.open(archive) as tar:
            tar.extractall(Path(tmp) / "src", filter="data")
        code = Path(tmp) / "code"
        code.mkdir()
        (Path(tmp) / "src" / "dtf").rename(code / "dtf")
        for sub in ("workers", "integrations"):
            (Path(tmp) / "src" / sub).rename(code / "dtf" / sub)
        path = os.pathsep.join(p for p in (str(code), os.environ.get("PYTHONPATH")) if p)
        env = {"PYTHONPATH": path}
        found = subprocess.run(
            [sys.executable, "-c", "import dtf, dtf.workers.startup; "
             "print(dtf.__file__); print(dtf.workers.startup.__file__)"],
            env={**os.environ, **env}, cwd=tmp, capture_output=True, text=True, check=True,
        ).stdout.split()  # fmt: skip
        if not all(f.startswith(str(code)) for f in found):
            raise RuntimeError(f"dtf is not imported from the snapshot: {found}")
        yield env


# --- the suite ---------------------------------------------------------------------------


def write_suite(folder: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "pytest.ini").write_text("[pytest]\n")
    for m in range(MODULES):
        tests = "".join(f"\n\ndef test_{t}():\n    time.sleep({SLEEP_S})\n" for t in range(TESTS))
        (folder / f"test_mod{m}.py").write_text(
            f'"""Generated by benchmarks/faults.py."""\n\nimport time\n{tests}'
        )


# --- brokers ------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class PrivateRedis:
    """A redis-server of its own, without persistence: a restart forgets everything."""

    def __init__(self, folder: Path) -> None:
        self.folder, self.port = folder, free_port()
        self.process: subprocess.Popen | None = None
        self.url = f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.process = subprocess.Popen(
            [
                "redis-server",
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--appendonly",
                "no",
                "--save",
                "",
                "--dir",
                str(self.folder),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        wait_port(self.port, 10)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            subprocess.run(
                ["redis-cli", "-p", str(self.port), "shutdown", "nosave"], capture_output=True
            )
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def restart(self) -> None:
        self.stop()
        self.start()


def wait_port(port: int, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with (
            contextlib.suppress(OSError),
            socket.create_connection(("127.0.0.1", port), timeout=0.2),
        ):
            return
        time.sleep(0.05)
    raise RuntimeError(f"nothing listens on port {port} after {timeout:g}s")


def rabbitmqctl(*args: str, timeout: float = 120) -> None:
    proc = subprocess.run(
        ["rabbitmqctl", "-q", *args], capture_output=True, text=True, timeout=timeout
    )
    if proc.returncode != 0:
        raise RuntimeError(f"rabbitmqctl {' '.join(args)}: {proc.stderr.strip()}")


def restart_rabbitmq() -> None:
    """The whole local broker: every vhost's connections drop; durable queues stay."""
    rabbitmqctl("stop_app")
    rabbitmqctl("start_app")
    rabbitmqctl("await_startup")
    wait_port(5672, 60)


@contextlib.contextmanager
def broker(kind: str, folder: Path) -> Iterator[tuple[str, object]]:
    """(broker URL, restart function) of a broker of this scenario's own."""
    if kind == "redis":
        redis = PrivateRedis(folder)
        redis.start()
        try:
            yield redis.url, redis.restart
        finally:
            redis.stop()
        return
    vhost = f"dtf_faults_{uuid.uuid4().hex[:8]}"
    rabbitmqctl("add_vhost", vhost)
    try:
        rabbitmqctl("set_permissions", "-p", vhost, "guest", ".*", ".*", ".*")
        yield f"{RABBITMQ}/{vhost}", restart_rabbitmq
    finally:
        with contextlib.suppress(Exception):
            rabbitmqctl("delete_vhost", vhost)


# --- the database, read directly (never through the proxy) --------------------------------


def query(db_url: str, sql: str, *params) -> list[tuple]:
    import psycopg2

    dsn = db_url.replace("postgresql+psycopg2://", "postgresql://", 1)
    with contextlib.closing(psycopg2.connect(dsn, connect_timeout=5)) as conn, conn.cursor() as cur:
        cur.execute(sql, params)
        return cur.fetchall()


def fault_ready(db_url: str, scenario: str) -> str | None:
    """What says the fault can come now: the worker whose running batch has stored a
    result (the kills), a stored result while a batch still waits unstarted in the
    broker (broker-restart), any stored result (db-stall); None: not yet."""
    if scenario in KILLS:
        rows = query(
            db_url,
            """
            SELECT a.worker FROM attempts a
            WHERE a.status = 'running'
              AND EXISTS (SELECT 1 FROM test_results r WHERE r.attempt_id = a.id)
            ORDER BY a.id LIMIT 1""",
        )
        return rows[0][0] if rows else None
    results = query(db_url, "SELECT count(*) FROM test_results")[0][0]
    if not results:
        return None
    if scenario == "broker-restart":
        waiting = query(
            db_url,
            """
            SELECT count(*) FROM batches b WHERE b.status = 'pending'
              AND NOT EXISTS (SELECT 1 FROM attempts a WHERE a.batch_id = b.id)""",
        )[0][0]
        return "queued" if waiting else None
    return "results"


# --- one scenario --------------------------------------------------------------------------


def run_scenario(
    kind: str,
    queue_type: str | None,
    scenario: str,
    suite: Path,
    expected: dict,
    code: dict[str, str],
    args,
) -> Outcome:
    """One scenario on broker ``kind`` (RabbitMQ: with ``queue_type`` queues)."""
    with (
        tempfile.TemporaryDirectory(prefix=f"dtf-faults-{kind}-") as tmp,
        broker(kind, Path(tmp)) as (broker_url, restart_broker),
        fresh_database(args.pg_admin_dsn, "faults") as db_url,
        TcpProxy() as proxy,
    ):
        home = Path(tmp) / "home"
        env = clean_env(
            DTF_HOME=str(home),
            DTF_BROKER_URL=broker_url,
            DTF_DATABASE_URL=proxy.url(db_url),
            **code,
        )
        if kind == "rabbitmq":
            env["DTF_RABBITMQ_QUEUE_TYPE"] = queue_type
        direct = {**env, "DTF_DATABASE_URL": db_url}
        subprocess.run(
            [sys.executable, "-m", "dtf", "init-db"], env=direct, check=True, capture_output=True
        )
        logs = Path(tmp) / "logs"
        logs.mkdir()
        workers = {name: WorkerProcess(env, "cpu", 1, name, logs) for name in WORKERS}
        try:
            for worker in workers.values():
                worker.wait_ready(120)
            outcome = _timed_run(
                kind, scenario, suite, env, db_url, workers, restart_broker, proxy, args
            )
        finally:
            for worker in workers.values():
                worker.stop()
        _check(outcome, direct, suite, expected)
        if queue_type:
            outcome.broker = f"{kind}/{queue_type}"
        return outcome


def _timed_run(kind, scenario, suite, env, db_url, workers, restart_broker, proxy, args):
    argv = [sys.executable, "-m", "dtf", "run", ".", "--batches", str(BATCHES)]
    with tempfile.TemporaryFile("w+") as output:
        start = time.perf_counter()
        proc = subprocess.Popen(
            argv,
            cwd=suite,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=output,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,
        )
        fault_at = fault_s = fault_time = victim = None
        note = ""
        if scenario != "none":
            while proc.poll() is None:
                elapsed = time.perf_counter() - start
                ready = fault_ready(db_url, scenario) if elapsed >= args.fault_at else None
                if ready:
                    fault_at, fault_time = elapsed, datetime.now(timezone.utc).isoformat()
                    began = time.perf_counter()
                    if scenario in KILLS:
                        victim = ready
                        workers[ready.split("@", 1)[0]].kill()
                    if scenario == "worker-kill-replaced":
                        logs = workers[WORKERS[0]].log.parent
                        workers["fc"] = WorkerProcess(env, "cpu", 1, "fc", logs)
                    elif scenario == "broker-restart":
                        restart_broker()
                    elif scenario == "db-stall":
                        proxy.cut(args.db_mode)
                        time.sleep(args.db_stall)
                        proxy.restore()
                    fault_s = time.perf_counter() - began
                    break
                time.sleep(0.1)
            else:
                note = "the run ended before the fault could be injected"
        try:
            proc.wait(timeout=args.timeout)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, 9)
            proc.wait()
            note = f"timed out after {args.timeout:g}s"
        wall = time.perf_counter() - start
        output.seek(0)
        tail = output.read()[-3000:]
    return Outcome(
        broker=kind, scenario=scenario, wall_s=wall, exit_code=proc.returncode, counts={},
        counts_ok=False, twice=0, fault_at_s=fault_at, fault_s=fault_s, fault_utc=fault_time,
        victim=victim, note=note, output_tail=tail,
    )  # fmt: skip


def _check(outcome: Outcome, env: dict, suite: Path, expected: dict) -> None:
    """Counts, tests stored twice, lost batches and their time, recoveries: from the
    run's JSON report and recovery events (read directly, not through the proxy)."""

    def dtf(*args: str):
        proc = subprocess.run(
            [sys.executable, "-m", "dtf", *args], cwd=suite, env=env, capture_output=True, text=True
        )
        return json.loads(proc.stdout) if proc.returncode == 0 and proc.stdout.strip() else None

    report = dtf("report", "--format", "json")  # the latest run: the only one
    if report is None:
        outcome.note = (outcome.note + "; no report").strip("; ")
        return
    run_id = report["run"]["id"]
    outcome.counts = {k: v for k, v in report["summary"]["counts"].items() if v}
    outcome.counts_ok = outcome.counts == expected and outcome.exit_code == 0
    stored = Counter((r["item_id"], r["when"]) for r in report["results"] if not r["superseded"])
    outcome.twice = len({item for (item, _), n in stored.items() if n > 1})
    errors = Counter(
        (a["error"] or "").strip().splitlines()[0][:300]
        for b in report["batches"]
        for a in b["attempts"]
        if a["error"]
    )
    outcome.errors = dict(errors.most_common(3))
    lost = {
        b["id"]
        for b in report["batches"]
        for a in b["attempts"]
        if a["status"] == "lost" or a["failure_class"] in LOST_CLASSES
    }
    items = {i["id"]: i["batch_id"] for i in report["items"]}
    outcome.lost_batches = len(lost)
    outcome.lost_s = sum(
        r["duration"] or 0.0
        for r in report["results"]
        if not r["superseded"] and items.get(r["item_id"]) in lost
    )
    events = dtf("recovery", "events", run_id, "--json") or []
    outcome.recoveries = dict(
        Counter(f"{e['failure_class']}:{e['strategy']}" for e in events).most_common()
    )
    fault_time = _utc(outcome.fault_utc) if outcome.fault_utc else None
    starts = [_utc(e["started_at"]) for e in events if e["started_at"]]
    after = [s for s in starts if fault_time is not None and s >= fault_time]
    if fault_time is not None and after:
        outcome.detected_s = (min(after) - fault_time).total_seconds()
    for e in events:
        at = _utc(e["started_at"]) if e["started_at"] else None
        outcome.events.append({
            "after_fault_s": round((at - fault_time).total_seconds(), 2)
            if at and fault_time else None,
            "class": e["failure_class"], "strategy": e["strategy"], "status": e["status"],
            "worker": e["worker"], "detail": (e["detail"] or "")[:300],
        })  # fmt: skip


def _utc(text: str) -> datetime:
    moment = datetime.fromisoformat(text)
    return moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)


def judge(outcomes: list[Outcome]) -> None:
    """Overhead against the same broker's ``none`` row; the target where there is one."""
    base = {o.broker: o.wall_s for o in outcomes if o.scenario == "none"}
    for o in outcomes:
        if o.scenario != "none" and o.broker in base:
            o.overhead_s = o.wall_s - base[o.broker]
            if o.scenario in TARGETS:
                o.target_s = TARGETS[o.scenario] + o.lost_s
                o.met = o.overhead_s <= o.target_s and o.counts_ok and not o.twice


# --- report --------------------------------------------------------------------------------


def print_table(outcomes: list[Outcome]) -> None:
    header = (
        f"{'broker':<17}{'fault':<22}{'wall s':>8}{'overhead':>9}{'fault at':>9}"
        f"{'lost':>5}{'lost s':>7}{'target':>8}  {'met':<4}{'counts':<16}twice  recoveries"
    )
    print(header)
    print("-" * len(header))
    for o in outcomes:
        counts = ", ".join(f"{v} {k}" for k, v in sorted(o.counts.items())) or "none"
        met = "" if o.met is None else ("yes" if o.met else "NO")
        print(
            f"{o.broker:<17}{o.scenario:<22}{o.wall_s:>8.1f}{_num(o.overhead_s):>9}"
            f"{_num(o.fault_at_s):>9}{o.lost_batches:>5}{o.lost_s:>7.1f}{_num(o.target_s):>8}  "
            f"{met:<4}{('ok ' if o.counts_ok else 'DIFF ') + counts:<16}{o.twice:>5}  "
            + ", ".join(f"{k} x{v}" for k, v in o.recoveries.items())
        )
    for o in outcomes:
        extra = []
        if o.fault_s is not None:
            extra.append(f"fault took {o.fault_s:.1f}s")
        if o.detected_s is not None:
            extra.append(f"first recovery {o.detected_s:.1f}s after the fault")
        if o.victim:
            extra.append(f"killed {o.victim}")
        if o.note:
            extra.append(o.note)
        if extra:
            print(f"  {o.broker}/{o.scenario}: " + "; ".join(extra))


def _num(value: float | None) -> str:
    return "" if value is None else f"{value:.1f}"


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--broker",
        action="append",
        choices=BROKERS,
        help="redis and/or rabbitmq (repeatable; default both)",
    )
    parser.add_argument(
        "--scenario",
        action="append",
        choices=ALL_SCENARIOS,
        help="repeatable; default: each broker's list (none is always run)",
    )
    parser.add_argument("--json", type=Path, help="also write every outcome here")
    parser.add_argument(
        "--fault-at",
        type=float,
        default=4.0,
        help="earliest second of the run for the fault (default 4)",
    )
    parser.add_argument("--db-stall", type=float, default=30.0, help="seconds (default 30)")
    parser.add_argument(
        "--db-mode",
        choices=("hold", "refuse", "reset"),
        default="hold",
        help="hold: a silent network (default); refuse: a server that is down",
    )
    parser.add_argument(
        "--rabbitmq-queues",
        action="append",
        choices=("quorum", "classic"),
        help="RabbitMQ queue type (repeatable: each gets its own rows; default quorum)",
    )
    parser.add_argument(
        "--commit",
        metavar="REV",
        help="run dtf as committed at REV (git archive), not the working tree",
    )
    parser.add_argument("--pg-admin-dsn", default=PG_ADMIN_DSN, help="where to create databases")
    parser.add_argument("--timeout", type=float, default=300, help="seconds per dtf run")
    return parser.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    info = machine()
    began = datetime.now(timezone.utc)
    print(
        f"machine: {info['cpu']}, {info['cores']} cores, {info['memory_gib']} GiB, "
        f"load {info['load_average_at_start']}",
        flush=True,
    )
    outcomes: list[Outcome] = []
    commit = None
    if args.commit:
        commit = subprocess.run(
            ["git", "-C", str(REPO), "rev-parse", args.commit],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        print(f"dtf as committed at {commit}", flush=True)
    with (
        tempfile.TemporaryDirectory(prefix="dtf-faults-suite-") as tmp,
        dtf_code(commit) as code_env,
    ):
        suite = Path(tmp) / "suite"
        write_suite(suite)
        argv_pytest = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "."]
        wall, exit_code, output = timed(argv_pytest, suite, clean_env(), args.timeout)
        expected = pytest_counts(output)
        print(f"plain pytest: {wall:.1f}s, {expected} (exit {exit_code})", flush=True)
        setups = [
            (kind, queue_type)
            for kind in args.broker or BROKERS
            for queue_type in ([None] if kind == "redis" else args.rabbitmq_queues or ["quorum"])
        ]
        for kind, queue_type in setups:
            wanted = args.scenario or SCENARIOS[kind]
            for scenario in ["none", *[s for s in wanted if s != "none"]]:
                o = run_scenario(kind, queue_type, scenario, suite, expected, code_env, args)
                print(
                    f"  {o.broker:<17}{scenario:<22}{o.wall_s:7.1f}s  exit {o.exit_code}"
                    f"  counts {o.counts}  twice {o.twice}",
                    flush=True,
                )
                outcomes.append(o)
    judge(outcomes)
    info["load_average_at_end"] = [round(x, 2) for x in os.getloadavg()]
    print(f"\nplain pytest {wall:.1f}s; load average at end {info['load_average_at_end']}")
    print_table(outcomes)
    if args.json:
        doc = {
            "date": began.isoformat(timespec="seconds"),
            "machine": info,
            "pytest": {"wall_s": wall, "counts": expected},
            "commit": commit or "working tree",
            "args": {k: str(v) for k, v in vars(args).items()},
            "outcomes": [asdict(o) for o in outcomes],
        }
        args.json.write_text(json.dumps(doc, indent=2) + "\n")
    bad = [o for o in outcomes if not o.counts_ok or o.twice]
    for o in bad:
        print(
            f"\n{o.broker}/{o.scenario}: counts {o.counts} (pytest {expected}), "
            f"exit {o.exit_code}, {o.twice} stored twice; errors {o.errors}; dtf run ended with:\n"
            f"{o.output_tail[-1500:]}"
        )
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
