"""The benchmark: ufkto against the usual ways of making the same rows, at the real size and 10x.

``python bench/run.py`` generates upstream-schema parquet with the project's sample generators
(argilla-cleaned: 60,917 pairs, the real size, ``--sizes 1,10`` adds 10x; openbmb: 63,967
prompts, at the real size only), runs every contender in its own fresh process ``--repeats``
times, contenders taking turns, and reports the median wall time, CPU time and peak resident
memory of each (``os.wait4``'s rusage of the child), the ratios the targets speak of, and
whether each target is met. A contender "in 1 GiB" runs in a cgroup (v1) memory group limited
to 1 GiB (``memory.limit_in_bytes``; the process and its page cache are charged to it): it
must complete. The table is printed and, with ``--write``, written to bench/README.md with
the date, the machine and the library versions; ``--json FILE`` writes the same results as
data (what tests/test_bench.py reads).
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

from tools.sample import write_upstream  # noqa: E402
from tools.sample_family import write_openbmb  # noqa: E402

REAL_PAIRS, REAL_OPENBMB_ROWS = 60_917, 63_967
GiB = 2**30
CGROUPS = Path("/sys/fs/cgroup/memory")


@dataclass(frozen=True)
class Contender:
    name: str  # in bench/contenders.py
    data: str = "argilla"  # the upstream file it reads: "argilla" or "openbmb"
    memory_limit: int | None = None  # bytes, in a cgroup
    configs: int = 1  # how many configs' rows it makes
    builder_rows: bool = True  # whether it makes the builder's rows (else keeps what the builder leaves out)

    @property
    def label(self) -> str:
        labels = {
            "builder": "1. builder (download_and_prepare + as_dataset)",
            "streaming": "2. builder, streaming (one full pass)",
            "publish-build": "3. ufkto build (both configs)",
            "trl-way": "4. load_dataset + map + unpair_preference_dataset",
            "pyarrow-floor": "5. pyarrow alone (floor)",
            "openbmb-builder": "6. builder, upstream openbmb",
            "openbmb-recipe": "7. openbmb: load_dataset + exploding map + select_columns",
        }
        return labels[self.name] + (f", in {self.memory_limit // GiB} GiB" if self.memory_limit else "")


BUILDER, STREAMING, TRL, FLOOR = (Contender(name) for name in ("builder", "streaming", "trl-way", "pyarrow-floor"))
PUBLISH = Contender("publish-build", configs=2)
BUILDER_1GIB = Contender("builder", memory_limit=GiB)
OPENBMB = Contender("openbmb-builder", "openbmb")
OPENBMB_RECIPE = Contender("openbmb-recipe", "openbmb", builder_rows=False)
OPENBMB_1GIB = Contender("openbmb-builder", "openbmb", GiB)
AT_REAL_SIZE = [BUILDER, STREAMING, PUBLISH, TRL, FLOOR, OPENBMB, OPENBMB_RECIPE, OPENBMB_1GIB]
AT_10X = [BUILDER, STREAMING, PUBLISH, BUILDER_1GIB]


@dataclass
class Run:
    wall: float
    cpu: float
    peak_mb: float
    result: dict  # what the contender printed; with a memory limit, "completed"


def cgroups_usable() -> bool:
    return (CGROUPS / "cgroup.procs").is_file() and os.access(CGROUPS, os.W_OK)


def run_once(contender: Contender, upstream: Path) -> Run:
    with tempfile.TemporaryDirectory(prefix=f"ufkto-bench-{contender.name}-") as work:
        group = None
        if contender.memory_limit:
            group = CGROUPS / f"ufkto-bench-{os.getpid()}-{time.monotonic_ns()}"
            group.mkdir()
            (group / "memory.limit_in_bytes").write_text(str(contender.memory_limit))

        def enter_group() -> None:  # in the child, before it runs: it and its children are charged
            if group is not None:
                (group / "cgroup.procs").write_text(str(os.getpid()))

        try:
            # Output goes to files, not pipes: a pipe nobody reads until the end could fill up.
            out_path, err_path = Path(work) / "stdout", Path(work) / "stderr"
            with out_path.open("w") as out_file, err_path.open("w") as err_file:
                script = PROJECT / "bench" / "contenders.py"
                command = [sys.executable, str(script), contender.name, str(upstream), work]
                started = time.perf_counter()
                child = subprocess.Popen(command, stdout=out_file, stderr=err_file, cwd=PROJECT, preexec_fn=enter_group)
                # wait4 gives this child's own rusage: its CPU time and peak RSS, nobody else's.
                _, status, usage = os.wait4(child.pid, 0)
                wall = time.perf_counter() - started
                child.returncode = os.waitstatus_to_exitcode(status)  # reaped here, not by Popen
        finally:
            if group is not None:
                group.rmdir()
        if child.returncode != 0 and not contender.memory_limit:
            raise SystemExit(f"contender {contender.name} failed:\n{err_path.read_text()[-3000:]}")
        result = json.loads(out_path.read_text().splitlines()[-1]) if child.returncode == 0 else {"rows": 0}
        if contender.memory_limit:
            result["completed"] = child.returncode == 0
        return Run(wall, usage.ru_utime + usage.ru_stime, usage.ru_maxrss / 1024, result)


def settle(seconds: float) -> None:
    """Let the previous run's deleted files reach the disk before the next run starts:
    whichever contender came next would otherwise pay for the one before (bench/README.md)."""
    os.sync()
    time.sleep(seconds)


def median_runs(contenders: list[Contender], files: dict[str, Path], repeats: int, settle_seconds: float):
    """Each contender ``repeats`` times, taking turns, so that a slow spell of the machine
    falls on every contender alike rather than on whichever ran then; medians of each."""
    runs: dict[Contender, list[Run]] = {contender: [] for contender in contenders}
    for _ in range(repeats):
        for contender in contenders:
            runs[contender].append(run_once(contender, files[contender.data]))
            settle(settle_seconds)
    return {contender: median_run(each) for contender, each in runs.items()}


def median_run(runs: list[Run]) -> Run:
    """The medians of ``runs`` of one contender; a flag in its result holds if it held in every run."""
    middle = statistics.median
    result = {}
    for key, value in runs[0].result.items():
        values = [run.result[key] for run in runs]
        result[key] = all(values) if isinstance(value, bool) else middle(values)
    wall, cpu, peak_mb = (middle([getattr(run, field) for run in runs]) for field in ("wall", "cpu", "peak_mb"))
    return Run(wall, cpu, peak_mb, result)


def upstream_files(folder: Path, pairs: int, openbmb_rows: int | None) -> dict[str, Path]:
    files = {"argilla": folder / f"argilla-{pairs}.parquet"}
    if not files["argilla"].exists():
        print(f"generating {pairs:,} pairs into {files['argilla']}", file=sys.stderr)
        write_upstream(files["argilla"], pairs, seed=0)
    if openbmb_rows:
        files["openbmb"] = folder / f"openbmb-{openbmb_rows}.parquet"
        if not files["openbmb"].exists():
            print(f"generating {openbmb_rows:,} openbmb rows into {files['openbmb']}", file=sys.stderr)
            write_openbmb(files["openbmb"], openbmb_rows, seed=0)
    return files


def targets(results: dict[int, dict[Contender, Run]]) -> list[tuple[str, str, bool | None]]:
    """(target, measured, met) for every target these results cover; met is None when the
    contender could not run here (no cgroup)."""
    real = results[1]
    checks = []

    def ratio(name: str, a: Run, b: Run, field: str, most: float) -> None:
        value = getattr(a, field) / getattr(b, field)
        checks.append((name, f"{value:.2f}x", value <= most))

    ratio("1 wall <= 0.6 x 4 wall", real[BUILDER], real[TRL], "wall", 0.6)
    ratio("1 peak memory <= 0.6 x 4 peak memory", real[BUILDER], real[TRL], "peak_mb", 0.6)
    speed = real[STREAMING].result["examples_per_second"]
    checks.append(("2 >= 60,000 examples/s", f"{speed:,.0f}/s", speed >= 60_000))
    ratio("6 wall <= 0.6 x 7 wall (openbmb)", real[OPENBMB], real[OPENBMB_RECIPE], "wall", 0.6)
    ratio("6 peak memory <= 0.6 x 7 peak memory (openbmb)", real[OPENBMB], real[OPENBMB_RECIPE], "peak_mb", 0.6)
    limited = [(real, OPENBMB_1GIB, "6 in 1 GiB completes (openbmb)")]
    if 10 in results:
        limited.append((results[10], BUILDER_1GIB, "1 in 1 GiB at 10x completes"))
    for runs, contender, name in limited:
        run = runs.get(contender)
        if run is None:
            checks.append((name, "not run: no cgroup v1 memory controller here", None))
        else:
            completed = run.result["completed"]
            checks.append((name, "yes" if completed else "killed", completed))
    for size, runs in results.items():
        distance = runs[PUBLISH].result["prompt_distance"]
        target = f"3 at {size}x: rows of one prompt >= 1,000 apart in train"
        checks.append((target, f"{distance:,.0f}", distance >= 1000))
    if 10 in results and BUILDER_1GIB in results[10]:
        ratio("1 in 1 GiB at 10x: wall <= 11 x 1 at 1x", results[10][BUILDER_1GIB], real[BUILDER], "wall", 11)
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
    libraries = ", ".join(f"{module.__name__} {module.__version__}" for module in (datasets, pyarrow, huggingface_hub))
    return f"Python {platform.python_version()}, {libraries}; {unpair}"


def machine() -> str:
    memory_kb = next(int(line.split()[1]) for line in open("/proc/meminfo") if line.startswith("MemTotal"))
    return f"{os.cpu_count()} cores, {memory_kb / 2**20:.0f} GiB, {platform.system()} {platform.machine()}"


def report(results: dict[int, dict[Contender, Run]], checks: list, pairs: int, openbmb_rows: int, repeats: int) -> str:
    lines = [
        f"Run {datetime.date.today().isoformat()} on {machine()}; {versions()}.",
        f"Median of {repeats} fresh processes per contender; upstream: {pairs:,} generated pairs per 1x; openbmb: "
        f"{openbmb_rows:,} generated prompts.",
        "",
        "| size | contender | wall s | CPU s | peak MB | rows | notes |",
        "|---|---|---|---|---|---|---|",
    ]
    for size, runs in results.items():
        for contender, run in runs.items():
            notes = []
            if "examples_per_second" in run.result:
                notes.append(f"{run.result['examples_per_second']:,.0f} examples/s")
            if "prompt_distance" in run.result:
                notes.append(f"rows of one prompt {run.result['prompt_distance']:,.0f} apart or more in train")
            if "completed" in run.result:
                notes.append("completed" if run.result["completed"] else "killed by the memory limit")
            cells = [f"{size}x", contender.label, f"{run.wall:.2f}", f"{run.cpu:.2f}", f"{run.peak_mb:.0f}"]
            cells += [f"{run.result['rows']:,.0f}", "; ".join(notes)]
            lines.append(f"| {' | '.join(cells)} |")
    lines += ["", "| target | measured | met |", "|---|---|---|"]
    for target, measured, met in checks:
        verdict = "not checked" if met is None else "yes" if met else "**no**"
        lines.append(f"| {target} | {measured} | {verdict} |")
    return "\n".join(lines) + "\n"


def as_data(results: dict[int, dict[Contender, Run]], checks: list) -> dict:
    """The results as ``--json`` writes them: a record per contender and size, and the targets."""
    contenders = [
        {
            "size": size,
            "contender": contender.label,
            "upstream": contender.data,
            "builder_rows": contender.builder_rows,
            "wall_s": run.wall,
            "cpu_s": run.cpu,
            "peak_mb": run.peak_mb,
            "rows": run.result["rows"],
            "rows_per_config": run.result["rows"] / contender.configs,
            "completed": run.result.get("completed"),
        }
        for size, runs in results.items()
        for contender, run in runs.items()
    ]
    targets = [{"target": target, "measured": measured, "met": met} for target, measured, met in checks]
    return {"contenders": contenders, "targets": targets}


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
    settle_help = "seconds to wait after each run, its files deleted and synced (default %(default)s)"
    parser.add_argument("--settle", type=float, default=1.0, help=settle_help)
    parser.add_argument("--write", action="store_true", help="write the table into bench/README.md")
    parser.add_argument("--json", type=Path, metavar="FILE", help="also write the results to FILE as JSON")
    args = parser.parse_args(argv)
    sizes = [int(size) for size in args.sizes.split(",")]
    if 1 not in sizes:
        parser.error("--sizes must include 1: the targets compare with the real size")
    # openbmb scaled as the pairs are, so that a small run is small throughout.
    openbmb_rows = round(REAL_OPENBMB_ROWS * args.pairs / REAL_PAIRS)
    data = args.data or Path(tempfile.mkdtemp(prefix="ufkto-bench-data-"))
    data.mkdir(parents=True, exist_ok=True)
    results: dict[int, dict[Contender, Run]] = {}
    try:
        for size in sorted(sizes):
            files = upstream_files(data, args.pairs * size, openbmb_rows if size == 1 else None)
            contenders = [c for c in (AT_REAL_SIZE if size == 1 else AT_10X) if not c.memory_limit or cgroups_usable()]
            labels = ", ".join(c.label for c in contenders)
            print(f"{size}x: {labels}; {args.repeats} turns ...", file=sys.stderr, flush=True)
            results[size] = median_runs(contenders, files, args.repeats, args.settle)
    finally:
        if args.data is None:
            shutil.rmtree(data, ignore_errors=True)
    checks = targets(results)
    table = report(results, checks, args.pairs, openbmb_rows, args.repeats)
    print(table)
    if args.write:
        write_readme(table)
    if args.json:
        args.json.write_text(json.dumps(as_data(results, checks), indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
