"""UltraFeedback as a KTO dataset: every upstream preference pair becomes two examples.

The upstream, ``argilla/ultrafeedback-binarized-preferences-cleaned``, holds preference
pairs: a prompt, a chosen and a rejected conversation, their ratings and models. KTO
(arXiv 2402.01306) learns from unpaired examples ``(prompt, completion, label)``, so each
pair yields its chosen completion (``label=True``) and its rejected one (``label=False``).

Use the builder class directly (``datasets`` 4.0 and later no longer run loading scripts)::

    from ultrafeedback_kto import UltraFeedbackKTO

    builder = UltraFeedbackKTO(config_name="default", data_files="upstream.parquet")
    builder.download_and_prepare()
    dataset = builder.as_dataset()                       # DatasetDict: train, test
    stream = builder.as_streaming_dataset(split="train")  # same rows, same order

This file is self-contained (stdlib, ``datasets``, ``pyarrow``) so that it can be copied
alone next to a training script. Its parts, top to bottom: the conversion of one pair
(`pair_to_examples`, the reference), the same for a batch in Arrow (`convert_batch`), the
split and row order (`split_of`, `arrange`), reading the upstream files, and the builder.
"""

from __future__ import annotations

import ctypes
import dataclasses
import functools
import hashlib
import json
import math
import os
import queue
import random
import sys
import tempfile
import threading
from collections import Counter
from collections.abc import Iterator, Sequence
from typing import Any, Literal

import datasets
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

logger = datasets.logging.get_logger(__name__)

UPSTREAM_REPO = "argilla/ultrafeedback-binarized-preferences-cleaned"
UPSTREAM_FILES = "data/train-*.parquet"

CITATION = """\
@article{ethayarajh2024kto,
  title   = {KTO: Model Alignment as Prospect Theoretic Optimization},
  author  = {Ethayarajh, Kawin and Xu, Winnie and Muennighoff, Niklas and Jurafsky, Dan and Kiela, Douwe},
  journal = {arXiv preprint arXiv:2402.01306},
  year    = {2024}
}
@misc{cui2023ultrafeedback,
  title  = {UltraFeedback: Boosting Language Models with High-quality Feedback},
  author = {Cui, Ganqu and Yuan, Lifan and Ding, Ning and Yao, Guanming and Zhu, Wei and Ni, Yuan and Xie, Guotong and Liu, Zhiyuan and Sun, Maosong},
  year   = {2023},
  eprint = {2310.01377},
  archivePrefix = {arXiv}
}
@misc{argilla2023ultrafeedbackcleaned,
  title  = {UltraFeedback Binarized Preferences Cleaned},
  author = {Alvaro Bartolome and Gabriel Martin and Daniel Vila},
  year   = {2023},
  howpublished = {https://huggingface.co/datasets/argilla/ultrafeedback-binarized-preferences-cleaned}
}
"""

_DESCRIPTION = """\
UltraFeedback preference pairs (argilla/ultrafeedback-binarized-preferences-cleaned)
unpaired for KTO: each pair gives its chosen completion as a desirable example
(label=True) and its rejected completion as an undesirable one (label=False).
Rows are ordered for TRL's KTO trainer, which reads them in file order.
"""

_HOMEPAGE = f"https://huggingface.co/datasets/{UPSTREAM_REPO}"

# ---------------------------------------------------------------------------------------
# The upstream schema, and the examples built from it
# ---------------------------------------------------------------------------------------

#: Upstream columns, in upstream order, with the Arrow type kinds they may have.
UPSTREAM_COLUMNS = {
    "source": "string",
    "prompt": "string",
    "chosen": "messages",
    "chosen-rating": "number",
    "chosen-model": "string",
    "rejected": "messages",
    "rejected-rating": "number",
    "rejected-model": "string",
}

_MESSAGE = {"content": datasets.Value("string"), "role": datasets.Value("string")}
_METADATA = {
    "prompt_id": datasets.Value("string"),
    "source": datasets.Value("string"),
    "model": datasets.Value("string"),
    "average_rating": datasets.Value("float64"),
}

FEATURES = {
    "standard": datasets.Features(
        {
            "prompt": datasets.Value("string"),
            "completion": datasets.Value("string"),
            "label": datasets.Value("bool"),
            **_METADATA,
        }
    ),
    # The list-of-dict syntax means a list of messages in every `datasets` release
    # (`datasets.List` only exists from 4.0 on; 3.6 must keep working).
    "conversational": datasets.Features(
        {
            "prompt": [_MESSAGE],
            "completion": [_MESSAGE],
            "label": datasets.Value("bool"),
            **_METADATA,
        }
    ),
}


class BadPair(ValueError):
    """A pair that cannot become two examples; ``reason`` names the problem."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


class DroppedPair(Exception):
    """A sound pair that the options leave out (rating margin, missing rating)."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


class UpstreamError(ValueError):
    """The source as a whole is unusable: raised before any row is written."""


# Reasons, worded once: they key the warning summary and the card's drop statistics.
EMPTY_PROMPT = "empty or missing prompt"
EMPTY_COMPLETION = "empty or missing completion"
MALFORMED_MESSAGE = "malformed message (not a {content, role} pair of strings)"
NO_FINAL_ASSISTANT = "conversation does not end with an assistant turn"
TURNS_DIFFER = "chosen and rejected differ before the last turn"
PROMPT_MISMATCH = "prompt differs from the first user turn"
REJECTED_ABOVE_CHOSEN = "rejected rated above chosen"
MALFORMED_VALUE = "malformed value (a rating that is not a number, or a source or model that is not text)"
SMALL_MARGIN = "rating margin below min_rating_margin"
MISSING_RATING = "missing rating"


def render_prompt(turns: Sequence[dict]) -> str:
    """The standard-format prompt for the turns before the final assistant message.

    A single user turn is its own text, exactly as TRL's ``unpair_preference_dataset``
    keeps it. Several turns (multi-turn pairs) are joined as a transcript, one
    ``"{role}: {content}"`` block per turn, blocks separated by a blank line.
    """
    if len(turns) == 1:
        return turns[0]["content"]
    return "\n\n".join(f"{turn['role']}: {turn['content']}" for turn in turns)


def prompt_id(prompt_text: str) -> str:
    """Hex sha256 of the standard-format prompt text; equal prompts share an id."""
    return hashlib.sha256(prompt_text.encode("utf-8")).hexdigest()


def _messages(value: Any) -> list[dict]:
    if not value:
        raise BadPair(EMPTY_COMPLETION)
    messages = []
    for message in value:
        if not isinstance(message, dict):
            raise BadPair(MALFORMED_MESSAGE)
        content, role = message.get("content"), message.get("role")
        if not isinstance(role, str) or (content is not None and not isinstance(content, str)):
            raise BadPair(MALFORMED_MESSAGE)
        messages.append({"content": content, "role": role})
    if messages[-1]["role"] != "assistant":
        raise BadPair(NO_FINAL_ASSISTANT)
    if not (messages[-1]["content"] or "").strip():
        raise BadPair(EMPTY_COMPLETION)
    if any(message["content"] is None for message in messages[:-1]):
        raise BadPair(MALFORMED_MESSAGE)
    return messages


def _rating(value: Any) -> float | None:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise BadPair(MALFORMED_VALUE)
    return float(value)


