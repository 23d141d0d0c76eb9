"""The generators of openbmb/UltraFeedback and HuggingFaceH4/ultrafeedback_binarized data
(tools/sample_family.py): schemas that hold the builder's, every trait in a sample of the
shipped size, determinism, file formats, the shipped samples and the command."""

from __future__ import annotations

import hashlib
import json
import os
import statistics
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pyarrow as pa
import pyarrow.json as pajson
import pyarrow.parquet as pq
import pytest

from tests.conftest import PROJECT
from tools.sample import main
from tools.sample_family import (
    ANNOTATIONS_TYPE,
    H4_SCHEMA,
    H4_SPLITS,
    OPENBMB_MODELS,
    OPENBMB_SCHEMA,
    OPENBMB_SOURCE_COUNTS,
    PRINCIPLES,
    generate_h4_tables,
    generate_openbmb_batches,
    generate_openbmb_table,
    write_h4,
    write_openbmb,
)
from ultrafeedback_kto import ANNOTATIONS, UPSTREAMS

OPENBMB_ROWS, OPENBMB_SEED = 300, 1  # publish/samples/openbmb-sample.parquet
H4_TRAIN, H4_TEST, H4_SEED = 400, 100, 1  # publish/samples/h4-binarized/
OPENBMB_SAMPLE = PROJECT / "publish" / "samples" / "openbmb-sample.parquet"
H4_SAMPLE = PROJECT / "publish" / "samples" / "h4-binarized"

ASPECTS = tuple(ANNOTATIONS)
LOWEST, HIGHEST = (int(rating) for rating in UPSTREAMS["openbmb"].ratings)
RATINGS = {str(rating) for rating in range(LOWEST, HIGHEST + 1)}
SOURCES = set(OPENBMB_SOURCE_COUNTS)
MODELS = set(OPENBMB_MODELS)


def share(flags) -> float:
    flags = list(flags)
    return sum(map(bool, flags)) / len(flags)


def completions(rows: list[dict]) -> list[dict]:
    return [c for r in rows for c in r["completions"]]


def rationales(rows: list[dict]) -> list[str]:
    texts = []
    for c in completions(rows):
        for aspect, fields in c["annotations"].items():
            texts.append(fields["Rationale"])
            if aspect in ("helpfulness", "truthfulness"):
                texts.append(fields["Rationale For Rating"])
    return texts


def numeric_ratings(completion: dict) -> list[int]:
    return [int(a["Rating"]) for a in completion["annotations"].values() if a["Rating"] != "N/A"]


def reused_instructions(rows: list[dict]) -> list[tuple[dict, dict]]:
    """(first row, later row) for every row whose instruction an earlier row had."""
    first: dict[str, dict] = {}
    pairs = []
    for r in rows:
        if r["instruction"] in first:
            pairs.append((first[r["instruction"]], r))
        else:
            first[r["instruction"]] = r
    return pairs


def shares_a_response(row: dict) -> bool:
    responses = [c["response"] for c in row["completions"] if c["response"]]
    return len(set(responses)) < len(responses)


