"""Deterministic fake upstream data for tests, benchmarks and the quick start.

The real upstream is the Hugging Face dataset
``argilla/ultrafeedback-binarized-preferences-cleaned`` (60,917 DPO preference
pairs). This module writes data with exactly its schema (``UPSTREAM_SCHEMA``,
same column order and Arrow types) and with the traits of the real rows, so that
the converter can be tested and benchmarked without a download. No real text is
copied: all text is built from a small built-in vocabulary and reads as
English-ish prose (not real language).

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

How the lengths were calibrated: the character lengths of the prompts and of the
chosen and rejected completions (last assistant turn) of the 300 real rows in
``../shared/data/real/ultrafeedback-cleaned-rows0-299.text-only.jsonl`` were
summarised as 41 quantiles (every 2.5%, ``_*_LENGTH_QUANTILES`` below; only these
numbers were taken from the real rows, never their text). Each generated text draws
its target length from the piecewise-linear inverse of that distribution and is cut
at the sentence end nearest to it, so medians and means follow the real ones (real:
prompt 368 / 471, chosen 1,886 / 1,895, rejected 1,424 / 1,515 for median / mean).
Long completions (8,000-10,000 characters) are mixed in at 0.2% to cover the long
tail of the full dataset that 300 rows do not show (their longest is 5,001).

Measured (seed 0, CPython 3.11, pyarrow 26, one core):

- Arrow size: at 5,000 pairs ``table.nbytes`` is 5,054 bytes per pair (5,036 at
  20,000), which extrapolates to about 307 MB at 60,917 pairs against the real
  284,937,773 bytes (+8%). The gap comes from the calibration rows, which are longer
  than the upstream average: their text is ~4,830 characters per pair (prompt counted
  three times, as stored), while the upstream's Arrow size implies ~4,540 once the
  ~140 bytes of offsets and short columns per pair are taken off. Multi-turn pairs
  and long completions add ~70 bytes per pair.
- On disk: 60,917 pairs are 118 MB as Parquet, 322 MB as JSON Lines.

Determinism: pair ``i`` is a pure function of ``(seed, i)``, seeded through
BLAKE2b (never Python's salted ``hash()``), so the first ``k`` pairs of an
``n``-pair output equal a ``k``-pair output, and the same ``(n, seed)`` gives
byte-identical JSONL and identical Parquet table content. Only the standard library
and pyarrow are used. (Across CPython versions the output should stay the same, but
Python promises that only for ``Random.random``; this module also uses
``Random.randbytes``.)

Command line (``--upstream openbmb`` and ``--upstream h4-binarized`` write the other
upstreams of the family, from ``publish/sample_family.py``; ``--compression zstd:19``
makes small parquet files)::

    python -m publish.sample --pairs 2000 --seed 0 --out upstream.parquet
    python -m publish.sample --upstream openbmb --rows 2000 --out openbmb.parquet
    python -m publish.sample --upstream h4-binarized --pairs 2000 --test-pairs 100 --out h4/
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import pathlib
import random
import secrets
import sys
from array import array
from bisect import bisect_right
from collections.abc import Callable, Iterable, Iterator, Sequence
from functools import partial
from itertools import accumulate, chain
from operator import add, itemgetter

import pyarrow as pa
import pyarrow.parquet as pq

__all__ = [
    "UPSTREAM_SCHEMA",
    "generate_batches",
    "generate_table",
    "write_upstream",
    "main",
]

# --------------------------------------------------------------------------- schema

MESSAGE_TYPE = pa.struct([pa.field("content", pa.string()), pa.field("role", pa.string())])
MESSAGES_TYPE = pa.list_(MESSAGE_TYPE)

UPSTREAM_SCHEMA = pa.schema(
    [
        pa.field("source", pa.string()),
        pa.field("prompt", pa.string()),
        pa.field("chosen", MESSAGES_TYPE),
        pa.field("chosen-rating", pa.float64()),
        pa.field("chosen-model", pa.string()),
        pa.field("rejected", MESSAGES_TYPE),
        pa.field("rejected-rating", pa.float64()),
        pa.field("rejected-model", pa.string()),
    ]
)

ROW_GROUP_SIZE = 10_000

# ------------------------------------------------------------------- trait rates

MULTI_TURN_RATE = 0.03
PROMPT_REUSE_RATE = 0.05
TIE_RATE = 0.02
NULL_RATING_RATE = 0.01
SAME_MODEL_RATE = 0.01
LONG_COMPLETION_RATE = 0.002
CHOSEN_CODE_RATE = 0.28
REJECTED_CODE_RATE = 0.21
PROMPT_CODE_RATE = 0.05
PROMPT_NON_ASCII_RATE = 0.035
COMPLETION_NON_ASCII_RATE = 0.10

# fmt: off
# Length quantiles (characters) of the real rows 0-299 at probabilities 0, 2.5%,
# 5%, ..., 100% (41 points); see the module docstring.
_PROMPT_LENGTH_QUANTILES = (
    25, 42, 56, 67, 76, 86, 100, 107, 128, 145, 161, 185, 202, 221, 236, 256, 279,
    291, 305, 349, 368, 393, 415, 451, 478, 494, 541, 565, 586, 610, 665, 692, 728,
    784, 818, 909, 1003, 1104, 1270, 1500, 2540,
)
_CHOSEN_LENGTH_QUANTILES = (
    2, 82, 211, 285, 438, 520, 633, 728, 779, 869, 998, 1080, 1174, 1295, 1340, 1378,
    1468, 1606, 1694, 1794, 1886, 1974, 2061, 2111, 2168, 2248, 2349, 2439, 2493,
    2546, 2632, 2853, 2953, 3051, 3188, 3381, 3477, 3682, 3833, 4004, 4835,
)
_REJECTED_LENGTH_QUANTILES = (
    1, 62, 91, 120, 173, 244, 321, 349, 425, 467, 538, 581, 710, 770, 846, 921, 1024,
    1119, 1228, 1368, 1424, 1467, 1546, 1658, 1709, 1766, 1828, 1931, 2040, 2067,
    2223, 2341, 2480, 2566, 2756, 2918, 3131, 3299, 3614, 4020, 5001,
)
_LONG_LENGTH = (8_000, 10_000)
_MIN_COMPLETION_CHARS = 3

# ------------------------------------------------------------------ names

SOURCES = (
    "evol_instruct", "false_qa", "flan_v2_niv2", "flan_v2_cot",
    "flan_v2_p3", "flan_v2_flan2021", "sharegpt", "ultrachat",
)
_SOURCE_WEIGHTS = (16, 3, 16, 5, 3, 3, 22, 32)

MODELS = (
    "gpt-4", "gpt-3.5-turbo", "gpt-4-turbo", "wizardlm-70b", "wizardlm-13b",
    "llama-2-70b-chat", "llama-2-13b-chat", "starchat", "pythia-12b",
    "falcon-40b-instruct", "mpt-30b-chat", "ultralm-65b", "vicuna-33b", "bard",
    "alpaca-7b",
)
# Stronger models win more often, weaker ones lose more often.
_CHOSEN_MODEL_WEIGHTS = (14, 9, 10, 9, 6, 6, 5, 4, 2, 3, 6, 8, 7, 6, 2)
_REJECTED_MODEL_WEIGHTS = (3, 6, 3, 6, 7, 7, 8, 8, 9, 8, 6, 5, 6, 6, 9)

# --------------------------------------------------------------- vocabulary

_NOUNS = """
ability access account accuracy action activity address advantage advice agent
algorithm answer application approach area argument article aspect assistant
attention audience balance behavior benefit budget business campaign career
category cause challenge change character choice city class climate code
collection color community company comparison concept condition context control
country culture customer database decision definition design detail device
difference direction discussion document economy education effect effort element
energy environment error event example experience expert factor feature feedback
field file format framework function goal government group growth guide habit
health history idea impact improvement input instance instruction interest issue
item language layer level library list location machine market material measure
memory message method model moment network number object opportunity option order
organization output page paragraph part pattern performance period person
perspective plan platform point policy position practice problem process product
program project property purpose quality question range rate reason record region
relationship report request resource response result review risk role rule safety
sample scale schedule section security sentence service session set skill solution
source space speed stage standard statement step story strategy structure student
study style subject summary support system table task team technique technology
term test text theory time tool topic training value variable version view
website word
""".split()

_VERBS = """
adjust analyze apply build calculate change check choose compare consider create
define describe determine develop ensure explain explore find follow generate
handle identify implement improve include increase keep maintain manage measure
offer organize perform prepare present provide reduce remember review run select
share show solve support test track understand update use validate write
""".split()

_ADJECTIVES = """
accurate additional appropriate available basic clear common complete complex
consistent correct critical current different difficult easy effective efficient
important large local main modern natural new popular possible practical relevant
reliable simple small specific strong successful similar unique useful valuable
various careful flexible detailed robust
""".split()

# {n} noun, {a} adjective, {v} verb; digits make several picks distinct.
_COMPLETION_TEMPLATES = (
    "The {a} {n} can {v} the {n2}.",
    "It is {a} to {v} the {n} before you {v2} the {n2}.",
    "You should {v} a {a} {n} for each {n2}.",
    "This {n} will {v} the {n2} and {v2} the {a} {n3}.",
    "In this {n}, we {v} the {n2} of the {n3}.",
    "For example, a {a} {n} may {v} the {n2} and the {n3}.",
    "However, the {n} does not always {v} the {a} {n2}.",
    "Make sure to {v} the {n} with a {a} {n2}.",
    "Each {n} has a {a} {n2} that helps {v} the {n3}.",
    "Overall, the {n} is {a} and {a2}.",
    "There are many ways to {v} a {a} {n}.",
    "The {n} and the {n2} are {a} parts of the {n3}.",
    "To {v} the {n}, {v2} the {a} {n2} first.",
    "As a result, the {n} becomes more {a}.",
    "The {n} of the {n2} depends on the {a} {n3}.",
    "If the {n} is {a}, you can {v} the {n2}.",
    "We can {v} the {n} by using a {a} {n2}.",
    "Note that the {n} should be {a} and {a2}.",
    "This helps {v} the {n} in a {a} way.",
    "Finally, {v} the {n} and {v2} the {n2}.",
    "A {a} {n} is one that can {v} its own {n2}.",
    "Another {a} {n} is the {n2}.",
    "First, {v} the {n}.",
    "Then {v} the {a} {n} again.",
    "I hope this {n} helps!",
    "Let me know if you have any other {n}.",
    "The answer is {a}.",
    "Why does the {n} {v} the {n2}?",
)
# (separator before a sentence, weight out of 256)
_COMPLETION_SEPARATORS = (
    (" ", 200), ("\n\n", 31), ("\n- ", 18),
    ("\n\n**Note:** ", 2), ("\n\n**Example:** ", 2), ("\n\n**Summary:** ", 1),
    ("\n\n**Step 1:** ", 1), ("\n\n**Step 2:** ", 1),
)

_PROMPT_TEMPLATES = (
    "How can I {v} the {a} {n}?",
    "What is the {n} of a {a} {n2}?",
    "Explain how to {v} the {n}.",
    "Write a {a} {n} about the {n2}.",
    "Please {v} the {n} in the {n2}.",
    "Given a {n}, {v} the {a} {n2}.",
    "The {n} should {v} the {n2}.",
    "Can you {v} a {a} {n} for my {n2}?",
    "Is it {a} to {v} the {n}?",
    "Use the {n} to {v} the {n2}.",
    "My {n} needs a {a} {n2}.",
    "Which {n} is more {a}, the {n2} or the {n3}?",
    "The {a} {n} is part of the {n2}.",
    "Include a {a} {n} and a {n2}.",
)
_PROMPT_SEPARATORS = ((" ", 243), ("\n", 8), ("\n\n", 5))

_COMPLETION_OPENERS = (
    "", "", "", "", "", "", "Sure! ", "Sure, here is an answer. ", "Certainly! ",
    "As an AI assistant, I can help. ", "Great question. ", "Of course. ", "Yes. ",
    "No. ", "I'm sorry, but I cannot be sure. ", "Here's a possible approach. ",
    "Absolutely! ",
)

_PROMPT_OPENERS = {
    "evol_instruct": (
        "Can you solve this puzzle?", "How can I use Python to do this?",
        "Write a program for the following task.", "Using the given data, answer the question.",
        "Provide a detailed explanation.", "Suppose you have the following table.",
        "Generate a list of ideas.",
    ),
    "false_qa": ("Why?", "How many are there?", "Which one is it?", "Where can I find it?"),
    "flan_v2_niv2": (
        "In this task, you are given a sentence and a question.",
        "Detailed Instructions: In this task, you need to label the text.",
        "Given the task definition and input, reply with output.",
        "Teacher: In this task, you need to answer the question.",
        "Definition: You are given a short passage.",
    ),
    "flan_v2_cot": ("Q:", "Question:", "Reasoning and answer:", "Premise:"),
    "flan_v2_p3": ("Question:", "Answer the following question:", "Read the article and answer."),
    "flan_v2_flan2021": ("Translate the following sentence.", "Write a sentence.", "Summarize this:"),
    "sharegpt": (
        "I want you to act as an assistant.", "write me a short answer.", "explain this.",
        "Can you help me?", "how do I do this?", "Create a plan.", "give me an example.",
    ),
    "ultrachat": (
        "How has this changed?", "Write a short essay.", "Can you provide more detail?",
        "What are some examples?", "Explain how it works.", "Describe the process.",
        "Develop a plan.",
    ),
}

_NON_ASCII_FRAGMENTS = (
    # (kind weight, fragments)
    (45, (
        "café", "naïve", "résumé", "jalapeño", "façade", "São Paulo", "Zürich",
        "Ångström", "crème brûlée", "déjà vu", "piñata", "El Niño", "Málaga",
        "Kraków", "Reykjavík", "über", "Besançon", "Ærø", "señor", "¿Qué tal?",
    )),
    (18, (
        "25 °C", "€120", "√2", "±0.5", "≈ 3.14", "it’s", "x² + y²", "π/2", "→",
        "…", "£40", "10 µs", "3 × 4", "“quoted”", "— and", "Δt", "αβγ",
    )),
    (10, ("你好，世界", "数据分析", "東京", "こんにちは", "データ", "機械学習", "한국어", "서울")),
    (10, ("Привет", "данные", "Москва", "спасибо", "пример", "Київ")),
    (17, ("😊", "🚀", "👍", "🌍", "🎉", "🤔", "📚", "✅", "🔥", "❤️")),
)

# fmt: on

_TABLE_SIZE = 1 << 16
_DANGLING = frozenset(
    "a an the to of and or in on for with by is are be can will may should you your my its it "
    "I we this that each before How What Which Why Is Can Write Please Use Given Explain My Include "
    "The This A An It If To In".split()
)
_FIELDS = ("n", "n2", "n3", "a", "a2", "v", "v2")


def _byte_picks(rng: random.Random, slots: Sequence[str], k: int) -> tuple[str, ...]:
    """``k`` picks from ``slots`` (at most 256; repeat an item to weight it)."""
    if not 0 < len(slots) <= 256:
        raise AssertionError(f"{len(slots)} slots")
    to_slot = bytes(i % len(slots) for i in range(256))
    return itemgetter(*rng.randbytes(k).translate(to_slot))(slots)


def _sentence_table(
    templates: Sequence[str],
    separators: Sequence[tuple[str, int]],
    rng: random.Random,
) -> tuple[str, ...]:
    """65,536 sentences, each with its leading separator (space, newline, bullet).

    Generation joins whole sentences picked by uniform 16-bit indices, so it
    needs no per-word (let alone per-character) Python work.
    """
    size = _TABLE_SIZE
    positional = [t.format(**{f: f"{{{i}}}" for i, f in enumerate(_FIELDS)}) for t in templates]
    sep_slots = [sep for sep, weight in separators for _ in range(weight)]
    sentences = map(
        str.format,
        _byte_picks(rng, positional, size),
        *(_byte_picks(rng, _NOUNS, size) for _ in range(3)),
        *(_byte_picks(rng, _ADJECTIVES, size) for _ in range(2)),
        *(_byte_picks(rng, _VERBS, size) for _ in range(2)),
    )
    text = "\0".join(map(add, _byte_picks(rng, sep_slots, size), sentences))
    # "a appropriate" -> "an appropriate"
    for before in (" ", "\0", "\n"):
        for article in ("a", "A"):
            for vowel in "aeio":
                text = text.replace(f"{before}{article} {vowel}", f"{before}{article}n {vowel}")
    return tuple(text.split("\0"))


def _build_tables() -> tuple[tuple[str, ...], tuple[str, ...]]:
    rng = random.Random(0x0F4C7)
    return (
        _sentence_table(_COMPLETION_TEMPLATES, _COMPLETION_SEPARATORS, rng),
        _sentence_table(_PROMPT_TEMPLATES, _PROMPT_SEPARATORS, rng),
    )


def _build_code_pools() -> dict[str, tuple[str, ...]]:
    rng = random.Random(0xC0DE)
    names = (
        "data",
        "items",
        "result",
        "value",
        "count",
        "total",
        "name",
        "user",
        "config",
        "path",
        "index",
        "row",
        "records",
        "text",
        "score",
        "model",
        "response",
        "output",
        "buffer",
        "key",
        "node",
        "queue",
        "cache",
    )
    funcs = (
        "load_data",
        "process",
        "compute_total",
        "parse_input",
        "main",
        "validate",
        "fetch",
        "transform",
        "summarize",
        "render",
        "update",
        "sort_items",
    )
    templates = {
        "python": (
            "def {f}({a}, {b}):",
            "    {a} = {f}({b})",
            "    return {a}",
            "    for {a} in {b}:",
            "        {a}.append({b})",
            "import {a}",
            "from {a} import {f}",
            "    if {a} > {n}:",
            '        print(f"{a}: {{{b}}}")',
            "{a} = [{n}, {m}, {k}]",
            '    {a}["{b}"] = {n}',
            "# {f} the {a}",
            "class {F}:",
            "    def __init__(self, {a}):",
            "        self.{a} = {a}",
            'if __name__ == "__main__":',
            "    {f}()",
            "",
        ),
        "javascript": (
            "function {f}({a}, {b}) {{",
            "  const {a} = {f}({b});",
            "  return {a};",
            "}}",
            "for (const {a} of {b}) {{",
            "  console.log({a});",
            "let {a} = [{n}, {m}, {k}];",
            "// {f} the {a}",
            'document.getElementById("{a}").addEventListener("click", {f});',
            "",
        ),
        "cpp": (
            "#include <iostream>",
            "#include <vector>",
            "using namespace std;",
            "int main() {{",
            "    int {a} = {n};",
            "    vector<int> {b} = {{{n}, {m}}};",
            "    for (int i = 0; i < {n}; i++) {{",
            "        {a} += {b}[i];",
            "    }}",
            "    cout << {a} << endl;",
            "    return 0;",
            "}}",
            "",
        ),
        "sql": (
            "SELECT {a}, COUNT(*) AS {b}",
            "FROM {a}s",
            "WHERE {b} > {n}",
            "GROUP BY {a}",
            "ORDER BY {b} DESC;",
            "JOIN {b}s ON {a}s.id = {b}s.{a}_id",
        ),
        "bash": (
            "mkdir -p {a}",
            "cd {a}",
            "pip install {b}",
            "python {f}.py --{a} {n}",
            'echo "{a} done"',
            "ls -la {b}/",
        ),
        "java": (
            "public class {F} {{",
            "    public static void main(String[] args) {{",
            "        int {a} = {n};",
            "        System.out.println({a});",
            "    }}",
            "}}",
            "        List<String> {b} = new ArrayList<>();",
            "",
        ),
    }
    pools = {}
    for lang, lines in templates.items():
        pool = []
        for _ in range(256):
            f = rng.choice(funcs)
            pool.append(
                rng.choice(lines).format(
                    a=rng.choice(names),
                    b=rng.choice(names),
                    f=f,
                    F="".join(p.title() for p in f.split("_")),
                    n=rng.randint(0, 100),
                    m=rng.randint(0, 100),
                    k=rng.randint(0, 100),
                )
            )
        pools[lang] = tuple(pool)
    return pools


_BIG_ENDIAN = sys.byteorder == "big"
_COMPLETION_TABLE, _PROMPT_TABLE = _build_tables()
_CODE_POOLS = _build_code_pools()
_CODE_LANGS = tuple(_CODE_POOLS)
_CODE_LANG_WEIGHTS = (45, 15, 12, 10, 10, 8)
_AVG_COMPLETION_SENTENCE = sum(map(len, _COMPLETION_TABLE)) / _TABLE_SIZE
_AVG_PROMPT_SENTENCE = sum(map(len, _PROMPT_TABLE)) / _TABLE_SIZE
_AVG_CODE_LINE_CHARS = {lang: sum(len(x) + 1 for x in pool) / len(pool) for lang, pool in _CODE_POOLS.items()}
_NON_ASCII_KINDS = tuple(fragments for _, fragments in _NON_ASCII_FRAGMENTS)
_NON_ASCII_KIND_CUM = tuple(accumulate(w for w, _ in _NON_ASCII_FRAGMENTS))
_PROMPT_SUFFIXES = ("\nAnswer:", "\nOutput:", "\nA:", "\nSolution:")
# Roles of a message list of length k: user, assistant, user, ..., assistant.
_ROLES = tuple(tuple(("user", "assistant")[j % 2] for j in range(k)) for k in range(8))
_SOURCE_CUM = tuple(accumulate(_SOURCE_WEIGHTS))
_CHOSEN_MODEL_CUM = tuple(accumulate(_CHOSEN_MODEL_WEIGHTS))
_REJECTED_MODEL_CUM = tuple(accumulate(_REJECTED_MODEL_WEIGHTS))
_CODE_LANG_CUM = tuple(accumulate(_CODE_LANG_WEIGHTS))
# Chosen rating in quarter points, 4 (1.0) .. 20 (5.0), skewed to the top.
_CHOSEN_QUARTERS = tuple(range(5, 21))
_CHOSEN_QUARTER_CUM = tuple(accumulate((0.3, 0.5, 0.7, 1, 1.5, 2, 3, 4, 5, 7, 8, 10, 12, 14, 14, 18)))

# ------------------------------------------------------------------ primitives


def _pick(rng: random.Random, items: Sequence, cum: Sequence[float]):
    return items[bisect_right(cum, rng.random() * cum[-1])]


def _length(rng: random.Random, quantiles: Sequence[int]) -> int:
    """Draw a length from the piecewise-linear inverse CDF through ``quantiles``
    (equally spaced probabilities from 0 to 1)."""
    u = rng.random() * (len(quantiles) - 1)
    i = int(u)
    return int(quantiles[i] + (quantiles[i + 1] - quantiles[i]) * (u - i))


def _indices(rng: random.Random, k: int) -> array:
    idx = array("H", rng.randbytes(2 * k))
    if _BIG_ENDIAN:  # pragma: no cover - keep output platform independent
        idx.byteswap()
    return idx


def _prose(rng: random.Random, n_chars: int, table: tuple[str, ...], avg: float) -> str:
    """English-ish prose of about ``n_chars`` characters (never empty)."""
    n_chars = max(n_chars, 2)
    k = int(n_chars / avg * 1.2) + 2
    text = "".join(itemgetter(*_indices(rng, k))(table))
    while len(text) <= n_chars:  # rare: short draws
        text += "".join(itemgetter(*_indices(rng, k))(table))
    # End at the sentence end nearest to n_chars, else at a space.
    before = text.rfind(". ", 0, n_chars)
    after = text.find(". ", n_chars - 1)
    if after >= 0 and (before < 0 or after - n_chars < n_chars - before):
        before = after
    if before >= 0 and abs(before - n_chars) <= max(24, n_chars // 4):
        text = text[:before]
    else:
        cut = text.rfind(" ", 0, n_chars)
        text = text[: cut if cut > n_chars // 2 else n_chars]
        for _ in range(3):  # no dangling "Write a."
            head, space, last = text.rpartition(" ")
            if not (space and head and last in _DANGLING):
                break
            text = head
    text = text.lstrip("\n ").removeprefix("- ").rstrip(" ,.:;-\n?!*") or "Ok"
    return text + "."


def _completion_prose(rng: random.Random, n_chars: int) -> str:
    return _prose(rng, n_chars, _COMPLETION_TABLE, _AVG_COMPLETION_SENTENCE)


def _prompt_prose(rng: random.Random, n_chars: int) -> str:
    return _prose(rng, n_chars, _PROMPT_TABLE, _AVG_PROMPT_SENTENCE)


def _code_block(rng: random.Random, n_chars: int) -> str:
    lang = _pick(rng, _CODE_LANGS, _CODE_LANG_CUM)
    pool = _CODE_POOLS[lang]
    k = max(2, int(n_chars / _AVG_CODE_LINE_CHARS[lang]))
    body = "\n".join(itemgetter(*rng.randbytes(k))(pool)).strip("\n") or pool[0]
    return f"```{lang}\n{body}\n```"


def _choice(rng: random.Random, items: Sequence):
    return items[int(rng.random() * len(items))]


def _insert_non_ascii(rng: random.Random, text: str) -> str:
    """Insert 1-3 non-ASCII fragments of one kind (accents, symbols, CJK, ...)."""
    fragments = _pick(rng, _NON_ASCII_KINDS, _NON_ASCII_KIND_CUM)
    for _ in range(1 + int(rng.random() * 3)):
        frag = _choice(rng, fragments)
        pos = text.find(" ", int(rng.random() * len(text)))
        if pos < 0:
            text = f"{text} {frag}"
        else:
            text = f"{text[:pos]} {frag}{text[pos:]}"
    return text


def _completion(rng: random.Random, n_chars: int, code_rate: float) -> str:
    """An assistant answer of about ``n_chars`` characters, maybe with a code block."""
    n_chars = max(n_chars, _MIN_COMPLETION_CHARS)
    opener = _choice(rng, _COMPLETION_OPENERS) if n_chars > 80 else ""
    if n_chars >= 300 and rng.random() < code_rate:
        code_chars = int(n_chars * (0.25 + 0.35 * rng.random()))
        before = int((n_chars - code_chars) * (0.3 + 0.5 * rng.random()))
        after = n_chars - code_chars - before
        return (
            f"{opener}{_completion_prose(rng, before - len(opener))}"
            f"\n\n{_code_block(rng, code_chars - 14)}\n\n"
            f"{_completion_prose(rng, after)}"
        )
    return opener + _completion_prose(rng, n_chars - len(opener))


def _prompt(rng: random.Random) -> tuple[str, str]:
    """(source, prompt text): the first draws of a pair's random stream."""
    source = _pick(rng, SOURCES, _SOURCE_CUM)
    return source, _prompt_text(rng, source)


