"""The card: metadata the Hub reads, and a body whose numbers come from the data."""

from __future__ import annotations

import collections
import dataclasses
import json
import re

import pyarrow.parquet as pq
import pytest
from huggingface_hub import DatasetCard

from publish.__main__ import main
from publish.card import CardInputs, read_record, render_card, rendered_files
from publish.stats import kto_weights, size_category
from tests.conftest import files_of
from tests.test_bad_input import bad_rows_file
from tests.test_build import SAMPLE

BAD_ROWS = {3, 7, 8, 11, 12, 15, 20, 30}  # the rows bad_rows_file breaks


@pytest.fixture(scope="module")
def absolute_folder(tmp_path_factory):
    """A build whose labels are unbalanced (absolute rule) and with bad pairs left out."""
    tmp = tmp_path_factory.mktemp("absolute")
    path, _ = bad_rows_file(tmp, pq.read_table(SAMPLE).slice(0, 300))
    out = tmp / "ufkto"
    options = ["--label-rule", "absolute", "--desirable-threshold", "4.5", "--configs", "default"]
    assert main(["build", "--source", str(path), "--out", str(out), *options]) == 0
    return out


def test_metadata_has_what_the_hub_shows(absolute_folder):
    data = DatasetCard.load(absolute_folder / "README.md").data.to_dict()
    rows = sum(pq.read_metadata(p).num_rows for p in (absolute_folder / "data").glob("*.parquet"))
    assert data["license"] == "mit"
    assert data["size_categories"] == [size_category(rows)] == ["n<1K"]
    assert set(data["tags"]) >= {"kto", "preference", "ultrafeedback", "trl", "arxiv:2402.01306"}
    assert data["source_datasets"] == ["argilla/ultrafeedback-binarized-preferences-cleaned"]
    shards = [{"split": "train", "path": "data/train-*"}, {"split": "test", "path": "data/test-*"}]
    assert data["configs"] == [{"config_name": "default", "default": True, "data_files": shards}]
    info = data["dataset_info"]
    train = pq.read_metadata(absolute_folder / "data" / "train-00000-of-00001.parquet")
    assert info["splits"][0]["num_examples"] == train.num_rows
    assert info["download_size"] == sum(p.stat().st_size for p in (absolute_folder / "data").glob("*.parquet"))


def test_statistics_are_those_of_the_rows(absolute_folder):
    body = (absolute_folder / "README.md").read_text()
    train = pq.read_table(absolute_folder / "data" / "train-00000-of-00001.parquet").to_pylist()
    desirable = sum(row["label"] for row in train)
    assert f"| train | {len(train):,} | {desirable:,} | {len(train) - desirable:,} |" in body
    by_source = collections.Counter((row["source"], row["label"]) for row in train)
    for source in {row["source"] for row in train}:
        yes, no = by_source[source, True], by_source[source, False]
        assert f"| {source} | {yes + no:,} | {yes:,} | {no:,} |" in body
    # The absolute rule leaves out pairs with a missing rating: none remain, all are counted.
    assert "| missing | 0 | 0 | 0 |" in body
    upstream = pq.read_table(SAMPLE).slice(0, 300).to_pylist()
    kept = [pair for i, pair in enumerate(upstream) if i not in BAD_ROWS]
    unrated = sum(1 for pair in kept if None in (pair["chosen-rating"], pair["rejected-rating"]))
    assert unrated > 0
    assert sum(int(n) for n in re.findall(r"\| missing rating \| (\d+) \| pairs \| by option \|", body)) == unrated


def test_left_out_pairs_are_listed_with_their_reasons(absolute_folder):
    body = (absolute_folder / "README.md").read_text()

    def total(reason: str) -> int:  # over the per-split tables
        return sum(int(n) for n in re.findall(rf"\| {re.escape(reason)} \| (\d+) \| pairs \| malformed \|", body))

    assert total("empty or missing completion") == 2
    assert total("not a JSON object") == 1
    assert total("rejected rated above chosen") == 1