# Every trait a sample must hold (the shipped samples hold all).
OPENBMB_TRAITS = {
    "most rows have 4 completions": lambda rows: share(len(r["completions"]) == 4 for r in rows) >= 0.9,
    "some rows have 3 completions": lambda rows: any(len(r["completions"]) == 3 for r in rows),
    "a few rows have no completions": lambda rows: any(r["completions"] == [] for r in rows),
    "every source occurs": lambda rows: {r["source"] for r in rows} == SOURCES,
    "honesty is sometimes N/A": lambda rows: any(
        c["annotations"]["honesty"]["Rating"] == "N/A" for c in completions(rows)
    ),
    "instruction_following is sometimes N/A": lambda rows: any(
        c["annotations"]["instruction_following"]["Rating"] == "N/A" for c in completions(rows)
    ),
    "a few completions have no numeric rating": lambda rows: any(not numeric_ratings(c) for c in completions(rows)),
    "some responses are empty": lambda rows: any(c["response"] == "" for c in completions(rows)),
    "two completions of a row share a response": lambda rows: any(map(shares_a_response, rows)),
    "a later row reuses an instruction": lambda rows: bool(reused_instructions(rows)),
    "some rationales are over 1,000 characters": lambda rows: any(len(t) > 1_000 for t in rationales(rows)),
    "Type lists hold several numbers, None or 0": lambda rows: (
        {("1", "2"), ("None",), ("0",)}
        <= {tuple(c["annotations"][a]["Type"]) for c in completions(rows) for a in ("helpfulness", "truthfulness")}
    ),
    "responses have code blocks and non-ASCII text": lambda rows: (
        any("```" in c["response"] for c in completions(rows))
        and any(not c["response"].isascii() for c in completions(rows))
    ),
}


def h4_ties(tables) -> bool:
    return any(r["score_chosen"] == r["score_rejected"] for r in tables["train_prefs"])


def h4_test_in_train(tables) -> bool:
    train = {r["prompt"] for r in tables["train_prefs"]}
    return any(r["prompt"] in train for r in tables["test_prefs"])


H4_TRAITS = {
    "some scores tie": h4_ties,
    "some test prompts occur in train": h4_test_in_train,
    "a later train row reuses a prompt": lambda t: len({r["prompt"] for r in t["train_prefs"]}) < len(t["train_prefs"]),
    "completions have code blocks and non-ASCII text": lambda t: (
        any("```" in r["chosen"][1]["content"] for r in t["train_prefs"])
        and any(not r["rejected"][1]["content"].isascii() for r in t["train_prefs"])
    ),
}


def missing_openbmb_traits(rows: list[dict]) -> list[str]:
    return [name for name, holds in OPENBMB_TRAITS.items() if not holds(rows)]


def missing_h4_traits(tables: dict[str, list[dict]]) -> list[str]:
    return [name for name, holds in H4_TRAITS.items() if not holds(tables)]


def h4_rows(n_train: int, n_test: int, seed: int) -> dict[str, list[dict]]:
    return {split: t.to_pylist() for split, t in generate_h4_tables(n_train, n_test, seed).items()}


@pytest.fixture(scope="module")
def openbmb_table() -> pa.Table:
    return generate_openbmb_table(OPENBMB_ROWS, seed=OPENBMB_SEED)


@pytest.fixture(scope="module")
def openbmb(openbmb_table) -> list[dict]:
    return openbmb_table.to_pylist()


@pytest.fixture(scope="module")
def h4() -> dict[str, list[dict]]:
    return h4_rows(H4_TRAIN, H4_TEST, H4_SEED)


def read_jsonl_with_pyarrow(path: Path, schema: pa.Schema) -> pa.Table:
    options = pajson.ParseOptions(explicit_schema=schema, unexpected_field_behavior="error")
    return pajson.read_json(path, parse_options=options).select(schema.names)


# ---------------------------------------------------------------------- schemas


def holds(full: pa.DataType, read: pa.DataType) -> bool:
    """Whether a column of type ``full`` holds one of type ``read``: the same type, or
    structs (and lists of them) whose fields include ``read``'s, each holding its own."""
    if pa.types.is_list(read):
        return pa.types.is_list(full) and holds(full.value_type, read.value_type)
    if pa.types.is_struct(read):
        names = [field.name for field in full] if pa.types.is_struct(full) else []
        return all(f.name in names and holds(full.field(f.name).type, f.type) for f in read)
    return full == read


@pytest.mark.parametrize(("upstream", "schema"), [("openbmb", OPENBMB_SCHEMA), ("h4-binarized", H4_SCHEMA)])
def test_the_schema_holds_every_column_the_builder_reads(upstream, schema):
    read = UPSTREAMS[upstream].schema
    assert all(name in schema.names and holds(schema.field(name).type, read.field(name).type) for name in read.names)


