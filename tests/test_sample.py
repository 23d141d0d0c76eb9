"""The fake-upstream generator (tools/sample.py): schema, determinism, file formats, the
command and the shipped samples it made, and the traits of the real upstream that the
converter must cope with (checked at 2,000 pairs)."""

from __future__ import annotations

import json
import os
import signal
import statistics
import subprocess
import sys
import time
from pathlib import Path

import pyarrow as pa
import pyarrow.json as pajson
import pyarrow.parquet as pq
import pytest

from tests.conftest import PROJECT, files_of
from tools.sample import (
    MODELS,
    ROW_GROUP_SIZE,
    SAMPLE_COMMANDS,
    SOURCES,
    generate_batches,
    generate_table,
    main,
    write_upstream,
)
from ultrafeedback_kto import UPSTREAM_SCHEMA

N = 2_000
UPSTREAM_PAIRS = 60_917
UPSTREAM_ARROW_BYTES = 284_937_773


@pytest.fixture(scope="module")
def table() -> pa.Table:
    return generate_table(N, seed=0)


@pytest.fixture(scope="module")
def rows(table) -> list[dict]:
    return table.to_pylist()


def completions(rows: list[dict]) -> list[str]:
    return [r[col][-1]["content"] for r in rows for col in ("chosen", "rejected")]


def share(flags) -> float:
    flags = list(flags)
    return sum(map(bool, flags)) / len(flags)


def read_jsonl_with_pyarrow(path: Path) -> pa.Table:
    options = pajson.ParseOptions(explicit_schema=UPSTREAM_SCHEMA, unexpected_field_behavior="error")
    return pajson.read_json(path, parse_options=options).select(UPSTREAM_SCHEMA.names)


# ---------------------------------------------------------------- schema and API


def test_the_schema_is_the_builders_upstream_schema():
    assert generate_table(5).schema == UPSTREAM_SCHEMA


def test_batches_have_the_schema_and_the_requested_sizes():
    batches = list(generate_batches(25, seed=3, batch_size=10))
    assert [b.num_rows for b in batches] == [10, 10, 5]
    assert all(b.schema == UPSTREAM_SCHEMA for b in batches)
    assert pa.Table.from_batches(batches).equals(generate_table(25, seed=3))


def test_zero_pairs_and_bad_arguments(tmp_path):
    assert generate_table(0).num_rows == 0
    assert generate_table(0).schema == UPSTREAM_SCHEMA
    with pytest.raises(ValueError, match="n_pairs"):
        list(generate_batches(-1))
    with pytest.raises(ValueError, match="batch_size"):
        list(generate_batches(5, batch_size=0))
    empty = write_upstream(tmp_path / "empty.parquet", 0)
    assert pq.read_table(empty).num_rows == 0


# ------------------------------------------------------------------ determinism


def test_same_seed_same_table_other_seed_other_table():
    assert generate_table(200, seed=7).equals(generate_table(200, seed=7))
    assert not generate_table(200, seed=7).equals(generate_table(200, seed=8))


def test_prefix_property_whatever_the_total_or_batch_size():
    big = generate_table(130, seed=5)
    assert big.slice(0, 40).equals(generate_table(40, seed=5))
    assert pa.Table.from_batches(list(generate_batches(130, seed=5, batch_size=7))).equals(big)


def test_prefix_property_holds_for_reused_prompts(rows):
    # A reused prompt is rebuilt from the earlier pair's seed, not copied from memory.
    first_seen: dict[str, int] = {}
    reused_at = None
    for i, r in enumerate(rows):
        if r["prompt"] in first_seen:
            reused_at = i
            break
        first_seen[r["prompt"]] = i
    assert reused_at is not None
    small = generate_table(reused_at + 1, seed=0).to_pylist()
    assert small[-1] == rows[reused_at]


def test_jsonl_is_byte_identical_for_the_same_pairs_and_seed(tmp_path):
    a = write_upstream(tmp_path / "a.jsonl", 300, seed=11)
    b = write_upstream(tmp_path / "b.jsonl", 300, seed=11)
    assert a.read_bytes() == b.read_bytes()
    lines = a.read_text(encoding="utf-8").splitlines()
    assert len(lines) == 300
    assert all(list(json.loads(line)) == UPSTREAM_SCHEMA.names for line in lines)
    # ensure_ascii=False: non-ASCII text is written as UTF-8, not as \u escapes
    text = a.read_text(encoding="utf-8")
    assert "\\u" not in text
    assert not text.isascii()


def test_parquet_is_identical_for_the_same_pairs_and_seed(tmp_path):
    a = pq.read_table(write_upstream(tmp_path / "a.parquet", 300, seed=11))
    b = pq.read_table(write_upstream(tmp_path / "b.parquet", 300, seed=11))
    assert a.equals(b)
    assert a.schema.remove_metadata() == UPSTREAM_SCHEMA


# ------------------------------------------------------------------ file formats


