"""Deterministic fake data for two more UltraFeedback upstreams, for offline tests and benchmarks.

``publish/sample.py`` writes the schema of ``argilla/ultrafeedback-binarized-preferences-cleaned``;
this module writes the two other upstreams of the UltraFeedback family, with their exact
Arrow schemas (same column and field order, same types) and the traits of their real rows
(as far as their dataset cards, the UltraFeedback repository and ``../shared/data/README.md``
describe them). No real text is copied: every text comes from ``publish/sample.py``'s
machinery (its sentence tables, prose, code blocks and non-ASCII fragments).

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
    - Ratings are strings "1" to "5". ``honesty`` is "N/A" for ``HONESTY_NA_RATE`` (4%),
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
    - Lengths: instruction median ~370 characters (``publish/sample.py``'s prompts;
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
    - Completions as in ``publish/sample.py`` (chosen and rejected length distributions,
      code blocks, non-ASCII text, a few long ones); no empty prompt or completion.

Determinism: row ``i`` of openbmb and of ``train_prefs`` is a pure function of
``(seed, i)`` (BLAKE2b-seeded, as in ``publish/sample.py``), so the first ``k`` rows of an
``n``-row output equal a ``k``-row output; row ``j`` of ``test_prefs`` is a pure function
of ``(seed, j, n_train)`` (the train rows it may share a prompt with). The same arguments
give byte-identical JSON Lines and equal Parquet tables. Only the standard library and
pyarrow are used.

Measured: openbmb at the real size (63,967 rows, 253,320 completions) is 15,370 bytes per
row in Arrow (``table.nbytes``; 983 MB in all), 342 MB as parquet (snappy). H4 at the real
size (61,135 + 2,000 rows) is 7,436 bytes per row (``messages`` counted in full): about 16% above the
6,411 bytes per row of an older H4 card (397,273,717 bytes for 61,966 rows), as the
completion lengths come from the longer-than-average calibration rows of
``publish/sample.py``.

The shipped samples are made by the command (``tests/test_sample_family.py`` checks that
they are its output and that each has every trait; zstd keeps each file under 0.8 MB)::

    python -m publish.sample --upstream openbmb --rows 300 --seed 1 --compression zstd:19 \
        --out publish/samples/openbmb-sample.parquet
    python -m publish.sample --upstream h4-binarized --pairs 400 --test-pairs 100 --seed 1 \
        --compression zstd:19 --out publish/samples/h4-binarized
"""

from __future__ import annotations

import hashlib
import os
import pathlib
import random
from array import array
from collections.abc import Iterator, Sequence
from functools import partial
from itertools import accumulate, chain

import pyarrow as pa

from publish.sample import (
    _CHOSEN_LENGTH_QUANTILES,
    _COMPLETION_TEMPLATES,
    _REJECTED_LENGTH_QUANTILES,
    _TABLE_SIZE,
    MESSAGES_TYPE,
    _batches,
    _check_args,
    _choice,
    _chosen_and_rejected,
    _completion_of_length,
    _insert_non_ascii,
    _length,
    _messages_array,
    _output_suffix,
    _pick,
    _prompt_root,
    _prompt_text,
    _prose,
    _row_hash,
    _sentence_table,
    _write_file,
)

__all__ = [
    "ANNOTATIONS_TYPE",
    "OPENBMB_COMPLETION_TYPE",
    "OPENBMB_SCHEMA",
    "OPENBMB_SOURCE_COUNTS",
    "OPENBMB_MODELS",
    "H4_SCHEMA",
    "H4_SPLITS",
    "generate_openbmb_batches",
    "generate_openbmb_table",
    "write_openbmb",
    "generate_h4_tables",
    "write_h4",
]

# --------------------------------------------------------------------------- schemas

_STRING_LIST = pa.list_(pa.string())
_RATING_WITH_TYPE = pa.struct(
    [
        pa.field("Rating", pa.string()),
        pa.field("Rationale", pa.string()),
        pa.field("Rationale For Rating", pa.string()),
        pa.field("Type", _STRING_LIST),
    ]
)
_RATING = pa.struct([pa.field("Rating", pa.string()), pa.field("Rationale", pa.string())])

