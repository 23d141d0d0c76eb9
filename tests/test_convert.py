"""The conversion of one pair, alone: a pair in, two examples out."""

from __future__ import annotations

import math

import pyarrow as pa
import pytest

from ultrafeedback_kto import (
    FEATURES,
    BadPair,
    DroppedPair,
    pair_to_examples,
    prompt_id,
    render_prompt,
    split_of,
)


def user(text):
    return {"content": text, "role": "user"}


def assistant(text):
    return {"content": text, "role": "assistant"}


def make_pair(prompt="Name a prime.", chosen="7", rejected="8", chosen_rating=5.0, rejected_rating=2.0, earlier=()):
    turns = [user(prompt), *earlier]
    return {
        "source": "evol_instruct",
        "prompt": prompt,
        "chosen": [dict(turn) for turn in turns] + [assistant(chosen)],
        "chosen-rating": chosen_rating,
        "chosen-model": "gpt-4",
        "rejected": [dict(turn) for turn in turns] + [assistant(rejected)],
        "rejected-rating": rejected_rating,
        "rejected-model": "pythia-12b",
    }


def test_two_turn_pair_gives_chosen_true_and_rejected_false():
    chosen, rejected = pair_to_examples(make_pair())
    assert (chosen["prompt"], chosen["completion"], chosen["label"]) == ("Name a prime.", "7", True)
    assert (rejected["prompt"], rejected["completion"], rejected["label"]) == ("Name a prime.", "8", False)
    assert (chosen["model"], chosen["average_rating"]) == ("gpt-4", 5.0)
    assert (rejected["model"], rejected["average_rating"]) == ("pythia-12b", 2.0)
    assert chosen["source"] == rejected["source"] == "evol_instruct"
    assert chosen["prompt_id"] == rejected["prompt_id"] == prompt_id("Name a prime.")


def test_prompt_id_is_sha256_hex_of_the_prompt_text():
    import hashlib

    assert prompt_id("héllo 👋") == hashlib.sha256("héllo 👋".encode()).hexdigest()


def test_conversational_format_keeps_messages():
    chosen, rejected = pair_to_examples(make_pair(), format="conversational")
    assert chosen["prompt"] == [user("Name a prime.")]
    assert chosen["completion"] == [assistant("7")]
    assert rejected["completion"] == [assistant("8")]
    assert chosen["prompt_id"] == pair_to_examples(make_pair())[0]["prompt_id"]


def test_examples_have_exactly_the_declared_columns():
    for format in ("standard", "conversational"):
        for example in pair_to_examples(make_pair(), format=format):
            assert list(example) == list(FEATURES[format])
            FEATURES[format].encode_example(example)  # raises on a type mismatch


def test_multi_turn_pair_keeps_every_turn_before_the_last():
    earlier = (assistant("2 is prime."), user("Another one?"))
    pair = make_pair(earlier=earlier)
    chosen, _ = pair_to_examples(pair, format="conversational")
    assert chosen["prompt"] == [user("Name a prime."), *earlier]
    standard, _ = pair_to_examples(pair)
    assert standard["prompt"] == "user: Name a prime.\n\nassistant: 2 is prime.\n\nuser: Another one?"
    assert standard["prompt"] == render_prompt([user("Name a prime."), *earlier])
    assert standard["completion"] == "7"


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        (lambda p: p.update(prompt=""), "empty or missing prompt"),
        (lambda p: p.update(prompt="   \n"), "empty or missing prompt"),
        (lambda p: p.pop("prompt"), "empty or missing prompt"),
        (lambda p: p.update(chosen=None), "empty or missing completion"),
        (lambda p: p.update(rejected=[]), "empty or missing completion"),
        (lambda p: p["chosen"][-1].update(content=""), "empty or missing completion"),
        (lambda p: p["rejected"][-1].update(content=None), "empty or missing completion"),
        (lambda p: p["chosen"].append(user("more?")), "conversation does not end with an assistant turn"),
        (
            lambda p: p["rejected"][0].update(content="Name a square."),
            "chosen and rejected differ before the last turn",
        ),
        (lambda p: p.update(prompt="Name a square."), "prompt differs from the first user turn"),
        (
            lambda p: p["chosen"][0].update(role="system") or p["rejected"][0].update(role="system"),
            "prompt differs from the first user turn",
        ),
        (lambda p: p.update({"rejected-rating": 5.5}), "rejected rated above chosen"),
        (lambda p: p["chosen"].__setitem__(0, "text"), "malformed message (not a {content, role} pair of strings)"),
    ],
)
def test_bad_pairs_are_refused_with_their_reason(change, reason):
    pair = make_pair()
    change(pair)
    with pytest.raises(BadPair) as refused:
        pair_to_examples(pair)
    assert refused.value.reason == reason