def pair_to_examples(
    pair: dict,
    *,
    format: Literal["standard", "conversational"] = "standard",
    label_rule: Literal["pairwise", "absolute"] = "pairwise",
    desirable_threshold: float = 4.0,
    min_rating_margin: float | None = None,
) -> tuple[dict, dict]:
    """One upstream pair in, its two KTO examples out: (from chosen, from rejected).

    Raises `BadPair` for a pair that is malformed and `DroppedPair` for a sound pair that
    ``label_rule`` / ``min_rating_margin`` leave out. See `UltraFeedbackKTOConfig` for
    what the options mean.
    """
    prompt = pair.get("prompt")
    if not isinstance(prompt, str) or not prompt.strip():
        raise BadPair(EMPTY_PROMPT)
    chosen, rejected = _messages(pair.get("chosen")), _messages(pair.get("rejected"))
    turns = chosen[:-1]
    if turns != rejected[:-1]:
        raise BadPair(TURNS_DIFFER)
    if not turns or turns[0]["role"] != "user" or turns[0]["content"] != prompt:
        raise BadPair(PROMPT_MISMATCH)

    if any(not isinstance(pair.get(key), (str, type(None))) for key in ("source", "chosen-model", "rejected-model")):
        raise BadPair(MALFORMED_VALUE)
    chosen_rating, rejected_rating = _rating(pair.get("chosen-rating")), _rating(pair.get("rejected-rating"))
    if chosen_rating is not None and rejected_rating is not None and rejected_rating > chosen_rating:
        raise BadPair(REJECTED_ABOVE_CHOSEN)
    if min_rating_margin is not None:
        if chosen_rating is None or rejected_rating is None:
            raise DroppedPair(MISSING_RATING)
        if chosen_rating - rejected_rating < min_rating_margin:
            raise DroppedPair(SMALL_MARGIN)
    if label_rule == "absolute":
        if chosen_rating is None or rejected_rating is None:
            raise DroppedPair(MISSING_RATING)
        labels = (chosen_rating >= desirable_threshold, rejected_rating >= desirable_threshold)
    else:
        labels = (True, False)

    prompt_text = render_prompt(turns)
    shared = {"prompt_id": prompt_id(prompt_text), "source": pair.get("source")}
    if format == "conversational":
        prompt_value: Any = turns
        completions: tuple[Any, Any] = ([chosen[-1]], [rejected[-1]])
    else:
        prompt_value = prompt_text
        completions = (chosen[-1]["content"], rejected[-1]["content"])
    return tuple(  # type: ignore[return-value]
        {
            "prompt": prompt_value,
            "completion": completion,
            "label": label,
            **shared,
            "model": pair.get(f"{side}-model"),
            "average_rating": rating,
        }
        for side, completion, label, rating in zip(
            ("chosen", "rejected"), completions, labels, (chosen_rating, rejected_rating), strict=False
        )
    )


# ---------------------------------------------------------------------------------------
# The conversion of a batch of pairs, in Arrow
# ---------------------------------------------------------------------------------------

#: Every character Python's ``str.strip`` removes (``str.isspace``), so that the Arrow fast
#: path calls a text blank exactly when `pair_to_examples` does.
PYTHON_WHITESPACE = (
    "\t\n\x0b\x0c\r\x1c\x1d\x1e\x1f \x85\xa0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006"
    "\u2007\u2008\u2009\u200a\u2028\u2029\u202f\u205f\u3000"
)
_HAS_TEXT = "[^" + "".join(f"\\x{{{ord(char):x}}}" for char in PYTHON_WHITESPACE) + "]"

#: The upstream schema, for turning JSON Lines rows into Arrow.
UPSTREAM_SCHEMA = pa.schema(
    [
        ("source", pa.string()),
        ("prompt", pa.string()),
        ("chosen", pa.list_(pa.struct([("content", pa.string()), ("role", pa.string())]))),
        ("chosen-rating", pa.float64()),
        ("chosen-model", pa.string()),
        ("rejected", pa.list_(pa.struct([("content", pa.string()), ("role", pa.string())]))),
        ("rejected-rating", pa.float64()),
        ("rejected-model", pa.string()),
    ]
)


@dataclasses.dataclass
class ConvertedBatch:
    """The examples of a batch of pairs and the pairs left out of it.

    ``examples`` has the config's columns plus ``_row``, the index in the batch of the pair
    each example comes from, and ``_side`` (0 chosen, 1 rejected), in no set order:
    `in_pair_order` gives the order of `pair_to_examples`, and callers that reorder anyway
    (the shuffle) sort once, together with their own keys. ``left_out`` holds
    ``(row, kind, reason)`` in row order, kind ``"bad"`` (a `BadPair`) or ``"dropped"``
    (a `DroppedPair`).
    """

    examples: pa.Table
    left_out: list[tuple[int, str, str]]

    def in_pair_order(self) -> pa.Table:
        """The examples pair by pair, chosen then rejected, without ``_side``."""
        order = pc.sort_indices(self.examples, [("_row", "ascending"), ("_side", "ascending")])
        return self.examples.take(order).drop_columns(["_side"])


def _has_text(array) -> pa.Array:
    return pc.fill_null(pc.match_substring_regex(array, _HAS_TEXT), False)


def _output_schema(format: str) -> pa.Schema:
    return FEATURES[format].arrow_schema.append(pa.field("_row", pa.int64())).append(pa.field("_side", pa.int8()))


def convert_batch(
    batch: pa.Table | list[dict | None],
    *,
    format: Literal["standard", "conversational"] = "standard",
    label_rule: Literal["pairwise", "absolute"] = "pairwise",
    desirable_threshold: float = 4.0,
    min_rating_margin: float | None = None,
    prompt_ids: list[str] | None = None,
) -> ConvertedBatch:
    """`pair_to_examples` for a whole batch of upstream pairs, with the same result.

    ``prompt_ids``, when the caller has them already, are the `prompt_id` of each pair's
    ``prompt`` column (the prompt id of its examples when the pair has two turns).

    Well-formed two-turn pairs (the whole real upstream) are converted with Arrow compute
    functions; every other pair, and every JSON Lines row, goes through `pair_to_examples`
    itself, which therefore decides every refusal and every unusual case. The fast path
    only ever takes pairs that `pair_to_examples` converts without complaint, so both
    give the same examples (the tests compare them row by row).
    """
    options = {"format": format, "label_rule": label_rule, "desirable_threshold": desirable_threshold,
               "min_rating_margin": min_rating_margin}  # fmt: skip
    schema = _output_schema(format)
    if isinstance(batch, list):
        fast, slow_rows, slow_pairs = None, list(range(len(batch))), batch
    else:
        batch = batch.combine_chunks()
        fast_mask, found = _fast_pairs(batch, label_rule, min_rating_margin)
        fast_rows = pc.indices_nonzero(fast_mask)
        slow_rows = pc.indices_nonzero(pc.invert(fast_mask)).to_pylist()
        slow_pairs = batch.take(slow_rows).to_pylist() if slow_rows else []
        fast = None
        if len(fast_rows):
            if prompt_ids is None:
                prompt_ids = [prompt_id(text) for text in batch.column("prompt").to_pylist()]
            every_row = len(fast_rows) == batch.num_rows

            def of_fast_rows(column):
                return column if every_row else column.take(fast_rows)

            columns = {name: of_fast_rows(column) for name, column in found.items() if not name.startswith("_")}
            columns["prompt_id"] = of_fast_rows(pa.array(prompt_ids, pa.string()))
            for name in ("source", "chosen-model", "rejected-model"):
                columns[name] = of_fast_rows(batch.column(name))
            # The completions are copied once, and only those of fast pairs.
            for name in ("chosen", "rejected"):
                columns[f"{name}-completion"] = found[f"_{name}-contents"].take(of_fast_rows(found[f"_{name}-last"]))
            fast = _fast_examples(columns, fast_rows, schema, **options)

    slow_examples, left_out = [], []
    for row, pair in zip(slow_rows, slow_pairs, strict=True):
        try:
            if pair is None:
                raise BadPair("not a JSON object")
            examples = pair_to_examples(pair, **options)
        except BadPair as problem:
            left_out.append((row, "bad", problem.reason))
            continue
        except DroppedPair as dropped:
            left_out.append((row, "dropped", dropped.reason))
            continue
        for side, example in enumerate(examples):
            slow_examples.append({**example, "_row": row, "_side": side})

    parts = [part for part in (fast, pa.Table.from_pylist(slow_examples, schema=schema)) if part is not None]
    return ConvertedBatch(examples=pa.concat_tables(parts) if len(parts) > 1 else parts[0], left_out=left_out)