ANNOTATIONS_TYPE = pa.struct(
    [
        pa.field("helpfulness", _RATING_WITH_TYPE),
        pa.field("honesty", _RATING),
        pa.field("instruction_following", _RATING),
        pa.field("truthfulness", _RATING_WITH_TYPE),
    ]
)
"""The ``annotations`` struct of an openbmb completion (also the ``annotations`` column of
``argilla/ultrafeedback-binarized-preferences-cleaned-kto``)."""

OPENBMB_COMPLETION_TYPE = pa.struct(
    [
        pa.field("annotations", ANNOTATIONS_TYPE),
        pa.field("critique", pa.string()),
        pa.field("custom_system_prompt", pa.string()),
        pa.field("fine-grained_score", pa.float64()),
        pa.field("model", pa.string()),
        pa.field("overall_score", pa.float64()),
        pa.field("principle", pa.string()),
        pa.field("response", pa.string()),
    ]
)

OPENBMB_SCHEMA = pa.schema(
    [
        pa.field("source", pa.string()),
        pa.field("instruction", pa.string()),
        pa.field("models", _STRING_LIST),
        pa.field("completions", pa.list_(OPENBMB_COMPLETION_TYPE)),
        pa.field("correct_answers", _STRING_LIST),
        pa.field("incorrect_answers", _STRING_LIST),
    ]
)

H4_SCHEMA = pa.schema(
    [
        pa.field("prompt", pa.string()),
        pa.field("prompt_id", pa.string()),
        pa.field("chosen", MESSAGES_TYPE),
        pa.field("rejected", MESSAGES_TYPE),
        pa.field("messages", MESSAGES_TYPE),
        pa.field("score_chosen", pa.float64()),
        pa.field("score_rejected", pa.float64()),
    ]
)
H4_SPLITS = ("train_prefs", "test_prefs")

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

_PRINCIPLES = ("helpfulness", "honesty", "truthfulness", "verbalized_calibration")
# Weights of _PRINCIPLES by source (the UltraFeedback README's table).
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
    "What happens if", "Is it true that", "Why is it that", "How likely is it that", "Do experts agree that",
    "What does it mean that", "Is it a myth that",
)  # fmt: skip
_HELPFULNESS_TYPES = (
    ("1", "2", "3"), ("1", "2", "3"), ("1", "2", "3"), ("1", "2"), ("1", "2"), ("1", "3"),
    ("1",), ("2", "3"), ("1", "2"), ("1", "2", "3"),
)  # fmt: skip
_TRUTHFULNESS_TYPES = (("1",), ("1",), ("1",), ("2",), ("3",), ("1", "2"), ("1", "3"), ("2", "3"), ("1", "2", "3"))
_NONE_LIST = ("None",)

# fmt: off
# Character lengths at probabilities 0, 10%, ..., 100% (11 points).
_RATIONALE_LENGTH_QUANTILES = (50, 95, 120, 145, 165, 190, 215, 245, 285, 350, 500)
_CRITIQUE_LENGTH_QUANTILES = (150, 250, 320, 380, 430, 480, 540, 610, 690, 820, 1100)
_LONG_RATIONALE_LENGTH = (1_000, 1_800)
# fmt: on

# ------------------------------------------------------------------ text


def _build_annotation_table() -> tuple[str, ...]:
    """Sentences for rationales and critiques: the completion sentences, always joined
    by a space (plain paragraphs, no lists or headings)."""
    return _sentence_table(_COMPLETION_TEMPLATES, ((" ", 1),), random.Random(0xA770))


_ANNOTATION_TABLE = _build_annotation_table()
_AVG_ANNOTATION_SENTENCE = sum(map(len, _ANNOTATION_TABLE)) / _TABLE_SIZE


def _annotation_prose(rng: random.Random, n_chars: int) -> str:
    return _prose(rng, n_chars, _ANNOTATION_TABLE, _AVG_ANNOTATION_SENTENCE)


