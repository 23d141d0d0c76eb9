"""The two other upstreams: openbmb/UltraFeedback (every rated completion) and
HuggingFaceH4/ultrafeedback_binarized (pairs, with its own test split)."""

from __future__ import annotations

import collections

import datasets
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from publish.stats import order_problems
from tests.conftest import build, make_builder, stream
from tests.reference import prompt_id
from tools.sample_family import generate_h4_tables, generate_openbmb_table, write_h4, write_openbmb
from ultrafeedback_kto import UltraFeedbackKTOConfig, UpstreamError

S = datasets.Value("string")
#: The annotations struct as openbmb/UltraFeedback and the seed dataset declare it (shared/data/README.md).
SEED_ANNOTATIONS = {
    "helpfulness": {"Rating": S, "Rationale": S, "Rationale For Rating": S, "Type": [S]},
    "honesty": {"Rating": S, "Rationale": S},
    "instruction_following": {"Rating": S, "Rationale": S},
    "truthfulness": {"Rating": S, "Rationale": S, "Rationale For Rating": S, "Type": [S]},
}
ASPECTS = list(SEED_ANNOTATIONS)


@pytest.fixture(scope="module")
def openbmb(tmp_path_factory):
    return write_openbmb(tmp_path_factory.mktemp("openbmb") / "ultrafeedback.parquet", 1_500, seed=3)


def rated(rows, exclude=("truthful_qa",)):
    """Each completion worth an example, recomputed plainly: (row, completion, its mean rating)."""
    out = []
    for number, row in enumerate(rows):
        if row["source"] in exclude or not (row["instruction"] or "").strip():
            continue
        for completion in row["completions"] or []:
            if completion is None or not (completion["response"] or "").strip():
                continue
            numbers = [
                float(completion["annotations"][a]["Rating"])
                for a in ASPECTS
                if completion["annotations"][a]["Rating"].isdigit()
            ]
            if numbers:
                out.append((number, completion, sum(numbers) / len(numbers)))
    return out


def without_repeats(examples):
    """The first, in upstream order, of each (prompt, completion, label); none of a (prompt,
    completion) with both labels."""
    labels, first = collections.defaultdict(set), {}
    for example in examples:
        labels[example[:2]].add(example[2])
        first.setdefault(example[:3], example)
    return collections.Counter(example for key, example in first.items() if len(labels[key[:2]]) == 1)


def built_examples(dataset):
    return collections.Counter(
        zip(
            dataset["prompt"],
            dataset["completion"],
            dataset["label"],
            dataset["model"],
            dataset["average_rating"],
            strict=True,
        )
    )


def test_openbmb_gives_one_example_per_rated_completion_with_absolute_labels(tmp_path, openbmb):
    rows = generate_openbmb_table(1_500, seed=3).to_pylist()
    expected = without_repeats(
        [(rows[r]["instruction"], c["response"], mean >= 4.0, c["model"], mean) for r, c, mean in rated(rows)]
    )
    built = build(tmp_path, openbmb, upstream="openbmb")
    assert built_examples(built["train"]) + built_examples(built["test"]) == expected
    assert {row["source"] for split in built.values() for row in split.select_columns(["source"])} >= {"sharegpt"}
    assert "truthful_qa" not in set(built["train"]["source"]) | set(built["test"]["source"])


def test_openbmb_best_vs_rest_makes_each_prompts_best_desirable_and_leaves_ties_out(tmp_path):
    table = generate_openbmb_table(1_500, seed=3)
    rows = table.to_pylist()
    for row in rows[:40:4]:  # rated all alike: their completions tie
        for completion in row["completions"][1:]:
            completion["annotations"] = row["completions"][0]["annotations"]
    openbmb = tmp_path / "ties.parquet"
    pq.write_table(pa.Table.from_pylist(rows, schema=table.schema), openbmb)
    by_row = collections.defaultdict(list)
    for r, completion, mean in rated(rows):
        by_row[r].append((completion, mean))
    expected, ties = [], 0
    for r, completions in by_row.items():
        best, worst = max(m for _, m in completions), min(m for _, m in completions)
        if best == worst:
            ties += 1
            continue
        expected += [(rows[r]["instruction"], c["response"], m == best, c["model"], m) for c, m in completions]
    builder = make_builder(tmp_path, openbmb, upstream="openbmb", label_rule="best-vs-rest")
    builder.download_and_prepare()
    built = builder.as_dataset()
    assert built_examples(built["train"]) + built_examples(built["test"]) == without_repeats(expected)
    counted = sum(
        report.left_out[reason]
        for report in builder.reports.values()
        for reason in report.left_out
        if reason.text.startswith("all completions tie")
    )
    assert ties > 0 and counted == ties


