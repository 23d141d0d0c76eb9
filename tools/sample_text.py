"""What the three sample generators draw alike: text with the traits of UltraFeedback's rows,
and each row's own random stream.

No real text is copied: all text is built from a small built-in vocabulary and reads as
English-ish prose (not real language), with paragraphs, bullet lists, fenced code blocks
and non-ASCII fragments (accents, symbols, CJK, Cyrillic, emoji).

How the lengths were calibrated: the character lengths of the prompts and of the chosen
and rejected completions (last assistant turn) of the 300 real rows in
``../shared/data/real/ultrafeedback-cleaned-rows0-299.text-only.jsonl`` were summarised as
41 quantiles (every 2.5%, ``*_LENGTH_QUANTILES`` below; only these numbers were taken from
the real rows, never their text). Each generated text draws its target length from the
piecewise-linear inverse of that distribution and is cut at the sentence end nearest to
it, so medians and means follow the real ones (real: prompt 368 / 471, chosen 1,886 /
1,895, rejected 1,424 / 1,515 for median / mean). Long completions (8,000-10,000
characters) are mixed in at 0.2% to cover the long tail of the full dataset that 300 rows
do not show (their longest is 5,001).

Determinism: a row's draws come from a ``random.Random`` seeded through BLAKE2b from
``(stream, seed, index)`` (``row_hash``; never Python's salted ``hash()``), so each row is
a pure function of its arguments; a reused prompt is rebuilt from the seed of the row
that drew it (``prompt_root``), never copied from memory. Only the standard library is
used. (Across CPython versions the output should stay the same, but Python promises that
only for ``Random.random``; this module also uses ``Random.randbytes``.)
"""

from __future__ import annotations

import hashlib
import random
import sys
from array import array
from bisect import bisect_right
from collections.abc import Callable, Sequence
from itertools import accumulate
from operator import add, itemgetter

# ------------------------------------------------------------------- trait rates

LONG_COMPLETION_RATE = 0.002
CHOSEN_CODE_RATE = 0.28
REJECTED_CODE_RATE = 0.21
PROMPT_CODE_RATE = 0.05
PROMPT_NON_ASCII_RATE = 0.035
COMPLETION_NON_ASCII_RATE = 0.10

# ------------------------------------------------------------------- lengths


def _numbers(text: str) -> tuple[int, ...]:
    return tuple(map(int, text.split()))


# Length quantiles (characters) of the real rows 0-299 at probabilities 0, 2.5%,
# 5%, ..., 100% (41 points); see the module docstring.
PROMPT_LENGTH_QUANTILES = _numbers("""
    25 42 56 67 76 86 100 107 128 145 161 185 202 221 236 256 279
    291 305 349 368 393 415 451 478 494 541 565 586 610 665 692 728
    784 818 909 1003 1104 1270 1500 2540
""")
CHOSEN_LENGTH_QUANTILES = _numbers("""
    2 82 211 285 438 520 633 728 779 869 998 1080 1174 1295 1340 1378
    1468 1606 1694 1794 1886 1974 2061 2111 2168 2248 2349 2439 2493
    2546 2632 2853 2953 3051 3188 3381 3477 3682 3833 4004 4835
""")
REJECTED_LENGTH_QUANTILES = _numbers("""
    1 62 91 120 173 244 321 349 425 467 538 581 710 770 846 921 1024
    1119 1228 1368 1424 1467 1546 1658 1709 1766 1828 1931 2040 2067
    2223 2341 2480 2566 2756 2918 3131 3299 3614 4020 5001
""")
_LONG_LENGTH = (8_000, 10_000)
_MIN_COMPLETION_CHARS = 3

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
COMPLETION_TEMPLATES = (
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
    (" ", 200),
    ("\n\n", 31),
    ("\n- ", 18),
    ("\n\n**Note:** ", 2),
    ("\n\n**Example:** ", 2),
    ("\n\n**Summary:** ", 1),
    ("\n\n**Step 1:** ", 1),
    ("\n\n**Step 2:** ", 1),
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
    "",
    "",
    "",
    "",
    "",
    "",
    "Sure! ",
    "Sure, here is an answer. ",
    "Certainly! ",
    "As an AI assistant, I can help. ",
    "Great question. ",
    "Of course. ",
    "Yes. ",
    "No. ",
    "I'm sorry, but I cannot be sure. ",
    "Here's a possible approach. ",
    "Absolutely! ",
)

