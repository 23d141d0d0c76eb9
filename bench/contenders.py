"""One benchmark contender, run alone in a fresh process by ``bench/run.py``.

``python bench/contenders.py NAME UPSTREAM.parquet WORK_DIR`` does the contender's job once
and prints one JSON line (rows made, and what else the harness reports). Wall time, CPU time
and peak memory are measured by the parent from outside (``os.wait4``), so nothing here
times itself but streaming, whose rate only the process can see.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

PROJECT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(PROJECT))


def builder(path: str, work: Path, **options) -> dict:
    """1: the builder, default config and options, into a fresh cache, then as_dataset."""
    from ultrafeedback_kto import UltraFeedbackKTO

    built = UltraFeedbackKTO(config_name="default", data_files=path, cache_dir=str(work / "cache"), **options)
    built.download_and_prepare()
    dataset = built.as_dataset()
    return {"rows": sum(split.num_rows for split in dataset.values())}


def streaming(upstream: str, work: Path) -> dict:
    """2: the builder streaming, one full pass over every split."""
    from ultrafeedback_kto import UltraFeedbackKTO

    started = time.perf_counter()
    built = UltraFeedbackKTO(config_name="default", data_files=upstream)
    rows = sum(1 for split in built.as_streaming_dataset().values() for _ in split)
    return {"rows": rows, "examples_per_second": rows / (time.perf_counter() - started)}


def publish_build(upstream: str, work: Path) -> dict:
    """3: ``ufkto build`` end to end, both configs (a child process, as users run it)."""
    out = work / "ufkto"
    command = [sys.executable, "-m", "publish", "build", "--source", upstream, "--out", str(out)]
    subprocess.run(command, cwd=PROJECT, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    import pyarrow.parquet as pq

    from publish.stats import closest_rows

    # Not a speed figure: how far apart the order kept the closest two rows of one prompt in train.
    train = sorted((out / "data").glob("train-*.parquet"))
    first, second = closest_rows(pq.read_table(train, columns=["prompt_id"]).column("prompt_id").to_pylist())
    rows = sum(pq.read_metadata(p).num_rows for p in out.rglob("*.parquet"))
    return {"rows": rows, "prompt_distance": second - first}


def trl_way(upstream: str, work: Path) -> dict:
    """4: load_dataset("parquet"), chosen and rejected reduced to the assistant text by a
    batched map, then TRL's unpair_preference_dataset (TRL's own when installed, otherwise
    the copy of its code in tests/trl_reference.py)."""
    import datasets

    try:
        from trl.data_utils import unpair_preference_dataset
    except ImportError:
        from tests.trl_reference import unpair_preference_dataset
    from tests.trl_reference import to_assistant_text

    dataset = datasets.load_dataset("parquet", data_files=upstream, cache_dir=str(work / "cache"))["train"]
    dataset = dataset.map(to_assistant_text, batched=True)
    return {"rows": unpair_preference_dataset(dataset).num_rows}


def pyarrow_floor(upstream: str, work: Path) -> dict:
    """5: pyarrow alone: read the parquet, write the same example rows (chosen, then rejected)
    to an Arrow file. No validation, no prompt ids, no split, no shuffle."""
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    pairs = pq.read_table(upstream)
    sides = []
    for side, label in (("chosen", True), ("rejected", False)):
        columns = {
            "prompt": pairs["prompt"],
            "completion": pc.struct_field(pc.list_element(pairs[side], 1), "content"),
            "label": pa.array([label] * pairs.num_rows),
            "source": pairs["source"],
            "model": pairs[f"{side}-model"],
            "average_rating": pairs[f"{side}-rating"],
        }
        sides.append(pa.table(columns))
    rows = pa.concat_tables(sides)
    with pa.OSFile(str(work / "rows.arrow"), "wb") as sink, pa.ipc.new_file(sink, rows.schema) as writer:
        writer.write_table(rows)
    return {"rows": rows.num_rows}


ASPECTS = ("helpfulness", "honesty", "instruction_following", "truthfulness")
COLUMNS = ["prompt", "completion", "label", "model", "average_rating", "annotations", "source"]


def explode(batch: dict) -> dict:
    """A row per completion, with the mean of its numeric aspect ratings."""
    out = {name: [] for name in COLUMNS}
    rows = zip(batch["instruction"], batch["source"], batch["completions"], strict=True)
    for instruction, source, completions in rows:
        for completion in completions:
            given = [completion["annotations"][aspect]["Rating"] for aspect in ASPECTS]
            ratings = [float(rating) for rating in given if rating.isdigit()]
            average = sum(ratings) / len(ratings) if ratings else None
            values = {
                "prompt": instruction,
                "completion": completion["response"],
                "label": average is not None and average >= 4.0,
                "model": completion["model"],
                "average_rating": average,
                "annotations": completion["annotations"],
                "source": source,
            }
            for name, value in values.items():
                out[name].append(value)
    return out


def openbmb_recipe(upstream: str, work: Path) -> dict:
    """7: the obvious datasets recipe for openbmb/UltraFeedback: load_dataset("parquet"), a
    batched map that explodes completions into rows and computes the average, select_columns."""
    import datasets

    dataset = datasets.load_dataset("parquet", data_files=upstream, cache_dir=str(work / "cache"))["train"]
    dataset = dataset.map(explode, batched=True, remove_columns=dataset.column_names)
    dataset = dataset.select_columns(COLUMNS)
    return {"rows": dataset.num_rows}


CONTENDERS = {
    "builder": builder,
    "streaming": streaming,
    "publish-build": publish_build,
    "trl-way": trl_way,
    "pyarrow-floor": pyarrow_floor,
    "openbmb-builder": lambda path, work: builder(path, work, upstream="openbmb"),
    "openbmb-recipe": openbmb_recipe,
}


def main() -> None:
    name, upstream, work = sys.argv[1], sys.argv[2], Path(sys.argv[3])
    os.environ.setdefault("HF_DATASETS_DISABLE_PROGRESS_BARS", "1")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    print(json.dumps(CONTENDERS[name](upstream, work)))


if __name__ == "__main__":
    main()
