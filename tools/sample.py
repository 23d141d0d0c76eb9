"""Deterministic fake upstream data for tests, benchmarks and the shipped samples.

The real upstream is the Hugging Face dataset
``argilla/ultrafeedback-binarized-preferences-cleaned`` (60,917 DPO preference
pairs). This module writes data with exactly its schema (the builder's ``UPSTREAM_SCHEMA``,
same column order and Arrow types) and with the traits of the real rows, so that
the converter can be tested and benchmarked without a download. No real text is
copied: the text comes from ``tools/sample_text.py``, which also says how its lengths
were calibrated on real rows.

Traits reproduced (all present at 2,000 pairs; ``tests/test_sample.py`` checks them):

- ``chosen`` and ``rejected`` are message lists that start with the user turn whose
  content equals ``prompt`` and end with an assistant turn; every turn before the
  last is identical between ``chosen`` and ``rejected``.
- About 3% multi-turn pairs: user, assistant, user, assistant (``prompt`` is the
  first user turn).
- Multi-line text (paragraphs, bullet lists), fenced code blocks (```python,
  ```cpp, ... in about 25% of completions), non-ASCII text (accents, symbols,
  CJK, Cyrillic) in about 13% of rows, emoji in about 2% of rows, and a few long
  completions (over 8,000 characters, about 0.2% of completions).
- Lengths in characters: prompt median ~370, mean ~470; chosen completion median
  ~1,890 (under 2,000), mean ~1,900; rejected completion median ~1,430, mean ~1,500.
- Ratings are means of four 1-5 aspect ratings: multiples of 0.25 in [1, 5];
  ``chosen-rating >= rejected-rating``; about 2% ties; about 1% of pairs have a
  null rating in one of the two columns.
- About 5% of pairs reuse the prompt (and source) of an earlier pair, with
  different completions.
- ``source`` from the upstream source names, models from realistic model names;
  ``chosen-model != rejected-model`` in about 99% of pairs.
- No empty prompt or completion.

Measured (seed 0, CPython 3.11, pyarrow 26, one core):

- Arrow size: at 5,000 pairs ``table.nbytes`` is 5,054 bytes per pair (5,036 at
  20,000), which extrapolates to about 307 MB at 60,917 pairs against the real
  284,937,773 bytes (+8%). The gap comes from the calibration rows, which are longer
  than the upstream average: their text is ~4,830 characters per pair (prompt counted
  three times, as stored), while the upstream's Arrow size implies ~4,540 once the
  ~140 bytes of offsets and short columns per pair are taken off. Multi-turn pairs
  and long completions add ~70 bytes per pair.
- On disk: 60,917 pairs are 118 MB as Parquet, 322 MB as JSON Lines.

Determinism: pair ``i`` is a pure function of ``(seed, i)`` (``tools/sample_text.py``), so
the first ``k`` pairs of an ``n``-pair output equal a ``k``-pair output, and the same
``(n, seed)`` gives byte-identical JSONL and identical Parquet table content.

The command writes this upstream or, with ``--upstream openbmb`` or ``--upstream
h4-binarized``, the other two of the family (``tools/sample_family.py``); ``--compression
zstd:19`` makes small parquet files. Run it from the checkout::

    python -m tools.sample --pairs 2000 --seed 0 --out upstream.parquet
    python -m tools.sample --upstream openbmb --rows 2000 --out openbmb.parquet
    python -m tools.sample --upstream h4-binarized --pairs 2000 --test-pairs 100 --out h4/

The shipped samples in ``publish/samples/`` are its output, with the arguments in
``SAMPLE_COMMANDS`` (the tests check that they still are).
"""

from __future__ import annotations

import argparse
import pathlib
import random
import sys
from collections.abc import Sequence
from functools import partial
from itertools import accumulate

import pyarrow as pa

from tools import sample_family, sample_text
from tools.sample_files import Rows, messages_array
from ultrafeedback_kto import UPSTREAM_SCHEMA, UPSTREAMS

