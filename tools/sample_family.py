"""Deterministic fake data for two more UltraFeedback upstreams, for offline tests and benchmarks.

``tools/sample.py`` writes the schema of ``argilla/ultrafeedback-binarized-preferences-cleaned``;
this module writes the two other upstreams of the UltraFeedback family, with their exact
Arrow schemas (same column and field order, same types; the columns the builder reads are
taken from its ``UPSTREAMS``) and the traits of their real rows (as far as their dataset
cards, the UltraFeedback repository and ``../shared/data/README.md`` describe them). No real
text is copied: every text comes from ``tools/sample_text.py`` (its sentence tables, prose,
code blocks and non-ASCII fragments).

``openbmb/UltraFeedback`` (``OPENBMB_SCHEMA``; one row per prompt)
    ``source``, ``instruction``, ``models`` (the completions' models, in order),
    ``completions`` (list of ``OPENBMB_COMPLETION_TYPE``, whose ``annotations`` field is
    ``ANNOTATIONS_TYPE``), ``correct_answers``, ``incorrect_answers``. Traits, all present
    in a 300-row sample (``tests/test_sample_family.py`` checks them):

    - 4 completions per row, from 4 distinct models of UltraFeedback's pool of 17;
      ``THREE_COMPLETIONS_RATE`` (2%) of rows have 3, ``NO_COMPLETIONS_RATE`` (0.5%) have
      none (``models`` and ``completions`` both empty).
    - ``source`` with the real mix (``OPENBMB_SOURCE_COUNTS``: 63,967 rows; truthful_qa
      1.3%; the split of FLAN's 20,939 between its four ``flan_v2_*`` values is an
      estimate: the upstream sampled 3,000 CoT prompts and 10 per task elsewhere).
    - ``REPEATED_INSTRUCTION_RATE`` (2%) of rows reuse the instruction (and source and
      reference answers) of an earlier row, with other completions.
    - Ratings are strings "1" to "5" (the builder's scale for openbmb). ``honesty`` is "N/A" for ``HONESTY_NA_RATE`` (4%),
      ``instruction_following`` for ``INSTRUCTION_FOLLOWING_NA_RATE`` (1.5%) of completions,
      and ``ALL_NA_RATE`` (0.3%) have all four ratings "N/A": no numeric rating at all.
      Ratings follow a per-completion quality drawn around the model's strength.
    - ``fine-grained_score`` is the mean of the numeric ratings, null when there is none
      (as the upstream's ``calculate_average_rating`` in ``fix_overall_score_issue.py``);
      ``overall_score`` is on the 1-10 scale in half points, near twice that mean.
    - ``EMPTY_RESPONSE_RATE`` (0.4%) of responses are "" (rated 1, overall 1.0).
    - ``IDENTICAL_RESPONSES_RATE`` (1%) of rows have two completions with the same
      response, each rated on its own (so the same or differently).
    - ``Type`` lists: helpfulness ``["1", "2", "3"]``, ``["1", "3"]``, ...; truthfulness
      ``["0"]`` or ``["None"]`` for rating 5, else ``["1"]``, ``["1", "2"]``, ...;
      ``["None"]`` when the rating is "N/A" (and now and then otherwise).
    - Rationales of 50-500 characters (median ~190), ``LONG_RATIONALE_RATE`` (0.3%) of
      them 1,000-1,800; critiques 150-1,100 (median ~480), plain paragraphs.
    - ``principle`` by source as in the UltraFeedback README (evol_instruct all
      helpfulness, FLAN 60/20/20 helpfulness/truthfulness/verbalized_calibration, ...);
      ``custom_system_prompt`` one of 12 per principle (``verbalized_calibration`` ones
      carry a "For instance, ..." example).
    - ``correct_answers`` / ``incorrect_answers`` are ``["None"]`` except for truthful_qa
      (1-5 short answers each) and FLAN rows (one reference answer, 1-3 wrong ones).
    - Lengths: instruction median ~370 characters (``tools/sample_text.py``'s prompts;
      truthful_qa questions are short), response median ~1,500 (a 3:1 mix of the
      rejected and chosen length distributions of the real binarized rows, plus 0.2% long
      ones), code blocks in ~20% and non-ASCII text in ~6% of responses.

``HuggingFaceH4/ultrafeedback_binarized`` (``H4_SCHEMA``; splits ``H4_SPLITS``)
    ``prompt``, ``prompt_id`` (sha256 hex of the UTF-8 prompt), ``chosen`` and
    ``rejected`` (``[user turn = prompt, assistant turn]``), ``messages`` (a copy of
    ``chosen``), ``score_chosen``, ``score_rejected``. Traits:

    - Scores on UltraFeedback's 1-10 ``overall_score`` scale in half points,
      ``score_chosen >= score_rejected``, ``H4_TIE_RATE`` (4%) ties.
    - Prompts from every source but truthful_qa (which H4 removed; there is no source
      column); ``H4_REPEATED_PROMPT_RATE`` (2%) of ``train_prefs`` rows reuse an earlier
      train prompt, and ``TEST_IN_TRAIN_RATE`` (4%) of ``test_prefs`` rows take the prompt
      of a ``train_prefs`` row, with other completions.
    - Completions as in ``tools/sample.py`` (chosen and rejected length distributions,
      code blocks, non-ASCII text, a few long ones); no empty prompt or completion.

Determinism: row ``i`` of openbmb and of ``train_prefs`` is a pure function of
``(seed, i)`` (BLAKE2b-seeded, ``tools/sample_text.py``), so the first ``k`` rows of an
``n``-row output equal a ``k``-row output; row ``j`` of ``test_prefs`` is a pure function
of ``(seed, j, n_train)`` (the train rows it may share a prompt with). The same arguments
give byte-identical JSON Lines and equal Parquet tables.

Measured: openbmb at the real size (63,967 rows, 253,320 completions) is 15,370 bytes per
row in Arrow (``table.nbytes``; 983 MB in all), 342 MB as parquet (snappy). H4 at the real
size (61,135 + 2,000 rows) is 7,436 bytes per row (``messages`` counted in full): about 16% above the
6,411 bytes per row of an older H4 card (397,273,717 bytes for 61,966 rows), as the
completion lengths come from the longer-than-average calibration rows of
``tools/sample_text.py``.

The shipped samples are made by ``python -m tools.sample`` with the arguments in
``tools.sample.SAMPLE_COMMANDS`` (``tests/test_sample_family.py`` checks that they are its
output and that each has every trait; zstd keeps each file under 0.8 MB).
"""