def test_the_build_record_renders_the_card_byte_for_byte(absolute_folder):
    inputs = read_record(absolute_folder)
    names = ("README.md", "dataset_info.json")
    written = {name: (absolute_folder / name).read_text(encoding="utf-8") for name in names}
    assert rendered_files(inputs) == written
    # The record is data: every option as applied, what each split left out, its label counts.
    assert (inputs.config.label_rule, inputs.config.desirable_threshold) == ("absolute", 4.5)
    left_out = collections.Counter()
    for split in inputs.stats:
        left_out.update({item.reason: item.count for item in split.left_out})
    assert (left_out["empty or missing completion"], left_out["not a JSON object"]) == (2, 1)
    [train] = [split for split in inputs.stats if split.name == "train"]
    labels = pq.read_table(absolute_folder / "data" / "train-00000-of-00001.parquet").column("label").to_pylist()
    assert (train.desirable, train.undesirable) == (sum(labels), len(labels) - sum(labels))
    # Read back from its own JSON, the inputs render the same card again.
    again = CardInputs.from_record(json.loads(json.dumps(inputs.to_record())))
    assert render_card(again) == written["README.md"]


def test_the_card_for_another_repo_differs_only_where_it_names_the_repo(absolute_folder):
    inputs = read_record(absolute_folder)
    assert inputs.repo_id == "ufkto"
    lines = render_card(inputs).splitlines()
    moved = render_card(dataclasses.replace(inputs, repo_id="org/renamed")).splitlines()
    changed = [(line, other) for line, other in zip(lines, moved, strict=True) if line != other]
    assert changed and all("ufkto" in line and "org/renamed" in other for line, other in changed)
    assert all(other.replace("org/renamed", "ufkto") == line for line, other in changed)


def test_training_weights_follow_the_kto_rule_for_these_counts(absolute_folder):
    body = (absolute_folder / "README.md").read_text()
    train = pq.read_table(absolute_folder / "data" / "train-00000-of-00001.parquet", columns=["label"])
    desirable = sum(train.column("label").to_pylist())
    expected = kto_weights(desirable, train.num_rows - desirable)
    assert expected != (1.0, 1.0)  # absolute labels at 4.5 are unbalanced
    assert f"desirable_weight={expected[0]}, undesirable_weight={expected[1]})" in body  # TRL
    assert f"kto_chosen_weight: {expected[0]}\nkto_rejected_weight: {expected[1]}" in body  # LLaMA-Factory
    assert f"--desirable_weight {expected[0]} --undesirable_weight {expected[1]}" in body  # ms-swift
    assert "Keep the row order" in body


@pytest.mark.parametrize("desirable", [1, 50, 99, 100, 101, 133, 134, 150, 400, 10_000])
def test_kto_weights_keep_the_papers_ratio(desirable):
    undesirable = 100
    desirable_weight, undesirable_weight = kto_weights(desirable, undesirable)
    ratio = desirable_weight * desirable / (undesirable_weight * undesirable)
    assert 1 <= ratio <= 4 / 3
    assert min(desirable_weight, undesirable_weight) == 1.0


def test_size_categories_boundaries():
    categories = ["n<1K", "n<1K", "1K<n<10K", "100K<n<1M", "1M<n<10M"]
    assert [size_category(n) for n in (0, 999, 1_000, 121_834, 1_218_340)] == categories


def test_same_input_and_options_give_the_same_folder(tmp_path):
    for place in ("a", "b"):
        assert main(["build", "--sample", "--out", str(tmp_path / place / "ufkto")]) == 0
    assert files_of(tmp_path / "a" / "ufkto") == files_of(tmp_path / "b" / "ufkto")


def test_reproduce_section_names_source_options_and_command(tmp_path):
    out = tmp_path / "ufkto"
    assert main(["build", "--sample", "--out", str(out), "--seed", "9", "--configs", "default"]) == 0
    body = (out / "README.md").read_text()
    assert "generated sample of `argilla/ultrafeedback-binarized-preferences-cleaned`" in body
    assert "not real data" in body
    assert '"seed": 9' in body and '"test_size": 0.05' in body
    assert "`python -m publish build --sample --seed 9 --configs default`" in body


def test_statistics_of_a_split_in_pieces_equal_those_of_the_whole(tmp_path):
    from publish.stats import split_stats
    from tests.conftest import build

    built = build(tmp_path, SAMPLE)["train"].data.table
    whole = split_stats("train", built)
    pieces = split_stats("train", [built.slice(0, 100), built.slice(100, 300), built.slice(400)])
    assert whole == pieces and whole.rows == built.num_rows