__all__ = [
    "SOURCES",
    "MODELS",
    "ROW_GROUP_SIZE",
    "SAMPLE_COMMANDS",
    "PAIRS",
    "generate_batches",
    "generate_table",
    "write_upstream",
    "main",
]

ROW_GROUP_SIZE = 10_000

# ------------------------------------------------------------------- trait rates

MULTI_TURN_RATE = 0.03
PROMPT_REUSE_RATE = 0.05
TIE_RATE = 0.02
NULL_RATING_RATE = 0.01
SAME_MODEL_RATE = 0.01

# ------------------------------------------------------------------ names and ratings

SOURCES = (
    "evol_instruct",
    "false_qa",
    "flan_v2_niv2",
    "flan_v2_cot",
    "flan_v2_p3",
    "flan_v2_flan2021",
    "sharegpt",
    "ultrachat",
)
_SOURCE_WEIGHTS = (16, 3, 16, 5, 3, 3, 22, 32)

MODELS = (
    "gpt-4",
    "gpt-3.5-turbo",
    "gpt-4-turbo",
    "wizardlm-70b",
    "wizardlm-13b",
    "llama-2-70b-chat",
    "llama-2-13b-chat",
    "starchat",
    "pythia-12b",
    "falcon-40b-instruct",
    "mpt-30b-chat",
    "ultralm-65b",
    "vicuna-33b",
    "bard",
    "alpaca-7b",
)
# Stronger models win more often, weaker ones lose more often.
_CHOSEN_MODEL_WEIGHTS = (14, 9, 10, 9, 6, 6, 5, 4, 2, 3, 6, 8, 7, 6, 2)
_REJECTED_MODEL_WEIGHTS = (3, 6, 3, 6, 7, 7, 8, 8, 9, 8, 6, 5, 6, 6, 9)
_SOURCE_CUM = tuple(accumulate(_SOURCE_WEIGHTS))
_CHOSEN_MODEL_CUM = tuple(accumulate(_CHOSEN_MODEL_WEIGHTS))
_REJECTED_MODEL_CUM = tuple(accumulate(_REJECTED_MODEL_WEIGHTS))

# Ratings are means of four aspect ratings on the upstream's scale (1 to 5): quarter points.
_LOWEST_QUARTER, _HIGHEST_QUARTER = (int(4 * rating) for rating in UPSTREAMS["argilla-cleaned"].ratings)
# The chosen rating, above the lowest, skewed to the top.
_CHOSEN_QUARTERS = tuple(range(_LOWEST_QUARTER + 1, _HIGHEST_QUARTER + 1))
_CHOSEN_QUARTER_WEIGHTS = (0.3, 0.5, 0.7, 1, 1.5, 2, 3, 4, 5, 7, 8, 10, 12, 14, 14, 18)
_CHOSEN_QUARTER_CUM = tuple(accumulate(_CHOSEN_QUARTER_WEIGHTS))
assert len(_CHOSEN_QUARTERS) == len(_CHOSEN_QUARTER_WEIGHTS)

# ------------------------------------------------------------------ pairs


def _pair_hash(seed: int, index: int) -> tuple[int, int]:
    return sample_text.row_hash("ufkto-sample", seed, index)


def _prompt(rng: random.Random) -> tuple[str, str]:
    """(source, prompt text): the first draws of a pair's random stream."""
    source = sample_text.pick(rng, SOURCES, _SOURCE_CUM)
    return source, sample_text.prompt_text(rng, source)


def _ratings(rng: random.Random) -> tuple[float | None, float | None]:
    q_chosen = sample_text.pick(rng, _CHOSEN_QUARTERS, _CHOSEN_QUARTER_CUM)
    if rng.random() < TIE_RATE:
        q_rejected = q_chosen
    else:  # the lowest .. q_chosen - 1
        q_rejected = _LOWEST_QUARTER + int(rng.random() * (q_chosen - _LOWEST_QUARTER))
    chosen, rejected = q_chosen / 4, q_rejected / 4
    if rng.random() < NULL_RATING_RATE:
        if rng.random() < 0.5:
            chosen = None
        else:
            rejected = None
    return chosen, rejected