from __future__ import annotations

import hashlib
import os
import pathlib
import random
from collections.abc import Iterator, Sequence
from functools import partial
from itertools import accumulate, chain

import pyarrow as pa

from tools.sample_files import (
    MESSAGES_TYPE,
    Rows,
    check_count,
    list_offsets,
    messages_array,
    output_suffix,
)
from tools.sample_text import (
    CHOSEN_LENGTH_QUANTILES,
    COMPLETION_TEMPLATES,
    REJECTED_LENGTH_QUANTILES,
    Sentences,
    choice,
    chosen_and_rejected,
    completion_of_length,
    draws_first,
    earlier_row,
    insert_non_ascii,
    length,
    pick,
    prompt_stream,
    prompt_text,
    row_hash,
)
from ultrafeedback_kto import UPSTREAMS

__all__ = [
    "ANNOTATIONS_TYPE",
    "OPENBMB_COMPLETION_TYPE",
    "OPENBMB_SCHEMA",
    "OPENBMB_SOURCE_COUNTS",
    "OPENBMB_MODELS",
    "OPENBMB",
    "PRINCIPLES",
    "H4_SCHEMA",
    "H4_SPLITS",
    "generate_openbmb_batches",
    "generate_openbmb_table",
    "write_openbmb",
    "generate_h4_tables",
    "write_h4",
]