def test_tables_have_the_schemas_and_the_splits_the_upstreams_name():
    assert generate_openbmb_table(3).schema == OPENBMB_SCHEMA
    assert generate_openbmb_table(0).schema == OPENBMB_SCHEMA
    tables = generate_h4_tables(3, 2)
    assert list(tables) == list(H4_SPLITS) == list(UPSTREAMS["h4-binarized"].splits)
    assert all(t.schema == H4_SCHEMA for t in tables.values())
    assert [t.num_rows for t in tables.values()] == [3, 2]


def test_annotations_type_is_the_builders_feature():
    import datasets

    builder_type = datasets.Features({"annotations": ANNOTATIONS}).arrow_schema.field("annotations").type
    assert ANNOTATIONS_TYPE == builder_type


def test_zero_rows_and_bad_arguments(tmp_path):
    assert generate_openbmb_table(0).num_rows == 0
    assert [t.num_rows for t in generate_h4_tables(0, 0).values()] == [0, 0]
    with pytest.raises(ValueError, match="n_rows"):
        generate_openbmb_batches(-1)
    with pytest.raises(ValueError, match="batch_size"):
        generate_openbmb_batches(5, batch_size=0)
    with pytest.raises(ValueError, match="n_test"):
        generate_h4_tables(5, -1)
    with pytest.raises(ValueError, match="n_train"):
        write_h4(tmp_path / "h4", -1, 5)
    assert not (tmp_path / "h4").exists()


# ------------------------------------------------------------------ determinism


def test_same_seed_same_rows_other_seed_other_rows():
    assert generate_openbmb_table(40, seed=7).equals(generate_openbmb_table(40, seed=7))
    assert not generate_openbmb_table(40, seed=7).equals(generate_openbmb_table(40, seed=8))
    a, b, c = generate_h4_tables(60, 20, seed=7), generate_h4_tables(60, 20, seed=7), generate_h4_tables(60, 20, 8)
    assert all(a[s].equals(b[s]) and not a[s].equals(c[s]) for s in H4_SPLITS)


def test_openbmb_prefix_property_whatever_the_total_or_batch_size():
    big = generate_openbmb_table(90, seed=5)
    assert big.slice(0, 30).equals(generate_openbmb_table(30, seed=5))
    assert pa.Table.from_batches(list(generate_openbmb_batches(90, seed=5, batch_size=7))).equals(big)


def test_a_reused_instruction_is_rebuilt_so_the_prefix_property_holds(openbmb):
    earlier, later = reused_instructions(openbmb)[0]
    at = openbmb.index(later)
    assert generate_openbmb_table(at + 1, seed=OPENBMB_SEED).to_pylist()[-1] == later


def test_h4_train_prefix_ignores_the_test_size_and_test_prefix_holds_for_a_train_size():
    big = generate_h4_tables(120, 40, seed=3)
    small = generate_h4_tables(50, 10, seed=3)
    assert big["train_prefs"].slice(0, 50).equals(small["train_prefs"])
    assert big["test_prefs"].slice(0, 10).equals(generate_h4_tables(120, 10, seed=3)["test_prefs"])