def _pair(seed: int, index: int) -> tuple:
    """Pair ``index`` as (source, prompt, chosen_turns, chosen_rating, chosen_model,
    rejected_turns, rejected_rating, rejected_model); the turns are message
    contents whose roles alternate user, assistant, ..., assistant."""
    hash_of = partial(_pair_hash, seed)
    rng = random.Random(hash_of(index)[0])
    # A pair with its own prompt draws it first from its own stream.
    source, prompt = _prompt(sample_text.prompt_stream(hash_of, index, PROMPT_REUSE_RATE, rng))
    shared = [prompt]
    if rng.random() < MULTI_TURN_RATE:  # an answer and a follow-up question, shared
        answer_chars = sample_text.length(rng, sample_text.REJECTED_LENGTH_QUANTILES) // 3 + 20
        shared.append(sample_text.completion(rng, answer_chars, sample_text.CHOSEN_CODE_RATE))
        question_chars = sample_text.length(rng, sample_text.PROMPT_LENGTH_QUANTILES) // 3 + 10
        shared.append(sample_text.PROMPTS.prose(rng, question_chars))
    chosen_text, rejected_text = sample_text.chosen_and_rejected(rng)
    chosen_rating, rejected_rating = _ratings(rng)
    chosen_model = sample_text.pick(rng, MODELS, _CHOSEN_MODEL_CUM)
    rejected_model = sample_text.pick(rng, MODELS, _REJECTED_MODEL_CUM)
    if rng.random() < SAME_MODEL_RATE:
        rejected_model = chosen_model
    else:
        while rejected_model == chosen_model:
            rejected_model = sample_text.pick(rng, MODELS, _REJECTED_MODEL_CUM)
    return (
        source,
        prompt,
        [*shared, chosen_text],
        chosen_rating,
        chosen_model,
        [*shared, rejected_text],
        rejected_rating,
        rejected_model,
    )


# ------------------------------------------------------------------ public API


def _batch(seed: int, start: int, stop: int) -> pa.RecordBatch:
    cols = list(zip(*[_pair(seed, i) for i in range(start, stop)], strict=True))
    arrays = [
        pa.array(cols[0], pa.string()),
        pa.array(cols[1], pa.string()),
        messages_array(cols[2]),
        pa.array(cols[3], pa.float64()),
        pa.array(cols[4], pa.string()),
        messages_array(cols[5]),
        pa.array(cols[6], pa.float64()),
        pa.array(cols[7], pa.string()),
    ]
    return pa.RecordBatch.from_arrays(arrays, schema=UPSTREAM_SCHEMA)


#: The fake pairs: ``PAIRS.table(n_pairs, seed)``, ``.batches(...)``, ``.write(path, ...)``.
PAIRS = Rows(UPSTREAM_SCHEMA, _batch, ROW_GROUP_SIZE, "n_pairs")
#: ``generate_batches(n_pairs, seed=0, batch_size=ROW_GROUP_SIZE)``: record batches of the
#: builder's ``UPSTREAM_SCHEMA`` holding ``n_pairs`` fake pairs, pair ``i`` a function of
#: ``(seed, i)`` only; memory is bounded by one batch.
generate_batches = PAIRS.batches
#: ``generate_table(n_pairs, seed=0)``: all ``n_pairs`` fake pairs as one ``pyarrow.Table``.
generate_table = PAIRS.table
#: ``write_upstream(path, n_pairs, seed=0, *, compression="snappy", compression_level=None)``:
#: ``n_pairs`` fake pairs written to ``path`` (``.parquet``, row groups of at most
#: ``ROW_GROUP_SIZE`` rows, or ``.jsonl``, keys in upstream column order), atomically.
write_upstream = PAIRS.write