def _fast_pairs(batch: pa.Table, label_rule: str, min_rating_margin: float | None) -> tuple[pa.Array, dict]:
    """Which pairs take the fast path, and where their texts and ratings are.

    A fast pair is a well-formed two-turn pair that needs no refusal nor drop. Its messages
    are checked in the flattened message lists, by offset, without copying any text:
    ``_{side}-contents`` holds every message's text and ``_{side}-last`` the index in it of
    each row's assistant message (rows that are not two-turn point at some valid message
    instead, and are masked out). ``prompt`` and the ratings are per row.
    """
    prompt = batch.column("prompt").combine_chunks()
    checks = [_has_text(prompt)]
    found = {"prompt": prompt}
    for name in ("chosen", "rejected"):
        messages = batch.column(name).combine_chunks()
        two_turn = pc.fill_null(pc.equal(pc.list_value_length(messages), 2), False)
        checks.append(two_turn)
        values = messages.values
        if len(values) == 0:
            return pa.array([False] * batch.num_rows), found
        # Offsets index the whole values array, which ignores any slice of the batch.
        starts = messages.offsets.slice(0, len(messages))
        first = pc.if_else(two_turn, starts, 0)
        last = pc.if_else(two_turn, pc.add(starts, 1), 0)
        contents, roles = pc.struct_field(values, "content"), pc.struct_field(values, "role")
        # A null message (not a {content, role} pair) is the slow path's to name.
        valid = pc.is_valid(values)
        checks += [
            pc.equal(roles.take(first), "user"),
            pc.equal(contents.take(first), prompt),
            pc.equal(roles.take(last), "assistant"),
            _has_text(contents).take(last),
            valid.take(first),
            valid.take(last),
        ]
        found[f"_{name}-contents"], found[f"_{name}-last"] = contents, last
    chosen_rating = pc.cast(batch.column("chosen-rating"), pa.float64()).combine_chunks()
    rejected_rating = pc.cast(batch.column("rejected-rating"), pa.float64()).combine_chunks()
    found["chosen-rating"], found["rejected-rating"] = chosen_rating, rejected_rating
    both_rated = pc.and_(pc.is_valid(chosen_rating), pc.is_valid(rejected_rating))
    # NaN, a rejected rating above the chosen one, and the options' drops: the slow path.
    checks.append(pc.invert(pc.or_(pc.is_nan(chosen_rating), pc.is_nan(rejected_rating))))
    checks.append(pc.invert(pc.and_(both_rated, pc.greater(rejected_rating, chosen_rating))))
    if label_rule == "absolute" or min_rating_margin is not None:
        checks.append(both_rated)
    if min_rating_margin is not None:
        checks.append(pc.greater_equal(pc.subtract(chosen_rating, rejected_rating), min_rating_margin))
    fast = pc.fill_null(checks[0], False)
    for check in checks[1:]:
        fast = pc.and_(fast, pc.fill_null(check, False))
    return fast, found


def _fast_examples(columns: dict, rows: pa.Array, schema: pa.Schema, *, format, label_rule,
                   desirable_threshold, min_rating_margin) -> pa.Table:  # fmt: skip
    """The examples of fast pairs, chosen side first, from their columns (see `_fast_pairs`)."""
    count = len(rows)
    # Both sides hold the very same prompt arrays, which the shuffle then copies only once.
    prompt_value = _one_message_lists(columns["prompt"], "user") if format == "conversational" else columns["prompt"]
    sides = []
    for side, name in enumerate(("chosen", "rejected")):
        completion, rating = columns[f"{name}-completion"], columns[f"{name}-rating"]
        if label_rule == "absolute":
            label = pc.greater_equal(rating, desirable_threshold)
        else:
            label = pa.array([side == 0] * count, pa.bool_())
        if format == "conversational":
            completion = _one_message_lists(completion, "assistant")
        values = [prompt_value, completion, label, columns["prompt_id"], columns["source"], columns[f"{name}-model"],
                  rating, rows, pa.array([side] * count, pa.int8())]  # fmt: skip
        sides.append(
            pa.Table.from_arrays([_cast(v, f.type) for v, f in zip(values, schema, strict=True)], schema=schema)
        )
    return pa.concat_tables(sides)


def standard_from_conversational(table: pa.Table) -> pa.Table:
    """The ``default`` config's rows from the ``conversational`` config's, same order.

    ``prompt`` becomes `render_prompt` of its messages (a single turn is its own text) and
    ``completion`` the one message's text; the other columns are kept as they are. The
    same rows as building ``default`` from the upstream, without a second pass over it.
    """
    prompts = table.column("prompt").combine_chunks()
    first = pc.struct_field(pc.list_element(prompts, 0), "content")
    several = pc.greater(pc.list_value_length(prompts), 1)
    if pc.any(several).as_py():
        rendered = [render_prompt(turns) for turns in prompts.filter(several).to_pylist()]
        first = pc.replace_with_mask(first, several, pa.array(rendered, pa.string()))
    completion = pc.struct_field(pc.list_element(table.column("completion").combine_chunks(), 0), "content")
    columns = {**{name: table.column(name) for name in table.column_names}, "prompt": first, "completion": completion}
    schema = FEATURES["standard"].arrow_schema
    return pa.table([_cast(columns[field.name], field.type) for field in schema], schema=schema)


def _one_message_lists(content, role: str) -> pa.Array:
    content = pc.cast(content, pa.string())
    if isinstance(content, pa.ChunkedArray):
        content = content.combine_chunks()
    roles = pa.array([role] * len(content), pa.string())
    messages = pa.StructArray.from_arrays([content, roles], names=["content", "role"])
    return pa.ListArray.from_arrays(pa.array(range(len(content) + 1), pa.int32()), messages)


def _cast(column, arrow_type: pa.DataType):
    return column if column.type == arrow_type else pc.cast(column, arrow_type)


# ---------------------------------------------------------------------------------------
# Splits and row order
# ---------------------------------------------------------------------------------------


def _digest(prompt: str) -> bytes:
    return hashlib.sha256((prompt or "").encode("utf-8")).digest()


def _unit_interval(digest: bytes) -> float:
    return int.from_bytes(digest[:8], "big") / 2**64


def split_of(prompt: str, test_size: float) -> str:
    """``"test"`` or ``"train"``, from a hash of the upstream prompt (the first user turn).

    The hash ignores the seed and everything else, so both halves of a pair, and every pair
    sharing the prompt, land together, and a refreshed upstream never moves a prompt
    across splits. A larger ``test_size`` only adds prompts to ``test``.
    """
    return "test" if _unit_interval(_digest(prompt)) < test_size else "train"


def _shuffle_keys(
    prompts: Sequence, test_size: float, seed: int, num_buckets: dict[str, int]
) -> tuple[list, list, list]:
    """For each upstream prompt: its prompt id, its split, and its shuffle code.

    The prompt id is the hex sha256 of the prompt, and the split is `split_of` from the
    same digest. The code is ``bucket * 2 + (split == "test")``, the bucket being a keyed
    mix of other bits of the digest: all pairs sharing a prompt share a bucket, and the
    seed reshuffles buckets while the split stays. One loop, as it runs once per pair.
    """
    sha256, from_bytes = hashlib.sha256, int.from_bytes
    key = from_bytes(hashlib.sha256(str(seed).encode()).digest()[:8], "big")
    train_buckets, test_buckets = num_buckets["train"], num_buckets["test"]
    prompt_ids, splits, codes = [], [], []
    for prompt in prompts:
        digest = sha256(prompt.encode("utf-8") if isinstance(prompt, str) else b"").digest()
        test = _unit_interval(digest) < test_size  # as split_of
        # Multiplying by an odd constant mixes the keyed bits into the high ones, which pick the bucket.
        mixed = ((from_bytes(digest[8:16], "big") ^ key) * 0x9E3779B97F4A7C15) & 0xFFFFFFFFFFFFFFFF
        prompt_ids.append(digest.hex())
        splits.append("test" if test else "train")
        codes.append(((mixed * (test_buckets if test else train_buckets)) >> 64) * 2 + test)
    return prompt_ids, splits, codes


#: The shortest label run cap used when arranging; longer only when the labels are so
#: unbalanced that runs of 3 cannot hold them.
MIN_LABEL_RUN_CAP = 3