def test_openbmb_annotations_have_the_seed_datasets_exact_type_and_the_completions_values(tmp_path, openbmb):
    expected = datasets.Features({"annotations": SEED_ANNOTATIONS})["annotations"]
    for config in ("default", "conversational"):
        built = build(tmp_path / config, openbmb, config, upstream="openbmb", test_size=0)["train"]
        assert built.features["annotations"] == expected
        assert list(built.features)[-1] == "annotations"
    rows = generate_openbmb_table(1_500, seed=3).to_pylist()
    annotations = {(rows[r]["instruction"], c["response"]): c["annotations"] for r, c, _ in rated(rows)}
    for example in built.select(range(50)):
        prompt = example["prompt"][0]["content"]
        assert example["annotations"] == annotations[prompt, example["completion"][0]["content"]]


def test_openbmb_counts_what_it_leaves_out(tmp_path, openbmb):
    rows = generate_openbmb_table(1_500, seed=3).to_pylist()
    builder = make_builder(tmp_path, openbmb, upstream="openbmb")
    builder.download_and_prepare()
    left_out = collections.Counter()
    for report in builder.reports.values():
        left_out.update({reason.text: count for reason, count in report.left_out.items()})
    kept = [row for row in rows if row["source"] != "truthful_qa"]
    assert left_out["source in exclude_sources"] == sum(row["source"] == "truthful_qa" for row in rows) > 0
    assert left_out["no completions"] == sum(not row["completions"] for row in kept) > 0
    assert left_out["empty response"] == sum(not c["response"].strip() for row in kept for c in row["completions"]) > 0
    no_rating = sum(
        all(not c["annotations"][a]["Rating"].isdigit() for a in ASPECTS)
        for row in kept
        for c in row["completions"]
        if c["response"].strip()
    )
    assert left_out["no numeric rating"] == no_rating > 0
    assert sum(report.read for report in builder.reports.values()) == 1_500


def test_openbmb_keeps_truthful_qa_when_asked(tmp_path, openbmb):
    built = build(tmp_path, openbmb, upstream="openbmb", exclude_sources=())
    assert "truthful_qa" in set(built["train"]["source"]) | set(built["test"]["source"])


def test_openbmb_order_separates_the_four_completions_of_each_prompt(tmp_path, openbmb):
    built = build(tmp_path, openbmb, upstream="openbmb")
    for dataset in built.values():
        assert order_problems(dataset["prompt_id"], dataset["label"]) == []
        assert max(collections.Counter(dataset["prompt_id"]).values()) >= 3  # several rows per prompt
    assert not set(built["train"]["prompt_id"]) & set(built["test"]["prompt_id"])


def test_openbmb_streams_and_builds_in_parallel_to_the_same_rows(tmp_path, openbmb):
    one = build(tmp_path / "a", openbmb, "conversational", upstream="openbmb")
    two = build(tmp_path / "b", openbmb, "conversational", upstream="openbmb", num_proc=2)
    for split in one:
        assert two[split].to_list() == one[split].to_list()
        assert stream(tmp_path / "c", openbmb, split, "conversational", upstream="openbmb") == one[split].to_list()


def test_openbmb_json_lines_give_the_parquet_rows(tmp_path, openbmb):
    jsonl = write_openbmb(tmp_path / "ultrafeedback.jsonl", 1_500, seed=3)
    assert (
        build(tmp_path / "j", jsonl, upstream="openbmb")["train"].to_list()
        == build(tmp_path / "p", openbmb, upstream="openbmb")["train"].to_list()
    )