# --------------------------------------------------------------------------- schemas
# The columns the builder reads are its own (``UPSTREAMS[name].schema``); the others are
# the upstreams' columns that it does not read, in their places.

_STRING_LIST = pa.list_(pa.string())
_OPENBMB_READ = UPSTREAMS["openbmb"].schema
_COMPLETION_READ = _OPENBMB_READ.field("completions").type.value_type

#: The ``annotations`` struct of an openbmb completion: the builder's ``ANNOTATIONS``.
ANNOTATIONS_TYPE = _COMPLETION_READ.field("annotations").type

OPENBMB_COMPLETION_TYPE = pa.struct(
    [
        _COMPLETION_READ.field("annotations"),
        pa.field("critique", pa.string()),
        pa.field("custom_system_prompt", pa.string()),
        pa.field("fine-grained_score", pa.float64()),
        _COMPLETION_READ.field("model"),
        pa.field("overall_score", pa.float64()),
        pa.field("principle", pa.string()),
        _COMPLETION_READ.field("response"),
    ]
)

OPENBMB_SCHEMA = pa.schema(
    [
        _OPENBMB_READ.field("source"),
        _OPENBMB_READ.field("instruction"),
        pa.field("models", _STRING_LIST),
        pa.field("completions", pa.list_(OPENBMB_COMPLETION_TYPE)),
        pa.field("correct_answers", _STRING_LIST),
        pa.field("incorrect_answers", _STRING_LIST),
    ]
)

_H4 = UPSTREAMS["h4-binarized"]
H4_SCHEMA = pa.schema(
    [
        _H4.schema.field("prompt"),
        pa.field("prompt_id", pa.string()),
        _H4.schema.field("chosen"),
        _H4.schema.field("rejected"),
        pa.field("messages", MESSAGES_TYPE),
        _H4.schema.field("score_chosen"),
        _H4.schema.field("score_rejected"),
    ]
)
H4_SPLITS = tuple(_H4.splits)
_TRAIN, _TEST = H4_SPLITS

OPENBMB_ROW_GROUP_SIZE = 2_000  # ~34 MB of Arrow data per row group
H4_ROW_GROUP_SIZE = 10_000

# ------------------------------------------------------------------- trait rates

THREE_COMPLETIONS_RATE = 0.02
NO_COMPLETIONS_RATE = 0.005
REPEATED_INSTRUCTION_RATE = 0.02
IDENTICAL_RESPONSES_RATE = 0.01
EMPTY_RESPONSE_RATE = 0.004
ALL_NA_RATE = 0.003
HONESTY_NA_RATE = 0.04
INSTRUCTION_FOLLOWING_NA_RATE = 0.015
LONG_RATIONALE_RATE = 0.003
RESPONSE_CODE_RATE = 0.23
RESPONSE_NON_ASCII_RATE = 0.06
CHOSEN_LENGTH_SHARE = 0.25  # responses drawn from the chosen (else rejected) lengths

H4_TIE_RATE = 0.04
H4_REPEATED_PROMPT_RATE = 0.02
TEST_IN_TRAIN_RATE = 0.04

# ------------------------------------------------------------------ names

OPENBMB_SOURCE_COUNTS = {
    "evol_instruct": 10_000,
    "false_qa": 2_339,
    "flan_v2_niv2": 14_000,
    "flan_v2_cot": 3_000,
    "flan_v2_p3": 2_000,
    "flan_v2_flan2021": 1_939,
    "sharegpt": 19_949,
    "truthful_qa": 811,
    "ultrachat": 9_929,
}
_OPENBMB_SOURCES = tuple(OPENBMB_SOURCE_COUNTS)
_OPENBMB_SOURCE_CUM = tuple(accumulate(OPENBMB_SOURCE_COUNTS.values()))
_H4_SOURCES = tuple(s for s in OPENBMB_SOURCE_COUNTS if s != "truthful_qa")
_H4_SOURCE_CUM = tuple(accumulate(OPENBMB_SOURCE_COUNTS[s] for s in _H4_SOURCES))