#: The arguments of ``python -m tools.sample`` that made each shipped sample, by its ``--out``
#: (relative to the checkout).
SAMPLE_COMMANDS = {
    "publish/samples/ultrafeedback-sample.parquet": "--pairs 400 --seed 1",
    "publish/samples/openbmb-sample.parquet": "--upstream openbmb --rows 300 --seed 1 --compression zstd:19",
    "publish/samples/h4-binarized": "--upstream h4-binarized --pairs 400 --test-pairs 100 --seed 1 --compression zstd:19",
}


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m tools.sample",
        description=(
            "Write deterministic fake data with the schema and traits of an UltraFeedback upstream: "
            "argilla/ultrafeedback-binarized-preferences-cleaned (default), openbmb/UltraFeedback "
            "(tools/sample_family.py) or the preference splits of HuggingFaceH4/ultrafeedback_binarized."
        ),
    )
    parser.add_argument(
        "--upstream",
        choices=tuple(UPSTREAMS),
        default="argilla-cleaned",
        help="which upstream's schema and traits (default: argilla-cleaned)",
    )
    parser.add_argument(
        "--pairs",
        "--rows",
        dest="pairs",
        type=int,
        required=True,
        help="number of preference pairs; for openbmb, of rows (prompts); for h4-binarized, of train_prefs rows",
    )
    parser.add_argument(
        "--test-pairs",
        type=int,
        help="h4-binarized only (and required there): number of test_prefs rows",
    )
    parser.add_argument("--seed", type=int, default=0, help="random seed (default: 0)")
    parser.add_argument(
        "--out",
        type=pathlib.Path,
        required=True,
        help=(
            "output file; .parquet or .jsonl chooses the format. For h4-binarized a folder, "
            "which gets train_prefs.parquet and test_prefs.parquet (or .jsonl, see --format)"
        ),
    )
    parser.add_argument(
        "--format",
        choices=("parquet", "jsonl"),
        help="h4-binarized only: the format of the two split files (default: parquet)",
    )
    parser.add_argument(
        "--compression",
        metavar="CODEC[:LEVEL]",
        help="parquet compression, e.g. zstd:19 (default: pyarrow's, snappy)",
    )
    args = parser.parse_args(argv)
    if args.pairs < 0:
        parser.error(f"--pairs must be >= 0, got {args.pairs}")
    codec, _, level = (args.compression or "snappy").partition(":")
    if level and not level.lstrip("-").isdigit():
        parser.error(f"--compression {args.compression!r}: LEVEL must be an integer")
    compression = {"compression": codec, "compression_level": int(level) if level else None}
    h4 = args.upstream == "h4-binarized"
    if not h4 and (args.test_pairs is not None or args.format is not None):
        parser.error("--test-pairs and --format apply only to --upstream h4-binarized")
    if h4 and args.test_pairs is None:
        parser.error("--upstream h4-binarized needs --test-pairs (the number of test_prefs rows)")
    if h4 and args.test_pairs < 0:
        parser.error(f"--test-pairs must be >= 0, got {args.test_pairs}")
    try:
        if args.upstream == "argilla-cleaned":
            path = write_upstream(args.out, args.pairs, args.seed, **compression)
            print(f"{path}  {args.pairs:,} pairs  {path.stat().st_size:,} bytes")
            return 0
        if args.upstream == "openbmb":
            path = sample_family.write_openbmb(args.out, args.pairs, args.seed, **compression)
            print(f"{path}  {args.pairs:,} rows  {path.stat().st_size:,} bytes")
            return 0
        paths = sample_family.write_h4(
            args.out, args.pairs, args.test_pairs, args.seed, suffix=f".{args.format or 'parquet'}", **compression
        )
    except ValueError as exc:
        parser.error(str(exc))
    for n, path in zip((args.pairs, args.test_pairs), paths.values(), strict=True):
        print(f"{path}  {n:,} pairs  {path.stat().st_size:,} bytes")
    return 0


if __name__ == "__main__":
    sys.exit(main())
