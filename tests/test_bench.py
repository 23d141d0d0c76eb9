"""A small run of the benchmark harness, so that it cannot rot (the full run is not a test)."""

from __future__ import annotations

import json
import subprocess
import sys
from collections import defaultdict

from tests.conftest import PROJECT

VERDICTS = ("| yes |", "| **no** |", "| not checked |")


def test_small_benchmark_run_measures_every_contender_and_target(tmp_path):
    results = tmp_path / "results.json"
    options = ["--pairs", "1500", "--repeats", "1", "--settle", "0", "--data", str(tmp_path), "--json", str(results)]
    done = subprocess.run(
        [sys.executable, "bench/run.py", *options], cwd=PROJECT, capture_output=True, text=True, timeout=600
    )
    assert done.returncode == 0, done.stderr[-3000:]
    data = json.loads(results.read_text())
    contenders = data["contenders"]
    assert contenders and data["targets"]

    # Each contender measured; those that make the builder's rows from one upstream agree on
    # how many, and a recipe that keeps what the builder leaves out makes at least as many.
    builder_counts, recipe_counts = defaultdict(set), defaultdict(list)
    for row in contenders:
        assert row["wall_s"] > 0 and row["cpu_s"] > 0 and row["peak_mb"] > 0, row
        if row["completed"] is False:  # killed by its memory limit: a target says so
            continue
        key = row["size"], row["upstream"]
        if row["builder_rows"]:
            builder_counts[key].add(row["rows_per_config"])
        else:
            recipe_counts[key].append(row["rows_per_config"])
    assert all(len(counts) == 1 and min(counts) > 0 for counts in builder_counts.values()), dict(builder_counts)
    for key, counts in recipe_counts.items():
        assert all(count >= min(builder_counts[key]) for count in counts), key

    # The printed table has a row per contender and a line per target, each with its verdict.
    table = done.stdout.splitlines()
    for row in contenders:
        prefix = f"| {row['size']}x | {row['contender']} |"
        assert sum(line.startswith(prefix) for line in table) == 1, prefix
    target_lines = table[table.index("| target | measured | met |") + 2 :]
    target_lines = [line for line in target_lines if line.startswith("| ")]
    assert len(target_lines) == len(data["targets"])
    assert all(line.rstrip().endswith(VERDICTS) for line in target_lines), target_lines
    assert (PROJECT / "bench" / "README.md").read_text().count("<!-- results: start -->") == 1