# UltraFeedback's pool of 17 models, each with a strength in [0, 1] that centres its
# completions' ratings (stronger models are rated higher).
_MODEL_STRENGTHS = {
    "gpt-4": 0.9,
    "gpt-3.5-turbo": 0.8,
    "bard": 0.7,
    "wizardlm-70b": 0.75,
    "llama-2-70b-chat": 0.7,
    "ultralm-65b": 0.65,
    "vicuna-33b": 0.65,
    "wizardlm-13b": 0.6,
    "llama-2-13b-chat": 0.6,
    "ultralm-13b": 0.55,
    "mpt-30b-chat": 0.55,
    "llama-2-7b-chat": 0.5,
    "wizardlm-7b": 0.45,
    "starchat": 0.4,
    "falcon-40b-instruct": 0.35,
    "alpaca-7b": 0.25,
    "pythia-12b": 0.15,
}
OPENBMB_MODELS = tuple(_MODEL_STRENGTHS)

PRINCIPLES = ("helpfulness", "honesty", "truthfulness", "verbalized_calibration")
# Weights of PRINCIPLES by source (the UltraFeedback README's table).
_PRINCIPLE_CUM = {
    source: tuple(accumulate(weights))
    for sources, weights in (
        (("evol_instruct",), (100, 0, 0, 0)),
        (("false_qa", "truthful_qa"), (0, 0, 100, 0)),
        (("flan_v2_niv2", "flan_v2_cot", "flan_v2_p3", "flan_v2_flan2021"), (60, 0, 20, 20)),
        (("sharegpt", "ultrachat"), (60, 18, 20, 2)),
    )
    for source in sources
}

_SYSTEM_PROMPT_OPENERS = (
    "As an AI assistant, ",
    "You are an AI assistant. ",
    "As a top-tier AI assistant, make sure of this: ",
    "It's your duty as an AI assistant to be accurate. ",
    "You are a helpful, respectful and honest assistant. ",
    "As an AI assistant, keep in mind: ",
)
_TRUTHFUL_QA_OPENERS = (
    "What happens if",
    "Is it true that",
    "Why is it that",
    "How likely is it that",
    "Do experts agree that",
    "What does it mean that",
    "Is it a myth that",
)
_HELPFULNESS_TYPES = (
    ("1", "2", "3"),
    ("1", "2", "3"),
    ("1", "2", "3"),
    ("1", "2"),
    ("1", "2"),
    ("1", "3"),
    ("1",),
    ("2", "3"),
    ("1", "2"),
    ("1", "2", "3"),
)
_TRUTHFULNESS_TYPES = (("1",), ("1",), ("1",), ("2",), ("3",), ("1", "2"), ("1", "3"), ("2", "3"), ("1", "2", "3"))
_NONE_LIST = ("None",)

# Character lengths at probabilities 0, 10%, ..., 100% (11 points).
_RATIONALE_LENGTH_QUANTILES = (50, 95, 120, 145, 165, 190, 215, 245, 285, 350, 500)
_CRITIQUE_LENGTH_QUANTILES = (150, 250, 320, 380, 430, 480, 540, 610, 690, 820, 1100)
_LONG_RATIONALE_LENGTH = (1_000, 1_800)

# Ratings of an aspect ("1" to "5") are on the scale of their mean, the builder's rating of
# an openbmb completion; overall scores (1 to 10) are on H4's scale, as its scores are them.
_ASPECT_LOWEST, _ASPECT_HIGHEST = (int(rating) for rating in UPSTREAMS["openbmb"].ratings)
_OVERALL_LOWEST, _OVERALL_HIGHEST = _H4.ratings

# ------------------------------------------------------------------ text


# Sentences for rationales and critiques: the completion sentences, always joined by a
# space (plain paragraphs, no lists or headings).
_ANNOTATION_SENTENCES = Sentences(COMPLETION_TEMPLATES, ((" ", 1),), random.Random(0xA770))
_annotation_prose = _ANNOTATION_SENTENCES.prose