def test_jsonl_is_byte_identical_and_holds_the_parquet_rows(tmp_path, openbmb_table):
    # At the sample's size and seed, so empty completion lists and null scores are in it.
    a = write_openbmb(tmp_path / "a.jsonl", OPENBMB_ROWS, seed=OPENBMB_SEED)
    b = write_openbmb(tmp_path / "b.jsonl", OPENBMB_ROWS, seed=OPENBMB_SEED)
    assert a.read_bytes() == b.read_bytes()
    parquet = pq.read_table(write_openbmb(tmp_path / "a.parquet", OPENBMB_ROWS, seed=OPENBMB_SEED))
    assert parquet.equals(openbmb_table)
    assert read_jsonl_with_pyarrow(a, OPENBMB_SCHEMA).equals(openbmb_table)
    lines = a.read_text(encoding="utf-8").splitlines()
    assert [json.loads(line) for line in lines] == openbmb_table.to_pylist()
    assert all(list(json.loads(line)) == OPENBMB_SCHEMA.names for line in lines)
    assert "\\u" not in a.read_text(encoding="utf-8")  # UTF-8, not escapes

    paths = write_h4(tmp_path / "h4", 30, 10, seed=2, suffix=".jsonl")
    again = write_h4(tmp_path / "h4-again", 30, 10, seed=2, suffix=".jsonl")
    tables = generate_h4_tables(30, 10, seed=2)
    for split in H4_SPLITS:
        assert paths[split] == tmp_path / "h4" / f"{split}.jsonl"
        assert paths[split].read_bytes() == again[split].read_bytes()
        assert read_jsonl_with_pyarrow(paths[split], H4_SCHEMA).equals(tables[split])


def test_the_jsonl_of_a_completion_without_numeric_rating_has_a_null_score(tmp_path, openbmb):
    at = next(i for i, r in enumerate(openbmb) if any(not numeric_ratings(c) for c in r["completions"]))
    last = write_openbmb(tmp_path / "up.jsonl", at + 1, seed=OPENBMB_SEED).read_text(encoding="utf-8").splitlines()[-1]
    assert '"fine-grained_score": null' in last
    assert '"Rating": "N/A"' in last


# ------------------------------------------------------------------ file writing


def test_parquet_row_groups_and_compression(tmp_path):
    meta = pq.ParquetFile(write_openbmb(tmp_path / "up.parquet", 5)).metadata
    assert meta.row_group(0).column(0).compression == "SNAPPY"
    small = write_openbmb(tmp_path / "small.parquet", 5, compression="zstd", compression_level=19)
    assert pq.ParquetFile(small).metadata.row_group(0).column(0).compression == "ZSTD"
    assert pq.read_table(small).equals(generate_openbmb_table(5))
    with pytest.raises(ValueError, match="compression applies to .parquet only"):
        write_openbmb(tmp_path / "up.jsonl", 5, compression="zstd")


def test_unknown_suffixes_are_refused_before_anything_is_written(tmp_path):
    with pytest.raises(ValueError, match="use .parquet or .jsonl"):
        write_openbmb(tmp_path / "up.csv", 3)
    with pytest.raises(ValueError, match="use .parquet or .jsonl"):
        write_h4(tmp_path / "h4", 3, 3, suffix=".json")
    assert list(tmp_path.iterdir()) == []


# ------------------------------------------------- openbmb: traits of the 300-row sample


def test_openbmb_sample_holds_every_trait(openbmb):
    assert missing_openbmb_traits(openbmb) == []


def test_models_list_the_completions_distinct_models_in_order(openbmb):
    for r in openbmb:
        assert r["models"] == [c["model"] for c in r["completions"]]
        assert len(set(r["models"])) == len(r["models"])
        assert set(r["models"]) <= MODELS
    assert {m for r in openbmb for m in r["models"]} == MODELS


def test_ratings_are_digit_strings_or_na_and_only_honesty_and_instruction_following_are_na_alone(openbmb):
    for c in completions(openbmb):
        ratings = {aspect: c["annotations"][aspect]["Rating"] for aspect in ASPECTS}
        assert set(ratings.values()) <= RATINGS | {"N/A"}
        if "N/A" in (ratings["helpfulness"], ratings["truthfulness"]):
            assert set(ratings.values()) == {"N/A"}


def test_fine_grained_score_is_the_mean_of_the_numeric_ratings_or_null(openbmb):
    scores = set()
    for c in completions(openbmb):
        numbers = numeric_ratings(c)
        if numbers:
            assert c["fine-grained_score"] == sum(numbers) / len(numbers)
            scores.add(c["fine-grained_score"])
        else:
            assert c["fine-grained_score"] is None
    assert any(s != int(s) for s in scores)  # floats such as 3.75 or 4.333...


