"""A small run of the benchmark harness, so that it cannot rot (the full run is not a test)."""

from __future__ import annotations

import subprocess
import sys

from bench.run import cgroups_usable
from tests.conftest import PROJECT


def test_small_benchmark_run_measures_every_contender_and_target(tmp_path):
    done = subprocess.run(
        [sys.executable, "bench/run.py", "--pairs", "1500", "--repeats", "1", "--settle", "0", "--data", str(tmp_path)],
        cwd=PROJECT, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    table = done.stdout
    rows = {line.split(" | ")[1]: line.split(" | ") for line in table.splitlines() if line.startswith("| 1x |")}
    assert len(rows) == (8 if cgroups_usable() else 7)
    for name, cells in rows.items():
        wall, cpu, peak = float(cells[2]), float(cells[3]), float(cells[4])
        assert wall > 0 and cpu > 0 and peak > 50, name
    made = {name: cells[5] for name, cells in rows.items()}
    assert made["1. builder (download_and_prepare + as_dataset)"] == "3,000"
    assert made["2. builder, streaming (one full pass)"] == "3,000"
    assert made["3. ufkto build (both configs)"] == "6,000"
    assert made["4. load_dataset + map + unpair_preference_dataset"] == "3,000"
    assert made["5. pyarrow alone (floor)"] == "3,000"
    # openbmb: one row per completion; the recipe keeps what the builder leaves out.
    assert 0 < int(made["6. builder, upstream openbmb"].replace(",", "")) < int(
        made["7. openbmb: load_dataset + exploding map + select_columns"].replace(",", ""))  # fmt: skip
    targets = [line for line in table.splitlines()
               if line.startswith("| ") and line.rstrip().endswith(("| yes |", "| **no** |", "| not checked |"))]  # fmt: skip
    assert len(targets) == 7  # every real-size target is checked (the 10x ones need --sizes 1,10)
    assert (PROJECT / "bench" / "README.md").read_text().count("<!-- results: start -->") == 1