def _build_system_prompts() -> dict[str, tuple[str, ...]]:
    """12 system prompts per principle, as the upstream's pool of GPT-4-written ones."""
    rng = random.Random(0x5157)
    pools = {}
    for principle in PRINCIPLES:
        pool = []
        for _ in range(12):
            text = choice(rng, _SYSTEM_PROMPT_OPENERS) + _annotation_prose(rng, 60 + int(rng.random() * 140))
            if principle == "verbalized_calibration":
                text += " For instance, " + _annotation_prose(rng, 80 + int(rng.random() * 120))
            pool.append(text)
        pools[principle] = tuple(pool)
    return pools


_SYSTEM_PROMPTS = _build_system_prompts()


def _rationale(rng: random.Random) -> str:
    if rng.random() < LONG_RATIONALE_RATE:
        lo, hi = _LONG_RATIONALE_LENGTH
        return _annotation_prose(rng, lo + int(rng.random() * (hi - lo)))
    return _annotation_prose(rng, length(rng, _RATIONALE_LENGTH_QUANTILES))


def _short_answers(rng: random.Random, count: int) -> list[str]:
    return [_annotation_prose(rng, 25 + int(rng.random() * 65)) for _ in range(count)]


# ------------------------------------------------------------------ openbmb rows


def _openbmb_hash(seed: int, index: int) -> tuple[int, int]:
    return row_hash("ufkto-openbmb", seed, index)


def _instruction(rng: random.Random) -> tuple[str, str, list[str], list[str]]:
    """(source, instruction, correct_answers, incorrect_answers): the first draws of a
    row's random stream, so a repeated instruction is rebuilt from its first row's seed."""
    source = pick(rng, _OPENBMB_SOURCES, _OPENBMB_SOURCE_CUM)
    if source == "truthful_qa":  # short questions
        opener = choice(rng, _TRUTHFUL_QA_OPENERS)
        clause = _annotation_prose(rng, 20 + int(rng.random() * 60))[:-1]
        text = f"{opener} {clause[:1].lower()}{clause[1:]}?"
        correct = _short_answers(rng, 1 + int(rng.random() * 5))
        incorrect = _short_answers(rng, 1 + int(rng.random() * 5))
    else:
        text = prompt_text(rng, source)
        if source.startswith("flan_"):
            correct = _short_answers(rng, 1)
            incorrect = _short_answers(rng, 1 + int(rng.random() * 3))
        else:
            correct, incorrect = ["None"], ["None"]
    return source, text, correct, incorrect


def _rating(rng: random.Random, quality: float) -> int:
    return min(_ASPECT_HIGHEST, max(_ASPECT_LOWEST, int(quality + (rng.random() - 0.5) * 1.6 + 0.5)))