def arrange(prompt_ids: Sequence[str], labels: Sequence[bool], rng: random.Random) -> list[int]:
    """A random order of the rows of one bucket, fit for TRL's KTO trainer.

    Returns a permutation of ``range(len(labels))`` such that, wherever the data allows:
    no two neighbours share a prompt id; no run of one label is longer than
    ``cap = max(3, ceil(majority / minority))``; the first two rows have different
    labels, so that buckets laid end to end never join two runs into one longer than
    ``cap + 1`` (at most 7 while each label is at least 1/7 of every bucket, which keeps
    both labels in every 8 consecutive rows).

    The label sequence is drawn first, each step choosing a label with probability
    proportional to what is left of it among the labels that keep the rest arrangeable;
    rows are then dealt from each label's shuffled pool, and the rare neighbours that
    still share a prompt are separated by swapping rows of the same label, which leaves
    the label sequence untouched.
    """
    pools = {True: [], False: []}
    for index, label in enumerate(labels):
        pools[bool(label)].append(index)
    for pool in pools.values():
        rng.shuffle(pool)
    majority, minority = max(map(len, pools.values())), min(map(len, pools.values()))
    # The first two rows differ, so the majority fits ``minority`` gaps of ``cap`` (not one more).
    cap = max(MIN_LABEL_RUN_CAP, math.ceil(majority / max(minority, 1)))

    sequence = _label_sequence(len(pools[True]), len(pools[False]), cap, rng)
    true_rows, false_rows = iter(pools[True]), iter(pools[False])
    order = [next(true_rows) if label else next(false_rows) for label in sequence]
    _separate_equal_prompts(order, prompt_ids, labels, rng)
    return order