def _prompt_text(rng: random.Random, source: str) -> str:
    """A prompt of the real length distribution, opening like prompts of ``source``
    (any key of ``_PROMPT_OPENERS``)."""
    n_chars = _length(rng, _PROMPT_LENGTH_QUANTILES)
    opener = _choice(rng, _PROMPT_OPENERS[source])
    suffix = _choice(rng, _PROMPT_SUFFIXES) if rng.random() < 0.12 else ""
    budget = n_chars - len(suffix)
    if budget < len(opener) + 20:
        text = _prompt_prose(rng, budget)
    elif budget >= 300 and rng.random() < PROMPT_CODE_RATE:
        code_chars = budget // 2
        body = _prompt_prose(rng, budget - code_chars - len(opener) - 1)
        text = f"{opener} {body}\n{_code_block(rng, code_chars - 12)}"
    else:
        text = f"{opener} {_prompt_prose(rng, budget - len(opener) - 1)}"
        if rng.random() < 0.3:
            text = text[:-1] + "?"
    text += suffix
    if rng.random() < PROMPT_NON_ASCII_RATE:
        text = _insert_non_ascii(rng, text)
    return text


def _row_hash(stream: str, seed: int, index: int) -> tuple[int, int]:
    """Two 64-bit integers derived from (stream, seed, index) by BLAKE2b: the seed of
    row ``index``'s random stream and bits for decisions made before it starts."""
    digest = hashlib.blake2b(f"{stream}:{seed}:{index}".encode(), digest_size=16).digest()
    return int.from_bytes(digest[:8], "little"), int.from_bytes(digest[8:], "little")


