"""Run every benchmark in this folder in turn: `python -m bench [name …] [--no-record] [--render]`.

Each `bench_*.py` is a script that prints its own tables with targets and ratios. Their output is
shown as it comes and recorded (bench/results.py): `docs/benchmarks.json` keeps the last run of each
benchmark with its time, commit and machine, and `docs/benchmarks.md` and the README's measured
block are rendered from it. `--no-record` only runs; `--render` only renders what is recorded.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

from bench import results

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent

STORE = ROOT / "docs" / "benchmarks.json"
DB = "data/encore.db"  # `make bench` runs `main.py setup` first
# (name, script, arguments): each bench_*.py once with its defaults, except the HTTP benchmark, which
# measures each route issue 15 sets a target for, on the set-up database (its neighbour table included).
HTTP_RUNS = [
    (
        f"bench_http_{route}",
        "bench_http.py",
        ["--route", route, "--db", DB] + (["--ids", "uniform"] if route == "similar" else []),
    )
    for route in ("similar", "search", "healthz")
]
DOC = ROOT / "docs" / "benchmarks.md"
README = ROOT / "README.md"


def commit() -> str:
    def git(*args: str) -> str:
        return subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True, check=False).stdout.strip()

    head = git("rev-parse", "--short", "HEAD") or "unknown"
    return head + ("+changes" if git("status", "--porcelain", "--untracked-files=no") else "")


def runs() -> list[tuple[str, str, list[str]]]:
    plain = [(p.stem, p.name, []) for p in sorted(HERE.glob("bench_*.py")) if p.stem != "bench_http"]
    return sorted(plain + HTTP_RUNS)


def run(script: str, arguments: list[str]) -> tuple[int, str]:
    """Run one benchmark, showing its output as it comes; (exit code, everything it printed)."""
    seen: list[str] = []
    with subprocess.Popen(
        [sys.executable, str(HERE / script), *arguments],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    ) as proc:
        assert proc.stdout is not None
        for line in proc.stdout:
            print(line, end="", flush=True)
            seen.append(line)
    return proc.returncode, "".join(seen)


def render() -> None:
    store = results.load(STORE)
    DOC.write_text(results.render_doc(store))
    README.write_text(results.update_readme(README.read_text(), results.render_block(store)))
    print(f"rendered {DOC.relative_to(ROOT)} and the README's measured block from {len(store)} benchmarks")


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("names", nargs="*", help="run only the benchmarks whose name contains one of these")
    parser.add_argument("--no-record", action="store_true", help="run without recording or rendering")
    parser.add_argument("--render", action="store_true", help="render the recorded results, run nothing")
    args = parser.parse_args(argv)
    if args.render:
        render()
        return 0
    chosen = [r for r in runs() if not args.names or any(name in r[0] for name in args.names)]
    host, head = results.machine(), commit()
    failures = 0
    for name, script, arguments in chosen:
        print(f"\n=== {name} {' '.join(arguments)} ===", flush=True)
        started = time.perf_counter()
        at = datetime.now(UTC).strftime("%Y-%m-%d %H:%M")
        code, output = run(script, arguments)
        print(f"--- {name}: exit {code} in {time.perf_counter() - started:.1f} s", flush=True)
        failures += code != 0
        if not args.no_record:
            store = results.record(results.load(STORE), name, output, exit_code=code, at=at, commit=head, host=host)
            results.save(STORE, store)  # after each script: an interrupted run keeps what it measured
    if not args.no_record:
        render()
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