def test_ties_and_missing_ratings_are_kept_by_default():
    tie = pair_to_examples(make_pair(chosen_rating=3.0, rejected_rating=3.0))
    assert [e["label"] for e in tie] == [True, False]
    missing = pair_to_examples(make_pair(chosen_rating=None, rejected_rating=math.nan))
    assert [e["average_rating"] for e in missing] == [None, None]


def test_absolute_rule_labels_each_completion_by_its_own_rating():
    both_good = pair_to_examples(
        make_pair(chosen_rating=5.0, rejected_rating=4.5), label_rule="absolute", desirable_threshold=4.5
    )
    assert [e["label"] for e in both_good] == [True, True]
    both_bad = pair_to_examples(make_pair(chosen_rating=3.0, rejected_rating=1.0), label_rule="absolute")
    assert [e["label"] for e in both_bad] == [False, False]
    with pytest.raises(DroppedPair) as dropped:
        pair_to_examples(make_pair(chosen_rating=None), label_rule="absolute")
    assert dropped.value.reason == "missing rating"


def test_min_rating_margin_drops_close_pairs():
    assert pair_to_examples(make_pair(chosen_rating=5.0, rejected_rating=4.0), min_rating_margin=1.0)
    with pytest.raises(DroppedPair) as dropped:
        pair_to_examples(make_pair(chosen_rating=5.0, rejected_rating=4.25), min_rating_margin=1.0)
    assert dropped.value.reason == "rating margin below min_rating_margin"
    with pytest.raises(DroppedPair):
        pair_to_examples(make_pair(rejected_rating=None), min_rating_margin=0.5)


def test_split_is_a_stable_function_of_the_prompt():
    prompts = [f"prompt {i}" for i in range(4_000)]
    test_5 = {p for p in prompts if split_of(p, 0.05) == "test"}
    test_20 = {p for p in prompts if split_of(p, 0.20) == "test"}
    assert 0.03 < len(test_5) / len(prompts) < 0.07
    assert 0.17 < len(test_20) / len(prompts) < 0.23
    assert test_5 < test_20  # a larger test_size only adds prompts to test
    assert all(split_of(p, 0) == "train" for p in prompts)


def broken_batch() -> list[dict]:
    """3,000 generated pairs with one of every kind of problem among them."""
    from publish.sample import generate_table

    rows = generate_table(3_000, seed=3).to_pylist()
    rows[3]["prompt"] = ""
    rows[7]["chosen"][-1]["content"] = " \u3000 "  # blank to Python, with a non-ASCII space
    rows[8]["rejected"] = rows[8]["rejected"][:-1]
    rows[11]["rejected"][0]["content"] += "x"
    rows[12]["prompt"] += "?"
    rows[15]["chosen-rating"], rows[15]["rejected-rating"] = 2.0, 4.0
    rows[16]["chosen-rating"] = math.nan
    rows[17]["chosen"][0]["role"] = "system"
    rows[18]["chosen"] = None
    rows[19]["rejected"][1] = None
    return rows


def reference(rows, **options):
    """What pair_to_examples makes of each row: the examples (with their row) and the refusals."""
    examples, left_out = [], []
    for row, pair in enumerate(rows):
        try:
            examples += [{**example, "_row": row} for example in pair_to_examples(pair, **options)]
        except BadPair as problem:
            left_out.append((row, "bad", problem.reason))
        except DroppedPair as dropped:
            left_out.append((row, "dropped", dropped.reason))
    return examples, left_out


def without_nan(rows):
    return [{k: None if isinstance(v, float) and math.isnan(v) else v for k, v in row.items()} for row in rows]


@pytest.mark.parametrize("format", ["standard", "conversational"])
@pytest.mark.parametrize(("label_rule", "min_rating_margin"), [("pairwise", None), ("absolute", None),
                                                               ("pairwise", 0.5), ("absolute", 1.0)])  # fmt: skip
def test_batch_conversion_equals_the_pair_by_pair_reference(format, label_rule, min_rating_margin):
    from publish.sample import UPSTREAM_SCHEMA
    from ultrafeedback_kto import convert_batch

    rows = broken_batch()
    options = {"format": format, "label_rule": label_rule, "min_rating_margin": min_rating_margin}
    expected_examples, expected_left_out = reference(rows, **options)
    table = pa.Table.from_pylist(rows, schema=UPSTREAM_SCHEMA)
    for batch in (table, rows):  # Arrow (parquet) and dicts (JSON Lines)
        converted = convert_batch(batch, **options)
        assert without_nan(converted.in_pair_order().to_pylist()) == without_nan(expected_examples)
        assert converted.left_out == expected_left_out
    # A batch sliced out of a larger table (offsets that do not start at 0).
    sliced = convert_batch(table.slice(1_000, 500), **options)
    later, _ = reference(rows[1_000:1_500], **options)
    assert without_nan(sliced.in_pair_order().to_pylist()) == without_nan(later)