def _completion_leaves(rng: random.Random, source: str, model: str) -> list:
    """One completion as its 19 leaf values, in ``OPENBMB_COMPLETION_TYPE``'s depth-first
    field order (``_LEAF_RESPONSE`` is the response)."""
    principle = pick(rng, PRINCIPLES, _PRINCIPLE_CUM[source])
    system_prompt = choice(rng, _SYSTEM_PROMPTS[principle])
    empty = rng.random() < EMPTY_RESPONSE_RATE
    if empty:  # rated lowest
        response = ""
        quality = float(_ASPECT_LOWEST)
    else:
        chosen_lengths = rng.random() < CHOSEN_LENGTH_SHARE
        quantiles = CHOSEN_LENGTH_QUANTILES if chosen_lengths else REJECTED_LENGTH_QUANTILES
        response = completion_of_length(rng, quantiles, RESPONSE_CODE_RATE)
        if rng.random() < RESPONSE_NON_ASCII_RATE:
            response = insert_non_ascii(rng, response)
        strength = min(1.0, max(0.0, _MODEL_STRENGTHS[model] + (rng.random() - 0.5) * 0.9))
        quality = _ASPECT_LOWEST + (_ASPECT_HIGHEST - _ASPECT_LOWEST) * strength

    def rated(na_rate: float = 0.0) -> int | None:
        if na_rate and rng.random() < na_rate:
            return None
        return _ASPECT_LOWEST if empty else _rating(rng, quality)

    # helpfulness, honesty, instruction_following, truthfulness; None is "N/A"
    if rng.random() < ALL_NA_RATE:
        ratings = [None, None, None, None]
    else:
        ratings = [rated(), rated(HONESTY_NA_RATE), rated(INSTRUCTION_FOLLOWING_NA_RATE), rated()]
    numeric = [r for r in ratings if r is not None]
    fine = sum(numeric) / len(numeric) if numeric else None
    if empty:
        overall = _OVERALL_LOWEST
    else:
        doubled = 2 * (fine if fine is not None else quality) - 0.5 + (rng.random() - 0.5) * 3
        overall = min(_OVERALL_HIGHEST, max(_OVERALL_LOWEST, int(doubled * 2 + 0.5) / 2))
    help_rating, honesty, following, truth = ratings
    u = rng.random()
    if help_rating is None or u < 0.02 or (help_rating == 1 and u < 0.5):
        help_type = _NONE_LIST
    else:
        help_type = choice(rng, _HELPFULNESS_TYPES)
    u = rng.random()
    if truth is None or u < 0.01:
        truth_type = _NONE_LIST
    elif truth == 5:
        truth_type = ("0",) if u < 0.5 else _NONE_LIST
    else:
        truth_type = choice(rng, _TRUTHFULNESS_TYPES)
    return [
        "N/A" if help_rating is None else str(help_rating),
        _rationale(rng),
        _rationale(rng),
        help_type,
        "N/A" if honesty is None else str(honesty),
        _rationale(rng),
        "N/A" if following is None else str(following),
        _rationale(rng),
        "N/A" if truth is None else str(truth),
        _rationale(rng),
        _rationale(rng),
        truth_type,
        _annotation_prose(rng, length(rng, _CRITIQUE_LENGTH_QUANTILES)),
        system_prompt,
        fine,
        model,
        overall,
        principle,
        response,
    ]


_LEAF_RESPONSE = 18


def _openbmb_row(seed: int, index: int) -> tuple:
    """Row ``index`` as (source, instruction, models, completions, correct_answers,
    incorrect_answers), each completion a list of its leaf values."""
    hash_of = partial(_openbmb_hash, seed)
    rng = random.Random(hash_of(index)[0])
    instruction_rng = prompt_stream(hash_of, index, REPEATED_INSTRUCTION_RATE, rng)
    source, instruction, correct, incorrect = _instruction(instruction_rng)
    u = rng.random()
    n = 0 if u < NO_COMPLETIONS_RATE else 3 if u < NO_COMPLETIONS_RATE + THREE_COMPLETIONS_RATE else 4
    models: list[str] = []
    while len(models) < n:
        model = choice(rng, OPENBMB_MODELS)
        if model not in models:
            models.append(model)
    completions = [_completion_leaves(rng, source, model) for model in models]
    if n >= 2 and rng.random() < IDENTICAL_RESPONSES_RATE:
        a = int(rng.random() * n)
        b = (a + 1 + int(rng.random() * (n - 1))) % n
        completions[b][_LEAF_RESPONSE] = completions[a][_LEAF_RESPONSE]
    return source, instruction, models, completions, correct, incorrect


# ------------------------------------------------------------------ Arrow and JSON


def _string_lists(seqs: Sequence[Sequence[str]]) -> pa.Array:
    values = pa.array(list(chain.from_iterable(seqs)), pa.string())
    return pa.ListArray.from_arrays(list_offsets(map(len, seqs)), values, type=_STRING_LIST)


def _from_leaves(dtype: pa.DataType, leaves: Iterator[Sequence]) -> pa.Array:
    """An array of ``dtype`` (structs of strings, doubles and lists of strings) from its
    leaf columns, taken from ``leaves`` in depth-first field order."""
    if pa.types.is_struct(dtype):
        children = [_from_leaves(field.type, leaves) for field in dtype]
        return pa.StructArray.from_arrays(children, fields=list(dtype))
    if dtype == _STRING_LIST:
        return _string_lists(next(leaves))
    return pa.array(list(next(leaves)), dtype)