def test_overall_score_is_on_the_1_to_10_scale(openbmb):
    overall = [c["overall_score"] for c in completions(openbmb)]
    assert all(isinstance(x, float) and 1.0 <= x <= 10.0 for x in overall)
    assert min(overall) == 1.0 and max(overall) == 10.0
    assert len(set(overall)) >= 15


def test_empty_responses_are_rated_lowest(openbmb):
    empty = [c for c in completions(openbmb) if c["response"] == ""]
    assert empty
    assert all(c["overall_score"] == 1.0 for c in empty)
    assert all(set(numeric_ratings(c)) <= {1} for c in empty)


def test_type_lists_are_numbers_none_or_zero_and_none_when_na(openbmb):
    for c in completions(openbmb):
        for aspect in ("helpfulness", "truthfulness"):
            fields = c["annotations"][aspect]
            assert fields["Type"] and set(fields["Type"]) <= {"0", "1", "2", "3", "None"}
            assert fields["Type"] == sorted(fields["Type"])
            if fields["Rating"] == "N/A" or "None" in fields["Type"] or "0" in fields["Type"]:
                assert len(fields["Type"]) == 1
            if fields["Rating"] == "N/A":
                assert fields["Type"] == ["None"]


def test_a_reused_instruction_keeps_its_source_and_answers_and_gets_other_completions(openbmb):
    for earlier, later in reused_instructions(openbmb):
        assert later["source"] == earlier["source"]
        assert later["correct_answers"] == earlier["correct_answers"]
        assert later["incorrect_answers"] == earlier["incorrect_answers"]
        responses = {c["response"] for c in later["completions"] if c["response"]}
        assert responses.isdisjoint(c["response"] for c in earlier["completions"])


def test_reference_answers_only_for_truthful_qa_and_flan(openbmb):
    for r in openbmb:
        answers = r["correct_answers"], r["incorrect_answers"]
        if r["source"] == "truthful_qa" or r["source"].startswith("flan_v2_"):
            assert all(lst and "None" not in lst and all(len(a) > 3 for a in lst) for lst in answers)
        else:
            assert answers == (["None"], ["None"])
    assert any(len(r["correct_answers"]) > 1 for r in openbmb if r["source"] == "truthful_qa")


def test_principles_follow_the_source_and_system_prompts_and_critiques_are_text(openbmb):
    comps = completions(openbmb)
    assert {c["principle"] for c in comps} == set(PRINCIPLES)
    evol = [c for r in openbmb if r["source"] == "evol_instruct" for c in r["completions"]]
    assert {c["principle"] for c in evol} == {"helpfulness"}
    assert all(0 < len(c["custom_system_prompt"]) < 600 and c["critique"] for c in comps)
    calibration = [c["custom_system_prompt"] for c in comps if c["principle"] == "verbalized_calibration"]
    assert all("For instance, " in text for text in calibration)


def test_openbmb_lengths_follow_the_real_data(openbmb):
    comps = completions(openbmb)
    assert 300 <= statistics.median(len(r["instruction"]) for r in openbmb) <= 450
    assert 1_250 <= statistics.median(len(c["response"]) for c in comps) <= 1_750
    assert 120 <= statistics.median(map(len, rationales(openbmb))) <= 300
    assert 300 <= statistics.median(len(c["critique"]) for c in comps) <= 800
    assert statistics.median(len(r["instruction"]) for r in openbmb if r["source"] == "truthful_qa") < 150


