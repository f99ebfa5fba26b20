"""``python -m benchmarks.equivalence``: the matrix, plain pytest against ``dtf run``.

Exit 0 when every cell is equal, 1 when a cell differs, 2 when a project could not be
prepared (download, install) or the arguments are wrong.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import shutil
import sys
import time
from pathlib import Path

from benchmarks.equivalence import harness
from benchmarks.equivalence.projects import PROJECTS, by_name


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.equivalence",
        description="Run real third-party suites with plain pytest and with dtf run; "
        "compare JUnit counts and every test's outcome.",
    )
    parser.add_argument("--project", action="append", help="only this project (repeatable)")
    parser.add_argument("--cell", action="append", help="only this cell (repeatable)")
    parser.add_argument(
        "--mode",
        choices=["venv", "current"],
        default="venv",
        help="venv: one virtual environment per project under the cache (default); "
        "current: this interpreter, which must have the projects installed",
    )
    parser.add_argument(
        "--cache",
        type=Path,
        help=f"cache folder (default ${harness.CACHE_ENV} or ~/.cache/dtf-equivalence)",
    )
    parser.add_argument(
        "--work", type=Path, help="work folder (default CACHE/work/latest, emptied)"
    )
    parser.add_argument(
        "--timeout",
        type=float,
        default=harness.DEFAULT_TIMEOUT,
        help="seconds per command (default %(default)s)",
    )
    parser.add_argument(
        "--dtf-arg",
        action="append",
        default=[],
        help="an extra argument for `dtf run` (repeatable): --dtf-arg=--workers=1",
    )
    parser.add_argument(
        "--dtf-source",
        default="",
        help="a folder holding dtf/, workers/ and integrations/ (e.g. `git archive HEAD` "
        "of them), importable from the front of PYTHONPATH of both sides, to measure "
        "that code instead of the installed dtf",
    )
    parser.add_argument("--json", type=Path, help="write every cell's result here")
    parser.add_argument("--markdown", type=Path, help="write the table and details as Markdown")
    parser.add_argument(
        "--prepare-only",
        action="store_true",
        help="fetch and install what the projects need, run nothing",
    )
    parser.add_argument("--list", action="store_true", help="list projects and cells")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        projects = [by_name(n) for n in args.project] if args.project else list(PROJECTS)
    except KeyError as exc:
        print(f"equivalence: error: {exc.args[0]}", file=sys.stderr)
        return 2
    if args.list:
        for p in projects:
            print(f"{p.name} {p.version} ({p.tests_from}): {p.layout}")
            for c in p.cells:
                print(f"  {c.name:12} {c.what}")
        return 0
    known = {c.name for p in projects for c in p.cells}
    unknown = sorted(set(args.cell or ()) - known)
    if unknown:
        print(
            f"equivalence: error: no cell {', '.join(unknown)} ({', '.join(sorted(known))})",
            file=sys.stderr,
        )
        return 2
    cache = args.cache or harness.cache_dir()
    work = args.work or cache / "work" / "latest"
    key = hashlib.sha256(str(work.resolve()).encode()).hexdigest()[:16]
    with harness.locked(cache / "locks" / f"work-{key}.lock"):
        return _matrix(args, projects, cache, work)


def _matrix(args, projects, cache: Path, work: Path) -> int:
    if work.exists() and not args.prepare_only:
        shutil.rmtree(work)
    work.mkdir(parents=True, exist_ok=True)
    rows: dict[str, dict[str, str]] = {}
    source = str(Path(args.dtf_source).resolve()) if args.dtf_source else ""
    results: list[harness.CellResult] = []
    failed_setup = False
    cells_seen: list[str] = []
    started = time.perf_counter()
    for project in projects:
        label = f"{project.name} {project.version}"
        say(f"== {label}: preparing ({args.mode})")
        try:
            setup = harness.prepare(project, work, cache=cache, mode=args.mode, dtf_source=source)
        except harness.SetupError as exc:
            failed_setup = True
            rows[label] = {c.name: f"setup failed: {exc}" for c in project.cells}
            say(f"   setup failed: {exc}")
            continue
        say(f"   root {setup.root}\n   python {setup.python}\n   dtf {setup.dtf_file}")
        if args.prepare_only:
            continue
        rows[label] = {}
        for cell in project.cells:
            if cell.name not in cells_seen:
                cells_seen.append(cell.name)
            if args.cell and cell.name not in args.cell:
                continue
            result = harness.run_cell(
                setup,
                cell,
                work / project.name / "cells" / cell.name,
                timeout=args.timeout,
                dtf_args=args.dtf_arg,
            )
            results.append(result)
            rows[label][cell.name] = result.short()
            say(
                f"   {cell.name:12} pytest {result.pytest.seconds:5.1f} s  "
                f"dtf {result.dtf.seconds:5.1f} s  {result.short()}"
            )
    if args.prepare_only:
        return 2 if failed_setup else 0
    cells = [c for c in cells_seen if not args.cell or c in args.cell]
    print()
    print(harness.table(rows, cells))
    mismatches = [r for r in results if not r.equal]
    for r in mismatches:
        print(f"\n-- {r.project} / {r.cell}")
        for line in r.details():
            print(f"   {line}")
    total = time.perf_counter() - started
    print(
        f"\n{len(results) - len(mismatches)} of {len(results)} cells equal "
        f"({total:.0f} s; logs under {work})"
    )
    if args.json:
        args.json.write_text(json.dumps([r.to_json() for r in results], indent=2))
    if args.markdown:
        args.markdown.write_text(_markdown(rows, cells, mismatches))
    if mismatches:
        return 1
    return 2 if failed_setup else 0


def _markdown(rows, cells, mismatches) -> str:
    parts = [harness.table(rows, cells, markdown=True), ""]
    for r in mismatches:
        parts.append(f"**{r.project} / {r.cell}**\n\n```")
        parts.extend(r.details())
        parts.append("```\n")
    return "\n".join(parts)


def say(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


if __name__ == "__main__":
    sys.exit(main())