def _openbmb_batch(seed: int, start: int, stop: int) -> pa.RecordBatch:
    rows = [_openbmb_row(seed, i) for i in range(start, stop)]
    sources, instructions, models, completions, correct, incorrect = (list(col) for col in zip(*rows, strict=True))
    flat = list(chain.from_iterable(completions))
    n_leaves = len(_LEAF_NAMES)
    leaves = list(zip(*flat, strict=True)) if flat else [()] * n_leaves
    values = _from_leaves(OPENBMB_COMPLETION_TYPE, iter(leaves))
    completions_type = OPENBMB_SCHEMA.field("completions").type
    arrays = [
        pa.array(sources, pa.string()),
        pa.array(instructions, pa.string()),
        _string_lists(models),
        pa.ListArray.from_arrays(list_offsets(map(len, completions)), values, type=completions_type),
        _string_lists(correct),
        _string_lists(incorrect),
    ]
    return pa.RecordBatch.from_arrays(arrays, schema=OPENBMB_SCHEMA)


def _leaf_names(dtype: pa.DataType, prefix: str = "") -> list[str]:
    if pa.types.is_struct(dtype):
        return [name for f in dtype for name in _leaf_names(f.type, f"{prefix}{f.name}.")]
    return [prefix[:-1]]


_LEAF_NAMES = tuple(_leaf_names(OPENBMB_COMPLETION_TYPE))
assert _LEAF_NAMES[_LEAF_RESPONSE] == "response" and len(_LEAF_NAMES) == 19


#: The fake ``openbmb/UltraFeedback`` rows (one per prompt), as ``tools.sample.PAIRS``.
OPENBMB = Rows(OPENBMB_SCHEMA, _openbmb_batch, OPENBMB_ROW_GROUP_SIZE)
#: ``generate_openbmb_batches(n_rows, seed=0, batch_size=OPENBMB_ROW_GROUP_SIZE)``: record
#: batches (``OPENBMB_SCHEMA``) of ``n_rows`` rows; row ``i`` depends only on ``(seed, i)``.
generate_openbmb_batches = OPENBMB.batches
#: ``generate_openbmb_table(n_rows, seed=0)``: all ``n_rows`` rows as one ``pyarrow.Table``.
generate_openbmb_table = OPENBMB.table
#: ``write_openbmb(path, n_rows, seed=0, *, compression="snappy", compression_level=None)``,
#: as ``tools.sample.write_upstream``: ``.parquet`` (row groups of at most
#: ``OPENBMB_ROW_GROUP_SIZE`` rows) or ``.jsonl`` (``fine-grained_score`` null when a
#: completion has no numeric rating), atomically.
write_openbmb = OPENBMB.write


# ------------------------------------------------------------------ H4 rows


def _h4_hash(split: str, seed: int, index: int) -> tuple[int, int]:
    return row_hash(f"ufkto-h4-{split}", seed, index)


def _h4_prompt(rng: random.Random) -> str:
    return prompt_text(rng, pick(rng, _H4_SOURCES, _H4_SOURCE_CUM))


def _h4_scores(rng: random.Random) -> tuple[float, float]:
    """(score_chosen, score_rejected) in half points on 1-10: the best of four overall
    scores, and one of the others."""
    chosen = _OVERALL_HIGHEST - 0.5 * int(rng.random() ** 1.5 * 13)  # 4.0 .. 10.0, skewed to the top
    if rng.random() < H4_TIE_RATE:
        return chosen, chosen
    steps = int((chosen - _OVERALL_LOWEST) * 2)
    gap = 1 + min(steps - 1, int(rng.random() ** 2 * steps))
    return chosen, chosen - 0.5 * gap