def test_openbmb_rates_follow_the_real_data_at_2000_rows():
    rows = generate_openbmb_table(2_000, seed=0).to_pylist()
    comps = completions(rows)

    def family(source: str) -> str:  # the real counts of FLAN's four are an estimate: as one
        return "flan" if source.startswith("flan_v2_") else source

    counts = Counter(family(r["source"]) for r in rows)
    real_counts = Counter()
    for source, count in OPENBMB_SOURCE_COUNTS.items():
        real_counts[family(source)] += count
    total = real_counts.total()
    for source, real in real_counts.items():
        assert abs(counts[source] / len(rows) - real / total) <= 0.02 + 0.2 * real / total, source
    assert 3.9 <= len(comps) / len(rows) <= 4.0  # ~256k completions for 63,967 rows
    assert 0.01 <= share(len(r["completions"]) == 3 for r in rows) <= 0.035
    assert 0.001 <= share(not r["completions"] for r in rows) <= 0.012
    assert 0.01 <= len(reused_instructions(rows)) / len(rows) <= 0.035
    assert 0.02 <= share(c["annotations"]["honesty"]["Rating"] == "N/A" for c in comps) <= 0.07
    assert 0.005 <= share(c["annotations"]["instruction_following"]["Rating"] == "N/A" for c in comps) <= 0.03
    assert 0.001 <= share(not numeric_ratings(c) for c in comps) <= 0.008
    assert 0.001 <= share(c["response"] == "" for c in comps) <= 0.01
    assert 0.004 <= share(map(shares_a_response, rows)) <= 0.02
    assert 0.15 <= share("```" in c["response"] for c in comps) <= 0.3


# ------------------------------------------------- H4: traits of the 400 + 100 sample


def test_h4_sample_holds_every_trait(h4):
    assert missing_h4_traits(h4) == []


def test_h4_rows_are_prompt_then_answer_with_a_sha256_id_and_messages_copying_chosen(h4):
    for rows in h4.values():
        for r in rows:
            assert r["prompt"].strip()
            assert r["prompt_id"] == hashlib.sha256(r["prompt"].encode("utf-8")).hexdigest()
            for col in ("chosen", "rejected"):
                assert [m["role"] for m in r[col]] == ["user", "assistant"]
                assert r[col][0]["content"] == r["prompt"]
                assert r[col][1]["content"].strip()
            assert r["messages"] == r["chosen"]


def test_h4_scores_are_overall_scores_with_chosen_at_least_rejected_and_a_few_ties(h4):
    rows = h4["train_prefs"] + h4["test_prefs"]
    assert all(1.0 <= r["score_rejected"] <= r["score_chosen"] <= 10.0 for r in rows)
    assert all((2 * r["score_chosen"]).is_integer() and (2 * r["score_rejected"]).is_integer() for r in rows)
    assert 0.01 <= share(r["score_chosen"] == r["score_rejected"] for r in rows) <= 0.1
    assert statistics.mean(r["score_chosen"] for r in rows) > statistics.mean(r["score_rejected"] for r in rows) + 1


def test_h4_test_prompts_in_train_come_with_other_completions(h4):
    train = {}
    for r in h4["train_prefs"]:
        train.setdefault(r["prompt"], []).append(r)
    shared = [r for r in h4["test_prefs"] if r["prompt"] in train]
    assert 0 < len(shared) <= 0.1 * len(h4["test_prefs"])
    for r in shared:
        assert all(r["chosen"][1] != t["chosen"][1] for t in train[r["prompt"]])


def test_h4_lengths_follow_the_real_data(h4):
    rows = h4["train_prefs"]
    assert 300 <= statistics.median(len(r["prompt"]) for r in rows) <= 450
    assert 1_600 <= statistics.median(len(r["chosen"][1]["content"]) for r in rows) <= 2_200
    assert 1_150 <= statistics.median(len(r["rejected"][1]["content"]) for r in rows) <= 1_700


# ------------------------------------------------------------------ shipped samples
# That they are what their commands make: tests/test_sample.py.


def test_shipped_samples_hold_the_traits_checked_here(openbmb_table, h4):
    shipped_h4 = {split: pq.read_table(H4_SAMPLE / f"{split}.parquet").to_pylist() for split in H4_SPLITS}
    assert pq.read_table(OPENBMB_SAMPLE).equals(openbmb_table)
    assert shipped_h4 == h4