def _label_sequence(true_left: int, false_left: int, cap: int, rng: random.Random) -> list[bool]:
    """Labels for every position, each drawn in proportion to what is left of it.

    A label is allowed when it does not extend a run past ``cap`` (nor repeats the first
    label in the second position) and leaves the rest arrangeable: the other label's rows
    still fit in runs of ``cap`` between this label's, and this label's between the other's.
    When neither is allowed, those within the cap are. One inlined loop: it runs once per
    row of the split.
    """
    random_ = rng.random
    sequence: list[bool] = []
    append = sequence.append
    run_label, run_length = None, 0
    while true_left and false_left:
        if run_label is None or (run_length < cap and len(sequence) != 1):
            true_within = false_within = True
        else:
            true_within, false_within = run_label is False, run_label is True
        true_run = run_length + 1 if run_label is True else 1
        false_run = run_length + 1 if run_label is False else 1
        true_ok = true_within and -(-false_left // cap) <= true_left <= 1 + (cap - true_run) + cap * false_left
        false_ok = false_within and -(-true_left // cap) <= false_left <= 1 + (cap - false_run) + cap * true_left
        if true_ok and false_ok:
            label = random_() * (true_left + false_left) < true_left
        elif true_ok or false_ok:
            label = true_ok
        elif true_within != false_within:
            # Nothing keeps the rest arrangeable: spend the label with more rows left.
            label = true_within
        else:
            label = true_left >= false_left
        append(label)
        if label:
            true_left -= 1
        else:
            false_left -= 1
        if label is run_label:
            run_length += 1
        else:
            run_label, run_length = label, 1
    return sequence + [True] * true_left + [False] * false_left


def _separate_equal_prompts(order: list[int], prompt_ids, labels, rng: random.Random) -> None:
    def fits(index: int, position: int, skip: int) -> bool:
        return all(
            prompt_ids[order[near]] != prompt_ids[index]
            for near in (position - 1, position + 1)
            if 0 <= near < len(order) and near != skip
        )

    in_order = [prompt_ids[index] for index in order]
    conflicts = [position for position in range(1, len(order)) if in_order[position] == in_order[position - 1]]
    for position in conflicts:
        if prompt_ids[order[position]] != prompt_ids[order[position - 1]]:
            continue  # an earlier swap already separated them
        here = order[position]
        start = rng.randrange(len(order))
        for offset in range(len(order)):
            other = (start + offset) % len(order)
            there = order[other]
            if (
                abs(other - position) > 1
                and labels[there] == labels[here]
                and fits(there, position, other)
                and fits(here, other, position)
            ):
                order[position], order[other] = there, here
                break


def order_problems(prompt_ids: Sequence[str], labels: Sequence[bool], window: int = 8) -> list[str]:
    """What is wrong with a split's row order for TRL's KTO trainer (empty when nothing).

    Checks that no two consecutive rows share a prompt id and, when each label is at least
    a quarter of the rows, that every ``window`` consecutive rows hold both labels.
    """
    problems = []
    same_prompt = [i for i in range(1, len(prompt_ids)) if prompt_ids[i] == prompt_ids[i - 1]]
    if same_prompt:
        problems.append(
            f"{len(same_prompt)} rows share their prompt with the row before them (first at row {same_prompt[0]})"
        )
    true_count = sum(map(bool, labels))
    if len(labels) and min(true_count, len(labels) - true_count) >= len(labels) / 4:
        run, longest, longest_end = 0, 0, 0
        for i, label in enumerate(labels):
            run = run + 1 if i and label == labels[i - 1] else 1
            if run > longest:
                longest, longest_end = run, i
        if longest >= window:
            problems.append(
                f"a run of {longest} rows with label={labels[longest_end]} ends at row {longest_end}; "
                f"every {window} consecutive rows should hold both labels"
            )
    return problems


# ---------------------------------------------------------------------------------------
# Reading the upstream files
# ---------------------------------------------------------------------------------------

_JSON_SUFFIXES = (".jsonl", ".json", ".ndjson")
_BATCH_ROWS = 2_000


def _file_format(name: str) -> str:
    lowered = name.lower().split("?")[0]
    if lowered.endswith(".parquet"):
        return "parquet"
    if lowered.endswith(_JSON_SUFFIXES):
        return "json"
    raise UpstreamError(f"{name}: not a parquet or JSON Lines file (expected .parquet or .jsonl)")


def _type_kind(arrow_type: pa.DataType) -> str:
    if pa.types.is_null(arrow_type):
        return "null"
    if pa.types.is_string(arrow_type) or pa.types.is_large_string(arrow_type):
        return "string"
    if pa.types.is_floating(arrow_type) or pa.types.is_integer(arrow_type):
        return "number"
    if pa.types.is_list(arrow_type) or pa.types.is_large_list(arrow_type):
        item = arrow_type.value_type
        if pa.types.is_null(item):
            return "messages"
        if pa.types.is_struct(item) and {item.field(i).name for i in range(item.num_fields)} >= {"content", "role"}:
            return "messages"
    return str(arrow_type)


def _json_kind(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, str):
        return "string"
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return "number"
    if isinstance(value, list) and all(isinstance(m, dict) and {"content", "role"} <= m.keys() for m in value):
        return "messages"
    return type(value).__name__


def _json_object_kinds(line: bytes) -> dict[str, str] | None:
    try:
        row = json.loads(line)
    except ValueError:
        return None
    return {key: _json_kind(value) for key, value in row.items()} if isinstance(row, dict) else None


def _check_columns(name: str, kinds: dict[str, str]) -> None:
    missing = [column for column in UPSTREAM_COLUMNS if column not in kinds]
    if missing:
        raise UpstreamError(f"{name}: missing upstream column(s) {', '.join(missing)}")
    for column, expected in UPSTREAM_COLUMNS.items():
        if kinds[column] not in (expected, "null"):
            described = {"messages": "a list of {content, role} messages", "number": "a number"}.get(expected, expected)
            raise UpstreamError(f"{name}: column {column!r} should be {described}, found {kinds[column]}")


def inspect_source(name: str, path: str) -> int:
    """Check one upstream file as a whole and return its number of rows.

    ``name`` is how the file is named in messages, ``path`` where it is read from (they
    differ once ``datasets`` has downloaded a remote file into its cache).
    Raises `UpstreamError` for a missing, empty, unreadable or truncated file, missing
    upstream columns or a column of the wrong type.
    """
    file_format = _file_format(name)
    try:
        with open(path, "rb") as f:
            if file_format == "parquet":
                metadata = pq.ParquetFile(f, pre_buffer=False).metadata
                kinds = {field.name: _type_kind(field.type) for field in metadata.schema.to_arrow_schema()}
                num_rows = metadata.num_rows
            else:
                # Column kinds from the first line that is a JSON object: a malformed line is a
                # bad row for the policy, wherever it stands.
                num_rows, kinds = 0, None
                for line in f:
                    if line.strip():
                        num_rows += 1
                        if kinds is None:
                            kinds = _json_object_kinds(line)
                if num_rows and kinds is None:
                    raise UpstreamError(f"{name}: no line is a JSON object")
                kinds = kinds or {}
    except FileNotFoundError:
        raise UpstreamError(f"{name}: file not found") from None
    except (pa.ArrowException, OSError) as error:
        raise UpstreamError(f"{name}: unreadable {file_format} file ({_one_line(error)})") from None
    if num_rows == 0:
        raise UpstreamError(f"{name}: empty file (no rows)")
    _check_columns(name, kinds)
    return num_rows


def _one_line(error: BaseException) -> str:
    return " ".join(str(error).split()) or type(error).__name__


def read_batches(name: str, path: str) -> Iterator[pa.Table | list[dict | None]]:
    """Yield an upstream file's pairs in batches, in file order.

    Parquet gives Arrow tables. JSON Lines gives lists of dicts (a line that is not a JSON
    object becomes ``None``, a bad pair for the policy): it is the small, hand-made case,
    and `convert_batch` checks each of its rows in Python.
    """
    file_format = _file_format(name)
    try:
        with open(path, "rb") as f:
            if file_format == "parquet":
                columns = list(UPSTREAM_COLUMNS)
                # Without pre-buffering, through a small buffer: the reader then holds pages,
                # not whole row groups (which may be hundreds of MB), and is faster too. One
                # decoding thread: `_read_ahead` already runs it beside the conversion, and
                # Arrow's own threads added ~30 MB of memory here and no speed.
                parquet = pq.ParquetFile(f, pre_buffer=False, buffer_size=1 << 20)
                for batch in parquet.iter_batches(batch_size=_BATCH_ROWS, columns=columns, use_threads=False):
                    yield pa.Table.from_batches([batch])
                return
            rows: list = []
            for line in f:
                if not line.strip():
                    continue
                try:
                    row = json.loads(line)
                except ValueError:
                    row = None
                rows.append(row if isinstance(row, dict) else None)
                if len(rows) == _BATCH_ROWS:
                    yield rows
                    rows = []
            if rows:
                yield rows
    except (pa.ArrowException, OSError) as error:
        raise UpstreamError(f"{name}: unreadable {file_format} file ({_one_line(error)})") from None


def _read_ahead(batches: Iterator) -> Iterator:
    """The same batches, the next one decoded in a thread while the caller works on this one.

    Parquet decoding releases the GIL, so on two cores it overlaps the conversion. One batch
    ahead at most: memory grows by one batch, not more. When the caller stops early (at
    ``max_pairs``, or on an error) the thread is told to stop and the file is closed.
    """
    ahead: queue.Queue = queue.Queue(maxsize=1)
    stop = threading.Event()
    done = object()

    def hand_over(item) -> bool:
        while not stop.is_set():
            try:
                ahead.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def produce():
        try:
            for batch in batches:
                if not hand_over(batch):
                    return
            hand_over(done)
        except BaseException as error:  # handed to the caller, which raises it
            hand_over(error)
        finally:
            batches.close()

    thread = threading.Thread(target=produce, name="ufkto-read-ahead", daemon=True)
    thread.start()
    try:
        while (item := ahead.get()) is not done:
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        stop.set()
        thread.join()


def _prompts(batch: pa.Table | list[dict | None]) -> list:
    if isinstance(batch, list):
        return [row.get("prompt") if row else None for row in batch]
    return batch.column("prompt").to_pylist()


def _head(batch: pa.Table | list, rows: int) -> pa.Table | list:
    return batch[:rows] if isinstance(batch, list) else batch.slice(0, rows)


# ---------------------------------------------------------------------------------------
# Bad-row policy and report
# ---------------------------------------------------------------------------------------


@dataclasses.dataclass
class DropReport:
    """Pairs left out of one split, by reason, with the first few places of each."""

    split: str
    bad: Counter = dataclasses.field(default_factory=Counter)
    dropped: Counter = dataclasses.field(default_factory=Counter)
    places: dict = dataclasses.field(default_factory=dict)
    pairs_seen: int = 0

    FIRST_PLACES = 5

    def add(self, counter: Counter, reason: str, name: str, row: int) -> None:
        counter[reason] += 1
        if counter[reason] <= self.FIRST_PLACES:
            self.places.setdefault(reason, []).append(f"{name} row {row}")

    def merge(self, other: DropReport) -> None:
        self.bad.update(other.bad)
        self.dropped.update(other.dropped)
        self.pairs_seen += other.pairs_seen
        for reason, places in other.places.items():
            mine = self.places.setdefault(reason, [])
            mine.extend(places[: self.FIRST_PLACES - len(mine)])

    def lines(self) -> list[str]:
        return [
            f"{reason}: {count} pair(s) (first at {'; '.join(self.places[reason])})"
            for counter in (self.bad, self.dropped)
            for reason, count in counter.most_common()
        ]


def _handle_bad_pair(policy: str, report: DropReport | None, reason: str, name: str, row: int) -> None:
    if policy == "error":
        raise BadPair(f"{name}: row {row}: {reason} (on_bad_rows='error'; 'warn' or 'skip' leave such pairs out)")
    report.add(report.bad, reason, name, row)


def _log_report(report: DropReport, policy: str) -> None:
    if report.bad and policy == "warn":
        logger.warning(
            f"Left out {sum(report.bad.values())} bad pair(s) of split {report.split!r}:\n  "
            + "\n  ".join(report.lines()[: len(report.bad)])
        )
    if report.dropped:
        logger.info(
            f"Left out {sum(report.dropped.values())} pair(s) of split {report.split!r} by option:\n  "
            + "\n  ".join(report.lines()[len(report.bad) :])
        )


# ---------------------------------------------------------------------------------------
# The builder
# ---------------------------------------------------------------------------------------


@dataclasses.dataclass
class UltraFeedbackKTOConfig(datasets.BuilderConfig):
    """Options of the UltraFeedback KTO builder.

    Args:
        format (`str`, defaults to ``"standard"``):
            ``"standard"``: ``prompt`` and ``completion`` are strings. ``"conversational"``:
            ``prompt`` is the list of ``{content, role}`` messages before the final assistant
            turn and ``completion`` a list holding that one assistant message, as TRL expects.
            The configs ``default`` and ``conversational`` set it.
        upstream_revision (`str`, defaults to ``"main"``):
            Branch, tag or commit of the upstream Hub repo, used when ``data_files`` is not
            given. Pin a commit for a reproducible build: ``upstream_revision="a1b2c3..."``.
        test_size (`float`, defaults to ``0.05``):
            Fraction of prompts in the ``test`` split, chosen by a stable hash of the prompt
            (see `split_of`); ``0`` gives ``train`` only. ``test_size=0.1``.
        order (`str`, defaults to ``"shuffled"``):
            ``"shuffled"``: the whole upstream shuffled as one, then arranged so that no two
            neighbouring rows share a prompt and every 8 consecutive rows hold both labels
            (see `arrange`). ``"upstream"``: upstream order, chosen then rejected; neighbours
            then share a prompt, which spoils the KL estimate of TRL's KTO trainer.
        seed (`int`, defaults to ``42``):
            Seed of the shuffle. The same seed gives the same order, streaming or not and
            with any ``num_proc``. ``seed=7``.
        label_rule (`str`, defaults to ``"pairwise"``):
            ``"pairwise"``: chosen is desirable, rejected is not. ``"absolute"``: a completion
            is desirable when its own rating is at least ``desirable_threshold`` (the TRL docs
            warn that a chosen completion is not always a good one); pairs with a missing
            rating are left out.
        desirable_threshold (`float`, defaults to ``4.0``):
            With ``label_rule="absolute"``: the lowest rating (1 to 5) that is desirable.
        min_rating_margin (`float`, *optional*):
            Leave out pairs whose chosen rating exceeds the rejected one by less than this
            (and pairs with a missing rating). ``min_rating_margin=1.0``.
        max_pairs (`int`, *optional*):
            Read only the first N upstream pairs, for quick runs. ``max_pairs=1000``.
        on_bad_rows (`str`, defaults to ``"warn"``):
            What to do with a malformed pair (empty prompt or completion, a conversation not
            ending with an assistant turn, chosen and rejected differing before the last turn,
            a prompt differing from the first user turn, rejected rated above chosen).
            ``"warn"``: leave it out and log, at the end of each split, one line per reason
            with its count and first rows; ``"skip"``: leave it out silently; ``"error"``:
            stop at the first one, naming the file, row and reason. Problems with a file as a
            whole (missing, empty, unreadable, missing columns, wrong types) always stop the
            build before any row is written.
        shuffle_bucket_pairs (`int`, defaults to ``8192``):
            The unit of ``order="shuffled"``: pairs are hashed by prompt into
            ``ceil(pairs / shuffle_bucket_pairs)`` buckets per split, and one bucket at a time
            is arranged and written out (about 40 MB at UltraFeedback's text lengths). Each
            bucket is a random draw from the whole upstream. ``shuffle_bucket_pairs=4096``.
        shuffle_memory (`int`, defaults to ``32 * 2**20``):
            Bytes of converted examples the shuffle holds in memory while it reads the
            upstream. Once more are held, all of them are written to a file in
            ``shuffle_dir``, so memory holds at most this plus one bucket being arranged,
            however large the upstream grows. Small on purpose: where measured
            (bench/README.md), writing the examples out took no longer than holding them in
            fresh memory, and holding the whole real upstream (about 235 MiB) cost that much
            more memory. ``shuffle_memory=0`` writes each batch as it comes, in many small
            pieces (slower on large upstreams); builds with ``num_proc`` above 1 do so too, as
            their workers read their buckets from the file. ``shuffle_memory=2**30``.
        shuffle_dir (`str`, *optional*):
            Where examples beyond ``shuffle_memory`` wait during the shuffle; defaults to the
            system temporary folder. On Linux a build frees their space bucket by bucket as it
            writes them out; a stream keeps them until it is dropped, as it may be iterated
            again. ``shuffle_dir="/scratch"``.

    With ``order="shuffled"`` every pair must be read before the first row can be placed, so
    ``as_streaming_dataset`` reads the whole upstream once before it returns (about a second
    at the real size); with ``order="upstream"`` streaming starts at once.

    Example:

    ```python
    >>> builder = UltraFeedbackKTO(config_name="conversational", data_files="upstream.parquet",
    ...                            label_rule="absolute", desirable_threshold=4.5, test_size=0.1)
    ```
    """

    format: Literal["standard", "conversational"] = "standard"
    upstream_revision: str = "main"
    test_size: float = 0.05
    order: Literal["shuffled", "upstream"] = "shuffled"
    seed: int = 42
    label_rule: Literal["pairwise", "absolute"] = "pairwise"
    desirable_threshold: float = 4.0
    min_rating_margin: float | None = None
    max_pairs: int | None = None
    on_bad_rows: Literal["error", "warn", "skip"] = "warn"
    shuffle_bucket_pairs: int = 8_192
    shuffle_memory: int = 32 * 2**20
    shuffle_dir: str | None = None

    def __post_init__(self):
        super().__post_init__()
        self.check_options()

    def check_options(self) -> None:
        """Raise ValueError naming the first option with a value outside its range."""
        choices = {
            "format": ("standard", "conversational"),
            "order": ("shuffled", "upstream"),
            "label_rule": ("pairwise", "absolute"),
            "on_bad_rows": ("error", "warn", "skip"),
        }
        for option, allowed in choices.items():
            if getattr(self, option) not in allowed:
                raise ValueError(f"{option}={getattr(self, option)!r}: expected one of {', '.join(allowed)}")
        if not 0 <= self.test_size < 1:
            raise ValueError(f"test_size={self.test_size!r}: expected a fraction in [0, 1)")
        if self.max_pairs is not None and self.max_pairs < 1:
            raise ValueError(f"max_pairs={self.max_pairs!r}: expected a positive number of pairs")
        if self.shuffle_bucket_pairs < 1:
            raise ValueError(f"shuffle_bucket_pairs={self.shuffle_bucket_pairs!r}: expected a positive number")
        if self.shuffle_memory < 0:
            raise ValueError(f"shuffle_memory={self.shuffle_memory!r}: expected a number of bytes, 0 or more")
        if self.shuffle_dir is not None and not os.path.isdir(self.shuffle_dir):
            raise ValueError(f"shuffle_dir={self.shuffle_dir!r}: no such folder")
        if self.min_rating_margin is not None and self.min_rating_margin < 0:
            raise ValueError(f"min_rating_margin={self.min_rating_margin!r}: expected a non-negative rating gap")


class UltraFeedbackKTO(datasets.ArrowBasedBuilder):
    """UltraFeedback preference pairs unpaired into KTO examples (see the module docstring).

    An `ArrowBasedBuilder`, the kind behind ``datasets``' own parquet and json loaders: it
    hands Arrow tables to the writer. A ``GeneratorBasedBuilder`` encodes and writes one
    example at a time, which alone took 2.15 s for the 121,834 rows of the real upstream,
    against 0.24 s as tables (see bench/README.md).
    """

    BUILDER_CONFIG_CLASS = UltraFeedbackKTOConfig
    VERSION = datasets.Version("1.0.0")
    BUILDER_CONFIGS = [
        UltraFeedbackKTOConfig(
            name="default", version=VERSION, format="standard", description="prompt and completion as strings"
        ),
        UltraFeedbackKTOConfig(
            name="conversational",
            version=VERSION,
            format="conversational",
            description="prompt and completion as message lists",
        ),
    ]
    DEFAULT_CONFIG_NAME = "default"

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        # Options given with a named config are set on a copy of it, past __post_init__.
        self.config.check_options()
        #: Pairs left out, per split. Shuffled builds fill it when the splits are planned, so
        #: it is complete with any num_proc; upstream-order builds fill it as splits are
        #: generated in this process.
        self.drop_reports: dict[str, DropReport] = {}
        # One folder per planning of the splits: a stream keeps reading its own while another
        # is planned; they go when the build ends or with the builder.
        self._spill_folders: list[tempfile.TemporaryDirectory] = []
        self._num_proc: int | None = None  # of the build under way; streams have none
        self._building = False

    def _info(self) -> datasets.DatasetInfo:
        return datasets.DatasetInfo(
            description=_DESCRIPTION,
            citation=CITATION,
            homepage=_HOMEPAGE,
            license="mit",
            features=FEATURES[self.config.format],
        )

    @property
    def _options(self) -> dict:
        config = self.config
        return {"format": config.format, "label_rule": config.label_rule,
                "desirable_threshold": config.desirable_threshold, "min_rating_margin": config.min_rating_margin}  # fmt: skip

    def _split_generators(self, dl_manager) -> list[datasets.SplitGenerator]:
        names = self._source_names(dl_manager)
        paths = dl_manager.download(names)
        # Every file is checked, and counted, before any row is written.
        counts = [inspect_source(name, path) for name, path in zip(names, paths, strict=True)]
        splits = ["train"] + (["test"] if self.config.test_size > 0 else [])
        if self.config.order == "upstream":
            # Read lazily, split by split; shards are files, so num_proc > 1 reads them in
            # parallel and still writes them in order.
            first_rows = [sum(counts[:i]) for i in range(len(counts))]
            shards = {"names": names, "paths": paths, "first_rows": first_rows}
            present = self._splits_of_prompts(names, paths, splits)
            return [
                datasets.SplitGenerator(name=split, gen_kwargs={"split": split, **shards})
                for split in self._splits_with_rows(splits, present)
            ]
        # The shuffle needs every pair first: one pass over the upstream for all splits
        # puts each pair's examples in its bucket on disk. Shards are buckets, each
        # arranged alone, so any num_proc writes the same rows in the same order.
        pairs = min(sum(counts), self.config.max_pairs or math.inf)
        # Buckets per split, from its expected share of the pairs: a test bucket holds as
        # many pairs as a train bucket, enough to arrange.
        share = {"train": 1 - self.config.test_size, "test": self.config.test_size}
        num_buckets = {
            split: max(1, math.ceil(pairs * share[split] / self.config.shuffle_bucket_pairs)) for split in share
        }
        buckets = self._partition(names, paths, num_buckets, splits)
        splits = self._splits_with_rows(splits, {split for split in splits if buckets[split]})
        return [
            datasets.SplitGenerator(
                name=split,
                gen_kwargs={
                    "split": split,
                    "buckets": [bucket for _, bucket in buckets[split]],
                    "bucket_ids": [bucket_id for bucket_id, _ in buckets[split]],
                },
            )  # fmt: skip
            for split in splits
        ]

    def _splits_of_prompts(self, names, paths, splits: list[str]) -> set[str]:
        """The splits some upstream prompt falls in; reading stops once every split is seen."""
        present: set[str] = set()
        for _, _, batch in self._upstream(names, paths):
            present.update(split_of(p if isinstance(p, str) else "", self.config.test_size) for p in _prompts(batch))
            if present >= set(splits):
                break
        return present

    def _splits_with_rows(self, splits: list[str], present: set[str]) -> list[str]:
        """The splits that hold rows; datasets has no empty splits, so the others are left out."""
        if not present:
            left_out = sum(((r.bad + r.dropped) for r in self.drop_reports.values()), Counter())
            reasons = "; ".join(f"{reason}: {count}" for reason, count in left_out.most_common())
            raise UpstreamError(f"no pairs left to build from ({reasons or 'no pairs read'})")
        for split in splits:
            if split not in present:
                logger.warning(f"Split {split!r} has no rows (test_size={self.config.test_size}): it is left out")
        return [split for split in splits if split in present]

    def _source_names(self, dl_manager) -> list[str]:
        if self.config.data_files:
            return [name for files in self.config.data_files.values() for name in files]
        pattern = f"hf://datasets/{UPSTREAM_REPO}@{self.config.upstream_revision}/{UPSTREAM_FILES}"
        return list(
            datasets.data_files.DataFilesList.from_patterns([pattern], download_config=dl_manager.download_config)
        )

    def _upstream(self, names, paths, first_rows=None) -> Iterator[tuple[str, int, pa.Table | list]]:
        """``(file name, upstream row of the batch's first pair, batch)``, up to ``max_pairs``."""
        limit = self.config.max_pairs or math.inf
        row = 0
        for name, path, first_row in zip(names, paths, first_rows or [None] * len(names), strict=True):
            row = row if first_row is None else first_row
            for batch in _read_ahead(read_batches(name, path)):
                if row >= limit:
                    return
                batch = _head(batch, int(min(len(batch), limit - row)))
                yield name, row, batch
                row += len(batch)

    def _left_out(self, reports: dict[str, DropReport], pair_splits: list[str], converted: ConvertedBatch,
                  name: str, row_in_file: int) -> None:  # fmt: skip
        """Count the pairs left out of a batch in their split's report, in upstream order.

        Splits missing from ``reports`` are another generator's to count; with
        ``on_bad_rows="error"`` every split's bad pairs stop the build, so the first bad pair
        of the upstream is the one named, whichever split it belongs to.
        """
        for row, kind, reason in converted.left_out:
            place = row_in_file + row
            report = reports.get(pair_splits[row])
            if kind == "bad" and (report is not None or self.config.on_bad_rows == "error"):
                _handle_bad_pair(self.config.on_bad_rows, report, reason, name, place)
            elif report is not None:
                report.add(report.dropped, reason, name, place)

    def _partition(self, names, paths, num_buckets: dict[str, int], splits: list[str]) -> dict[str, list]:
        """Convert every pair and file its examples by split and bucket.

        Returns, per split, ``(bucket, _Bucket)`` in bucket order.
        """
        config = self.config
        reports = {split: DropReport(split=split) for split in splits}
        # A build reads each bucket once; a stream may be iterated again.
        shuffle = _Shuffle(FEATURES[config.format].arrow_schema, self._shuffle_memory(), self._spill_folder,
                           read_once=self._building)  # fmt: skip
        file_starts = {}
        for name, first_row, batch in self._upstream(names, paths):
            prompt_ids, pair_splits, codes = _shuffle_keys(_prompts(batch), config.test_size, config.seed, num_buckets)
            file_starts.setdefault(name, first_row)
            converted = convert_batch(batch, **self._options, prompt_ids=prompt_ids)
            for split in splits:
                reports[split].pairs_seen += pair_splits.count(split)
            self._left_out(reports, pair_splits, converted, name, first_row - file_starts[name])
            examples = converted.examples
            shuffle.add(
                pc.take(pa.array(codes, pa.int64()), examples.column("_row")), examples.drop_columns(["_row", "_side"])
            )
        buckets = shuffle.close()
        for split, report in reports.items():
            _log_report(report, config.on_bad_rows)
            self.drop_reports[split] = report
        return {
            split: [(code // 2, bucket) for code, bucket in buckets.items() if code % 2 == (split == "test")]
            for split in splits
        }

    def _shuffle_memory(self) -> int:
        # Worker processes get their buckets pickled: from disk, not through a pipe.
        return 0 if (self._num_proc or 1) > 1 else self.config.shuffle_memory

    def _spill_folder(self) -> str:
        folder = tempfile.TemporaryDirectory(prefix="ufkto-shuffle-", dir=self.config.shuffle_dir)
        self._spill_folders.append(folder)
        return folder.name

    def _generate_tables(self, split, buckets=None, bucket_ids=None, names=None, paths=None, first_rows=None):
        tables = (self._tables_in_upstream_order(split, names, paths, first_rows) if buckets is None
                  else self._tables_of_buckets(split, buckets, bucket_ids))  # fmt: skip
        yield from tables

    def _tables_of_buckets(self, split, buckets, bucket_ids):
        for bucket_id, bucket in zip(bucket_ids, buckets, strict=True):
            examples = bucket.read()
            rng = random.Random(f"{self.config.seed}/{split}/{bucket_id}")
            order = arrange(examples.column("prompt_id").to_pylist(), examples.column("label").to_pylist(), rng)
            for start in range(0, len(order), _TABLE_ROWS):
                yield _key(bucket_id, start), examples.take(pa.array(order[start : start + _TABLE_ROWS], pa.int64()))
            del examples  # and with it the last reference to the spill's pages
            bucket.release()

    def _tables_in_upstream_order(self, split, names, paths, first_rows):
        report = DropReport(split=split)
        file_starts = dict(zip(names, first_rows, strict=True))
        for batch_index, (name, first_row, batch) in enumerate(self._upstream(names, paths, first_rows)):
            pair_splits = [split_of(prompt if isinstance(prompt, str) else "", self.config.test_size)
                           for prompt in _prompts(batch)]  # fmt: skip
            rows = [i for i, pair_split in enumerate(pair_splits) if pair_split == split]
            report.pairs_seen += len(rows)
            converted = convert_batch(batch, **self._options)
            self._left_out({split: report}, pair_splits, converted, name, first_row - file_starts[name])
            examples = converted.in_pair_order()
            keep = pc.is_in(examples.column("_row"), pa.array(rows, pa.int64()))
            yield _key(names.index(name), batch_index), examples.filter(keep).drop_columns(["_row"])
        _log_report(report, self.config.on_bad_rows)
        self.drop_reports.setdefault(split, DropReport(split=split)).merge(report)

    def _get_examples_iterable_for_split(self, split_generator):
        # Streaming. datasets re-slices an Arrow-based iterable into one-row tables and turns
        # each into a dict (about 30 us a row: 34,000 examples/s at best). Our tables already
        # have the declared features, so rows are made in bulk and marked as typed.
        return _TypedExamplesIterable(self._generate_rows, split_generator.gen_kwargs)

    def _generate_rows(self, **gen_kwargs) -> Iterator[tuple[str, dict]]:
        for key, table in self._generate_tables(**gen_kwargs):
            for index, row in enumerate(table.to_pylist()):
                yield f"{key}/{index}", row

    def _download_and_prepare(self, dl_manager, verification_mode, **prepare_splits_kwargs):
        before = len(self._spill_folders)
        self._num_proc = prepare_splits_kwargs.get("num_proc")
        self._building = True
        try:
            super()._download_and_prepare(dl_manager, verification_mode, **prepare_splits_kwargs)
        finally:
            self._num_proc, self._building = None, False
            # This build's spill is only needed while its splits are written.
            for folder in self._spill_folders[before:]:
                folder.cleanup()
            del self._spill_folders[before:]


_TABLE_ROWS = 512  # rows per table handed to datasets: its shards can only end between tables


class _TypedExamplesIterable(datasets.iterable_dataset.ExamplesIterable):
    """Rows that already have the declared features: datasets need not encode them again."""

    @property
    def is_typed(self) -> bool:
        return True


def _key(shard: int, batch: int):
    """The key ``datasets`` expects with a table: a `Key` from 4.0 on, any string before."""
    key_class = getattr(datasets.builder, "Key", None)
    return key_class(shard, batch) if key_class else f"{shard}_{batch}"


class _Shuffle:
    """The partition pass's examples, grouped by code (split and bucket) as they come.

    Each record batch of examples is grouped by code with one take and held in memory, by
    slices. Once more than ``memory_limit`` bytes are held, all of them are written out, one
    record batch per code (the larger, the cheaper to write and gather back), to a single
    Arrow IPC file in ``folder()``, made only when first needed. A bucket is then its
    spilled record batches followed by its held slices: the order its examples came in,
    whatever was spilled, so every memory limit gives the same rows in the same order.
    """

    def __init__(self, schema: pa.Schema, memory_limit: int, folder, read_once: bool = False):
        self.schema = schema
        self.memory_limit = memory_limit
        self.folder = folder
        self.read_once = read_once
        self.path: str | None = None
        self.sink = None
        self.writer = None
        self.written = 0  # record batches in the spill file
        #: Per code, its slices held in memory, in the order they came.
        self.held: dict[int, list[pa.RecordBatch]] = {}
        self.held_bytes = 0
        #: Per code, its record batches in the spill file and the bytes each takes there.
        self.spilled: dict[int, list[int]] = {}
        self.spans: dict[int, list[tuple[int, int]]] = {}

    def add(self, codes: pa.Array, examples: pa.Table) -> None:
        """File ``examples``, the example in row ``i`` under ``codes[i]``."""
        start, previous = 0, None
        for batch in examples.to_batches():
            batch_codes = codes.slice(start, batch.num_rows)
            start += batch.num_rows
            if not batch.num_rows:
                continue
            order = pc.sort_indices(batch_codes)  # stable: arrival order within a code
            columns = []
            for index, column in enumerate(batch.columns):
                # The two sides of a pair share their prompt arrays: they are copied once.
                if previous and _same_array(column, previous[0][index]) and order.equals(previous[1]):
                    columns.append(previous[2][index])
                else:
                    columns.append(column.take(order))
                    self.held_bytes += columns[-1].nbytes
            previous = (batch.columns, order, columns)
            grouped = pa.RecordBatch.from_arrays(columns, schema=self.schema)
            offset = 0
            for group in sorted(pc.value_counts(batch_codes).to_pylist(), key=lambda group: group["values"]):
                self.held.setdefault(group["values"], []).append(grouped.slice(offset, group["counts"]))
                offset += group["counts"]
        if self.held_bytes > self.memory_limit:
            self._spill()

    def _spill(self) -> None:
        if self.writer is None:
            self.path = os.path.join(self.folder(), "examples.arrow")
            self.sink = pa.OSFile(self.path, "wb")
            self.writer = pa.ipc.new_file(self.sink, self.schema)
            # The writer writes the file's header with the first batch: an empty one goes
            # first, so that the header shares no bytes with a bucket's, which are punched.
            self.writer.write_batch(pa.record_batch([pa.array([], field.type) for field in self.schema], self.schema))
            self.written = 1
        # All of it: the codes of a batch share its buffers, so only writing every code's
        # slices gives the memory back.
        for code, pieces in sorted(self.held.items()):
            start = self.sink.tell()
            self.writer.write_table(pa.Table.from_batches(pieces, self.schema).combine_chunks())
            self.spans.setdefault(code, []).append((start, self.sink.tell()))
            self.spilled.setdefault(code, []).append(self.written)
            self.written += 1
        self.held, self.held_bytes = {}, 0

    def close(self) -> dict[int, _Bucket]:
        """Finish the spill file; return every code's bucket."""
        if self.writer is not None:
            self.writer.close()
            self.sink.close()
        return {
            code: _Bucket(
                self.path,
                self.spilled.get(code, []),
                self.held.get(code, []),
                self.schema,
                self.spans.get(code, []) if self.read_once else [],
            )  # fmt: skip
            for code in sorted(set(self.held) | set(self.spilled))
            if self.held.get(code) or self.spilled.get(code)
        }


def _same_array(a: pa.Array, b: pa.Array) -> bool:
    """Whether two arrays are views of the same memory (not merely equal)."""
    return (a.type == b.type and a.offset == b.offset and len(a) == len(b)
            and [x and x.address for x in a.buffers()] == [x and x.address for x in b.buffers()])  # fmt: skip


@dataclasses.dataclass
class _Bucket:
    """One bucket's examples: record batches of the spill file, then groups held in memory."""

    spill: str | None
    spilled: list[int]
    held: list[pa.RecordBatch]
    schema: pa.Schema
    #: Where its spilled batches lie in the spill file, when it is read only once (a build).
    spans: list[tuple[int, int]] = dataclasses.field(default_factory=list)

    def read(self) -> pa.Table:
        """The bucket's examples in the order they came, as one contiguous table."""
        pieces = []
        if self.spilled:
            # Arrow's own memory map: spilled batches are read without a copy, and the
            # mapping goes, with the pages it brought into this process, once they are
            # combined below and dropped.
            with pa.memory_map(self.spill) as source:
                reader = pa.ipc.open_file(source)
                pieces = [reader.get_batch(index) for index in self.spilled]
        return pa.Table.from_batches(pieces + self.held, self.schema).combine_chunks()

    def release(self) -> None:
        """Drop the bucket's spilled bytes, once read and no longer referenced.

        They are mostly still in the page cache, unwritten: punching them out frees those
        pages without writing them back, and the build's next writes (its cache files) reuse
        them at once. Left alone, at 10x the real upstream, the build wrote its cache into
        fresh pages after the spill's and spent 9-17 s in the kernel instead of 2 s
        (bench/README.md).
        """
        if self.spans:
            _punch_holes(self.spill, self.spans)
            self.spans = []


def _punch_holes(path: str, spans: list[tuple[int, int]]) -> bool:
    """Deallocate the whole blocks within each ``(start, end)`` byte span of a file, if the
    system can (Linux ``fallocate``); neighbouring bytes are never touched. Whether it could."""
    fallocate = _fallocate()
    if fallocate is None:
        return False
    fd = os.open(path, os.O_RDWR)
    try:
        block = os.fstat(fd).st_blksize
        for start, end in spans:
            first, last = -(-start // block) * block, end // block * block
            if last > first and fallocate(fd, _FALLOC_FL_PUNCH_HOLE | _FALLOC_FL_KEEP_SIZE, first, last - first):
                # A file system without holes, say: only the saving is lost.
                logger.debug(f"{path}: cannot punch holes ({os.strerror(ctypes.get_errno())}); kept whole")
                return False
    finally:
        os.close(fd)
    return True


_FALLOC_FL_KEEP_SIZE, _FALLOC_FL_PUNCH_HOLE = 0x01, 0x02  # linux/falloc.h


@functools.cache
def _fallocate():
    """The C library's ``fallocate``: Python's ``os`` has only ``posix_fallocate``, which cannot punch."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(None, use_errno=True)
    except OSError:
        return None
    # fallocate64 takes 64-bit offsets everywhere; plain fallocate only where off_t is 64-bit.
    fallocate = getattr(libc, "fallocate64", None)
    if fallocate is None and ctypes.sizeof(ctypes.c_long) == 8:
        fallocate = getattr(libc, "fallocate", None)
    if fallocate is None:
        return None
    fallocate.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int64, ctypes.c_int64]
    return fallocate
