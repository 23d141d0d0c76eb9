"""The conversion of pairs: a pair in, two examples out, or one reason it is refused."""

from __future__ import annotations

import hashlib
import math

import pyarrow as pa
import pyarrow.compute as pc
import pytest

import ultrafeedback_kto as kto
from tests.reference import Refused, pair_to_examples, prompt_id, render_prompt
from tools.sample import generate_table
from ultrafeedback_kto import FEATURES, UPSTREAM_SCHEMA, UltraFeedbackKTOConfig, convert_pairs

OFF_SCALE = kto.Reason("rating outside the upstream's scale (1 to 5)")


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


def convert(pair: dict, **options) -> list[dict]:
    """The examples the builder makes of one pair (conversational shape), or `Refused`."""
    converted = convert_pairs(
        pa.Table.from_pylist([pair], schema=UPSTREAM_SCHEMA), UltraFeedbackKTOConfig(**options).resolved()
    )
    if converted.left_out:
        raise Refused(converted.left_out[0][1])
    return in_upstream_order(converted.examples)


def in_upstream_order(examples: pa.Table) -> list[dict]:
    """Examples pair by pair, chosen then rejected, with only the config's columns."""
    order = pc.sort_indices(examples, [("_row", "ascending"), ("_rank", "ascending")])
    return examples.take(order).select(FEATURES["conversational"].arrow_schema.names).to_pylist()


def standard(examples: list[dict]) -> list[dict]:
    table = pa.Table.from_pylist(examples, schema=FEATURES["conversational"].arrow_schema)
    return kto.standard_from_conversational(table).to_pylist()


def test_two_turn_pair_gives_chosen_true_then_rejected_false():
    chosen, rejected = standard(convert(make_pair()))
    assert (chosen["prompt"], chosen["completion"], chosen["label"]) == ("Name a prime.", "7", True)
    assert (rejected["prompt"], rejected["completion"], rejected["label"]) == ("Name a prime.", "8", False)
    assert (chosen["model"], chosen["average_rating"]) == ("gpt-4", 5.0)
    assert (rejected["model"], rejected["average_rating"]) == ("pythia-12b", 2.0)
    assert chosen["source"] == rejected["source"] == "evol_instruct"
    assert chosen["prompt_id"] == rejected["prompt_id"] == hashlib.sha256(b"Name a prime.").hexdigest()


def test_prompt_id_is_sha256_hex_of_the_prompt_text():
    assert prompt_id("héllo 👋") == hashlib.sha256("héllo 👋".encode()).hexdigest()
    (example, _) = convert(make_pair(prompt="héllo 👋"))
    assert example["prompt_id"] == prompt_id("héllo 👋")


def test_conversational_format_keeps_messages():
    chosen, rejected = convert(make_pair())
    assert chosen["prompt"] == [user("Name a prime.")]
    assert chosen["completion"] == [assistant("7")]
    assert rejected["completion"] == [assistant("8")]


def test_examples_have_exactly_the_declared_columns():
    examples = convert(make_pair())
    for format, rows in (("conversational", examples), ("standard", standard(examples))):
        for example in rows:
            assert list(example) == list(FEATURES[format])
            FEATURES[format].encode_example(example)  # raises on a type mismatch


def test_multi_turn_pair_keeps_every_turn_before_the_last():
    earlier = (assistant("2 is prime."), user("Another one?"))
    examples = convert(make_pair(earlier=earlier))
    assert examples[0]["prompt"] == [user("Name a prime."), *earlier]
    text = standard(examples)[0]
    assert text["prompt"] == "user: Name a prime.\n\nassistant: 2 is prime.\n\nuser: Another one?"
    assert text["prompt"] == render_prompt([user("Name a prime."), *earlier])
    assert text["prompt_id"] == prompt_id(text["prompt"]) and text["completion"] == "7"


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        (lambda p: p.update(prompt=""), kto.EMPTY_PROMPT),
        (lambda p: p.update(prompt="   \n\u3000"), kto.EMPTY_PROMPT),
        (lambda p: p.update(prompt=None), kto.EMPTY_PROMPT),
        (lambda p: p.update(chosen=None), kto.EMPTY_COMPLETION),
        (lambda p: p.update(rejected=[]), kto.EMPTY_COMPLETION),
        (lambda p: p["chosen"][-1].update(content=""), kto.EMPTY_COMPLETION),
        (lambda p: p["rejected"][-1].update(content=None), kto.EMPTY_COMPLETION),
        (lambda p: p["chosen"].append(user("more?")), kto.NO_FINAL_ASSISTANT),
        (lambda p: p["rejected"][0].update(content="Name a square."), kto.TURNS_DIFFER),
        (lambda p: p["rejected"].insert(0, user("Hi")), kto.TURNS_DIFFER),
        (lambda p: p.update(prompt="Name a square."), kto.PROMPT_MISMATCH),
        (lambda p: p["chosen"][0].update(role="system") or p["rejected"][0].update(role="system"), kto.PROMPT_MISMATCH),
        (lambda p: p.update(chosen=[assistant("7")], rejected=[assistant("8")]), kto.PROMPT_MISMATCH),
        (lambda p: p["rejected"][-1].update(content="7"), kto.SAME_COMPLETION),
        (lambda p: p.update({"chosen-rating": 3.0, "rejected-rating": 3.5}), kto.REJECTED_ABOVE_CHOSEN),
        (lambda p: p.update({"rejected-rating": 5.5}), OFF_SCALE),
        (lambda p: p.update({"chosen-rating": 0.0, "rejected-rating": None}), OFF_SCALE),
        (lambda p: p["chosen"].__setitem__(0, None), kto.MALFORMED_MESSAGE),
        (lambda p: p["rejected"][0].update(role=None), kto.MALFORMED_MESSAGE),
        (lambda p: p["chosen"][0].update(content=None) or p["rejected"][0].update(content=None), kto.MALFORMED_MESSAGE),
    ],
)
def test_bad_pairs_are_refused_with_their_reason(change, reason):
    pair = make_pair()
    change(pair)
    with pytest.raises(Refused) as refused:
        convert(pair)
    assert refused.value.reason == reason