def _build_system_prompts() -> dict[str, tuple[str, ...]]:
    """12 system prompts per principle, as the upstream's pool of GPT-4-written ones."""
    rng = random.Random(0x5157)
    pools = {}
    for principle in _PRINCIPLES:
        pool = []
        for _ in range(12):
            text = _choice(rng, _SYSTEM_PROMPT_OPENERS) + _annotation_prose(rng, 60 + int(rng.random() * 140))
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
    return _annotation_prose(rng, _length(rng, _RATIONALE_LENGTH_QUANTILES))


def _short_answers(rng: random.Random, count: int) -> list[str]:
    return [_annotation_prose(rng, 25 + int(rng.random() * 65)) for _ in range(count)]


# ------------------------------------------------------------------ openbmb rows


def _openbmb_hash(seed: int, index: int) -> tuple[int, int]:
    return _row_hash("ufkto-openbmb", seed, index)


def _instruction(rng: random.Random) -> tuple[str, str, list[str], list[str]]:
    """(source, instruction, correct_answers, incorrect_answers): the first draws of a
    row's random stream, so a repeated instruction is rebuilt from its first row's seed."""
    source = _pick(rng, _OPENBMB_SOURCES, _OPENBMB_SOURCE_CUM)
    if source == "truthful_qa":  # short questions
        opener = _choice(rng, _TRUTHFUL_QA_OPENERS)
        clause = _annotation_prose(rng, 20 + int(rng.random() * 60))[:-1]
        text = f"{opener} {clause[:1].lower()}{clause[1:]}?"
        correct = _short_answers(rng, 1 + int(rng.random() * 5))
        incorrect = _short_answers(rng, 1 + int(rng.random() * 5))
    else:
        text = _prompt_text(rng, source)
        if source.startswith("flan_"):
            correct = _short_answers(rng, 1)
            incorrect = _short_answers(rng, 1 + int(rng.random() * 3))
        else:
            correct, incorrect = ["None"], ["None"]
    return source, text, correct, incorrect


def _rating(rng: random.Random, quality: float) -> int:
    return min(5, max(1, int(quality + (rng.random() - 0.5) * 1.6 + 0.5)))