def _pair_hash(seed: int, index: int) -> tuple[int, int]:
    """Two 64-bit integers derived from (seed, index) by BLAKE2b."""
    return _row_hash("ufkto-sample", seed, index)


def _reuse_target(index: int, bits: int, rate: float = PROMPT_REUSE_RATE) -> int | None:
    """The earlier row whose prompt row ``index`` reuses (with probability ``rate``), or None."""
    if index == 0 or (bits >> 40) >= rate * (1 << 24):
        return None
    return (bits & 0xFFFFFFFFFF) % index


def _prompt_root(row_hash, index: int, rate: float = PROMPT_REUSE_RATE) -> int:
    """The row whose prompt row ``index`` shows: ``index`` itself, or, when it reuses a
    prompt, the first row of the chain of reuses, which drew the prompt.

    ``row_hash(i)`` gives row ``i``'s ``(rng_seed, bits)``. A reused prompt is rebuilt
    from the root's seed, never copied from memory, so each row stays a pure function
    of ``(seed, index)``.
    """
    while (earlier := _reuse_target(index, row_hash(index)[1], rate)) is not None:
        index = earlier
    return index


def _ratings(rng: random.Random) -> tuple[float | None, float | None]:
    q_chosen = _pick(rng, _CHOSEN_QUARTERS, _CHOSEN_QUARTER_CUM)
    if rng.random() < TIE_RATE:
        q_rejected = q_chosen
    else:  # 4 (1.0) .. q_chosen - 1
        q_rejected = 4 + int(rng.random() * (q_chosen - 4))
    chosen, rejected = q_chosen / 4, q_rejected / 4
    if rng.random() < NULL_RATING_RATE:
        if rng.random() < 0.5:
            chosen = None
        else:
            rejected = None
    return chosen, rejected