@pytest.mark.parametrize(
    ("options", "words"),
    [
        ({"label_rule": "pairwise"}, "label_rule='pairwise' has no meaning for upstream='openbmb'"),
        ({"min_rating_margin": 1.0}, "min_rating_margin does not apply to upstream='openbmb'"),
    ],
)
def test_openbmb_refuses_pair_options_in_one_line(options, words):
    with pytest.raises(ValueError, match=words):
        UltraFeedbackKTOConfig(upstream="openbmb", **options)


@pytest.fixture(scope="module")
def h4(tmp_path_factory):
    return {split: str(path) for split, path in write_h4(tmp_path_factory.mktemp("h4"), 600, 150, seed=2).items()}


def test_h4_splits_are_its_own_and_a_test_prompt_leaves_train(tmp_path, h4):
    tables = generate_h4_tables(600, 150, seed=2)
    builder = make_builder(tmp_path, h4, upstream="h4-binarized")
    builder.download_and_prepare()
    built = builder.as_dataset()
    test_prompts = set(tables["test_prefs"].column("prompt").to_pylist())
    shared = [p for p in tables["train_prefs"].column("prompt").to_pylist() if p in test_prompts]
    assert shared  # the sample's trait: some test prompts also occur in train
    assert built["test"].num_rows == 2 * 150
    assert built["train"].num_rows == 2 * (600 - len(shared))
    assert set(built["test"]["prompt"]) == test_prompts and not set(built["train"]["prompt"]) & test_prompts
    report = builder.reports["train"]
    assert {reason.text: count for reason, count in report.left_out.items()} == {
        "prompt in the upstream test split": 2 * len(shared)
    }


def test_h4_ratings_are_its_scores_and_thresholds_are_on_its_scale(tmp_path, h4):
    tables = generate_h4_tables(600, 150, seed=2)
    built = build(tmp_path / "a", h4, upstream="h4-binarized", label_rule="absolute")
    scores = {}
    for pair in tables["test_prefs"].to_pylist():
        scores[pair["chosen"][-1]["content"]] = pair["score_chosen"]
        scores[pair["rejected"][-1]["content"]] = pair["score_rejected"]
    for example in built["test"]:
        assert example["average_rating"] == scores[example["completion"]]
        assert example["label"] == (example["average_rating"] >= 8.0)  # the default threshold on a 1-10 scale
    assert built["test"]["prompt_id"] == [prompt_id(p) for p in built["test"]["prompt"]]


@pytest.mark.parametrize(
    ("options", "words"),
    [
        ({"test_size": 0.1}, "test_size does not apply to upstream='h4-binarized'"),
        ({"exclude_sources": ("flan",)}, "exclude_sources does not apply to upstream='h4-binarized'"),
        ({"label_rule": "best-vs-rest"}, "label_rule='best-vs-rest' has no meaning for upstream='h4-binarized'"),
    ],
)
def test_h4_refuses_options_it_has_no_use_for(options, words):
    with pytest.raises(ValueError, match=words):
        UltraFeedbackKTOConfig(upstream="h4-binarized", **options)


def test_h4_data_files_are_keyed_by_its_split_names(tmp_path, h4):
    with pytest.raises(Exception) as refused:
        build(tmp_path, {"train": h4["train_prefs"]}, upstream="h4-binarized")
    error = refused.value
    while not isinstance(error, UpstreamError) and error.__cause__ is not None:
        error = error.__cause__
    assert (
        str(error)
        == "data_files for upstream='h4-binarized' are keyed by its splits (train_prefs, test_prefs), not train"
    )


def test_h4_streams_to_the_same_rows(tmp_path, h4):
    built = build(tmp_path / "a", h4, upstream="h4-binarized")
    for split in built:
        assert stream(tmp_path / "b", h4, split, upstream="h4-binarized") == built[split].to_list()


def test_max_pairs_counts_rows_of_each_upstream_split(tmp_path, h4):
    built = build(tmp_path, h4, upstream="h4-binarized", max_pairs=50)
    assert built["test"].num_rows == 100 and built["train"].num_rows <= 100