def _completion_leaves(rng: random.Random, source: str, model: str) -> list:
    """One completion as its 19 leaf values, in ``OPENBMB_COMPLETION_TYPE``'s depth-first
    field order (``_LEAF_RESPONSE`` is the response)."""
    principle = _pick(rng, _PRINCIPLES, _PRINCIPLE_CUM[source])
    system_prompt = _choice(rng, _SYSTEM_PROMPTS[principle])
    empty = rng.random() < EMPTY_RESPONSE_RATE
    if empty:
        response = ""
        quality = 1.0
    else:
        quantiles = _CHOSEN_LENGTH_QUANTILES if rng.random() < CHOSEN_LENGTH_SHARE else _REJECTED_LENGTH_QUANTILES
        response = _completion_of_length(rng, quantiles, RESPONSE_CODE_RATE)
        if rng.random() < RESPONSE_NON_ASCII_RATE:
            response = _insert_non_ascii(rng, response)
        quality = 1 + 4 * min(1.0, max(0.0, _MODEL_STRENGTHS[model] + (rng.random() - 0.5) * 0.9))
    # helpfulness, honesty, instruction_following, truthfulness; None is "N/A"
    if rng.random() < ALL_NA_RATE:
        ratings = [None, None, None, None]
    else:
        ratings = [
            1 if empty else _rating(rng, quality),
            None if rng.random() < HONESTY_NA_RATE else 1 if empty else _rating(rng, quality),
            None if rng.random() < INSTRUCTION_FOLLOWING_NA_RATE else 1 if empty else _rating(rng, quality),
            1 if empty else _rating(rng, quality),
        ]
    numeric = [r for r in ratings if r is not None]
    fine = sum(numeric) / len(numeric) if numeric else None
    if empty:
        overall = 1.0
    else:
        doubled = 2 * (fine if fine is not None else quality) - 0.5 + (rng.random() - 0.5) * 3
        overall = min(10.0, max(1.0, int(doubled * 2 + 0.5) / 2))
    help_rating, honesty, following, truth = ratings
    u = rng.random()
    if help_rating is None or u < 0.02 or (help_rating == 1 and u < 0.5):
        help_type = _NONE_LIST
    else:
        help_type = _choice(rng, _HELPFULNESS_TYPES)
    u = rng.random()
    if truth is None or u < 0.01:
        truth_type = _NONE_LIST
    elif truth == 5:
        truth_type = ("0",) if u < 0.5 else _NONE_LIST
    else:
        truth_type = _choice(rng, _TRUTHFULNESS_TYPES)
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
        _annotation_prose(rng, _length(rng, _CRITIQUE_LENGTH_QUANTILES)),
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
    rng = random.Random(_openbmb_hash(seed, index)[0])
    root = _prompt_root(lambda i: _openbmb_hash(seed, i), index, REPEATED_INSTRUCTION_RATE)
    source, instruction, correct, incorrect = _instruction(
        rng if root == index else random.Random(_openbmb_hash(seed, root)[0])
    )
    u = rng.random()
    n = 0 if u < NO_COMPLETIONS_RATE else 3 if u < NO_COMPLETIONS_RATE + THREE_COMPLETIONS_RATE else 4
    models: list[str] = []
    while len(models) < n:
        model = _choice(rng, OPENBMB_MODELS)
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
    offsets = array("i", [0])
    offsets.extend(accumulate(map(len, seqs)))
    values = pa.array(list(chain.from_iterable(seqs)), pa.string())
    return pa.ListArray.from_arrays(pa.array(offsets, pa.int32()), values, type=_STRING_LIST)


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
    offsets = array("i", [0])
    offsets.extend(accumulate(map(len, completions)))
    values = _from_leaves(OPENBMB_COMPLETION_TYPE, iter(leaves))
    arrays = [
        pa.array(sources, pa.string()),
        pa.array(instructions, pa.string()),
        _string_lists(models),
        pa.ListArray.from_arrays(pa.array(offsets, pa.int32()), values, type=OPENBMB_SCHEMA.field("completions").type),
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


def generate_openbmb_batches(
    n_rows: int, seed: int = 0, batch_size: int = OPENBMB_ROW_GROUP_SIZE
) -> Iterator[pa.RecordBatch]:
    """Yield record batches (``OPENBMB_SCHEMA``) holding ``n_rows`` fake openbmb rows
    (one per prompt). Row ``i`` depends only on ``(seed, i)``; memory is bounded by one batch.
    """
    return _batches(partial(_openbmb_batch, seed), n_rows, batch_size)


def generate_openbmb_table(n_rows: int, seed: int = 0) -> pa.Table:
    """All ``n_rows`` fake ``openbmb/UltraFeedback`` rows as one ``pyarrow.Table``."""
    return pa.Table.from_batches(list(generate_openbmb_batches(n_rows, seed)), schema=OPENBMB_SCHEMA)


def write_openbmb(
    path: str | os.PathLike,
    n_rows: int,
    seed: int = 0,
    *,
    compression: str = "snappy",
    compression_level: int | None = None,
) -> pathlib.Path:
    """Write ``n_rows`` fake ``openbmb/UltraFeedback`` rows to ``path`` and return it.

    As ``publish.sample.write_upstream``: ``.parquet`` (row groups of at most 2,000 rows,
    ``compression`` as pyarrow takes it) or ``.jsonl`` (keys in schema order,
    ``fine-grained_score`` null when a completion has no numeric rating) by suffix,
    written to a temporary sibling renamed at the end.
    """
    path = pathlib.Path(path)
    _output_suffix(path)
    _check_args(n_rows, name="n_rows")
    return _write_file(
        path,
        OPENBMB_SCHEMA,
        lambda: generate_openbmb_batches(n_rows, seed, OPENBMB_ROW_GROUP_SIZE),
        OPENBMB_ROW_GROUP_SIZE,
        compression,
        compression_level,
    )


# ------------------------------------------------------------------ H4 rows


def _h4_hash(split: str, seed: int, index: int) -> tuple[int, int]:
    return _row_hash(f"ufkto-h4-{split}", seed, index)


def _h4_prompt(rng: random.Random) -> str:
    return _prompt_text(rng, _pick(rng, _H4_SOURCES, _H4_SOURCE_CUM))


def _h4_scores(rng: random.Random) -> tuple[float, float]:
    """(score_chosen, score_rejected) in half points on 1-10: the best of four overall
    scores, and one of the others."""
    chosen = 10.0 - 0.5 * int(rng.random() ** 1.5 * 13)  # 4.0 .. 10.0, skewed to the top
    if rng.random() < H4_TIE_RATE:
        return chosen, chosen
    steps = int((chosen - 1) * 2)
    gap = 1 + min(steps - 1, int(rng.random() ** 2 * steps))
    return chosen, chosen - 0.5 * gap


def _h4_row(seed: int, split: str, index: int, n_train: int) -> tuple:
    """Row ``index`` of ``split`` as (prompt, chosen_text, rejected_text, score_chosen,
    score_rejected)."""
    rng_seed, bits = _h4_hash(split, seed, index)
    rng = random.Random(rng_seed)

    def train_hash(i: int) -> tuple[int, int]:
        return _h4_hash("train_prefs", seed, i)

    if split == "train_prefs":
        root = _prompt_root(train_hash, index, H4_REPEATED_PROMPT_RATE)
        prompt_rng = rng if root == index else random.Random(train_hash(root)[0])
    elif n_train and (bits >> 40) < TEST_IN_TRAIN_RATE * (1 << 24):
        root = _prompt_root(train_hash, (bits & 0xFFFFFFFFFF) % n_train, H4_REPEATED_PROMPT_RATE)
        prompt_rng = random.Random(train_hash(root)[0])
    else:
        prompt_rng = rng
    prompt = _h4_prompt(prompt_rng)
    chosen, rejected = _chosen_and_rejected(rng)
    return (prompt, chosen, rejected, *_h4_scores(rng))


def _prompt_id(prompt: str) -> str:
    return hashlib.sha256(prompt.encode("utf-8")).hexdigest()


def _h4_batch(seed: int, split: str, n_train: int, start: int, stop: int) -> pa.RecordBatch:
    rows = [_h4_row(seed, split, i, n_train) for i in range(start, stop)]
    prompts, chosen, rejected, score_chosen, score_rejected = (list(col) for col in zip(*rows, strict=True))
    # [user turn = prompt, assistant turn] per row
    chosen_array = _messages_array(list(zip(prompts, chosen, strict=True)))
    arrays = [
        pa.array(prompts, pa.string()),
        pa.array(list(map(_prompt_id, prompts)), pa.string()),
        chosen_array,
        _messages_array(list(zip(prompts, rejected, strict=True))),
        chosen_array,
        pa.array(score_chosen, pa.float64()),
        pa.array(score_rejected, pa.float64()),
    ]
    return pa.RecordBatch.from_arrays(arrays, schema=H4_SCHEMA)


def _check_h4_args(n_train: int, n_test: int) -> None:
    _check_args(n_train, name="n_train")
    _check_args(n_test, name="n_test")


def _h4_batches(split: str, n_rows: int, seed: int, n_train: int) -> Iterator[pa.RecordBatch]:
    return _batches(partial(_h4_batch, seed, split, n_train), n_rows, H4_ROW_GROUP_SIZE)


def generate_h4_tables(n_train: int, n_test: int, seed: int = 0) -> dict[str, pa.Table]:
    """Fake ``HuggingFaceH4/ultrafeedback_binarized`` preference splits:
    ``{"train_prefs": table, "test_prefs": table}`` (``H4_SCHEMA``), ``n_train`` and
    ``n_test`` rows. Train row ``i`` depends only on ``(seed, i)``; test row ``j`` on
    ``(seed, j, n_train)``.
    """
    _check_h4_args(n_train, n_test)
    return {
        split: pa.Table.from_batches(list(_h4_batches(split, n, seed, n_train)), schema=H4_SCHEMA)
        for split, n in zip(H4_SPLITS, (n_train, n_test), strict=True)
    }


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
        _output_suffix(path)
    _check_h4_args(n_train, n_test)
    for split, n in zip(H4_SPLITS, (n_train, n_test), strict=True):
        _write_file(
            paths[split],
            H4_SCHEMA,
            partial(_h4_batches, split, n, seed, n_train),
            H4_ROW_GROUP_SIZE,
            compression,
            compression_level,
        )
    return paths
