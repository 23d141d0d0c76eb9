"""The builder on real rows from ../shared/data/real (skipped, with the reason, when absent)."""

from __future__ import annotations

import collections
import json

import datasets
import pyarrow as pa
import pyarrow.parquet as pq

from publish.stats import order_problems
from tests.conftest import build, real_file
from tests.trl_reference import trl_examples


def real_upstream(tmp_path):
    """The 300 real text-only rows, with the five metadata columns they lack.

    Their true values are unknown (see shared/data/README.md), so this test adds its own:
    a source cycling through three names, ratings 4.5 / 2.0 and two model names.
    """
    rows = [json.loads(line) for line in real_file("ultrafeedback-cleaned-rows0-299.text-only.jsonl").open()]
    for i, row in enumerate(rows):
        row.update(
            {
                "source": ["evol_instruct", "sharegpt", "ultrachat"][i % 3],
                "chosen-rating": 4.5,
                "chosen-model": "gpt-4",
                "rejected-rating": 2.0,
                "rejected-model": "alpaca-7b",
            }
        )
    path = tmp_path / "real.parquet"
    pq.write_table(pa.Table.from_pylist(rows), path)
    return rows, path


def test_300_real_rows_match_trl_unpairing(tmp_path):
    rows, path = real_upstream(tmp_path)
    built = build(tmp_path / "cache", path)
    ours = collections.Counter(
        (row["prompt"], row["completion"], row["label"]) for split in built.values() for row in split
    )
    assert ours == collections.Counter(trl_examples(datasets.Dataset.from_list(rows)))
    for split in built.values():
        assert order_problems(split["prompt_id"], split["label"]) == []


def test_full_schema_row_keeps_its_metadata(tmp_path):
    path = real_file("ultrafeedback-cleaned-row0.full-schema.jsonl")
    upstream = json.loads(path.read_text())
    built = build(tmp_path / "cache", path, test_size=0, order="upstream")["train"]
    chosen, rejected = built[0], built[1]
    assert (chosen["source"], chosen["model"], chosen["average_rating"], chosen["label"]) == (
        upstream["source"],
        upstream["chosen-model"],
        upstream["chosen-rating"],
        True,
    )
    assert (rejected["model"], rejected["average_rating"], rejected["label"]) == (
        upstream["rejected-model"],
        upstream["rejected-rating"],
        False,
    )
    assert chosen["completion"] == upstream["chosen"][-1]["content"]


def test_conversational_shape_is_trls_unpaired_preference_shape(tmp_path):
    _, path = real_upstream(tmp_path)
    ours = build(tmp_path / "cache", path, "conversational")["train"]
    fixture = datasets.Dataset.from_json(str(real_file("trl-zen-conversational-unpaired-preference.jsonl")))
    for column in ("prompt", "completion", "label"):
        assert _shape(ours.features[column]) == _shape(fixture.features[column])
    for row in ours.select(range(20)):
        assert [m["role"] for m in row["completion"]] == ["assistant"]
        assert row["prompt"][-1]["role"] == "user"


def test_standard_shape_is_trls_unpaired_preference_shape(tmp_path):
    _, path = real_upstream(tmp_path)
    ours = build(tmp_path / "cache", path)["train"]
    fixture = datasets.Dataset.from_json(str(real_file("trl-zen-standard-unpaired-preference.jsonl")))
    for column in ("prompt", "completion", "label"):
        assert ours.features[column] == fixture.features[column]


def _shape(feature):
    """A feature with message keys sorted: TRL's fixture orders them role, content."""
    if isinstance(feature, dict):
        return {key: _shape(feature[key]) for key in sorted(feature)}
    inner = getattr(feature, "feature", None)
    return ("list", _shape(inner)) if inner is not None else feature