def _h4_row(seed: int, split: str, index: int, n_train: int) -> tuple:
    """Row ``index`` of ``split`` as (prompt, chosen_text, rejected_text, score_chosen,
    score_rejected)."""
    rng_seed, bits = _h4_hash(split, seed, index)
    rng = random.Random(rng_seed)

    train_hash = partial(_h4_hash, _TRAIN, seed)
    if split == _TRAIN:
        prompt_rng = prompt_stream(train_hash, index, H4_REPEATED_PROMPT_RATE, rng)
    elif n_train and draws_first(bits, TEST_IN_TRAIN_RATE):
        prompt_rng = prompt_stream(train_hash, earlier_row(bits, n_train), H4_REPEATED_PROMPT_RATE)
    else:
        prompt_rng = rng
    prompt = _h4_prompt(prompt_rng)
    chosen, rejected = chosen_and_rejected(rng)
    return (prompt, chosen, rejected, *_h4_scores(rng))


def _prompt_id(prompt: str) -> str:
    return hashlib.sha256(prompt.encode("utf-8")).hexdigest()


def _h4_batch(split: str, n_train: int, seed: int, start: int, stop: int) -> pa.RecordBatch:
    rows = [_h4_row(seed, split, i, n_train) for i in range(start, stop)]
    prompts, chosen, rejected, score_chosen, score_rejected = (list(col) for col in zip(*rows, strict=True))
    # [user turn = prompt, assistant turn] per row
    chosen_array = messages_array(list(zip(prompts, chosen, strict=True)))
    arrays = [
        pa.array(prompts, pa.string()),
        pa.array(list(map(_prompt_id, prompts)), pa.string()),
        chosen_array,
        messages_array(list(zip(prompts, rejected, strict=True))),
        chosen_array,
        pa.array(score_chosen, pa.float64()),
        pa.array(score_rejected, pa.float64()),
    ]
    return pa.RecordBatch.from_arrays(arrays, schema=H4_SCHEMA)


def _check_h4_args(n_train: int, n_test: int) -> None:
    check_count(n_train, "n_train")
    check_count(n_test, "n_test")


def _h4_rows(split: str, n_train: int) -> Rows:
    """The rows of ``split`` when train has ``n_train`` rows (test rows may share their prompts)."""
    return Rows(H4_SCHEMA, partial(_h4_batch, split, n_train), H4_ROW_GROUP_SIZE)


def generate_h4_tables(n_train: int, n_test: int, seed: int = 0) -> dict[str, pa.Table]:
    """Fake ``HuggingFaceH4/ultrafeedback_binarized`` preference splits:
    ``{"train_prefs": table, "test_prefs": table}`` (``H4_SCHEMA``), ``n_train`` and
    ``n_test`` rows. Train row ``i`` depends only on ``(seed, i)``; test row ``j`` on
    ``(seed, j, n_train)``.
    """
    _check_h4_args(n_train, n_test)
    counts = zip(H4_SPLITS, (n_train, n_test), strict=True)
    return {split: _h4_rows(split, n_train).table(n, seed) for split, n in counts}


def write_h4(
    folder: str | os.PathLike,
    n_train: int,
    n_test: int,
    seed: int = 0,
    suffix: str = ".parquet",
    *,
    compression: str = "snappy",
    compression_level: int | None = None,
) -> dict[str, pathlib.Path]:
    """Write ``folder/train_prefs{suffix}`` and ``folder/test_prefs{suffix}`` (``.parquet``,
    row groups of at most 10,000 rows, or ``.jsonl``) and return ``{split: path}``; each
    file is written atomically as by ``write_openbmb``, train first.
    """
    folder = pathlib.Path(folder)
    paths = {split: folder / f"{split}{suffix}" for split in H4_SPLITS}
    for path in paths.values():
        output_suffix(path)
    _check_h4_args(n_train, n_test)
    compressed = {"compression": compression, "compression_level": compression_level}
    for split, n in zip(H4_SPLITS, (n_train, n_test), strict=True):
        _h4_rows(split, n_train).write(paths[split], n, seed, **compressed)
    return paths