def test_ties_and_missing_ratings_are_kept_by_default():
    tie = convert(make_pair(chosen_rating=3.0, rejected_rating=3.0))
    assert [e["label"] for e in tie] == [True, False]
    missing = convert(make_pair(chosen_rating=None, rejected_rating=math.nan))
    assert [e["average_rating"] for e in missing] == [None, None]


def test_absolute_rule_labels_each_completion_by_its_own_rating():
    both_good = convert(
        make_pair(chosen_rating=5.0, rejected_rating=4.5), label_rule="absolute", desirable_threshold=4.5
    )
    assert [e["label"] for e in both_good] == [True, True]
    both_bad = convert(make_pair(chosen_rating=3.0, rejected_rating=1.0), label_rule="absolute")
    assert [e["label"] for e in both_bad] == [False, False]
    with pytest.raises(Refused) as dropped:
        convert(make_pair(chosen_rating=None), label_rule="absolute")
    assert dropped.value.reason == kto.MISSING_RATING and dropped.value.reason.kind == "option"


def test_min_rating_margin_drops_close_pairs():
    assert convert(make_pair(chosen_rating=5.0, rejected_rating=4.0), min_rating_margin=1.0)
    with pytest.raises(Refused) as dropped:
        convert(make_pair(chosen_rating=5.0, rejected_rating=4.25), min_rating_margin=1.0)
    assert dropped.value.reason == kto.SMALL_MARGIN
    with pytest.raises(Refused):
        convert(make_pair(rejected_rating=None), min_rating_margin=0.5)


def test_split_is_a_stable_function_of_the_prompt():
    prompts = [f"prompt {i}" for i in range(4_000)]
    test_5 = {p for p in prompts if kto.split_of(p, 0.05) == "test"}
    test_20 = {p for p in prompts if kto.split_of(p, 0.20) == "test"}
    assert 0.03 < len(test_5) / len(prompts) < 0.07
    assert 0.17 < len(test_20) / len(prompts) < 0.23
    assert test_5 < test_20  # a larger test_size only adds prompts to test
    assert all(kto.split_of(p, 0) == "train" for p in prompts)


def test_a_prompt_is_empty_exactly_when_python_strips_it_to_nothing():
    # Every character up to U+3000, the last one Python counts as whitespace, alone and next to text.
    texts = [chr(code) for code in range(0x3001) if not 0xD800 <= code <= 0xDFFF]
    texts += [f" {text}\t" for text in texts]
    pairs = [make_pair(prompt=text) for text in texts]
    converted = convert_pairs(pa.Table.from_pylist(pairs, schema=UPSTREAM_SCHEMA), UltraFeedbackKTOConfig().resolved())
    empty = {row for row, reason in converted.left_out if reason == kto.EMPTY_PROMPT}
    assert empty == {row for row, text in enumerate(texts) if not text.strip()}
    assert len(empty) == 2 * sum(1 for code in range(0x3001) if chr(code).isspace())


def broken_rows() -> list[dict]:
    """3,000 generated pairs with one of every kind of problem among them."""
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
    rows[20]["rejected"][-1]["content"] = rows[20]["chosen"][-1]["content"]
    rows[21]["chosen"] = rows[21]["chosen"][:1] + [assistant("a"), user("b")] + rows[21]["chosen"][1:]
    rows[22]["chosen"][0]["content"] = None
    rows[23]["chosen-rating"] = 99.0  # off the upstream's scale, 1 to 5
    rows[24]["rejected-rating"] = 0.0
    return rows


def reference(rows: list[dict], config: UltraFeedbackKTOConfig) -> tuple[list[dict], list[tuple[int, kto.Reason]]]:
    examples, left_out = [], []
    for row, pair in enumerate(rows):
        try:
            examples += pair_to_examples(pair, config)
        except Refused as refused:
            left_out.append((row, refused.reason))
    return examples, left_out


@pytest.mark.parametrize(
    ("label_rule", "min_rating_margin"), [("pairwise", None), ("absolute", None), ("pairwise", 0.5), ("absolute", 1.0)]
)
def test_conversion_equals_the_pair_by_pair_reference(label_rule, min_rating_margin):
    rows = broken_rows()
    config = UltraFeedbackKTOConfig(label_rule=label_rule, min_rating_margin=min_rating_margin).resolved()
    table = pa.Table.from_pylist(rows, schema=UPSTREAM_SCHEMA)
    for start, stop in ((0, 3_000), (1_000, 1_500)):  # whole, and a slice of a larger table
        expected_examples, expected_left_out = reference(rows[start:stop], config)
        converted = convert_pairs(table.slice(start, stop - start), config)
        assert in_upstream_order(converted.examples) == expected_examples
        assert converted.left_out == expected_left_out
    assert {reason for _, reason in reference(rows, config)[1]} >= {
        kto.EMPTY_PROMPT,
        kto.EMPTY_COMPLETION,
        kto.NO_FINAL_ASSISTANT,
        kto.TURNS_DIFFER,
        kto.PROMPT_MISMATCH,
        kto.REJECTED_ABOVE_CHOSEN,
        kto.MALFORMED_MESSAGE,
        kto.SAME_COMPLETION,
        kto.Reason("rating outside the upstream's scale (1 to 5)"),
    }