def _completion_of_length(rng: random.Random, quantiles: Sequence[int], code_rate: float) -> str:
    """An assistant answer whose length follows ``quantiles``, or is long (8,000-10,000
    characters) with probability ``LONG_COMPLETION_RATE``."""
    if rng.random() < LONG_COMPLETION_RATE:
        n_chars = _LONG_LENGTH[0] + int(rng.random() * (_LONG_LENGTH[1] - _LONG_LENGTH[0]))
    else:
        n_chars = _length(rng, quantiles)
    return _completion(rng, n_chars, code_rate)


def _chosen_and_rejected(rng: random.Random) -> tuple[str, str]:
    """The last assistant turns of a pair: chosen and rejected lengths and code rates,
    non-ASCII text in one or both for ``COMPLETION_NON_ASCII_RATE`` of pairs."""
    chosen_text = _completion_of_length(rng, _CHOSEN_LENGTH_QUANTILES, CHOSEN_CODE_RATE)
    rejected_text = _completion_of_length(rng, _REJECTED_LENGTH_QUANTILES, REJECTED_CODE_RATE)
    if rng.random() < COMPLETION_NON_ASCII_RATE:
        which = rng.random()
        if which < 0.6:
            chosen_text = _insert_non_ascii(rng, chosen_text)
        if which > 0.4:
            rejected_text = _insert_non_ascii(rng, rejected_text)
    return chosen_text, rejected_text