def test_shipped_samples_are_small():
    for path in (OPENBMB_SAMPLE, H4_SAMPLE / "train_prefs.parquet", H4_SAMPLE / "test_prefs.parquet"):
        assert path.stat().st_size < 1_000_000, path


# ---------------------------------------------------------------------- command


def test_command_writes_openbmb(tmp_path, capsys):
    out = tmp_path / "sub" / "openbmb.parquet"
    assert main(["--upstream", "openbmb", "--pairs", "12", "--seed", "2", "--out", str(out)]) == 0
    printed = capsys.readouterr().out.strip().splitlines()
    assert printed == [f"{out}  12 rows  {out.stat().st_size:,} bytes"]
    assert pq.read_table(out).equals(generate_openbmb_table(12, seed=2))
    out_jsonl = tmp_path / "openbmb.jsonl"
    assert main(["--upstream", "openbmb", "--rows", "5", "--out", str(out_jsonl)]) == 0
    assert read_jsonl_with_pyarrow(out_jsonl, OPENBMB_SCHEMA).equals(generate_openbmb_table(5))


def test_command_writes_h4_splits_into_a_folder(tmp_path, capsys):
    out = tmp_path / "h4"
    args = ["--upstream", "h4-binarized", "--pairs", "20", "--test-pairs", "6", "--seed", "4", "--out", str(out)]
    assert main([*args, "--compression", "zstd:3"]) == 0
    printed = capsys.readouterr().out.strip().splitlines()
    train, test = out / "train_prefs.parquet", out / "test_prefs.parquet"
    assert printed == [
        f"{train}  20 pairs  {train.stat().st_size:,} bytes",
        f"{test}  6 pairs  {test.stat().st_size:,} bytes",
    ]
    expected = generate_h4_tables(20, 6, seed=4)
    assert pq.read_table(train).equals(expected["train_prefs"])
    assert pq.read_table(test).equals(expected["test_prefs"])
    assert pq.ParquetFile(train).metadata.row_group(0).column(0).compression == "ZSTD"
    assert main([*args, "--format", "jsonl"]) == 0
    assert read_jsonl_with_pyarrow(out / "test_prefs.jsonl", H4_SCHEMA).equals(expected["test_prefs"])


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--upstream", "h4-binarized", "--pairs", "5"], "needs --test-pairs"),
        (["--upstream", "openbmb", "--pairs", "5", "--test-pairs", "2"], "apply only to --upstream h4-binarized"),
        (["--pairs", "5", "--format", "jsonl"], "apply only to --upstream h4-binarized"),
        (["--upstream", "h4-binarized", "--pairs", "5", "--test-pairs", "-1"], "--test-pairs must be >= 0"),
        (["--upstream", "openbmb", "--pairs", "5", "--compression", "zstd:high"], "LEVEL must be an integer"),
        (["--upstream", "openbmb", "--pairs", "5", "--compression", "zip"], "'zip'"),
        (["--upstream", "parquet", "--pairs", "5"], "invalid choice"),
    ],
)
def test_command_refuses_bad_combinations(tmp_path, capsys, args, message):
    with pytest.raises(SystemExit) as info:
        main([*args, "--out", str(tmp_path / "out.parquet")])
    assert info.value.code == 2
    assert message in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []


def test_command_help_runs_as_a_module_and_names_the_upstreams():
    env = {**os.environ, "PYTHONPATH": str(PROJECT)}
    command = [sys.executable, "-m", "tools.sample", "--help"]
    done = subprocess.run(command, cwd=PROJECT, env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    flags = ["--upstream", "--pairs", "--test-pairs", "--seed", "--rows", "--out", "--format", "--compression"]
    for word in [*flags, *UPSTREAMS]:
        assert word in done.stdout
