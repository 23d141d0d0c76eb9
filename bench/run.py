"""The benchmark: ufkto against the usual way of unpairing and against pyarrow alone.

``python bench/run.py`` generates upstream-schema parquet with the project's sample generator
(60,917 pairs, the real size; ``--sizes 1,10`` adds 10x), runs every contender in its own fresh
process ``--repeats`` times on the same file, contenders taking turns, and reports the median
wall time, CPU time and peak resident memory of each (``os.wait4``'s rusage of the child), the
ratios the targets speak of, and whether each target is met. The table is printed and, with ``--write``, written
to bench/README.md with the date, the machine and the library versions.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

PROJECT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(PROJECT))

from publish.sample import write_upstream  # noqa: E402

REAL_PAIRS = 60_917
#: Contenders at every size, and those run at the real size only (the targets need no more).
AT_EVERY_SIZE = ["builder", "streaming", "publish-build"]
AT_REAL_SIZE_ONLY = ["streaming-upstream-order", "trl-way", "pyarrow-floor"]
LABELS = {
    "builder": "1. builder (download_and_prepare + as_dataset)",
    "streaming": "2. builder, streaming (one full pass)",
    "streaming-upstream-order": '2. builder, streaming, order="upstream"',
    "publish-build": "3. python -m publish build (both configs)",
    "trl-way": "4. load_dataset + map + unpair_preference_dataset",
    "pyarrow-floor": "5. pyarrow alone (floor)",
}


@dataclass
class Run:
    wall: float
    cpu: float
    peak_mb: float
    result: dict


def run_once(name: str, upstream: Path) -> Run:
    with tempfile.TemporaryDirectory(prefix=f"ufkto-bench-{name}-") as work:
        # Output goes to files, not pipes: a pipe nobody reads until the end could fill up
        # (progress bars) and stall the child.
        out_path, err_path = Path(work) / "stdout", Path(work) / "stderr"
        with out_path.open("w") as out_file, err_path.open("w") as err_file:
            started = time.perf_counter()
            child = subprocess.Popen(
                [sys.executable, str(PROJECT / "bench" / "contenders.py"), name, str(upstream), work],
                stdout=out_file, stderr=err_file, cwd=PROJECT,
            )  # fmt: skip
            # wait4 gives this child's own rusage: its CPU time and peak RSS, nobody else's.
            _, status, usage = os.wait4(child.pid, 0)
            wall = time.perf_counter() - started
            child.returncode = os.waitstatus_to_exitcode(status)  # reaped here, not by Popen
        out, err = out_path.read_text(), err_path.read_text()
        if child.returncode != 0:
            raise SystemExit(f"contender {name} failed:\n{err[-3000:]}")
        return Run(wall, usage.ru_utime + usage.ru_stime, usage.ru_maxrss / 1024, json.loads(out.splitlines()[-1]))


def settle(seconds: float) -> None:
    """Let the previous run's deleted files reach the disk before the next run starts.

    Every run deletes hundreds of MB; on a filesystem that discards freed blocks (this
    machine's, see README.md) the next run's writes would otherwise wait behind them, and
    whichever contender came next would pay for the one before.
    """
    os.sync()
    time.sleep(seconds)


def median_runs(names: list[str], upstream: Path, repeats: int, settle_seconds: float) -> dict[str, Run]:
    """Each contender ``repeats`` times, taking turns, so that a slow spell of the machine
    falls on every contender alike rather than on whichever ran then; medians of each."""
    runs: dict[str, list[Run]] = {name: [] for name in names}
    for _ in range(repeats):
        for name in names:
            runs[name].append(run_once(name, upstream))
            settle(settle_seconds)
    return {name: _median(each) for name, each in runs.items()}


def _median(runs: list[Run]) -> Run:
    middle = statistics.median
    result = {key: middle([r.result[key] for r in runs]) for key in runs[0].result if runs[0].result[key] is not None}
    return Run(middle([r.wall for r in runs]), middle([r.cpu for r in runs]), middle([r.peak_mb for r in runs]), result)


def upstream_file(folder: Path, pairs: int) -> Path:
    path = folder / f"upstream-{pairs}.parquet"
    if not path.exists():
        print(f"generating {pairs:,} pairs into {path}", file=sys.stderr)
        write_upstream(path, pairs, seed=0)
    return path


def targets(results: dict[int, dict[str, Run]]) -> list[tuple[str, str, bool]]:
    """(target, measured, met) for every target of issue 4 that these results cover."""
    real = results[1]
    checks = []

    def ratio(a: float, b: float) -> float:
        return a / b if b else float("inf")

    checks.append(("1 wall <= 0.8 x 4 wall", f"{ratio(real['builder'].wall, real['trl-way'].wall):.2f}x",
                   real["builder"].wall <= 0.8 * real["trl-way"].wall))  # fmt: skip
    checks.append(("1 wall <= 2 x 5 wall", f"{ratio(real['builder'].wall, real['pyarrow-floor'].wall):.2f}x",
                   real["builder"].wall <= 2 * real["pyarrow-floor"].wall))  # fmt: skip
    checks.append(("1 peak memory <= 0.8 x 4", f"{ratio(real['builder'].peak_mb, real['trl-way'].peak_mb):.2f}x",
                   real["builder"].peak_mb <= 0.8 * real["trl-way"].peak_mb))  # fmt: skip
    speed = real["streaming"].result["examples_per_second"]
    checks.append(("2 >= 60,000 examples/s", f"{speed:,.0f}/s", speed >= 60_000))
    first = real["streaming-upstream-order"].result["first_example_seconds"]
    checks.append(('2 order="upstream": first example <= 1 s', f"{first:.2f} s", first <= 1))
    checks.append(("3 wall <= 2.5 x 1 wall", f"{ratio(real['publish-build'].wall, real['builder'].wall):.2f}x",
                   real["publish-build"].wall <= 2.5 * real["builder"].wall))  # fmt: skip
    if 10 in results:
        for name in AT_EVERY_SIZE:
            memory = ratio(results[10][name].peak_mb, real[name].peak_mb)
            wall = ratio(results[10][name].wall, real[name].wall)
            checks.append((f"{name} at 10x: peak memory <= 1.25 x", f"{memory:.2f}x", memory <= 1.25))
            checks.append((f"{name} at 10x: wall <= 11 x", f"{wall:.2f}x", wall <= 11))
    return checks


def versions() -> str:
    import datasets
    import huggingface_hub
    import pyarrow

    try:
        import trl

        unpair = f"trl {trl.__version__}"
    except ImportError:
        unpair = "trl not installed: its unpair_preference_dataset copied in tests/trl_reference.py"
    return (f"Python {platform.python_version()}, datasets {datasets.__version__}, pyarrow {pyarrow.__version__}, "
            f"huggingface_hub {huggingface_hub.__version__}; {unpair}")  # fmt: skip


def machine() -> str:
    memory_kb = next(int(line.split()[1]) for line in open("/proc/meminfo") if line.startswith("MemTotal"))
    return f"{os.cpu_count()} cores, {memory_kb / 2**20:.0f} GiB, {platform.system()} {platform.machine()}"


def report(results: dict[int, dict[str, Run]], pairs: int, repeats: int) -> str:
    lines = [
        f"Run {datetime.date.today().isoformat()} on {machine()}; {versions()}.",
        f"Median of {repeats} fresh processes per contender; upstream: {pairs:,} generated pairs per 1x.",
        "",
        "| size | contender | wall s | CPU s | peak MB | rows | notes |",
        "|---|---|---|---|---|---|---|",
    ]
    for size, runs in results.items():
        for name, run in runs.items():
            notes = []
            if "examples_per_second" in run.result:
                notes.append(f"{run.result['examples_per_second']:,.0f} examples/s")
            if name == "streaming-upstream-order":
                notes.append(f"first example after {run.result['first_example_seconds']:.2f} s")
            lines.append(f"| {size}x | {LABELS[name]} | {run.wall:.2f} | {run.cpu:.2f} | {run.peak_mb:.0f} | "
                         f"{run.result['rows']:,.0f} | {'; '.join(notes)} |")  # fmt: skip
    lines += ["", "| target | measured | met |", "|---|---|---|"]
    lines += [f"| {target} | {measured} | {'yes' if met else '**no**'} |" for target, measured, met in targets(results)]
    return "\n".join(lines) + "\n"


RESULTS_START, RESULTS_END = "<!-- results: start -->", "<!-- results: end -->"


def write_readme(table: str) -> None:
    readme = PROJECT / "bench" / "README.md"
    text = readme.read_text()
    start, end = text.index(RESULTS_START) + len(RESULTS_START), text.index(RESULTS_END)
    readme.write_text(text[:start] + "\n" + table + text[end:])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python bench/run.py", description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=REAL_PAIRS, help="pairs at 1x (default: the real %(default)s)")
    parser.add_argument("--sizes", default="1", help="comma-separated multiples of --pairs, e.g. 1,10")
    parser.add_argument("--repeats", type=int, default=3, help="runs per contender (default %(default)s)")
    parser.add_argument("--data", type=Path, help="where the generated upstream files stay (default: a temp folder)")
    parser.add_argument("--settle", type=float, default=1.0,
                        help="seconds to wait after each run, its files deleted and synced (default %(default)s)")  # fmt: skip
    parser.add_argument("--write", action="store_true", help="write the table into bench/README.md")
    args = parser.parse_args(argv)
    sizes = [int(size) for size in args.sizes.split(",")]
    if 1 not in sizes:
        parser.error("--sizes must include 1: the targets compare with the real size")
    data = args.data or Path(tempfile.mkdtemp(prefix="ufkto-bench-data-"))
    data.mkdir(parents=True, exist_ok=True)
    results: dict[int, dict[str, Run]] = {}
    try:
        for size in sorted(sizes):
            upstream = upstream_file(data, args.pairs * size)
            names = AT_EVERY_SIZE + (AT_REAL_SIZE_ONLY if size == 1 else [])
            print(f"{size}x: {', '.join(names)}, {args.repeats} turns ...", file=sys.stderr, flush=True)
            results[size] = median_runs(names, upstream, args.repeats, args.settle)
    finally:
        if args.data is None:
            shutil.rmtree(data, ignore_errors=True)
    table = report(results, args.pairs, args.repeats)
    print(table)
    if args.write:
        write_readme(table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