def test_parquet_and_jsonl_hold_the_same_pairs(tmp_path):
    expected = generate_table(300, seed=4)
    parquet = pq.read_table(write_upstream(tmp_path / "up.parquet", 300, seed=4))
    jsonl = write_upstream(tmp_path / "up.jsonl", 300, seed=4)
    assert parquet.equals(expected)
    assert read_jsonl_with_pyarrow(jsonl).equals(expected)
    with jsonl.open(encoding="utf-8") as f:
        assert [json.loads(line) for line in f] == expected.to_pylist()


def test_parquet_row_groups_are_at_most_row_group_size_rows(tmp_path):
    path = write_upstream(tmp_path / "up.parquet", ROW_GROUP_SIZE + 50, seed=0)
    meta = pq.ParquetFile(path).metadata
    assert meta.num_rows == ROW_GROUP_SIZE + 50
    assert [meta.row_group(i).num_rows for i in range(meta.num_row_groups)] == [ROW_GROUP_SIZE, 50]
    assert meta.row_group(0).column(0).compression == "SNAPPY"  # pyarrow's default


def test_suffix_chooses_the_format_and_unknown_suffixes_are_refused(tmp_path):
    assert pq.read_table(write_upstream(tmp_path / "UP.PARQUET", 3)).num_rows == 3
    for name in ("up.csv", "up.json", "up"):
        target = tmp_path / name
        with pytest.raises(ValueError, match="use .parquet or .jsonl") as info:
            write_upstream(target, 3)
        assert str(target) in str(info.value)
        assert not target.exists()


def test_finished_file_has_ordinary_permissions(tmp_path):
    done = write_upstream(tmp_path / "done.parquet", 2)
    plain = tmp_path / "plain"
    plain.write_bytes(b"")
    assert done.stat().st_mode == plain.stat().st_mode
    assert sorted(p.name for p in tmp_path.iterdir()) == ["done.parquet", "plain"]


@pytest.mark.parametrize(
    ("args", "old_file"),
    [
        (["--pairs", "1000000", "--out", "up.parquet"], "up.parquet"),
        (["--upstream", "openbmb", "--rows", "1000000", "--out", "up.jsonl"], "up.jsonl"),
        (
            ["--upstream", "h4-binarized", "--pairs", "1000000", "--test-pairs", "5", "--out", "h4"],
            "h4/train_prefs.parquet",
        ),
    ],
)
def test_an_interrupted_command_leaves_no_file_and_keeps_the_old_one(tmp_path, args, old_file):
    (tmp_path / old_file).parent.mkdir(exist_ok=True)
    (tmp_path / old_file).write_bytes(b"old")
    command = [sys.executable, "-m", "tools.sample", *args]
    child = subprocess.Popen(
        command, cwd=tmp_path, env={**os.environ, "PYTHONPATH": str(PROJECT)}, stderr=subprocess.PIPE
    )
    try:
        deadline = time.monotonic() + 120
        while not any(tmp_path.rglob(".*.tmp")):  # the write is under way
            assert child.poll() is None, "the command ended before it could be interrupted"
            assert time.monotonic() < deadline, "the command wrote nothing in 2 minutes"
            time.sleep(0.02)
        child.send_signal(signal.SIGINT)  # Ctrl-C
        _, err = child.communicate(timeout=60)
    finally:
        child.kill()
    assert child.returncode != 0 and b"KeyboardInterrupt" in err
    assert files_of(tmp_path) == {old_file: b"old"}


# ---------------------------------------------------------------------- command


def test_command_writes_a_readable_file(tmp_path, capsys):
    out = tmp_path / "sub" / "up.parquet"
    assert main(["--pairs", "50", "--seed", "2", "--out", str(out)]) == 0
    printed = capsys.readouterr().out.strip().splitlines()
    assert len(printed) == 1
    assert str(out) in printed[0] and "50" in printed[0] and f"{out.stat().st_size:,}" in printed[0]
    assert pq.read_table(out).equals(generate_table(50, seed=2))

    out_jsonl = tmp_path / "up.jsonl"
    assert main(["--pairs", "20", "--out", str(out_jsonl)]) == 0
    assert read_jsonl_with_pyarrow(out_jsonl).equals(generate_table(20))


def test_command_rejects_an_unknown_suffix(tmp_path, capsys):
    with pytest.raises(SystemExit) as info:
        main(["--pairs", "5", "--out", str(tmp_path / "up.csv")])
    assert info.value.code == 2
    assert "up.csv" in capsys.readouterr().err
    assert not (tmp_path / "up.csv").exists()


@pytest.mark.parametrize("out", SAMPLE_COMMANDS)
def test_each_shipped_sample_is_what_its_command_makes(tmp_path, capsys, out):
    """publish/samples/ is generated, never edited: `python -m tools.sample ARGS --out OUT`."""
    shipped = PROJECT / out
    made = tmp_path / shipped.name
    assert main([*SAMPLE_COMMANDS[out].split(), "--out", str(made)]) == 0
    if shipped.is_dir():
        assert sorted(p.name for p in shipped.iterdir()) == sorted(p.name for p in made.iterdir())
        pairs = [(shipped / p.name, p) for p in made.iterdir()]
    else:
        pairs = [(shipped, made)]
    for shipped_file, made_file in pairs:
        assert pq.read_table(shipped_file).equals(pq.read_table(made_file)), shipped_file


