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
(pure functions), the split and row order (pure functions), reading the upstream files,
and the builder.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import os
import random
import tempfile
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from typing import Any, Literal

import datasets
import pyarrow as pa
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
# Splits and row order
# ---------------------------------------------------------------------------------------


def _unit_interval(text: str) -> float:
    return int(hashlib.sha256(text.encode("utf-8")).hexdigest()[:16], 16) / 2**64


def split_of(prompt: str, test_size: float) -> str:
    """``"test"`` or ``"train"``, from a hash of the upstream prompt (the first user turn).

    The hash ignores the seed and everything else, so both halves of a pair, and every pair
    sharing the prompt, land together, and a refreshed upstream never moves a prompt
    across splits. A larger ``test_size`` only adds prompts to ``test``.
    """
    return "test" if _unit_interval(prompt or "") < test_size else "train"


def bucket_of(prompt: str, seed: int, num_buckets: int) -> int:
    """The shuffle bucket of a prompt: all pairs sharing a prompt share a bucket."""
    return int(_unit_interval(f"{seed}\x00{prompt or ''}") * num_buckets)


#: The shortest label run cap used when arranging; longer only when the labels are so
#: unbalanced that runs of 3 cannot hold them.
MIN_LABEL_RUN_CAP = 3


def arrange(prompt_ids: Sequence[str], labels: Sequence[bool], rng: random.Random) -> list[int]:
    """A random order of the rows of one bucket, fit for TRL's KTO trainer.

    Returns a permutation of ``range(len(labels))`` such that, wherever the data allows:
    no two neighbours share a prompt id; no run of one label is longer than
    ``cap = max(3, ceil(majority / (minority + 1)))``; the first two rows have different
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
    cap = max(MIN_LABEL_RUN_CAP, math.ceil(majority / (minority + 1)))

    order: list[int] = []
    run_label, run_length = None, 0
    for position in range(len(labels)):
        label = _next_label(pools, run_label, run_length, cap, position, rng)
        pool = pools[label]
        previous = prompt_ids[order[-1]] if order else None
        # Deal the last row of the pool, or the nearest one with another prompt.
        for back in range(len(pool) - 1, -1, -1):
            if prompt_ids[pool[back]] != previous:
                pool[back], pool[-1] = pool[-1], pool[back]
                break
        order.append(pool.pop())
        run_length = run_length + 1 if label == run_label else 1
        run_label = label
    _separate_equal_prompts(order, prompt_ids, labels, rng)
    return order


def _next_label(pools, run_label, run_length, cap, position, rng) -> bool:
    def keeps_arrangeable(label: bool) -> bool:
        left, other = len(pools[label]) - 1, len(pools[not label])
        run = run_length + 1 if label == run_label else 1
        other_runs = math.ceil(other / cap)
        return other_runs - 1 <= left and left <= (cap - run) + cap * other

    available = [label for label in (True, False) if pools[label]]
    if len(available) == 1:
        return available[0]
    within_cap = [label for label in available if not (label == run_label and (run_length >= cap or position == 1))]
    candidates = [label for label in within_cap if keeps_arrangeable(label)] or within_cap or available
    if len(candidates) == 1:
        return candidates[0]
    true_left, false_left = len(pools[True]), len(pools[False])
    return rng.random() * (true_left + false_left) < true_left


def _separate_equal_prompts(order: list[int], prompt_ids, labels, rng: random.Random) -> None:
    def fits(index: int, position: int, skip: int) -> bool:
        return all(
            prompt_ids[order[near]] != prompt_ids[index]
            for near in (position - 1, position + 1)
            if 0 <= near < len(order) and near != skip
        )

    for position in range(1, len(order)):
        if prompt_ids[order[position]] != prompt_ids[order[position - 1]]:
            continue
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
_BATCH_ROWS = 1_000


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
                metadata = pq.ParquetFile(f).metadata
                kinds = {field.name: _type_kind(field.type) for field in metadata.schema.to_arrow_schema()}
                num_rows = metadata.num_rows
            else:
                num_rows, first = 0, None
                for line in f:
                    if line.strip():
                        num_rows += 1
                        first = first or line
                kinds = {}
                if first is not None:
                    try:
                        kinds = {key: _json_kind(value) for key, value in json.loads(first).items()}
                    except (ValueError, AttributeError) as error:
                        raise UpstreamError(f"{name}: row 0 is not a JSON object ({error})") from None
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


def _prompts_of(batch: pa.RecordBatch) -> list:
    return batch.column(batch.schema.get_field_index("prompt")).to_pylist()


def read_batches(name: str, path: str) -> Iterator[tuple[list, pa.RecordBatch | list[dict]]]:
    """Yield ``(prompts, rows)`` per batch of an upstream file, in file order.

    ``rows`` is a record batch (parquet; rows become dicts only when selected, which is
    where the time goes) or a list of dicts (JSON Lines, where a line that is not a JSON
    object becomes ``None``, a bad row for the policy to handle).
    """
    file_format = _file_format(name)
    try:
        with open(path, "rb") as f:
            if file_format == "parquet":
                columns = list(UPSTREAM_COLUMNS)
                for batch in pq.ParquetFile(f).iter_batches(batch_size=_BATCH_ROWS, columns=columns):
                    yield _prompts_of(batch), batch
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
                    yield [row and row.get("prompt") for row in rows], rows
                    rows = []
            if rows:
                yield [row and row.get("prompt") for row in rows], rows
    except (pa.ArrowException, OSError) as error:
        raise UpstreamError(f"{name}: unreadable {file_format} file ({_one_line(error)})") from None


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


def _handle_bad_pair(policy: str, report: DropReport, reason: str, name: str, row: int) -> None:
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
        shuffle_bucket_pairs (`int`, defaults to ``16384``):
            Bounds the memory of ``order="shuffled"``. Pairs are hashed into
            ``ceil(pairs / shuffle_bucket_pairs)`` buckets held on disk; one bucket at a time is
            loaded and arranged, so memory holds about ``shuffle_bucket_pairs`` pairs (about
            80 MB at UltraFeedback's text lengths) however large the upstream grows.
        shuffle_dir (`str`, *optional*):
            Where the buckets wait during the shuffle (about the size of the dataset as Arrow);
            defaults to the system temporary folder. ``shuffle_dir="/scratch"``.

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
    shuffle_bucket_pairs: int = 16_384
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
        if self.shuffle_dir is not None and not os.path.isdir(self.shuffle_dir):
            raise ValueError(f"shuffle_dir={self.shuffle_dir!r}: no such folder")
        if self.min_rating_margin is not None and self.min_rating_margin < 0:
            raise ValueError(f"min_rating_margin={self.min_rating_margin!r}: expected a non-negative rating gap")


class UltraFeedbackKTO(datasets.GeneratorBasedBuilder):
    """UltraFeedback preference pairs unpaired into KTO examples (see the module docstring)."""

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
        #: Pairs left out per split, filled as splits are generated in this process (with
        #: num_proc > 1 the jobs' reports stay in their processes and only reach the log).
        self.drop_reports: dict[str, DropReport] = {}

    def _info(self) -> datasets.DatasetInfo:
        return datasets.DatasetInfo(
            description=_DESCRIPTION,
            citation=CITATION,
            homepage=_HOMEPAGE,
            license="mit",
            features=FEATURES[self.config.format],
        )

    def _split_generators(self, dl_manager) -> list[datasets.SplitGenerator]:
        names = self._source_names(dl_manager)
        paths = dl_manager.download(names)
        # Every file is checked, and counted, before any row is written.
        counts = [inspect_source(name, path) for name, path in zip(names, paths, strict=False)]
        pairs = min(sum(counts), self.config.max_pairs or math.inf)
        first_rows = [sum(counts[:i]) for i in range(len(counts))]
        if self.config.order == "upstream":
            # Shards are files (with the upstream row number each starts at), so that
            # num_proc > 1 reads them in parallel and still writes them in order.
            shards = {"names": names, "paths": paths, "first_rows": first_rows}
        else:
            # Shards are shuffle buckets: each job reads every file but keeps only its own
            # buckets, so any num_proc writes the same rows in the same order.
            num_buckets = max(1, math.ceil(pairs / self.config.shuffle_bucket_pairs))
            shards = {
                "names": tuple(names),
                "paths": tuple(paths),
                "first_rows": tuple(first_rows),
                "buckets": list(range(num_buckets)),
                "num_buckets": num_buckets,
            }
        splits = [datasets.Split.TRAIN] + ([datasets.Split.TEST] if self.config.test_size > 0 else [])
        return [datasets.SplitGenerator(name=split, gen_kwargs={"split": str(split), **shards}) for split in splits]

    def _source_names(self, dl_manager) -> list[str]:
        if self.config.data_files:
            return [name for files in self.config.data_files.values() for name in files]
        pattern = f"hf://datasets/{UPSTREAM_REPO}@{self.config.upstream_revision}/{UPSTREAM_FILES}"
        return list(
            datasets.data_files.DataFilesList.from_patterns([pattern], download_config=dl_manager.download_config)
        )

    def _generate_examples(self, split, names, paths, first_rows, buckets=None, num_buckets=1):
        report = DropReport(split=split)
        examples = self._examples_in_upstream_order(split, names, paths, first_rows, report, buckets, num_buckets)
        if self.config.order == "upstream":
            yield from ((f"{row}-{side}", example) for row, side, _, example in examples)
        else:
            yield from self._shuffled(examples, buckets)
        _log_report(report, self.config.on_bad_rows)
        self.drop_reports.setdefault(split, DropReport(split=split)).merge(report)

    def _examples_in_upstream_order(self, split, names, paths, first_rows, report, buckets, num_buckets):
        """Yield ``(upstream row, side, bucket, example)`` for this split and these buckets."""
        config = self.config
        wanted = set(buckets) if buckets is not None else None
        options = {
            "format": config.format,
            "label_rule": config.label_rule,
            "desirable_threshold": config.desirable_threshold,
            "min_rating_margin": config.min_rating_margin,
        }
        for name, path, first_row in zip(names, paths, first_rows, strict=False):
            row = 0
            for prompts, rows in read_batches(name, path):
                selected = []
                for offset, prompt in enumerate(prompts):
                    if config.max_pairs is not None and first_row + row + offset >= config.max_pairs:
                        break
                    prompt = prompt if isinstance(prompt, str) else ""
                    if split_of(prompt, config.test_size) != split:
                        continue
                    bucket = bucket_of(prompt, config.seed, num_buckets) if wanted is not None else 0
                    if wanted is None or bucket in wanted:
                        selected.append((offset, bucket))
                if selected:
                    pairs = rows if isinstance(rows, list) else rows.take([o for o, _ in selected]).to_pylist()
                    for index, (offset, bucket) in enumerate(selected):
                        pair = pairs[offset] if isinstance(rows, list) else pairs[index]
                        report.pairs_seen += 1
                        try:
                            if pair is None:
                                raise BadPair("not a JSON object")
                            chosen, rejected = pair_to_examples(pair, **options)
                        except BadPair as problem:
                            _handle_bad_pair(config.on_bad_rows, report, problem.reason, name, row + offset)
                            continue
                        except DroppedPair as dropped:
                            report.add(report.dropped, dropped.reason, name, row + offset)
                            continue
                        yield first_row + row + offset, "chosen", bucket, chosen
                        yield first_row + row + offset, "rejected", bucket, rejected
                row += len(prompts)
                if config.max_pairs is not None and first_row + row >= config.max_pairs:
                    return

    def _shuffled(self, examples: Iterable, buckets: list[int]) -> Iterator[tuple[str, dict]]:
        features = FEATURES[self.config.format]
        with _BucketStore(features.arrow_schema, self.config.shuffle_dir) as store:
            for _, _, bucket, example in examples:
                store.add(bucket, example)
            for bucket in buckets:
                table = store.load(bucket)
                if table is None:
                    continue
                rng = random.Random(f"{self.config.seed}/{bucket}")
                order = arrange(table.column("prompt_id").to_pylist(), table.column("label").to_pylist(), rng)
                table = table.take(order)
                position = 0
                for batch in table.to_batches(max_chunksize=_BATCH_ROWS):
                    for example in batch.to_pylist():
                        yield f"{bucket}-{position}", example
                        position += 1


class _BucketStore:
    """Shuffle buckets on disk: rows appended in any order, read back one bucket at a time.

    Arrow IPC files, because they are written in pieces and read back whole cheaply; the
    folder is removed on exit, also when the build fails.
    """

    FLUSH_ROWS = 8_192

    def __init__(self, schema: pa.Schema, directory: str | None):
        self.schema = schema
        self.directory = directory
        self.pending: dict[int, list[dict]] = {}
        self.writers: dict[int, pa.ipc.RecordBatchFileWriter] = {}
        self.pending_rows = 0

    def __enter__(self) -> _BucketStore:
        self._folder = tempfile.TemporaryDirectory(prefix="ufkto-shuffle-", dir=self.directory)
        return self

    def __exit__(self, *exc_info) -> None:
        for writer in self.writers.values():
            writer.close()
        self._folder.cleanup()

    def add(self, bucket: int, example: dict) -> None:
        self.pending.setdefault(bucket, []).append(example)
        self.pending_rows += 1
        if self.pending_rows >= self.FLUSH_ROWS:
            self._flush()

    def _flush(self) -> None:
        for bucket, rows in self.pending.items():
            if bucket not in self.writers:
                path = os.path.join(self._folder.name, f"{bucket}.arrow")
                self.writers[bucket] = pa.ipc.new_file(path, self.schema)
            self.writers[bucket].write_table(pa.Table.from_pylist(rows, schema=self.schema))
        self.pending, self.pending_rows = {}, 0

    def load(self, bucket: int) -> pa.Table | None:
        self._flush()
        writer = self.writers.pop(bucket, None)
        if writer is None:
            return None
        writer.close()
        path = os.path.join(self._folder.name, f"{bucket}.arrow")
        with pa.OSFile(path) as source:
            table = pa.ipc.open_file(source).read_all()
        os.remove(path)
        return table