PROMPT_OPENERS = {
    "evol_instruct": (
        "Can you solve this puzzle?",
        "How can I use Python to do this?",
        "Write a program for the following task.",
        "Using the given data, answer the question.",
        "Provide a detailed explanation.",
        "Suppose you have the following table.",
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
        "I want you to act as an assistant.",
        "write me a short answer.",
        "explain this.",
        "Can you help me?",
        "how do I do this?",
        "Create a plan.",
        "give me an example.",
    ),
    "ultrachat": (
        "How has this changed?",
        "Write a short essay.",
        "Can you provide more detail?",
        "What are some examples?",
        "Explain how it works.",
        "Describe the process.",
        "Develop a plan.",
    ),
}


def _fragments(text: str) -> tuple[str, ...]:
    return tuple(fragment.strip() for fragment in text.split("|"))


_ACCENTED = _fragments("""
    café | naïve | résumé | jalapeño | façade | São Paulo | Zürich | Ångström | crème brûlée | déjà vu |
    piñata | El Niño | Málaga | Kraków | Reykjavík | über | Besançon | Ærø | señor | ¿Qué tal?
""")
_SYMBOLS = _fragments("""
    25 °C | €120 | √2 | ±0.5 | ≈ 3.14 | it’s | x² + y² | π/2 | → | … | £40 | 10 µs | 3 × 4 | “quoted” | — and |
    Δt | αβγ
""")
_CJK = ("你好，世界", "数据分析", "東京", "こんにちは", "データ", "機械学習", "한국어", "서울")
_CYRILLIC = ("Привет", "данные", "Москва", "спасибо", "пример", "Київ")
_EMOJI = ("😊", "🚀", "👍", "🌍", "🎉", "🤔", "📚", "✅", "🔥", "❤️")
# (kind weight, fragments)
_NON_ASCII_FRAGMENTS = ((45, _ACCENTED), (18, _SYMBOLS), (10, _CJK), (10, _CYRILLIC), (17, _EMOJI))

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


