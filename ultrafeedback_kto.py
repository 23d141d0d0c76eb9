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

Self-contained (stdlib, ``datasets``, ``pyarrow``), to be copied next to a training script.
Top to bottom: columns and the reasons for leaving data out; conversations in Arrow; the
upstreams, whose `convert_pairs` and `convert_completions` hold every acceptance rule; then
the stages the builder's `_split_generators` calls: 1. read, 2. convert, 3. keep, 4. order,
and 5. write (`_generate_tables`).
"""

from __future__ import annotations

import bisect
import dataclasses
import functools
import hashlib
import heapq
import json
import math
import os
import random
import re
import tempfile
import typing
import urllib.parse
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from typing import Any, Literal

import datasets
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

logger = datasets.logging.get_logger(__name__)

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


# ---------------------------------------------------------------------------------------
# Columns, and the reasons for leaving data out
# ---------------------------------------------------------------------------------------

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
        {"prompt": [_MESSAGE], "completion": [_MESSAGE], "label": datasets.Value("bool"), **_METADATA}
    ),
}
_MESSAGES = pa.list_(pa.struct([("content", pa.string()), ("role", pa.string())]))
_TEXT = datasets.Value("string")
#: openbmb/UltraFeedback's annotations of a completion, the struct the seed dataset
#: (argilla/ultrafeedback-binarized-preferences-cleaned-kto) declares for its column.
ANNOTATIONS = {
    "helpfulness": {"Rating": _TEXT, "Rationale": _TEXT, "Rationale For Rating": _TEXT, "Type": [_TEXT]},
    "honesty": {"Rating": _TEXT, "Rationale": _TEXT},
    "instruction_following": {"Rating": _TEXT, "Rationale": _TEXT},
    "truthfulness": {"Rating": _TEXT, "Rationale": _TEXT, "Rationale For Rating": _TEXT, "Type": [_TEXT]},
}


_ANNOTATIONS_TYPE = datasets.Features({"annotations": ANNOTATIONS}).arrow_schema.field("annotations").type
_COMPLETION = pa.struct([("annotations", _ANNOTATIONS_TYPE), ("model", pa.string()), ("response", pa.string())])


def features(format: str, upstream: str = "argilla-cleaned") -> datasets.Features:
    """The columns of a config: `FEATURES` of its format, and ``annotations`` from openbmb."""
    return datasets.Features({**FEATURES[format], **({"annotations": ANNOTATIONS} if upstream == "openbmb" else {})})


@functools.cache
def _conversational_schema(upstream: str) -> pa.Schema:
    """The Arrow schema of the examples the upstream converts to (made once: it costs)."""
    return features("conversational", upstream).arrow_schema


@dataclasses.dataclass(frozen=True)
class Reason:
    """Why upstream data was left out, worded once: it keys the log, the build summary and
    the card. ``unit`` is what is counted. ``kind``: ``"malformed"`` data follows
    ``on_bad_rows``; ``"option"`` is an option's choice; ``"rule"`` one of the dataset's rules."""

    text: str
    unit: str = "pair"
    kind: Literal["malformed", "option", "rule"] = "malformed"

    def __str__(self) -> str:
        return self.text


EMPTY_PROMPT = Reason("empty or missing prompt")
EMPTY_COMPLETION = Reason("empty or missing completion")
MALFORMED_MESSAGE = Reason("malformed message (a null message or role, or a null text before the last turn)")
NO_FINAL_ASSISTANT = Reason("conversation does not end with an assistant turn")
TURNS_DIFFER = Reason("chosen and rejected differ before the last turn")
PROMPT_MISMATCH = Reason("prompt differs from the first user turn")
SAME_COMPLETION = Reason("chosen and rejected are identical")
REJECTED_ABOVE_CHOSEN = Reason("rejected rated above chosen")
MISSING_RATING = Reason("missing rating", kind="option")
EXCLUDED_SOURCE = Reason("source in exclude_sources", kind="option")
SMALL_MARGIN = Reason("rating margin below min_rating_margin", kind="option")
# Rules over a whole split (`keep`): KTO learns from single examples, so the same completion
# for the same prompt marked both desirable and undesirable would cancel out.
CONTRADICTORY = Reason("contradictory labels", unit="example", kind="rule")
DUPLICATE = Reason("duplicate example", unit="example", kind="rule")
IN_UPSTREAM_TEST = Reason("prompt in the upstream test split", unit="example", kind="rule")


class UpstreamError(ValueError):
    """The source as a whole is unusable: raised before any row is written."""


class BadRowError(ValueError):
    """A malformed upstream row, with ``on_bad_rows="error"``: the message names file, row and reason."""


_URL = re.compile(r"[a-zA-Z][\w+.-]*://[^\s'\"<>)]+")

_QUERY = re.compile(r"\?[\w.~%+-]+=[^\s'\"]*")  # also after a bare path, as urllib3 names what it retries


def scrub_urls(text: str) -> str:
    """``text`` as a message or the card may show it: every URL in it without credentials, query
    or fragment (a signed URL's signature, a token); the rest as it is."""

    def scrubbed(url: re.Match) -> str:
        parts = urllib.parse.urlsplit(url[0])
        host = (parts.hostname or "") + (f":{parts.port}" if parts.port else "")
        return urllib.parse.urlunsplit((parts.scheme, host, parts.path, "", ""))

    return _QUERY.sub("", _URL.sub(scrubbed, text))


def one_line(error: object) -> str:
    """An error as one line: the first line of its text that is not blank, or its type's name."""
    return next((line.strip() for line in str(error).splitlines() if line.strip()), type(error).__name__)


# ---------------------------------------------------------------------------------------
# Conversations in Arrow
# ---------------------------------------------------------------------------------------


class _Turns:
    """A column of conversations (lists of ``{content, role}``), seen through Arrow arrays."""

    def __init__(self, column):
        self.lists = _from_zero(_array(column))
        self.length = pc.fill_null(pc.list_value_length(self.lists), 0)
        messages = self.lists.values
        self.content, self.role = pc.struct_field(messages, "content"), pc.struct_field(messages, "role")
        self.empty = pc.equal(self.length, 0)
        # Where each row's first and last message are (rows without messages point at 0, masked).
        starts = self.lists.offsets.slice(0, len(self.lists))
        self.first = pc.if_else(self.empty, 0, starts)
        self.last = pc.if_else(self.empty, 0, pc.add(starts, pc.subtract(self.length, 1)))
        self.is_last = pc.equal(
            pa.array(range(len(messages)), pa.int64()), self.last.take(pc.list_parent_indices(self.lists))
        )
        broken = pc.or_(
            pc.or_(pc.is_null(messages), pc.is_null(self.role)),
            pc.and_(pc.is_null(self.content), pc.invert(self.is_last)),
        )
        self.malformed = self._any(broken)

    # Each a copy of one text per row, made only when asked for.
    first_content = functools.cached_property(lambda self: self._at(self.content, self.first))
    first_role = functools.cached_property(lambda self: self._at(self.role, self.first))
    last_content = functools.cached_property(lambda self: self._at(self.content, self.last))
    last_role = functools.cached_property(lambda self: self._at(self.role, self.last))

    def _at(self, values, index):
        return pc.if_else(self.empty, pa.scalar(None, values.type), _take(values, index))

    def _any(self, flags) -> pa.Array:
        """Per row, whether any of its messages has its flag set."""
        running = pa.concat_arrays([pa.array([0], pa.int64()), pc.cumulative_sum(pc.cast(flags, pa.int64()))])
        offsets = self.lists.offsets
        return pc.greater(
            pc.subtract(running.take(offsets.slice(1)), running.take(offsets.slice(0, len(offsets) - 1))), 0
        )

    def differ_before_last(self, other: _Turns) -> pa.Array:
        """Per row, whether the turns before the last differ from ``other``'s, in number or content."""
        row = pc.list_parent_indices(self.lists)
        position = pc.subtract(pa.array(range(len(self.content)), pa.int64()), self.first.take(row))
        # Each message's counterpart in the other row (any valid index where lengths differ).
        counterpart = pc.if_else(pc.less(position, other.length.take(row)), pc.add(other.first.take(row), position), 0)
        differs = pc.fill_null(
            pc.or_(
                pc.not_equal(self.content, _take(other.content, counterpart)),
                pc.not_equal(self.role, _take(other.role, counterpart)),
            ),
            True,
        )
        return pc.or_(pc.not_equal(self.length, other.length), self._any(pc.and_not(differs, self.is_last)))

    def before_last(self) -> pa.Array:
        """Every row's messages before its last, as ``{content, role}`` lists."""
        earlier = pc.indices_nonzero(pc.invert(self.is_last))
        messages = pa.StructArray.from_arrays(
            [self.content.take(earlier), self.role.take(earlier)], ["content", "role"]
        )
        earlier_count = pc.max_element_wise(pc.subtract(self.length, 1), 0)  # a row without messages has none
        offsets = pa.concat_arrays([pa.array([0], pa.int32()), pc.cast(pc.cumulative_sum(earlier_count), pa.int32())])
        return pa.ListArray.from_arrays(offsets, messages)


def _from_zero(lists: pa.ListArray) -> pa.ListArray:
    """The lists with offsets from 0 and values of these rows only (a slice has neither)."""
    return pa.concat_arrays([lists]) if lists.offset or lists.offsets[0].as_py() else lists


def _take(values, index):
    return values.take(index) if len(values) else pa.nulls(len(index), values.type)


def _array(column) -> pa.Array:
    return column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column


def _has_text(strings) -> pa.Array:
    """Whether each text keeps a character after Python's ``str.strip`` (a null has none):
    ``utf8_is_space`` is ``str.isspace``, character for character."""
    return pc.fill_null(pc.and_not(pc.greater(pc.binary_length(strings), 0), pc.utf8_is_space(strings)), False)


def _without_nan(numbers) -> pa.Array:
    """Ratings as float64 with NaN as missing (null)."""
    numbers = pc.cast(numbers, pa.float64())
    return pc.if_else(pc.is_nan(numbers), None, numbers)


def _first_failures(checks: list[tuple[Any, Reason]], rows: int) -> tuple[pa.Array, list[tuple[int, Reason]]]:
    """Which rows pass every check, and ``(row, reason)`` of the first check each other row
    fails. A check that cannot be made (null: a text or rating missing) passes: an earlier
    check names what is missing."""
    failed = pa.nulls(rows, pa.int64())
    for index, (fails, _) in enumerate(checks):
        failed = pc.if_else(pc.and_(pc.is_null(failed), pc.fill_null(fails, False)), index, failed)
    left_out = [(row, checks[index][1]) for row, index in enumerate(failed.to_pylist()) if index is not None]
    return pc.is_null(failed), left_out


def _render(turns: pa.ListArray) -> pa.Array:
    """The ``default`` config's prompt for each row's turns before the final assistant message.

    A single user turn is its own text, exactly as TRL's ``unpair_preference_dataset``
    keeps it. Several turns (multi-turn pairs) are joined as a transcript, one
    ``"{role}: {content}"`` block per turn, blocks separated by a blank line.
    """
    if pc.all(pc.equal(pc.list_value_length(turns), 1)).as_py():  # single turns, the common case
        return pc.struct_field(turns.flatten(), "content")
    messages = turns.values
    blocks = pc.binary_join_element_wise(pc.struct_field(messages, "role"), pc.struct_field(messages, "content"), ": ")
    transcript = pc.binary_join(pa.ListArray.from_arrays(turns.offsets, blocks), "\n\n")
    first = pc.struct_field(pc.list_element(turns, 0), "content")
    return pc.if_else(pc.equal(pc.list_value_length(turns), 1), first, transcript)


def standard_from_conversational(table: pa.Table) -> pa.Table:
    """The ``default`` config's rows from the ``conversational`` config's, in the same order:
    ``prompt`` rendered by `_render`, ``completion`` the one message's text."""
    prompt = _render(table.column("prompt").combine_chunks())
    completion = pc.struct_field(table.column("completion").combine_chunks().flatten(), "content")
    return table.set_column(0, "prompt", prompt).set_column(1, "completion", completion)


def _examples(upstream: str, **columns) -> pa.Table:
    """A table of examples in the upstream's conversational shape, and the builder's ``_`` columns."""
    columns["completion"] = _one_message_lists(columns["completion"], "assistant")
    schema = _conversational_schema(upstream)
    fields = [pa.field(name, value.type) for name, value in columns.items() if name not in schema.names]
    return pa.table(
        [pc.cast(columns[field.name], field.type) for field in schema] + [columns[f.name] for f in fields],
        schema=pa.schema(list(schema) + fields),
    )


def _one_message_lists(content, role: str) -> pa.Array:
    content = pc.cast(_array(content), pa.string())
    messages = pa.StructArray.from_arrays([content, pa.array([role] * len(content), pa.string())], ["content", "role"])
    return pa.ListArray.from_arrays(pa.array(range(len(content) + 1), pa.int32()), messages)


def _sha256(strings) -> list[bytes]:
    """The sha256 of each text's UTF-8 bytes, read from the Arrow buffers (no Python strings made)."""
    strings = pa.concat_arrays([pc.cast(_array(strings), pa.string())])  # offsets from 0
    _, offsets, data = strings.buffers()
    offsets = memoryview(offsets).cast("i")[: len(strings) + 1]
    data = memoryview(data) if data is not None else memoryview(b"")
    return [hashlib.sha256(data[start:end]).digest() for start, end in zip(offsets, offsets[1:], strict=False)]


def _keys(strings) -> pa.Array:
    """A 64-bit key of each text: the first bytes of its sha256."""
    return _first_bytes(_sha256(strings))


def _first_bytes(digests: list[bytes]) -> pa.Array:
    return pa.array([int.from_bytes(digest[:8], "little", signed=True) for digest in digests], pa.int64())


def _digests(strings) -> tuple[pa.Array, pa.Array]:
    """The hex sha256 of each text (``prompt_id``: equal prompts share it) and its `_keys`."""
    digests = _sha256(strings)
    return pa.array([digest.hex() for digest in digests], pa.string()), _first_bytes(digests)


# ---------------------------------------------------------------------------------------
# The upstream
# ---------------------------------------------------------------------------------------


@dataclasses.dataclass
class Converted:
    """The examples of a batch of upstream rows and the rows left out of it.

    ``examples`` has the ``conversational`` columns and more for the builder: ``_row`` (the
    row of the batch each example comes from) and ``_rank`` (its place among that row's
    examples), which give upstream order; ``_prompt_key`` and ``_completion_key`` (64-bit
    keys of the prompt and completion texts). ``left_out`` holds ``(row, reason)``.
    """

    examples: pa.Table
    left_out: list[tuple[int, Reason]]


def convert_pairs(pairs: pa.Table, config: UltraFeedbackKTOConfig) -> Converted:
    """Each pair's two examples: its chosen completion, desirable, and its rejected one, not.

    A pair is refused (`Converted.left_out`) for the first of these that holds, in this
    order: an empty prompt; for chosen, then rejected: an empty conversation, a malformed
    message, a last turn not by the assistant, an empty last turn; chosen and rejected
    differing before the last turn; a first turn that is not the user's ``prompt``; the same
    completion on both sides; a rating outside the upstream's scale; rejected rated above
    chosen; then the options' own reasons
    (`MISSING_RATING`, `SMALL_MARGIN`). The prompt is every turn before the last.
    """
    pairs = pairs.combine_chunks()
    chosen, rejected = _Turns(pairs.column("chosen")), _Turns(pairs.column("rejected"))
    prompt = _array(pairs.column("prompt"))
    ratings = {side: _without_nan(pairs.column(f"{side}-rating")) for side in ("chosen", "rejected")}
    rated = pc.and_(pc.is_valid(ratings["chosen"]), pc.is_valid(ratings["rejected"]))
    low, high = UPSTREAMS[config.upstream].ratings
    # Kleene logic: a rating off the scale is flagged even when the other one is missing.
    off_scale = pc.or_kleene(*[pc.or_kleene(pc.less(r, low), pc.greater(r, high)) for r in ratings.values()])
    checks = [(pc.invert(_has_text(prompt)), EMPTY_PROMPT)]
    for side in (chosen, rejected):
        checks += [
            (side.empty, EMPTY_COMPLETION),
            (side.malformed, MALFORMED_MESSAGE),
            (pc.not_equal(side.last_role, "assistant"), NO_FINAL_ASSISTANT),
            (pc.invert(_has_text(side.last_content)), EMPTY_COMPLETION),
        ]
    checks += [
        (chosen.differ_before_last(rejected), TURNS_DIFFER),
        (pc.or_(pc.not_equal(chosen.first_role, "user"), pc.not_equal(chosen.first_content, prompt)), PROMPT_MISMATCH),
        (pc.equal(chosen.last_content, rejected.last_content), SAME_COMPLETION),
        (off_scale, Reason(f"rating outside the upstream's scale ({low:g} to {high:g})")),
        (pc.greater(ratings["rejected"], ratings["chosen"]), REJECTED_ABOVE_CHOSEN),
    ]
    if config.label_rule == "absolute" or config.min_rating_margin is not None:
        checks.append((pc.invert(rated), MISSING_RATING))
    if config.min_rating_margin is not None:
        margin = pc.subtract(ratings["chosen"], ratings["rejected"])
        checks.append((pc.less(margin, config.min_rating_margin), SMALL_MARGIN))
    keep, left_out = _first_failures(checks, len(pairs))

    rows = pc.indices_nonzero(keep)
    kept = pairs.take(rows)
    turns = chosen.before_last().take(rows)
    prompt_ids, prompt_keys = _digests(_render(turns))
    examples = []
    for rank, (name, side) in enumerate(zip(("chosen", "rejected"), (chosen, rejected), strict=True)):
        rating, completion = ratings[name].take(rows), side.last_content.take(rows)
        if config.label_rule == "absolute":
            label = pc.greater_equal(rating, config.desirable_threshold)
        else:
            label = pa.array([rank == 0] * len(kept), pa.bool_())
        examples.append(
            _examples(
                config.upstream,
                prompt=turns,
                completion=completion,
                label=label,
                prompt_id=prompt_ids,
                source=kept.column("source"),
                model=kept.column(f"{name}-model"),
                average_rating=rating,
                _row=rows,
                _rank=pa.array([rank] * len(kept), pa.int32()),
                _prompt_key=prompt_keys,
                _completion_key=_keys(completion),
            )
        )
    return Converted(pa.concat_tables(examples), left_out)


def convert_h4_pairs(pairs: pa.Table, config: UltraFeedbackKTOConfig) -> Converted:
    """`convert_pairs` of HuggingFaceH4/ultrafeedback_binarized's pairs: its scores are the
    ratings (UltraFeedback's overall score, 1 to 10); it names no source nor model."""
    pairs = pairs.rename_columns({"score_chosen": "chosen-rating", "score_rejected": "rejected-rating"})
    for name in ("source", "chosen-model", "rejected-model"):
        pairs = pairs.append_column(name, pa.nulls(len(pairs), pa.string()))
    return convert_pairs(pairs, config)


EMPTY_INSTRUCTION = Reason("empty or missing instruction", unit="prompt")
NULL_COMPLETION = Reason("malformed completion (null)", unit="completion")
NO_COMPLETIONS = Reason("no completions", unit="prompt", kind="rule")
EMPTY_RESPONSE = Reason("empty response", unit="completion", kind="rule")
NO_NUMERIC_RATING = Reason("no numeric rating", unit="completion", kind="rule")
ALL_TIE = Reason("all completions tie (best-vs-rest)", unit="prompt", kind="rule")
_ASPECTS = tuple(ANNOTATIONS)


def convert_completions(rows: pa.Table, config: UltraFeedbackKTOConfig) -> Converted:
    """One example per rated completion of openbmb/UltraFeedback (a row per prompt, with its
    completions): the prompt is the ``instruction``, the completion its ``response``, the
    rating the mean of its numeric aspect ratings (helpfulness, honesty,
    instruction_following, truthfulness; "N/A" left out).

    Left out: a row with an empty instruction (malformed) or no completions; a completion
    that is null (malformed), has an empty response or no numeric rating; with
    ``label_rule="best-vs-rest"``, a prompt whose kept completions all tie. Labels: with
    ``"absolute"``, desirable when the rating reaches ``desirable_threshold``; with
    ``"best-vs-rest"``, the completions of the prompt's best rating are desirable.
    """
    rows = rows.combine_chunks()
    instruction = _array(rows.column("instruction"))
    lists = _from_zero(_array(rows.column("completions")))
    completions, row = lists.values, pc.list_parent_indices(lists)
    rank = pc.subtract(pa.array(range(len(completions)), pa.int64()), lists.offsets.slice(0, len(lists)).take(row))
    ratings = [pc.struct_field(completions, ["annotations", aspect, "Rating"]) for aspect in _ASPECTS]
    # "1" to "5"; anything else ("N/A") is no rating.
    numbers = [pc.cast(pc.if_else(pc.match_substring_regex(r, "^[1-5]$"), r, None), pa.float64()) for r in ratings]
    counted = functools.reduce(pc.add, [pc.cast(pc.is_valid(number), pa.float64()) for number in numbers])
    rating = pc.if_else(
        pc.greater(counted, 0),
        pc.divide(functools.reduce(pc.add, [pc.fill_null(n, 0.0) for n in numbers]), counted),
        None,
    )
    row_kept, left_out = _first_failures(
        [
            (pc.invert(_has_text(instruction)), EMPTY_INSTRUCTION),
            (pc.equal(pc.fill_null(pc.list_value_length(lists), 0), 0), NO_COMPLETIONS),
        ],
        len(rows),
    )
    keep, refused = _first_failures(
        [
            (pc.is_null(completions), NULL_COMPLETION),
            (pc.invert(_has_text(pc.struct_field(completions, "response"))), EMPTY_RESPONSE),
            (pc.is_null(rating), NO_NUMERIC_RATING),
        ],
        len(completions),
    )
    in_kept_row = row_kept.take(row)
    left_out += [(row[index].as_py(), reason) for index, reason in refused if in_kept_row[index].as_py()]
    keep = pc.and_(keep, in_kept_row)
    if config.label_rule == "best-vs-rest":
        best = _per_row(row, keep, rating, "max")
        tie = pc.equal(best, _per_row(row, keep, rating, "min"))
        left_out += [(r, ALL_TIE) for r in sorted(set(pc.filter(row, pc.and_(keep, tie)).to_pylist()))]
        keep = pc.and_(keep, pc.invert(tie))
        label = pc.equal(rating, best)
    else:
        label = pc.greater_equal(rating, config.desirable_threshold)
    chosen = pc.indices_nonzero(keep)
    kept, row = completions.take(chosen), row.take(chosen)
    prompt_ids, prompt_keys = _digests(instruction)
    response = pc.struct_field(kept, "response")
    examples = _examples(
        config.upstream,
        prompt=_one_message_lists(instruction.take(row), "user"),
        completion=response,
        label=label.take(chosen),
        prompt_id=prompt_ids.take(row),
        source=rows.column("source").take(row),
        model=pc.struct_field(kept, "model"),
        average_rating=rating.take(chosen),
        annotations=pc.struct_field(kept, "annotations"),
        _row=row,
        _rank=pc.cast(rank.take(chosen), pa.int32()),
        _prompt_key=prompt_keys.take(row),
        _completion_key=_keys(response),
    )
    return Converted(examples, sorted(left_out, key=lambda item: item[0]))


def _per_row(row: pa.Array, keep: pa.Array, values: pa.Array, how: str) -> pa.Array:
    """For each value, the ``how`` ("max", "min") of the kept values of its row."""
    groups = (
        pa.table({"row": row.filter(keep), "value": values.filter(keep)}).group_by("row").aggregate([("value", how)])
    )
    return groups.column(f"value_{how}").take(pc.index_in(row, value_set=groups.column("row")))


@dataclasses.dataclass(frozen=True)
class Upstream:
    """An upstream dataset: where it is, the columns it has, and how its rows become examples."""

    repo: str
    files: dict[str, str]  # its parquet files on the Hub, by its split
    schema: pa.Schema  # the columns read, in its order
    convert: Callable[[pa.Table, UltraFeedbackKTOConfig], Converted]
    row: str  # what one of its rows is, in words: "pair", "prompt"
    label_rules: tuple[str, ...]  # the first is its default
    desirable_threshold: float  # the default, on its rating scale
    ratings: tuple[float, float]  # its rating scale, lowest and highest
    examples_per_row: int  # about: what the shuffle's windows are sized by
    split_by: str | None = None  # the column whose text decides a row's split (`split_of`), or
    splits: dict[str, str] = dataclasses.field(default_factory=dict)  # its own splits, as ours
    exclude_sources: tuple[str, ...] = ()


UPSTREAMS = {
    "argilla-cleaned": Upstream(
        repo="argilla/ultrafeedback-binarized-preferences-cleaned",
        files={"train": "data/train-*.parquet"},
        schema=pa.schema(
            [
                ("source", pa.string()),
                ("prompt", pa.string()),
                ("chosen", _MESSAGES),
                ("chosen-rating", pa.float64()),
                ("chosen-model", pa.string()),
                ("rejected", _MESSAGES),
                ("rejected-rating", pa.float64()),
                ("rejected-model", pa.string()),
            ]
        ),
        convert=convert_pairs,
        row="pair",
        label_rules=("pairwise", "absolute"),
        desirable_threshold=4.0,
        ratings=(1.0, 5.0),
        examples_per_row=2,
        split_by="prompt",
    ),
    "openbmb": Upstream(
        repo="openbmb/UltraFeedback",
        files={"train": "*.parquet"},
        schema=pa.schema(
            [("source", pa.string()), ("instruction", pa.string()), ("completions", pa.list_(_COMPLETION))]
        ),
        convert=convert_completions,
        row="prompt",
        label_rules=("absolute", "best-vs-rest"),
        desirable_threshold=4.0,
        ratings=(1.0, 5.0),
        examples_per_row=4,
        split_by="instruction",
        exclude_sources=("truthful_qa",),
    ),
    "h4-binarized": Upstream(
        repo="HuggingFaceH4/ultrafeedback_binarized",
        files={"train_prefs": "data/train_prefs-*.parquet", "test_prefs": "data/test_prefs-*.parquet"},
        schema=pa.schema(
            [
                ("prompt", pa.string()),
                ("chosen", _MESSAGES),
                ("rejected", _MESSAGES),
                ("score_chosen", pa.float64()),
                ("score_rejected", pa.float64()),
            ]
        ),
        convert=convert_h4_pairs,
        row="pair",
        label_rules=("pairwise", "absolute"),
        desirable_threshold=8.0,
        ratings=(1.0, 10.0),
        examples_per_row=2,
        splits={"train_prefs": "train", "test_prefs": "test"},
    ),
}
UPSTREAM_REPO, UPSTREAM_SCHEMA = UPSTREAMS["argilla-cleaned"].repo, UPSTREAMS["argilla-cleaned"].schema


# ---------------------------------------------------------------------------------------
# 1. Read: the upstream files, each checked whole, then in batches
# ---------------------------------------------------------------------------------------


_BATCH_ROWS = 1_000

_JSON_SUFFIXES = (".jsonl", ".json", ".ndjson")

NOT_AN_OBJECT = Reason("not a JSON object")

WRONG_TYPE = Reason("a value of the wrong type")

NOT_UNICODE = Reason("text that is not valid Unicode (a lone surrogate)")

NOT_UTF8 = Reason("text that is not valid UTF-8")


def _file_format(name: str) -> str:
    lowered = name.lower().split("?")[0]
    if lowered.endswith(".parquet"):
        return "parquet"
    if lowered.endswith(_JSON_SUFFIXES):
        return "json"
    raise UpstreamError(f"{name}: not a parquet or JSON Lines file (expected .parquet or .jsonl)")


def _fits(found: pa.DataType, expected: pa.DataType) -> bool:
    """Whether a parquet column of type ``found`` reads as ``expected`` (null fits anything,
    integers fit floats, structs may hold more fields)."""
    if pa.types.is_null(found) or found == expected:
        return True
    if pa.types.is_floating(expected):
        return pa.types.is_floating(found) or pa.types.is_integer(found)
    if pa.types.is_string(expected):
        return pa.types.is_string(found) or pa.types.is_large_string(found)
    if pa.types.is_list(expected):
        return (pa.types.is_list(found) or pa.types.is_large_list(found)) and _fits(
            found.value_type, expected.value_type
        )
    if pa.types.is_struct(expected) and pa.types.is_struct(found):
        fields = {found.field(i).name: found.field(i).type for i in range(found.num_fields)}
        return all(field.name in fields and _fits(fields[field.name], field.type) for field in expected)
    return False


def _json_fits(value: Any, expected: pa.DataType) -> bool:
    """Whether a JSON value reads as ``expected`` (null fits anything; a bool is no number)."""
    if value is None:
        return True
    if pa.types.is_string(expected):
        return isinstance(value, str)
    if pa.types.is_floating(expected):
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if pa.types.is_list(expected):
        return isinstance(value, list) and all(_json_fits(item, expected.value_type) for item in value)
    if pa.types.is_struct(expected):
        return isinstance(value, dict) and all(_json_fits(value.get(field.name), field.type) for field in expected)
    return False


def _describe(arrow_type: pa.DataType) -> str:
    if arrow_type == _MESSAGES:
        return "a list of {content, role} messages"
    return {"double": "a number", "string": "text"}.get(str(arrow_type), str(arrow_type))


def inspect_source(name: str, path: str, schema: pa.Schema) -> int:
    """Check one upstream file as a whole and return its number of rows.

    ``name`` is how the file is named in messages, ``path`` where it is read from (they
    differ once ``datasets`` has downloaded a remote file into its cache). Raises
    `UpstreamError` for a missing, empty, unreadable or truncated file, missing upstream
    columns or a column of the wrong type (for JSON Lines, in its first JSON object).
    """
    file_format = _file_format(name)
    try:
        with open(path, "rb") as f:
            if file_format == "parquet":
                metadata = pq.ParquetFile(f, pre_buffer=False).metadata
                rows, found = metadata.num_rows, metadata.schema.to_arrow_schema()
                twice = [c for c in schema.names if len(found.get_all_field_indices(c)) > 1]
                if twice:
                    raise UpstreamError(f"{name}: more than one column named {twice[0]!r}")
                # Per column: None when it fits, else what it is.
                columns = {
                    c.name: None if _fits(found.field(c.name).type, c.type) else _describe(found.field(c.name).type)
                    for c in schema
                    if c.name in found.names
                }
            else:
                rows, first = 0, None
                for line in f:
                    if line.strip():
                        rows += 1
                        first = first if first is not None else _json_object(line)
                if rows and first is None:
                    raise UpstreamError(f"{name}: no line is a JSON object")
                columns = {
                    c.name: None if _json_fits(first[c.name], c.type) else type(first[c.name]).__name__
                    for c in schema
                    if first and c.name in first
                }
    except FileNotFoundError:
        raise UpstreamError(f"{name}: file not found") from None
    except UnicodeDecodeError:
        raise _not_utf8(name, path) from None
    except (pa.ArrowException, OSError) as error:
        raise UpstreamError(f"{name}: unreadable {file_format} file ({one_line(error)})") from None
    if rows == 0:
        raise UpstreamError(f"{name}: empty file (no rows)")
    missing = [column for column in schema.names if column not in columns]
    if missing:
        raise UpstreamError(f"{name}: missing upstream column(s) {', '.join(missing)}")
    for column, found_kind in columns.items():
        if found_kind is not None:
            raise UpstreamError(
                f"{name}: column {column!r} should be {_describe(schema.field(column).type)}, found {found_kind}"
            )
    return rows


def _json_object(line: bytes) -> dict | None:
    try:
        row = json.loads(line)
    except UnicodeDecodeError:
        raise  # the file's encoding, not this row, is wrong (`_not_utf8`)
    except ValueError:
        return None
    return row if isinstance(row, dict) else None


def _not_utf8(name: str, path: str) -> UpstreamError:
    """The error for a JSON Lines file that is not UTF-8 (Latin-1, say), naming its first such line."""
    with open(path, "rb") as f:
        for number, line in enumerate(f, 1):
            try:
                line.decode("utf-8", "surrogatepass")  # as json.loads decodes
            except UnicodeDecodeError:
                return UpstreamError(f"{name} line {number}: not UTF-8 text, as JSON Lines must be")
    return UpstreamError(f"{name}: not UTF-8 text, as JSON Lines must be")


def read_batches(name: str, path: str, schema: pa.Schema, unit: str, blanks: list[int]) -> Iterator[tuple]:
    """An upstream file's rows in batches, in file order, with the upstream's ``schema``, and
    for each batch the ``(row, reason)`` of rows that cannot be used as read: in parquet, text
    that is not UTF-8; in JSON Lines, a line that is not a JSON object (such a row is all nulls
    in the table), a value of the wrong type or text that is not Unicode (``unit``: what a row
    is, in words). A blank line is no row: ``blanks`` gets the number of rows above each."""
    file_format = _file_format(name)
    try:
        with open(path, "rb") as f:
            if file_format == "parquet":
                # Without pre-buffering, through a small buffer: the reader then holds pages,
                # not whole row groups (which may be hundreds of MB).
                parquet = pq.ParquetFile(f, pre_buffer=False, buffer_size=1 << 20)
                for batch in parquet.iter_batches(batch_size=_BATCH_ROWS, columns=schema.names, use_threads=False):
                    table = pa.Table.from_batches([batch]).cast(schema)
                    yield table, _not_utf8_rows(table, unit)
                return
            # A blank line is no row: the rows above it (lines less blank lines) go to ``blanks``,
            # whose ``append`` gives None, which skips it.
            lines = (line for number, line in enumerate(f) if line.strip() or blanks.append(number - len(blanks)))
            while batch := [line for _, line in zip(range(_BATCH_ROWS), lines, strict=False)]:
                yield _json_rows(batch, schema, unit)
    except UnicodeDecodeError:
        raise _not_utf8(name, path) from None
    except (pa.ArrowException, OSError) as error:
        raise UpstreamError(f"{name}: unreadable {file_format} file ({one_line(error)})") from None


def _not_utf8_rows(table: pa.Table, unit: str) -> list[tuple[int, Reason]]:
    """The rows of a parquet batch with text that is not UTF-8. Parquet keeps a string's bytes as
    written, and such a row, left in, would fail every reader of the built dataset (a
    UnicodeDecodeError). Checked for the whole batch at once; the rare rows found one by one."""
    try:
        table.validate(full=True)
        return []
    except pa.ArrowInvalid:
        pass
    bad = []
    for row in range(len(table)):
        try:
            table.slice(row, 1).to_pylist()  # a slice validates its lists' whole children: decode the row
        except UnicodeDecodeError:
            bad.append((row, dataclasses.replace(NOT_UTF8, unit=unit)))
    return bad


def _json_rows(lines: list[bytes], schema: pa.Schema, unit: str) -> tuple[pa.Table, list[tuple[int, Reason]]]:
    rows, unread = [], []
    for index, line in enumerate(lines):
        row = _json_object(line)
        if row is None or not all(_json_fits(row.get(field.name), field.type) for field in schema):
            unread.append((index, dataclasses.replace(NOT_AN_OBJECT if row is None else WRONG_TYPE, unit=unit)))
            row = {}
        rows.append(row)
    try:
        return pa.Table.from_pylist(rows, schema=schema), unread
    except UnicodeEncodeError:  # a lone surrogate ("\ud800", as scraped text has) is no UTF-8: rare, found row by row
        for index, row in enumerate(rows):
            try:
                pa.Table.from_pylist([row], schema=schema)
            except UnicodeEncodeError:
                unread.append((index, dataclasses.replace(NOT_UNICODE, unit=unit)))
                rows[index] = {}
    return pa.Table.from_pylist(rows, schema=schema), unread


# ---------------------------------------------------------------------------------------
# 2. Convert: every upstream row once, each example filed where it waits for its order
# ---------------------------------------------------------------------------------------


@dataclasses.dataclass
class SplitReport:
    """What one split left out, by reason, with the first few places of each, and how many
    upstream rows (pairs) it read."""

    split: str
    read: int = 0
    left_out: Counter = dataclasses.field(default_factory=Counter)
    places: dict[Reason, list[str]] = dataclasses.field(default_factory=dict)

    FIRST_PLACES = 5

    def add(self, reason: Reason, places: list[str], count: int = 1) -> None:
        self.left_out[reason] += count
        kept = self.places.setdefault(reason, [])
        for place in places:
            if len(kept) < self.FIRST_PLACES and place not in kept:
                kept.append(place)

    def log(self, on_bad_rows: str) -> None:
        lines = {
            kind: [
                f"{reason}: {count} {reason.unit}(s) (first at {'; '.join(self.places[reason])})"
                for reason, count in self.left_out.most_common()
                if (reason.kind == "malformed") == kind
            ]
            for kind in (True, False)
        }
        if lines[True] and on_bad_rows == "warn":
            logger.warning(f"Left out malformed upstream data of split {self.split!r}:\n  " + "\n  ".join(lines[True]))
        if lines[False]:
            logger.info(f"Left out of split {self.split!r}:\n  " + "\n  ".join(lines[False]))


def split_of(prompt: str, test_size: float) -> str:
    """``"test"`` or ``"train"``, from a hash of the upstream prompt (the first user turn).

    The hash ignores the seed and everything else, so both halves of a pair, and every pair
    sharing the prompt, land together, and a refreshed upstream never moves a prompt
    across splits. A larger ``test_size`` only adds prompts to ``test``.
    """
    return "test" if _is_test(pa.array([prompt or ""]), test_size)[0].as_py() else "train"


def _is_test(prompts, test_size: float) -> pa.Array:
    digests = _sha256(pc.fill_null(prompts, ""))
    return pa.array([int.from_bytes(digest[:8], "big") / 2**64 < test_size for digest in digests], pa.bool_())


#: Examples per window: the unit the shuffle writes, reads back and orders at once, so that
#: memory holds one window, whatever the upstream (sized in bench/README.md).
_WINDOW_EXAMPLES = 8_192

#: What a split's rows and order are decided from, per example: its prompt and completion
#: keys, label, place upstream (row, rank), and where it waits (window, row in the window's file).
_KEYS = pa.schema(
    [
        ("prompt_key", pa.int64()),
        ("completion_key", pa.int64()),
        ("label", pa.bool_()),
        ("row", pa.int64()),
        ("rank", pa.int32()),
        ("window", pa.int64()),
        ("index", pa.int64()),
    ]
)


def _windows(prompt_keys: pa.Array, before: pa.Array, seed: int, count: int) -> pa.Array:
    """The window of each example: a prompt's examples are dealt to the windows in turn (``before``:
    how many of its prompt's examples came before it), from a window a hash of the prompt key and
    the seed picks. No window then holds more than its share of a prompt's rows, so that even
    prompts with many rows can keep them far apart (`Arrangement`); a hash of each example let
    some windows draw many more, and rows of one prompt ended up side by side."""

    def uint64(value: int) -> pa.Scalar:
        return pa.scalar(value, pa.uint64())

    seed_key = int.from_bytes(hashlib.sha256(str(seed).encode()).digest()[:8], "little")
    # Multiplying by an odd constant (wrapping) mixes the seed into the high bits, which pick the window.
    mixed = pc.multiply(
        pc.bit_wise_xor(pc.cast(prompt_keys, pa.uint64(), safe=False), uint64(seed_key)), uint64(0x9E3779B97F4A7C15)
    )
    first = pc.shift_right(pc.multiply(pc.shift_right(mixed, uint64(32)), uint64(count)), uint64(32))
    turn = pc.add(pc.cast(first, pa.int64()), before)
    return pc.subtract(turn, pc.multiply(pc.divide(turn, count), count))  # modulo count


class Spill:
    """Where converted examples wait while each split's order is decided: each split's examples
    filed by window, one Arrow file a window, and the keys (`_KEYS`) the order is decided from.
    The folder is removed with the last reference to this object (a build's split generators,
    or a stream)."""

    def __init__(self, windows: dict[str, int], config: UltraFeedbackKTOConfig):
        self.folder = tempfile.TemporaryDirectory(prefix="ufkto-shuffle-", dir=config.shuffle_dir)
        self.windows, self.config = windows, config  # windows: per split, how many
        self.files: dict[str, tuple[pa.NativeFile, pa.ipc.RecordBatchFileWriter, list[int]]] = {}  # and rows written
        self._keys: dict[str, list[pa.Table]] = {}
        self._dealt: Counter = Counter()  # prompt key -> its examples filed so far

    def __reduce__(self):
        # Worker processes (num_proc) get the folder's name only: they never remove it.
        return (str, (self.folder.name,))

    def path(self, split: str, window: int) -> str:
        return os.path.join(self.folder.name, f"{split}-{window:05d}.arrow")

    def file(self, examples: pa.Table, test: pa.Array) -> None:
        """Write each example (in ``test`` or not) to its split's window (`_windows`), or with
        ``order="upstream"`` to a run of consecutive upstream rows."""
        if not len(examples):
            return
        config = self.config
        windows = {split: self.windows.get(split, 1) for split in ("train", "test")}
        if config.order == "upstream":
            rows = _WINDOW_EXAMPLES // UPSTREAMS[config.upstream].examples_per_row
            run = pc.divide(examples.column("_row"), rows)
            window = {split: pc.min_element_wise(run, count - 1) for split, count in windows.items()}
        else:
            prompt_keys, before = examples.column("_prompt_key"), []  # examples of each one's prompt filed before it
            for key in prompt_keys.to_pylist():
                before.append(self._dealt[key])
                self._dealt[key] += 1
            before = pa.array(before, pa.int64())
            window = {split: _windows(prompt_keys, before, config.seed, count) for split, count in windows.items()}
        # One number per (split, window), to file every example of the batch with one take.
        in_split = pc.if_else(test, window["test"], window["train"])
        filed = pc.if_else(test, pc.add(in_split, windows["train"]), in_split)
        by_window = pc.sort_indices(filed)
        examples, filed, test, in_split = (column.take(by_window) for column in (examples, filed, test, in_split))
        data = examples.select(_conversational_schema(config.upstream).names).combine_chunks().to_batches()[0]
        offset, index = 0, []
        for group in pc.value_counts(filed).to_pylist():
            number, count = group["values"], group["counts"]
            in_test = number >= windows["train"]
            path = self.path("test", number - windows["train"]) if in_test else self.path("train", number)
            if path not in self.files:
                sink = pa.OSFile(path, "wb")
                self.files[path] = (sink, pa.ipc.new_file(sink, data.schema), [0])
            sink, writer, written = self.files[path]
            writer.write_batch(data.slice(offset, count))
            index += range(written[0], written[0] + count)  # each example's row in its window's file
            written[0] += count
            offset += count
        columns = ["_prompt_key", "_completion_key", "label", "_row", "_rank"]
        keys = pa.table([*examples.select(columns).columns, in_split, pa.array(index, pa.int64())], schema=_KEYS)
        for split, mine in (("train", pc.invert(test)), ("test", test)):
            self._keys.setdefault(split, []).append(keys.filter(mine))

    def keys(self, split: str) -> pa.Table:
        """The `_KEYS` of the examples of ``split``, window by window, each in its file's order."""
        keys = pa.concat_tables(self._keys.get(split, []) or [_KEYS.empty_table()])
        return keys.take(pc.sort_indices(keys, [("window", "ascending"), ("index", "ascending")]))

    def close(self) -> None:
        for sink, writer, _ in self.files.values():
            writer.close()
            sink.close()
        self.files, self._dealt = {}, Counter()  # every example is filed: the counts are done with


@dataclasses.dataclass(frozen=True)
class Source:
    """An upstream file: the upstream split it holds, how messages name it, where it is read."""

    split: str
    name: str
    path: str


def plan_windows(sources: list[Source], config: UltraFeedbackKTOConfig) -> dict[str, int]:
    """How many windows each split's examples wait in, from the rows of its files. Every file is
    checked whole (`inspect_source`) here, before any row is read."""
    upstream = UPSTREAMS[config.upstream]
    expected = Counter()
    for source in sources:
        rows = min(inspect_source(source.name, source.path, upstream.schema), config.max_pairs or math.inf)
        if upstream.splits:
            expected[upstream.splits[source.split]] += rows
        else:
            expected.update({"train": rows * (1 - config.test_size), "test": rows * config.test_size})
    whole = sum(expected.values()) if config.order == "upstream" else None  # windows of consecutive rows
    examples = {split: upstream.examples_per_row * (whole or rows) for split, rows in expected.items() if rows}
    return {split: max(1, math.ceil(count / _WINDOW_EXAMPLES)) for split, count in examples.items()}


def convert_upstream(
    sources: list[Source], config: UltraFeedbackKTOConfig, spill: Spill
) -> tuple[dict[str, SplitReport], Callable[[int], str]]:
    """Read and convert every upstream row once, in upstream order, filing each example in the
    spill by split and window. Returns what each split read and left out, and what names an
    upstream row (by its number) in messages."""
    upstream = UPSTREAMS[config.upstream]
    reports = {split: SplitReport(split) for split in spill.windows}
    files: list[tuple[int, str, list[int]]] = []  # each file's first upstream row, name, blank lines
    row, read = 0, Counter()  # upstream rows read in all, and of each upstream split

    def place(upstream_row: int) -> str:
        """An upstream row as messages name it: in JSON Lines the line an editor shows (from 1,
        blank lines counted), in parquet the row as pyarrow and datasets count them (from 0)."""
        first, name, blanks = files[bisect.bisect_right([start for start, _, _ in files], upstream_row) - 1]
        in_file = upstream_row - first
        if _file_format(name) == "parquet":
            return f"{name} row {in_file}"
        return f"{name} line {in_file + 1 + bisect.bisect_right(blanks, in_file)}"

    try:
        for source in sources:
            if read[source.split] >= (config.max_pairs or math.inf):
                continue
            files.append((row, source.name, []))
            for batch, unread in read_batches(source.name, source.path, upstream.schema, upstream.row, files[-1][2]):
                left = (config.max_pairs or math.inf) - read[source.split]
                if left <= 0:
                    break
                if len(batch) > left:
                    batch, unread = batch.slice(0, int(left)), [u for u in unread if u[0] < left]
                read[source.split] += len(batch)
                if upstream.splits:
                    tests = pa.array([upstream.splits[source.split] == "test"] * len(batch), pa.bool_())
                else:
                    tests = _is_test(batch.column(upstream.split_by), config.test_size)
                examples = _convert_batch(batch, unread, tests, config, reports, place, row)
                test = tests.take(examples.column("_row"))
                upstream_rows = pc.add(examples.column("_row"), row)
                spill.file(examples.set_column(examples.schema.get_field_index("_row"), "_row", upstream_rows), test)
                row += len(batch)
    finally:
        spill.close()
    return reports, place


def _convert_batch(
    batch: pa.Table,
    unread: list[tuple[int, Reason]],
    tests: pa.Array,
    config: UltraFeedbackKTOConfig,
    reports: dict[str, SplitReport],
    place: Callable[[int], str],
    first_row: int,
) -> pa.Table:
    """The examples of a batch that starts at upstream row ``first_row`` (``_row``: the batch's
    rows); what it leaves out goes to the report of its split, named by ``place``."""
    upstream = UPSTREAMS[config.upstream]
    in_split = ["test" if test else "train" for test in tests.to_pylist()]
    for split in set(in_split):
        reports[split].read += in_split.count(split)
    left_out = list(unread)  # a row that could not be read is not converted: its reason is the reading's
    unread_rows = pa.array([r for r, _ in unread], pa.int64())
    rows = pc.indices_nonzero(pc.invert(pc.is_in(pa.array(range(len(batch))), unread_rows)))
    if config.exclude_sources:
        sources = batch.column("source").take(rows)
        excluded = pc.fill_null(pc.is_in(sources, pa.array(config.exclude_sources)), False)
        reason = dataclasses.replace(EXCLUDED_SOURCE, unit=upstream.row)
        left_out += [(row, reason) for row in rows.filter(excluded).to_pylist()]
        rows = rows.filter(pc.invert(excluded))
    converted = upstream.convert(batch if len(rows) == len(batch) else batch.take(rows), config)
    left_out += [(rows[index].as_py(), reason) for index, reason in converted.left_out]
    for index, reason in sorted(left_out, key=lambda item: item[0]):
        if reason.kind == "malformed" and config.on_bad_rows == "error":
            advice = "on_bad_rows='error'; 'warn' or 'skip' leave such data out"
            raise BadRowError(f"{place(first_row + index)}: {reason} ({advice})")
        reports[in_split[index]].add(reason, [place(first_row + index)])
    examples = converted.examples
    return examples.set_column(examples.schema.get_field_index("_row"), "_row", rows.take(examples.column("_row")))


# ---------------------------------------------------------------------------------------
# 3. Keep: one example of each (prompt, completion, label), in one split, of both labels
# ---------------------------------------------------------------------------------------


def keep(keys: pa.Table, excluded: pa.Array | None = None) -> tuple[pa.Array, dict[Reason, list[int]]]:
    """Which examples of a split (rows of its `_KEYS`) it keeps: the first in upstream order of
    each (prompt, completion, label), none of a (prompt, completion) found with both labels,
    and none of a prompt key in ``excluded`` (the test split's, where the upstream has its
    own); and the upstream rows of the others, by reason."""
    by_text = pc.sort_indices(keys, [(name, "ascending") for name in ("prompt_key", "completion_key", "row", "rank")])
    prompt, completion = keys.column("prompt_key").take(by_text), keys.column("completion_key").take(by_text)
    new_text = pc.or_(pc.not_equal(prompt[1:], prompt[:-1]), pc.not_equal(completion[1:], completion[:-1]))
    first = pa.concat_arrays([pa.array([True] * min(len(keys), 1), pa.bool_()), new_text.combine_chunks()])
    group = pc.subtract(pc.cumulative_sum(pc.cast(first, pa.int64())), 1)
    by_group = pa.table({"group": group, "label": keys.column("label").take(by_text)}).group_by("group")
    labels = by_group.aggregate([("label", "min"), ("label", "max")]).sort_by("group")
    contradictory = pc.not_equal(labels.column("label_min"), labels.column("label_max")).take(group)
    duplicate = pc.and_not(pc.invert(first), contradictory)
    in_test = pc.is_in(prompt, excluded if excluded is not None else pa.array([], pa.int64()))
    in_test = pc.and_not(pc.and_not(in_test, contradictory), duplicate)
    rows = keys.column("row").take(by_text)
    reasons = ((CONTRADICTORY, contradictory), (DUPLICATE, duplicate), (IN_UPSTREAM_TEST, in_test))
    left_out = {reason: sorted(rows.filter(which).to_pylist()) for reason, which in reasons if pc.any(which).as_py()}
    dropped = pc.or_(pc.or_(contradictory, duplicate), in_test)
    return pc.invert(dropped).take(pc.sort_indices(by_text)), left_out  # back in the keys' order


def check_labels(split: str, labels: pa.Array, config: UltraFeedbackKTOConfig) -> None:
    """Raise `UpstreamError` when a split's examples hold one label only: KTO cannot train on it."""
    desirable = pc.sum(labels).as_py() or 0
    if len(labels) and desirable in (0, len(labels)):  # (an empty split is left out)
        rule = f"label_rule={config.label_rule!r}"
        if config.label_rule == "absolute":
            rule += ", desirable_threshold={:g} on the upstream's scale, {:g} to {:g}".format(
                config.desirable_threshold, *UPSTREAMS[config.upstream].ratings
            )
        raise UpstreamError(
            f"split {split!r} would hold one label only, which KTO cannot train on: {desirable} desirable and "
            f"{len(labels) - desirable} undesirable examples ({rule})"
        )


# ---------------------------------------------------------------------------------------
# 4. Order: rows of one prompt far apart, labels mixed
# ---------------------------------------------------------------------------------------


#: The longest run of one label the order aims for when each label is at least a quarter
#: of the rows; longer runs only when the labels are more unbalanced than that.
LABEL_RUN = 3


def prompt_distance(rows: int, most_rows_of_a_prompt: int, min_prompt_distance: int) -> int:
    """How far apart the order keeps two rows of one prompt, in a split of ``rows`` rows:
    ``min_prompt_distance``, or where the split is too small for that, as far as it allows
    with at least ``rows / (2 x the most rows of one prompt)``."""
    if most_rows_of_a_prompt < 2:
        return min_prompt_distance
    return max(1, min(min_prompt_distance, rows // (2 * most_rows_of_a_prompt)))


class Arrangement:
    """A split's order, decided one window of rows at a time, each window following the last:
    two rows of one prompt at least ``distance`` rows apart wherever the data allows, and labels
    mixed so that no run of one label is longer than ``max(LABEL_RUN, ceil(majority / minority))``
    (every 8 consecutive rows hold both labels while each label is at least a quarter of them).

    In a window, the label of each position is drawn first (`_label_sequence`). A prompt's rows
    get places spread evenly over the window (c rows: 1/c of it apart, from a random offset),
    and each label's rows are dealt in the order of their places. A row whose prompt came fewer
    than ``distance`` rows before waits until it may come. When no row of the label may, the one
    that may come soonest swaps with an earlier row of the label where both may be (the data
    leaves no other choice at the end of a window).
    """

    def __init__(self, distance: int, rng: random.Random):
        self.distance, self.rng = distance, rng
        self.start = 0  # the position of the next window's first row in the split
        self.run: tuple[bool | None, int] = (None, 0)  # the run of labels the next window continues
        self.placed: dict = {}  # prompt key -> its positions, within `distance` of the window

    def window(self, prompt_keys: Sequence, labels: Sequence[bool]) -> list[int]:
        """The order of these rows (a permutation of their indices), placed after the rows before."""
        place = self._places(prompt_keys)
        pools: list[list[int]] = [[], []]  # rows by label, the next to deal last
        for row, label in enumerate(labels):
            pools[label].append(row)
        for pool in pools:
            pool.sort(key=place.__getitem__, reverse=True)
        majority, minority = max(map(len, pools)), min(map(len, pools))
        cap = max(LABEL_RUN, math.ceil(majority / max(minority, 1)))
        sequence = _label_sequence(len(pools[True]), len(pools[False]), cap, self.rng, *self.run)
        recent = self.start - self.distance
        self.placed = {key: kept for key, at in self.placed.items() if (kept := [p for p in at if p > recent])}
        waiting: list[list[tuple[int, int]]] = [[], []]  # heaps of (position it may come at, row), by label
        order: list[int] = []
        for position, label in enumerate(sequence, self.start):
            row = self._next(pools[label], waiting[label], prompt_keys, position)
            if row is None:
                row = self._swap(heapq.heappop(waiting[label])[1], order, prompt_keys, labels, position)
            bisect.insort(self.placed.setdefault(prompt_keys[row], []), position)
            order.append(row)
        self.start += len(order)
        if order:
            self.run = _last_run([labels[row] for row in order], self.run)
        return order

    def _places(self, prompt_keys: Sequence) -> list[float]:
        rows_of: dict = {}
        for row, key in enumerate(prompt_keys):
            rows_of.setdefault(key, []).append(row)
        place = [0.0] * len(prompt_keys)
        for rows in rows_of.values():
            if len(rows) > 1:
                self.rng.shuffle(rows)
            offset = self.rng.random()
            for k, row in enumerate(rows):
                place[row] = (offset + k) / len(rows)
        return place

    def _next(self, pool: list[int], waiting: list, prompt_keys: Sequence, position: int) -> int | None:
        """The first waiting row that may come at ``position``, else the next row of the pool that
        may (those that may not wait), or None."""
        while (due := waiting and waiting[0][0] <= position) or pool:
            row = heapq.heappop(waiting)[1] if due else pool.pop()
            at = self.placed.get(prompt_keys[row])
            may_come_at = at[-1] + self.distance if at else position
            if may_come_at <= position:
                return row
            heapq.heappush(waiting, (may_come_at, row))
        return None

    def _swap(self, row: int, order: list[int], prompt_keys: Sequence, labels: Sequence[bool], position: int) -> int:
        """The row for ``position`` when ``row`` may not come there: an earlier row of its label
        that may, ``row`` taking its place where it may; ``row`` itself when none can."""
        key = prompt_keys[row]
        for earlier in range(position - 1, self.start - 1, -1):
            other = order[earlier - self.start]
            other_key = prompt_keys[other]
            if (
                labels[other] == labels[row]
                and other_key != key
                and self._fits(key, earlier)
                and self._fits(other_key, position, earlier)
            ):
                self.placed[other_key].remove(earlier)
                bisect.insort(self.placed.setdefault(key, []), earlier)
                order[earlier - self.start] = row
                return other
        return row

    def _fits(self, key, position: int, leaving: int | None = None) -> bool:
        return all(abs(position - at) >= self.distance for at in self.placed.get(key, ()) if at != leaving)


def _label_sequence(true_left: int, false_left: int, cap: int, rng: random.Random, run_label=None, run=0) -> list[bool]:
    """A label for every position, each drawn in proportion to what is left of it among the
    labels that keep runs within ``cap`` (continuing a run of ``run`` rows of ``run_label``)
    and leave the rest arrangeable. One plain loop: it runs once per row."""
    sequence: list[bool] = []
    while true_left and false_left:
        true_run = run + 1 if run_label is True else 1
        false_run = run + 1 if run_label is False else 1
        # After this label the rest fits if each label's rows fit in runs of ``cap`` between the
        # other's (the current run's room counted for its own label).
        true_ok = (
            true_run <= cap and true_left - 1 <= cap - true_run + cap * false_left and false_left <= cap * true_left
        )
        false_ok = (
            false_run <= cap and false_left - 1 <= cap - false_run + cap * true_left and true_left <= cap * false_left
        )
        label = rng.random() * (true_left + false_left) < true_left if true_ok == false_ok else true_ok
        sequence.append(label)
        true_left, false_left = true_left - label, false_left - (not label)
        run, run_label = (run + 1, label) if label is run_label else (1, label)
    return sequence + [True] * true_left + [False] * false_left


def _last_run(labels: list[bool], before: tuple[bool | None, int]) -> tuple[bool | None, int]:
    """``(label, length)`` of the run of labels that ``labels`` end with, continuing ``before``."""
    length = next((count for count, label in enumerate(reversed(labels)) if label != labels[-1]), len(labels))
    return labels[-1], length + (before[1] if length == len(labels) and before[0] == labels[-1] else 0)


def order_split(keys: pa.Table, windows: int, config: UltraFeedbackKTOConfig, split: str) -> list[pa.Array]:
    """The order of each of a split's windows: the rows of its file (``index``) that ``keys``
    (the `_KEYS` of the examples the split keeps, window by window) name, as they are written."""
    starts = {group["values"]: group["counts"] for group in pc.value_counts(keys.column("window")).to_pylist()}
    most = pc.max(pc.value_counts(keys.column("prompt_key")).field("counts")).as_py() or 0
    arrangement = Arrangement(
        prompt_distance(len(keys), most, config.min_prompt_distance), random.Random(f"{config.seed}/{split}")
    )
    orders, start = [], 0
    for window in range(windows):
        rows = keys.slice(start, starts.get(window, 0))
        if config.order == "upstream":
            rows = rows.sort_by([("row", "ascending"), ("rank", "ascending")])
        else:
            order = arrangement.window(rows.column("prompt_key").to_pylist(), rows.column("label").to_pylist())
            rows = rows.take(pa.array(order, pa.int64()))
        orders.append(rows.column("index").combine_chunks())
        start += starts.get(window, 0)
    return orders


# ---------------------------------------------------------------------------------------
# The builder: its options, and the datasets hooks that run the stages and write (5) the rows
# ---------------------------------------------------------------------------------------


def _option(default: Any, help: str) -> Any:
    """A builder option: its default, and its help, the one text that documents it."""
    return dataclasses.field(default=default, metadata={"help": help})


@dataclasses.dataclass
class UltraFeedbackKTOConfig(datasets.BuilderConfig):
    """Options of the builder, each documented by its field's ``help`` (``ufkto build --help``
    shows the same); ``None`` leaves an option to the upstream.

    | upstream | Hub repo | a row | examples | splits |
    |---|---|---|---|---|
    | ``"argilla-cleaned"`` | argilla/ultrafeedback-binarized-preferences-cleaned | a pair | its chosen and rejected completions; ratings 1 to 5 | by ``test_size`` |
    | ``"openbmb"`` | openbmb/UltraFeedback | a prompt | each rated completion, with its ``annotations``; ratings 1 to 5 (the mean of its aspects) | by ``test_size`` |
    | ``"h4-binarized"`` | HuggingFaceH4/ultrafeedback_binarized | a pair | as argilla-cleaned; ratings are its scores, 1 to 10 | its own: ``train_prefs``, ``test_prefs`` |

    Whatever the options, a split keeps one example of each (prompt, completion, label), none of
    a (prompt, completion) found with both labels, and stops the build when left with one label.
    Streaming reads the whole upstream before the first row, as the order needs every row.

    Example::

        builder = UltraFeedbackKTO(config_name="conversational", data_files="upstream.parquet",
                                   label_rule="absolute", desirable_threshold=4.5, test_size=0.1)
    """

    format: Literal["standard", "conversational"] = _option(
        "standard",
        "'standard': prompt and completion are strings. 'conversational': lists of {content, role} messages, as TRL "
        "expects (the prompt: every turn before the final assistant one). Set by the configs of those names.",
    )
    upstream: Literal["argilla-cleaned", "openbmb", "h4-binarized"] = _option(
        "argilla-cleaned",
        "The upstream (see UltraFeedbackKTOConfig), read from the Hub unless data_files give files with its columns "
        "(keyed by h4-binarized's splits for it: {'train_prefs': ..., 'test_prefs': ...}).",
    )
    upstream_revision: str = _option(
        "main",
        "Branch, tag or commit of the upstream on the Hub, without data_files; pin a commit to reproduce a build.",
    )
    test_size: float | None = _option(
        None,
        "Fraction of prompts in test, by a stable hash of the prompt (split_of); 0: train only; 0.05 by default. Not "
        "for h4-binarized, whose splits are its own (a train prompt also in its test split is left out of train).",
    )
    order: Literal["shuffled", "upstream"] = _option(
        "shuffled",
        "'shuffled': rows of one prompt min_prompt_distance apart, every 8 consecutive rows with both labels "
        "(Arrangement). 'upstream': to inspect the conversion; neighbours share a prompt, which spoils KTO's KL term.",
    )
    seed: int = _option(42, "Seed of the shuffle: the same seed gives the same order, streaming or not, any num_proc.")
    min_prompt_distance: int = _option(
        1000,
        "The fewest rows between two rows of one prompt, so that no batch of up to that many rows holds a prompt twice "
        "(TRL and LLaMA-Factory pair rows of a batch for the KL term); a split too small for it gets prompt_distance.",
    )
    label_rule: Literal["pairwise", "absolute", "best-vs-rest"] | None = _option(
        None,
        "'pairwise' (pairs' default): chosen is desirable, rejected not. 'absolute' (openbmb's default): a rating of "
        "at least desirable_threshold is desirable; pairs missing a rating are left out. 'best-vs-rest' (openbmb): "
        "the prompt's best-rated completions are desirable; a prompt whose completions all tie is left out.",
    )
    desirable_threshold: float | None = _option(
        None,
        "With label_rule 'absolute': the lowest desirable rating, on the upstream's scale (1 to 5; h4-binarized's "
        "scores 1 to 10); 4.0 by default, 8.0 for h4-binarized. E.g. 4.5.",
    )
    min_rating_margin: float | None = _option(
        None,
        "Leave out pairs whose chosen rating exceeds the rejected one by less than this, or miss a rating. E.g. 1.",
    )
    exclude_sources: tuple[str, ...] | None = _option(
        None,
        "Leave out upstream rows of these sources; by default ('truthful_qa',) for openbmb (an evaluation set, which "
        "Argilla's cleaning removed), else none. Not for h4-binarized, which names no source.",
    )
    max_pairs: int | None = _option(None, "Read only the first N upstream rows (per split for h4-binarized).")
    on_bad_rows: Literal["error", "warn", "skip"] = _option(
        "warn",
        "Malformed upstream rows: 'warn' leaves them out, logging each reason with its count and first rows; 'skip' "
        "leaves them out silently; 'error' stops at the first. A file unusable as a whole always stops the build.",
    )
    shuffle_dir: str | None = _option(
        None, "Where examples wait while the order is decided (about the dataset's size); by default the temp folder."
    )

    def __post_init__(self):
        super().__post_init__()
        self.check_options()

    def check_options(self) -> None:
        """Raise ValueError naming the first option with a value outside its range."""
        for option, allowed in option_choices().items():
            if getattr(self, option) not in allowed:
                raise ValueError(f"{option}={getattr(self, option)!r}: expected one of {', '.join(map(str, allowed))}")
        upstream = UPSTREAMS[self.upstream]
        if self.label_rule is not None and self.label_rule not in upstream.label_rules:
            raise ValueError(
                f"label_rule={self.label_rule!r} has no meaning for upstream={self.upstream!r}: "
                f"expected one of {', '.join(upstream.label_rules)}"
            )
        not_here = {
            "test_size": upstream.splits,
            "min_rating_margin": upstream.row != "pair",
            "exclude_sources": "source" not in upstream.schema.names,
        }
        for option, refused in not_here.items():
            if refused and getattr(self, option) not in (None, ()):
                raise ValueError(f"{option} does not apply to upstream={self.upstream!r} (see UltraFeedbackKTOConfig)")
        if self.test_size is not None and not 0 <= self.test_size < 1:
            raise ValueError(f"test_size={self.test_size!r}: expected a fraction in [0, 1)")
        if self.min_prompt_distance < 1:
            raise ValueError(f"min_prompt_distance={self.min_prompt_distance!r}: expected a positive number of rows")
        if self.max_pairs is not None and self.max_pairs < 1:
            raise ValueError(f"max_pairs={self.max_pairs!r}: expected a positive number of rows")
        low, high = upstream.ratings
        if self.desirable_threshold is not None and not low <= self.desirable_threshold <= high:
            raise ValueError(
                f"desirable_threshold={self.desirable_threshold!r}: expected a rating from {low:g} to "
                f"{high:g}, the scale of upstream={self.upstream!r}"
            )
        if self.min_rating_margin is not None and self.min_rating_margin < 0:
            raise ValueError(f"min_rating_margin={self.min_rating_margin!r}: expected a non-negative rating gap")
        if self.shuffle_dir is not None and not os.path.isdir(self.shuffle_dir):
            raise ValueError(f"shuffle_dir={self.shuffle_dir!r}: no such folder")

    def resolved(self) -> UltraFeedbackKTOConfig:
        """This config with each option left to the upstream (None) set to the upstream's default."""
        upstream = UPSTREAMS[self.upstream]
        return dataclasses.replace(
            self,
            test_size=None if upstream.splits else (0.05 if self.test_size is None else self.test_size),
            label_rule=self.label_rule or upstream.label_rules[0],
            desirable_threshold=upstream.desirable_threshold
            if self.desirable_threshold is None
            else self.desirable_threshold,
            exclude_sources=tuple(upstream.exclude_sources if self.exclude_sources is None else self.exclude_sources),
        )


def option_choices() -> dict[str, tuple]:
    """The allowed values of each option with a fixed set, read from its ``Literal`` type."""
    choices = {}
    for name, hint in typing.get_type_hints(UltraFeedbackKTOConfig).items():
        literal = next((arg for arg in (hint, *typing.get_args(hint)) if typing.get_origin(arg) is Literal), None)
        if literal is not None:
            choices[name] = typing.get_args(literal) + ((None,) if type(None) in typing.get_args(hint) else ())
    return choices


#: Rows per table handed to datasets: its shards can only end between tables.
_TABLE_ROWS = 512


class UltraFeedbackKTO(datasets.ArrowBasedBuilder):
    """UltraFeedback preference pairs unpaired into KTO examples (see the module docstring).

    An `ArrowBasedBuilder`, the kind behind ``datasets``' own parquet and json loaders: it
    hands Arrow tables to the writer rather than one example at a time. Its splits are planned
    by the stages above, in turn; ``reports`` then holds what each split read and left out.
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
        # The cache is keyed by this file's bytes too, as datasets keys a loading script's: a
        # builder copied anew or changed never serves the rows an earlier one cached.
        with open(__file__, "rb") as source:
            kwargs.setdefault("hash", hashlib.sha256(source.read()).hexdigest())
        super().__init__(*args, **kwargs)
        # Options given with a named config are set on a copy of it, past __post_init__;
        # those left to the upstream (None) take its defaults here.
        self.config.check_options()
        self.config = self.config.resolved()

    def _info(self) -> datasets.DatasetInfo:
        repo = UPSTREAMS[self.config.upstream].repo
        return datasets.DatasetInfo(
            description=f"UltraFeedback ({repo}) for KTO: examples (prompt, completion, label), ordered for TRL's "
            "KTO trainer, which reads them in file order.",
            citation=CITATION,
            homepage=f"https://huggingface.co/datasets/{repo}",
            license="mit",
            features=features(self.config.format, self.config.upstream),
        )

    def _split_generators(self, dl_manager) -> list[datasets.SplitGenerator]:
        config = self.config
        sources = self._sources(dl_manager)
        spill = Spill(plan_windows(sources, config), config)
        reports, place = convert_upstream(sources, config, spill)
        # A prompt is in one split only: with the upstream's own splits, test wins.
        in_test = pc.unique(spill.keys("test").column("prompt_key")) if UPSTREAMS[config.upstream].splits else None
        generators = []
        for split, windows in spill.windows.items():
            keys = spill.keys(split)
            kept, left_out = keep(keys, in_test if split == "train" else None)
            for reason, rows in left_out.items():
                reports[split].add(reason, [place(row) for row in rows[: SplitReport.FIRST_PLACES]], len(rows))
            reports[split].log(config.on_bad_rows)
            check_labels(split, keys.column("label").filter(kept), config)
            orders = order_split(keys.filter(kept), windows, config, split)
            written = [window for window in range(windows) if len(orders[window])]
            if not written:
                logger.warning(f"Split {split!r} has no rows: it is left out")
                continue
            paths, orders = [spill.path(split, w) for w in written], [orders[w] for w in written]
            kwargs = {"windows": paths, "orders": orders, "spill": spill}
            generators.append(datasets.SplitGenerator(name=split, gen_kwargs=kwargs))
        if not generators:
            left_out = sum((report.left_out for report in reports.values()), Counter())
            reasons = "; ".join(f"{reason}: {count}" for reason, count in left_out.most_common())
            raise UpstreamError(f"no examples left to build from ({reasons or 'no rows read'})")
        self.reports = reports
        return generators

    def _sources(self, dl_manager) -> list[Source]:
        """The upstream's files: ``data_files``, or its files on the Hub at ``upstream_revision``."""
        config, upstream = self.config, UPSTREAMS[self.config.upstream]
        if config.data_files:
            files = {split: list(names) for split, names in config.data_files.items()}
            unknown = sorted(set(files) - set(upstream.splits)) if upstream.splits else []
            if unknown:
                raise UpstreamError(
                    f"data_files for upstream={config.upstream!r} are keyed by its splits "
                    f"({', '.join(upstream.splits)}), not {', '.join(unknown)}"
                )
        else:
            hub = f"hf://datasets/{upstream.repo}@{config.upstream_revision}"
            config_of = dl_manager.download_config
            files = {
                split: list(
                    datasets.data_files.DataFilesList.from_patterns([f"{hub}/{pattern}"], download_config=config_of)
                )
                for split, pattern in upstream.files.items()
            }
        return [
            Source(split, scrub_urls(name), path)
            for split, names in files.items()
            for name, path in zip(names, dl_manager.download(names), strict=True)
        ]

    def _generate_tables(
        self, windows: list[str], orders: list[pa.Array], spill=None
    ) -> Iterator[tuple[Any, pa.Table]]:
        # The last stage, write: each window read back and its rows taken in order. ``spill`` is
        # only there to keep the window files while the split is generated.
        for window, (path, order) in enumerate(zip(windows, orders, strict=True)):
            with pa.OSFile(path) as source:  # read, not memory-mapped: memory holds one window
                rows = pa.ipc.open_file(source).read_all().combine_chunks().take(order)
            if self.config.format == "standard":
                rows = standard_from_conversational(rows)
            for start in range(0, rows.num_rows, _TABLE_ROWS):
                yield _key(window, start), rows.slice(start, _TABLE_ROWS)

    def _get_examples_iterable_for_split(self, split_generator):
        # Streaming. A private method, as datasets has no public hook for it: it turns an
        # Arrow-based builder's tables into one-row tables and encodes and decodes each row
        # again, too slow for bench/README.md's streaming target. Our tables already have the
        # declared features: rows are made in bulk, marked as typed.
        return _TypedExamplesIterable(self._generate_rows, split_generator.gen_kwargs)

    def _generate_rows(self, **gen_kwargs) -> Iterator[tuple[str, dict]]:
        for key, table in self._generate_tables(**gen_kwargs):
            for index, row in enumerate(table.to_pylist()):
                yield f"{key}/{index}", row


class _TypedExamplesIterable(datasets.iterable_dataset.ExamplesIterable):
    """Rows that already have the declared features: datasets need not encode them again."""

    @property
    def is_typed(self) -> bool:
        return True

    def shard_data_sources(self, *args, **kwargs):  # a shard of a stream (workers, nodes) stays typed
        shard = super().shard_data_sources(*args, **kwargs)
        return _TypedExamplesIterable(shard.generate_examples_fn, shard.kwargs)


def _key(shard: int, batch: int):
    """The key ``datasets`` expects with a table: a `Key` from 4.0 on, any string before."""
    key_class = getattr(datasets.builder, "Key", None)
    return key_class(shard, batch) if key_class else f"{shard}_{batch}"