def _pair(seed: int, index: int) -> tuple:
    """Pair ``index`` as (source, prompt, chosen_turns, chosen_rating, chosen_model,
    rejected_turns, rejected_rating, rejected_model); the turns are message
    contents whose roles alternate user, assistant, ..., assistant."""
    rng = random.Random(_pair_hash(seed, index)[0])
    root = _prompt_root(lambda i: _pair_hash(seed, i), index)
    # A pair with its own prompt draws it first from its own stream.
    source, prompt = _prompt(rng if root == index else random.Random(_pair_hash(seed, root)[0]))
    shared = [prompt]
    if rng.random() < MULTI_TURN_RATE:
        shared.append(_completion(rng, _length(rng, _REJECTED_LENGTH_QUANTILES) // 3 + 20, CHOSEN_CODE_RATE))
        shared.append(_prompt_prose(rng, _length(rng, _PROMPT_LENGTH_QUANTILES) // 3 + 10))
    chosen_text, rejected_text = _chosen_and_rejected(rng)
    chosen_rating, rejected_rating = _ratings(rng)
    chosen_model = _pick(rng, MODELS, _CHOSEN_MODEL_CUM)
    rejected_model = _pick(rng, MODELS, _REJECTED_MODEL_CUM)
    if rng.random() < SAME_MODEL_RATE:
        rejected_model = chosen_model
    else:
        while rejected_model == chosen_model:
            rejected_model = _pick(rng, MODELS, _REJECTED_MODEL_CUM)
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


def _check_args(n_pairs: int, batch_size: int = ROW_GROUP_SIZE, name: str = "n_pairs") -> None:
    if not isinstance(n_pairs, int) or n_pairs < 0:
        raise ValueError(f"{name} must be a non-negative integer, got {n_pairs!r}")
    if not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}")


def _messages_array(turn_lists: Sequence[Sequence[str]]) -> pa.Array:
    lengths = list(map(len, turn_lists))
    offsets = array("i", [0])
    offsets.extend(accumulate(lengths))
    values = pa.StructArray.from_arrays(
        [
            pa.array(list(chain.from_iterable(turn_lists)), pa.string()),
            pa.array(list(chain.from_iterable(map(_ROLES.__getitem__, lengths))), pa.string()),
        ],
        fields=list(MESSAGE_TYPE),
    )
    return pa.ListArray.from_arrays(pa.array(offsets, pa.int32()), values, type=MESSAGES_TYPE)


def _batch(seed: int, start: int, stop: int) -> pa.RecordBatch:
    cols = list(zip(*[_pair(seed, i) for i in range(start, stop)], strict=True))
    arrays = [
        pa.array(cols[0], pa.string()),
        pa.array(cols[1], pa.string()),
        _messages_array(cols[2]),
        pa.array(cols[3], pa.float64()),
        pa.array(cols[4], pa.string()),
        _messages_array(cols[5]),
        pa.array(cols[6], pa.float64()),
        pa.array(cols[7], pa.string()),
    ]
    return pa.RecordBatch.from_arrays(arrays, schema=UPSTREAM_SCHEMA)


def _batches(
    make_batch: Callable[[int, int], pa.RecordBatch], n_rows: int, batch_size: int, name: str = "n_rows"
) -> Iterator[pa.RecordBatch]:
    """``make_batch(start, stop)`` for consecutive slices of at most ``batch_size`` of
    ``range(n_rows)``; the arguments (``n_rows`` called ``name`` in errors) are checked
    at the call."""
    _check_args(n_rows, batch_size, name)  # now, not at the first next()
    return (make_batch(start, min(start + batch_size, n_rows)) for start in range(0, n_rows, batch_size))


def generate_batches(n_pairs: int, seed: int = 0, batch_size: int = ROW_GROUP_SIZE) -> Iterator[pa.RecordBatch]:
    """Yield record batches (``UPSTREAM_SCHEMA``) holding ``n_pairs`` fake pairs.

    Pair ``i`` depends only on ``(seed, i)``; memory is bounded by one batch.
    """
    return _batches(partial(_batch, seed), n_pairs, batch_size, "n_pairs")


def generate_table(n_pairs: int, seed: int = 0) -> pa.Table:
    """All ``n_pairs`` fake pairs as one ``pyarrow.Table``."""
    return pa.Table.from_batches(list(generate_batches(n_pairs, seed)), schema=UPSTREAM_SCHEMA)


def _output_suffix(path: pathlib.Path) -> str:
    """``.parquet`` or ``.jsonl`` (case-insensitive), or a ValueError naming ``path``."""
    suffix = path.suffix.lower()
    if suffix not in (".parquet", ".jsonl"):
        raise ValueError(f"cannot write {str(path)!r}: unknown suffix {path.suffix!r} (use .parquet or .jsonl)")
    return suffix


def _write_file(
    path: pathlib.Path,
    schema: pa.Schema,
    batches: Callable[[], Iterable[pa.RecordBatch]],
    row_group_size: int = ROW_GROUP_SIZE,
    compression: str = "snappy",
    compression_level: int | None = None,
) -> pathlib.Path:
    """Write ``path`` (its suffix checked by ``_output_suffix``) from ``batches()`` as
    parquet (row groups of at most ``row_group_size`` rows, ``compression`` as pyarrow
    takes it, snappy by default) or as JSON Lines (each row as ``to_pylist`` gives it:
    keys in schema order, nulls as ``null``), through a temporary sibling renamed at
    the end, so an interrupted run never leaves a partial file."""
    suffix = _output_suffix(path)
    if suffix == ".jsonl" and (compression != "snappy" or compression_level is not None):
        raise ValueError(f"cannot write {str(path)!r}: compression applies to .parquet only")
    if compression.lower() != "none" and not pa.Codec.is_available(compression):
        raise ValueError(f"cannot write {str(path)!r}: unknown or unavailable compression {compression!r}")
    path.parent.mkdir(parents=True, exist_ok=True)
    # A hidden sibling on the same file system, created exclusively with the
    # ordinary permissions (mkstemp would leave the final file at 0600).
    tmp = path.with_name(f".{path.name}.{os.getpid()}-{secrets.token_hex(4)}.tmp")
    try:
        with open(tmp, "xb") as f:
            if suffix == ".parquet":
                options = {"compression": compression, "compression_level": compression_level}
                with pq.ParquetWriter(f, schema, **options) as writer:
                    for batch in batches():
                        writer.write_batch(batch, row_group_size=row_group_size)
            else:  # from the same batches, so both formats hold the same rows
                for batch in batches():
                    for row in batch.to_pylist():
                        f.write((json.dumps(row, ensure_ascii=False) + "\n").encode("utf-8"))
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path


def write_upstream(
    path: str | os.PathLike,
    n_pairs: int,
    seed: int = 0,
    *,
    compression: str = "snappy",
    compression_level: int | None = None,
) -> pathlib.Path:
    """Write ``n_pairs`` fake upstream pairs to ``path`` and return it.

    The format follows the suffix: ``.parquet`` (row groups of at most 10,000
    rows, pyarrow's default compression unless ``compression`` and
    ``compression_level`` say otherwise) or ``.jsonl`` (one JSON object per line,
    keys in upstream column order). The file is written to a temporary sibling and
    renamed at the end, so an interrupted run never leaves a partial file.
    """
    path = pathlib.Path(path)
    _output_suffix(path)
    _check_args(n_pairs)
    return _write_file(
        path,
        UPSTREAM_SCHEMA,
        lambda: generate_batches(n_pairs, seed, ROW_GROUP_SIZE),
        ROW_GROUP_SIZE,
        compression,
        compression_level,
    )


UPSTREAMS = ("argilla-cleaned", "openbmb", "h4-binarized")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m publish.sample",
        description=(
            "Write deterministic fake data with the schema and traits of an UltraFeedback upstream: "
            "argilla/ultrafeedback-binarized-preferences-cleaned (default), openbmb/UltraFeedback "
            "(publish/sample_family.py) or the preference splits of HuggingFaceH4/ultrafeedback_binarized."
        ),
    )
    parser.add_argument(
        "--upstream",
        choices=UPSTREAMS,
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
        from publish import sample_family

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
    # publish.sample_family imports publish.sample: let it find this module rather than
    # build the sentence tables a second time.
    sys.modules.setdefault("publish.sample", sys.modules[__name__])
    sys.exit(main())