def sentence_table(
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


class Sentences:
    """A table of sentences (``sentence_table``) and the prose drawn from it."""

    def __init__(self, templates: Sequence[str], separators: Sequence[tuple[str, int]], rng: random.Random):
        self.table = sentence_table(templates, separators, rng)
        self.average = sum(map(len, self.table)) / _TABLE_SIZE

    def prose(self, rng: random.Random, n_chars: int) -> str:
        """English-ish prose of about ``n_chars`` characters (never empty)."""
        n_chars = max(n_chars, 2)
        k = int(n_chars / self.average * 1.2) + 2
        text = "".join(itemgetter(*_indices(rng, k))(self.table))
        while len(text) <= n_chars:  # rare: short draws
            text += "".join(itemgetter(*_indices(rng, k))(self.table))
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
# Completion sentences first, then prompt ones, from one stream.
_TABLES_RNG = random.Random(0x0F4C7)
COMPLETIONS = Sentences(COMPLETION_TEMPLATES, _COMPLETION_SEPARATORS, _TABLES_RNG)
PROMPTS = Sentences(_PROMPT_TEMPLATES, _PROMPT_SEPARATORS, _TABLES_RNG)
_CODE_POOLS = _build_code_pools()
_CODE_LANGS = tuple(_CODE_POOLS)
_CODE_LANG_WEIGHTS = (45, 15, 12, 10, 10, 8)
_AVG_CODE_LINE_CHARS = {lang: sum(len(x) + 1 for x in pool) / len(pool) for lang, pool in _CODE_POOLS.items()}
_NON_ASCII_KINDS = tuple(fragments for _, fragments in _NON_ASCII_FRAGMENTS)
_NON_ASCII_KIND_CUM = tuple(accumulate(w for w, _ in _NON_ASCII_FRAGMENTS))
_PROMPT_SUFFIXES = ("\nAnswer:", "\nOutput:", "\nA:", "\nSolution:")
_CODE_LANG_CUM = tuple(accumulate(_CODE_LANG_WEIGHTS))

# ------------------------------------------------------------------ primitives


def pick(rng: random.Random, items: Sequence, cum: Sequence[float]):
    """One of ``items``, weighted by their cumulative weights ``cum``."""
    return items[bisect_right(cum, rng.random() * cum[-1])]


def choice(rng: random.Random, items: Sequence):
    """One of ``items``, each as likely."""
    return items[int(rng.random() * len(items))]


def length(rng: random.Random, quantiles: Sequence[int]) -> int:
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


def _code_block(rng: random.Random, n_chars: int) -> str:
    lang = pick(rng, _CODE_LANGS, _CODE_LANG_CUM)
    pool = _CODE_POOLS[lang]
    k = max(2, int(n_chars / _AVG_CODE_LINE_CHARS[lang]))
    body = "\n".join(itemgetter(*rng.randbytes(k))(pool)).strip("\n") or pool[0]
    return f"```{lang}\n{body}\n```"


def insert_non_ascii(rng: random.Random, text: str) -> str:
    """Insert 1-3 non-ASCII fragments of one kind (accents, symbols, CJK, ...)."""
    fragments = pick(rng, _NON_ASCII_KINDS, _NON_ASCII_KIND_CUM)
    for _ in range(1 + int(rng.random() * 3)):
        frag = choice(rng, fragments)
        pos = text.find(" ", int(rng.random() * len(text)))
        if pos < 0:
            text = f"{text} {frag}"
        else:
            text = f"{text[:pos]} {frag}{text[pos:]}"
    return text


def completion(rng: random.Random, n_chars: int, code_rate: float) -> str:
    """An assistant answer of about ``n_chars`` characters, maybe with a code block."""
    n_chars = max(n_chars, _MIN_COMPLETION_CHARS)
    opener = choice(rng, _COMPLETION_OPENERS) if n_chars > 80 else ""
    if n_chars >= 300 and rng.random() < code_rate:
        code_chars = int(n_chars * (0.25 + 0.35 * rng.random()))
        before = int((n_chars - code_chars) * (0.3 + 0.5 * rng.random()))
        after = n_chars - code_chars - before
        return (
            f"{opener}{COMPLETIONS.prose(rng, before - len(opener))}"
            f"\n\n{_code_block(rng, code_chars - 14)}\n\n"
            f"{COMPLETIONS.prose(rng, after)}"
        )
    return opener + COMPLETIONS.prose(rng, n_chars - len(opener))


def prompt_text(rng: random.Random, source: str) -> str:
    """A prompt of the real length distribution, opening like prompts of ``source``
    (any key of ``PROMPT_OPENERS``)."""
    n_chars = length(rng, PROMPT_LENGTH_QUANTILES)
    opener = choice(rng, PROMPT_OPENERS[source])
    suffix = choice(rng, _PROMPT_SUFFIXES) if rng.random() < 0.12 else ""
    budget = n_chars - len(suffix)
    if budget < len(opener) + 20:
        text = PROMPTS.prose(rng, budget)
    elif budget >= 300 and rng.random() < PROMPT_CODE_RATE:
        code_chars = budget // 2
        body = PROMPTS.prose(rng, budget - code_chars - len(opener) - 1)
        text = f"{opener} {body}\n{_code_block(rng, code_chars - 12)}"
    else:
        text = f"{opener} {PROMPTS.prose(rng, budget - len(opener) - 1)}"
        if rng.random() < 0.3:
            text = text[:-1] + "?"
    text += suffix
    if rng.random() < PROMPT_NON_ASCII_RATE:
        text = insert_non_ascii(rng, text)
    return text


def completion_of_length(rng: random.Random, quantiles: Sequence[int], code_rate: float) -> str:
    """An assistant answer whose length follows ``quantiles``, or is long (8,000-10,000
    characters) with probability ``LONG_COMPLETION_RATE``."""
    if rng.random() < LONG_COMPLETION_RATE:
        n_chars = _LONG_LENGTH[0] + int(rng.random() * (_LONG_LENGTH[1] - _LONG_LENGTH[0]))
    else:
        n_chars = length(rng, quantiles)
    return completion(rng, n_chars, code_rate)


def chosen_and_rejected(rng: random.Random) -> tuple[str, str]:
    """The last assistant turns of a pair: chosen and rejected lengths and code rates,
    non-ASCII text in one or both for ``COMPLETION_NON_ASCII_RATE`` of pairs."""
    chosen_text = completion_of_length(rng, CHOSEN_LENGTH_QUANTILES, CHOSEN_CODE_RATE)
    rejected_text = completion_of_length(rng, REJECTED_LENGTH_QUANTILES, REJECTED_CODE_RATE)
    if rng.random() < COMPLETION_NON_ASCII_RATE:
        which = rng.random()
        if which < 0.6:
            chosen_text = insert_non_ascii(rng, chosen_text)
        if which > 0.4:
            rejected_text = insert_non_ascii(rng, rejected_text)
    return chosen_text, rejected_text


# ------------------------------------------------------------------ row streams


def row_hash(stream: str, seed: int, index: int) -> tuple[int, int]:
    """Two 64-bit integers derived from (stream, seed, index) by BLAKE2b: the seed of
    row ``index``'s random stream and bits for decisions made before it starts."""
    digest = hashlib.blake2b(f"{stream}:{seed}:{index}".encode(), digest_size=16).digest()
    return int.from_bytes(digest[:8], "little"), int.from_bytes(digest[8:], "little")


def draws_first(bits: int, rate: float) -> bool:
    """Whether a row's decision made from ``bits`` before its stream starts (``row_hash``'s
    second value) falls within ``rate``."""
    return (bits >> 40) < rate * (1 << 24)


def earlier_row(bits: int, rows: int) -> int:
    """An index below ``rows``, from the same ``bits`` as ``draws_first``."""
    return (bits & 0xFFFFFFFFFF) % rows


def prompt_root(hash_of: Callable[[int], tuple[int, int]], index: int, rate: float) -> int:
    """The row whose prompt row ``index`` shows: ``index`` itself, or, when it reuses a
    prompt (with probability ``rate``, that of an earlier row), the first row of the chain
    of reuses, which drew the prompt.

    ``hash_of(i)`` gives row ``i``'s ``(rng_seed, bits)`` (``row_hash`` of its stream). A reused prompt is rebuilt
    from the root's seed, never copied from memory, so each row stays a pure function
    of ``(seed, index)``.
    """
    while index > 0 and draws_first(bits := hash_of(index)[1], rate):
        index = earlier_row(bits, index)
    return index


def prompt_stream(
    hash_of: Callable[[int], tuple[int, int]], index: int, rate: float, own: random.Random | None = None
) -> random.Random:
    """The stream that row ``index``'s prompt is drawn from: ``own`` (the row's own stream,
    when given) if the row draws its own prompt, else a new stream of the row that drew it
    (``prompt_root``)."""
    root = prompt_root(hash_of, index, rate)
    return own if own is not None and root == index else random.Random(hash_of(root)[0])
