"""Row order for TRL's KTO trainer: the buckets of the shuffle, the pure arrangement of one
bucket, and its checker."""

from __future__ import annotations

import random
from collections import Counter

import pytest

from ultrafeedback_kto import _shuffle_keys, arrange, order_problems, prompt_id, split_of


def longest_run(labels):
    longest = run = 0
    for i, label in enumerate(labels):
        run = run + 1 if i and label == labels[i - 1] else 1
        longest = max(longest, run)
    return longest


def pairs_with_repeats(n_pairs, repeat_share, true_share, rng):
    """Two rows per pair; a share of pairs reuse an earlier prompt; labels drawn at a rate."""
    prompt_ids, labels = [], []
    for i in range(n_pairs):
        prompt = f"p{rng.randrange(i)}" if i and rng.random() < repeat_share else f"p{i}"
        for _ in range(2):
            prompt_ids.append(prompt)
            labels.append(rng.random() < true_share)
    return prompt_ids, labels


@pytest.mark.parametrize("true_share", [0.5, 0.3, 0.25, 0.75])
@pytest.mark.parametrize("repeat_share", [0.05, 0.4])
def test_arrange_separates_prompts_and_mixes_labels(true_share, repeat_share):
    prompt_ids, labels = pairs_with_repeats(10_000, repeat_share, true_share, random.Random(0))
    order = arrange(prompt_ids, labels, random.Random(1))
    assert sorted(order) == list(range(len(labels)))
    assert order_problems([prompt_ids[i] for i in order], [labels[i] for i in order]) == []


def test_arrange_keeps_runs_short_even_across_buckets_laid_end_to_end():
    rng = random.Random(3)
    rows_ids, rows_labels = [], []
    for bucket in range(6):
        prompt_ids, labels = pairs_with_repeats(500, 0.05, 0.2, rng)  # minority 20% < a quarter
        prompt_ids = [f"{bucket}/{p}" for p in prompt_ids]
        order = arrange(prompt_ids, labels, random.Random(bucket))
        rows_ids += [prompt_ids[i] for i in order]
        rows_labels += [labels[i] for i in order]
    assert longest_run(rows_labels) <= 7
    assert all(a != b for a, b in zip(rows_ids, rows_ids[1:], strict=False))


def test_arrange_is_a_shuffle():
    prompt_ids = [f"p{i // 2}" for i in range(2_000)]
    labels = [i % 2 == 0 for i in range(2_000)]
    first = arrange(prompt_ids, labels, random.Random(1))
    assert first == arrange(prompt_ids, labels, random.Random(1))
    assert first != arrange(prompt_ids, labels, random.Random(2))
    # Pairs are spread out, not kept next to each other.
    position = {row: at for at, row in enumerate(first)}
    gaps = sorted(abs(position[2 * p] - position[2 * p + 1]) for p in range(1_000))
    assert gaps[len(gaps) // 2] > 100


def test_order_problems_reports_neighbours_and_long_runs():
    assert order_problems(["a", "a", "b"], [True, False, True]) == [
        "1 rows share their prompt with the row before them (first at row 1)"
    ]
    labels = [True] * 8 + [False] * 8
    problems = order_problems([str(i) for i in range(16)], labels)
    assert len(problems) == 1 and "run of 8 rows with label=True" in problems[0]
    # Fewer than a quarter of one label: long runs cannot be avoided, so none is reported.
    assert order_problems([str(i) for i in range(20)], [True] * 17 + [False] * 3) == []


@pytest.mark.parametrize("true_count", [226, 150, 120, 340, 453])
def test_unbalanced_labels_keep_runs_within_the_cap(true_count):
    # e.g. 226 desirable against 680: the first two rows differ, so the majority must fit
    # minority gaps of ceil(680 / 226) = 4 rows.
    false_count = 906 - true_count
    labels = [True] * true_count + [False] * false_count
    cap = max(3, -(-max(true_count, false_count) // min(true_count, false_count)))
    for seed in range(20):
        order = arrange([str(i) for i in range(906)], labels, random.Random(seed))
        arranged = [labels[i] for i in order]
        assert longest_run(arranged) <= cap, (seed, longest_run(arranged), cap)
        assert arranged[0] != arranged[1]


def test_runs_stay_under_8_when_each_label_is_a_seventh():
    prompt_ids, labels = pairs_with_repeats(5_000, 0.05, 1 / 7 + 0.01, random.Random(4))
    order = arrange(prompt_ids, labels, random.Random(5))
    assert longest_run([labels[i] for i in order]) <= 7


def test_shuffle_keys_agree_with_split_and_prompt_id_and_spread_buckets():
    prompts = [f"prompt {i}" for i in range(4_000)] + ["prompt 7", None]
    buckets = {"train": 5, "test": 2}
    ids, splits, codes = _shuffle_keys(prompts, 0.2, 42, buckets)
    assert ids[:-1] == [prompt_id(p) for p in prompts[:-1]]
    assert splits[:-1] == [split_of(p, 0.2) for p in prompts[:-1]]
    assert splits[-1] == split_of("", 0.2)
    assert codes[7] == codes[4_000]  # a shared prompt shares its bucket
    assert all(code % 2 == (split == "test") for code, split in zip(codes, splits, strict=True))
    per_code = Counter(codes)
    assert sorted(per_code) == [0, 1, 2, 3, 4, 6, 8]  # train buckets 0-4, test buckets 0-1
    train = [per_code[code] for code in (0, 2, 4, 6, 8)]
    assert max(train) < 1.2 * min(train)
    _, other_splits, other_codes = _shuffle_keys(prompts, 0.2, 7, buckets)
    assert other_splits == splits  # the seed moves prompts between buckets, never between splits
    moved = sum(a != b for a, b in zip(codes, other_codes, strict=True))
    assert moved > len(codes) / 2
