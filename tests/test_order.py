"""Row order for KTO training: the arrangement of a split, and its checker."""

from __future__ import annotations

import random

import pytest

from ultrafeedback_kto import KL_BATCH_SIZES, arrange, kl_partners, order_problems


def longest_run(labels):
    longest = run = 0
    for i, label in enumerate(labels):
        run = run + 1 if i and label == labels[i - 1] else 1
        longest = max(longest, run)
    return longest


def rows_with_repeats(n_prompts, repeat_share, true_share, rng, per_prompt=2):
    """``per_prompt`` rows per prompt; a share of prompts reuse an earlier one; labels drawn at a rate."""
    prompt_ids, labels = [], []
    for i in range(n_prompts):
        prompt = f"p{rng.randrange(i)}" if i and rng.random() < repeat_share else f"p{i}"
        for _ in range(per_prompt):
            prompt_ids.append(prompt)
            labels.append(rng.random() < true_share)
    return prompt_ids, labels


def trl_kl_prompts(prompt_ids, batch_size):
    """The prompt of each row's KL completion as TRL's KTO trainer pairs them: within each
    batch, the completion of the row before it, the first row taking the last row's."""
    partners = []
    for start in range(0, len(prompt_ids), batch_size):
        batch = prompt_ids[start : start + batch_size]
        partners += [batch[-1]] + batch[:-1]
    return partners


@pytest.mark.parametrize("true_share", [0.5, 0.3, 0.25, 0.75])
@pytest.mark.parametrize(("repeat_share", "per_prompt"), [(0.05, 2), (0.4, 2), (0.05, 4)])
def test_arrange_separates_prompts_and_mixes_labels(true_share, repeat_share, per_prompt):
    prompt_ids, labels = rows_with_repeats(5_000, repeat_share, true_share, random.Random(0), per_prompt)
    order = arrange(prompt_ids, labels, random.Random(1))
    assert sorted(order) == list(range(len(labels)))
    assert order_problems([prompt_ids[i] for i in order], [labels[i] for i in order]) == []


@pytest.mark.parametrize("rows", [10_001, 10_000, 3_333, 130, 37])
def test_no_kl_pair_of_trl_matches_a_prompt_at_any_batch_size(rows):
    rng = random.Random(rows)
    prompt_ids, labels = rows_with_repeats(rows // 4, 0.05, 0.5, rng, per_prompt=4)
    prompt_ids, labels = prompt_ids[:rows] + ["last"] * (rows - len(prompt_ids)), labels[:rows] + [True] * rows
    order = arrange(prompt_ids, labels[:rows], random.Random(2))
    arranged = [prompt_ids[i] for i in order]
    for batch_size in KL_BATCH_SIZES:
        kl = trl_kl_prompts(arranged, batch_size)
        # A last batch of a single row is paired with itself; nothing else may be.
        alone = len(arranged) - 1 if len(arranged) % batch_size == 1 else None
        assert [p for p, (a, b) in enumerate(zip(arranged, kl, strict=True)) if a == b and p != alone] == []


def test_kl_partners_are_neighbours_and_the_other_end_of_each_batch():
    assert sorted(kl_partners(0, 10)) == [1, 3, 7, 9]  # batches of 4 and 8; of 16 and more the last row
    assert sorted(kl_partners(8, 10)) == [7, 9]  # its batches of 4 and 8 are rows 8-9: neighbours
    assert sorted(kl_partners(9, 10)) == [0, 8]
    assert sorted(kl_partners(4, 10)) == [3, 5, 7]


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


def test_order_problems_reports_neighbours_kl_pairs_and_long_runs():
    assert order_problems(["a", "a", "b"], [True, False, True]) == [
        "1 rows share their prompt with the row before them (first at row 1)"
    ]
    assert order_problems(["a", "b", "c", "a", "d"], [True, False] * 2 + [True]) == [
        "1 batches of 4 rows begin and end with one prompt, a matched KL pair (first at row 0)"
    ]
    labels = [True] * 8 + [False] * 8
    problems = order_problems([str(i) for i in range(16)], labels)
    assert len(problems) == 1 and "run of 8 rows with label=True" in problems[0]
    # Fewer than a quarter of one label: long runs cannot be avoided, so none is reported.
    assert order_problems([str(i) for i in range(20)], [True] * 17 + [False] * 3) == []


@pytest.mark.parametrize("true_count", [226, 150, 120, 340, 453, 700])
def test_unbalanced_labels_keep_runs_within_the_cap(true_count):
    # e.g. 226 desirable against 680: the majority must fit runs of ceil(680 / 226) = 4.
    false_count = 906 - true_count
    labels = [True] * true_count + [False] * false_count
    cap = max(3, -(-max(true_count, false_count) // min(true_count, false_count)))
    for seed in range(10):
        order = arrange([str(i) for i in range(906)], labels, random.Random(seed))
        assert longest_run([labels[i] for i in order]) <= cap, seed


def test_balanced_labels_never_run_past_three():
    prompt_ids, labels = rows_with_repeats(5_000, 0.05, 0.5, random.Random(4))
    order = arrange(prompt_ids, labels, random.Random(5))
    assert longest_run([labels[i] for i in order]) <= 3


def test_small_splits_with_many_rows_per_prompt_are_separated_too():
    # 40 rows of 12 prompts, one label: every clash must be undone by a swap that moves it.
    for seed in range(100):
        rng = random.Random(seed)
        prompt_ids = [f"p{rng.randrange(12)}" for _ in range(40)]
        order = arrange(prompt_ids, [True] * 40, random.Random(seed))
        assert order_problems([prompt_ids[i] for i in order], [True] * 40) == [], seed