def test_every_shipped_sample_has_its_command():
    shipped = {path.relative_to(PROJECT).as_posix() for path in (PROJECT / "publish" / "samples").iterdir()}
    assert shipped == set(SAMPLE_COMMANDS)


# ------------------------------------------------------------ traits at 2,000 pairs


def test_every_row_is_a_valid_preference_pair(rows):
    assert len(rows) == N
    for r in rows:
        chosen, rejected = r["chosen"], r["rejected"]
        assert chosen[0] == {"content": r["prompt"], "role": "user"}
        assert rejected[0] == {"content": r["prompt"], "role": "user"}
        for messages in (chosen, rejected):
            assert len(messages) in (2, 4)
            assert [m["role"] for m in messages] == ["user", "assistant"] * (len(messages) // 2)
            assert all(m["content"].strip() for m in messages)
        assert chosen[:-1] == rejected[:-1]
        assert r["prompt"].strip()
        assert r["source"] in SOURCES
        assert r["chosen-model"] in MODELS and r["rejected-model"] in MODELS


def test_some_pairs_are_multi_turn(rows):
    assert 0.015 <= share(len(r["chosen"]) == 4 for r in rows) <= 0.05


def test_text_has_lines_code_blocks_non_ascii_and_emoji(rows):
    texts = completions(rows)
    assert share("\n" in t for t in texts) > 0.5
    assert 0.15 <= share("```" in t for t in texts) <= 0.35
    assert any("```python\n" in t for t in texts)
    assert any("\n```" in t for t in texts)

    def row_text(r):
        return r["prompt"] + "".join(m["content"] for m in r["chosen"] + r["rejected"])

    all_text = [row_text(r) for r in rows]
    assert 0.08 <= share(not t.isascii() for t in all_text) <= 0.2
    joined = "".join(t for t in all_text if not t.isascii())
    assert any(c in joined for c in "éüñçà")  # accents
    assert any("\u4e00" <= c <= "\u9fff" for c in joined)  # CJK
    assert any("\u0400" <= c <= "\u04ff" for c in joined)  # Cyrillic
    emoji_rows = share(any(ord(c) >= 0x1F300 for c in t) for t in all_text)
    assert 0.005 <= emoji_rows <= 0.05


def test_a_few_completions_are_very_long(rows):
    long = [t for t in completions(rows) if len(t) > 8_000]
    assert 2 <= len(long) <= 0.01 * 2 * N


def test_lengths_follow_the_real_data(rows):
    prompts = [len(r["prompt"]) for r in rows]
    chosen = [len(r["chosen"][-1]["content"]) for r in rows]
    rejected = [len(r["rejected"][-1]["content"]) for r in rows]
    assert 300 <= statistics.median(prompts) <= 450
    assert 400 <= statistics.mean(prompts) <= 550
    assert 1_700 <= statistics.median(chosen) < 2_000
    assert 1_750 <= statistics.mean(chosen) <= 2_100
    assert 1_250 <= statistics.median(rejected) <= 1_600
    assert 1_350 <= statistics.mean(rejected) <= 1_700
    assert min(prompts) > 0 and min(chosen) > 0 and min(rejected) > 0


def test_ratings_are_quarter_points_ordered_with_some_ties_and_nulls(rows):
    chosen = [r["chosen-rating"] for r in rows]
    rejected = [r["rejected-rating"] for r in rows]
    quarter_points = {q / 4 for q in range(4, 21)}
    assert {x for x in chosen + rejected if x is not None} <= quarter_points
    both = [(c, j) for c, j in zip(chosen, rejected, strict=True) if c is not None and j is not None]
    assert all(c >= j for c, j in both)
    assert 0.005 <= share(c == j for c, j in both) <= 0.04
    assert 0.003 <= share(c is None or j is None for c, j in zip(chosen, rejected, strict=True)) <= 0.025
    assert None in chosen and None in rejected


def test_some_prompts_are_reused_with_different_completions(rows):
    first: dict[str, dict] = {}
    reused = 0
    for r in rows:
        earlier = first.get(r["prompt"])
        if earlier is None:
            first[r["prompt"]] = r
            continue
        reused += 1
        assert r["source"] == earlier["source"]
        assert r["chosen"][-1] != earlier["chosen"][-1]
    assert 0.03 <= reused / len(rows) <= 0.07


def test_sources_and_models_are_realistic(rows):
    assert {r["source"] for r in rows} == set(SOURCES)
    assert {r["chosen-model"] for r in rows} | {r["rejected-model"] for r in rows} == set(MODELS)
    assert share(r["chosen-model"] != r["rejected-model"] for r in rows) >= 0.95


def test_arrow_size_extrapolates_to_the_real_upstream(table):
    extrapolated = table.nbytes / table.num_rows * UPSTREAM_PAIRS
    assert 0.9 * UPSTREAM_ARROW_BYTES <= extrapolated <= 1.1 * UPSTREAM_ARROW_BYTES
