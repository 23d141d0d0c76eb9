"""Row order for KTO training: rows of one prompt far apart, labels mixed, whatever a trainer
drops or wherever it starts its batches."""

from __future__ import annotations

import random
from collections import Counter

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from publish.stats import closest_rows, order_problems
from tests.conftest import build
from tools.sample import generate_table
from ultrafeedback_kto import Arrangement, prompt_distance


def trl_kl_partners(rows: int, batch_size: int, shards: int = 1) -> list[int]:
    """The row whose completion each row gets for its KL term in TRL's KTO trainer: its
    ``map(_get_kl_dataset, batched=True, batch_size=per_device_train_batch_size,
    num_proc=dataset_num_proc)`` rotates every block of ``batch_size`` rows by one (the
    first row gets the last row's completion), the blocks starting afresh in each of the
    ``num_proc`` contiguous shards that ``datasets`` cuts (the first ``rows % shards`` shards
    one row longer). LLaMA-Factory pairs rows the same way in its preprocessing batches."""
    partners, start = [], 0
    for shard in range(shards):
        end = start + rows // shards + (shard < rows % shards)
        for block in range(start, end, batch_size):
            last = min(block + batch_size, end) - 1
            partners += [last] + list(range(block, last))
        start = end
    return partners


def matched_kl_pairs(prompt_ids: list, batch_size: int, shards: int = 1) -> list[int]:
    """The rows paired with a completion of their own prompt (a block of one row, paired with
    itself, left aside: no order can help it)."""
    partners = trl_kl_partners(len(prompt_ids), batch_size, shards)
    return [row for row, partner in enumerate(partners) if partner != row and prompt_ids[partner] == prompt_ids[row]]


def rows_with_repeats(prompts: int, rng: random.Random, repeat_share: float = 0.05, per_prompt: int = 2):
    """``per_prompt`` rows of each prompt, half of them desirable; a share of the prompts are
    an earlier one again (so some prompts have many rows)."""
    prompt_ids, labels = [], []
    for i in range(prompts):
        prompt = f"p{rng.randrange(i)}" if i and rng.random() < repeat_share else f"p{i}"
        prompt_ids += [prompt] * per_prompt
        labels += [k % 2 == 0 for k in range(per_prompt)]
    return prompt_ids, labels


def arranged(prompt_ids, labels, seed: int = 0, min_prompt_distance: int = 1000):
    """The rows in the order `Arrangement` gives, as the builder calls it: each prompt's rows
    dealt to windows of about 8,192 rows in turn from a random one, the windows one after the other."""
    rng = random.Random(seed)
    windows = -(-len(prompt_ids) // 8_192)
    most = max(Counter(prompt_ids).values())
    arrangement = Arrangement(prompt_distance(len(prompt_ids), most, min_prompt_distance), rng)
    dealt, turn = [[] for _ in range(windows)], {}
    for row, prompt in enumerate(prompt_ids):
        turn[prompt] = turn[prompt] + 1 if prompt in turn else rng.randrange(windows)
        dealt[turn[prompt] % windows].append(row)
    order = []
    for rows in dealt:
        window_order = arrangement.window([prompt_ids[r] for r in rows], [labels[r] for r in rows])
        order += [rows[i] for i in window_order]
    assert sorted(order) == list(range(len(prompt_ids)))
    return [prompt_ids[r] for r in order], [labels[r] for r in order]


@pytest.fixture(scope="module")
def built_10k(tmp_path_factory, upstream_10k):
    return build(tmp_path_factory.mktemp("cache"), upstream_10k)


def test_no_trl_batch_pairs_a_row_with_its_own_prompt_after_dropping_a_tenth_of_the_rows(built_10k):
    # TRL drops the rows whose prompt alone fills max_length before it pairs rows; every dropped
    # row moves every later block. Drop a random tenth, then pair as TRL does.
    prompt_ids = built_10k["train"]["prompt_id"]
    rng = random.Random(0)
    for attempt in range(3):
        kept = [p for p in prompt_ids if rng.random() >= 0.1]
        for batch_size in (2, 3, 4, 6, 8, 12, 16, 24, 32, 64, 128):
            for shards in (1, 2, 3, 8):
                assert matched_kl_pairs(kept, batch_size, shards) == [], (attempt, batch_size, shards)


def test_the_closest_rows_of_one_prompt_are_as_far_apart_as_the_split_allows(built_10k):
    # 18,980 train rows, one prompt with 12 of them: at least 18,980 / 24 rows apart.
    for dataset in built_10k.values():
        prompt_ids = dataset["prompt_id"]
        first, second = closest_rows(prompt_ids)
        assert second - first >= prompt_distance(len(prompt_ids), max(Counter(prompt_ids).values()), 1_000)


def test_every_split_keeps_rows_of_one_prompt_apart_and_labels_mixed(built_10k):
    for dataset in built_10k.values():
        assert order_problems(dataset["prompt_id"], dataset["label"]) == []


def test_prompts_that_all_have_many_rows_keep_them_apart_through_the_builder(tmp_path):
    # Ten pairs for every prompt (five completions, every pair of them, as people binarize raw
    # preference data): 30,000 rows in four windows, each prompt with 20. Dealt to the windows
    # by a hash of each example, some windows drew more of a prompt's rows than they could hold
    # apart, and rows of one prompt came side by side, which TRL pairs for the KL term.
    pairs = generate_table(15_000, seed=7).to_pylist()
    for i, pair in enumerate(pairs):
        prompt = f"{pairs[i - i % 10]['prompt']} ({i // 10})"  # the generator repeats some prompts
        pair["prompt"] = pair["chosen"][0]["content"] = pair["rejected"][0]["content"] = prompt
    path = tmp_path / "ten-pairs-a-prompt.parquet"
    pq.write_table(pa.Table.from_pylist(pairs, schema=generate_table(1).schema), path)
    for split, dataset in build(tmp_path / "cache", path).items():
        prompt_ids = dataset["prompt_id"]
        most = max(Counter(prompt_ids).values())  # 20, or 18 where the generator's broken pairs are left out
        first, second = closest_rows(prompt_ids)
        assert most >= 18 and second - first >= prompt_distance(len(prompt_ids), most, 1_000), split
        assert order_problems(prompt_ids, dataset["label"]) == [], split
        assert matched_kl_pairs(prompt_ids, 8) == [], split


def test_rows_of_one_prompt_are_at_least_1000_apart_at_the_real_size():
    # 60,917 pairs with repeated prompts (some prompts have ten rows), dealt into windows as the
    # builder deals them: no chunk of 1,000 rows, LLaMA-Factory's, holds a prompt twice.
    prompt_ids, labels = rows_with_repeats(60_917, random.Random(1))
    ordered, ordered_labels = arranged(prompt_ids, labels)
    first, second = closest_rows(ordered)
    assert second - first >= 1_000
    for workers in (1, 2, 3, 16):
        assert matched_kl_pairs(ordered, 1_000, workers) == []
    assert order_problems(ordered, ordered_labels) == []


@pytest.mark.parametrize(("prompts", "per_prompt"), [(24, 2), (200, 4), (40, 12), (600, 5)])
def test_a_split_too_small_for_the_distance_spreads_each_prompt_as_far_as_it_allows(prompts, per_prompt):
    for seed in range(20):
        prompt_ids, labels = rows_with_repeats(prompts, random.Random(seed), repeat_share=0.1, per_prompt=per_prompt)
        ordered, ordered_labels = arranged(prompt_ids, labels, seed=seed)
        most = max(Counter(ordered).values())
        first, second = closest_rows(ordered)
        assert second - first >= len(ordered) // (2 * most), seed
        assert order_problems(ordered, ordered_labels) == [], seed


def test_a_prompt_with_many_rows_is_spread_over_the_whole_split():
    # One prompt with 60 of 12,000 rows: too many for 1,000 apart, and for one window.
    prompt_ids = [f"p{i}" for i in range(11_940)] + ["many"] * 60
    labels = [i % 2 == 0 for i in range(12_000)]
    ordered, _ = arranged(prompt_ids, labels)
    places = [row for row, prompt in enumerate(ordered) if prompt == "many"]
    assert min(b - a for a, b in zip(places, places[1:], strict=False)) >= prompt_distance(12_000, 60, 1_000) == 100


@pytest.mark.parametrize("true_share", [0.5, 0.3, 0.25, 0.75])
def test_every_8_rows_hold_both_labels_while_each_is_a_quarter(true_share):
    rng = random.Random(3)
    prompt_ids = [f"p{i}" for i in range(10_000)]
    labels = [rng.random() < true_share for _ in prompt_ids]
    ordered, ordered_labels = arranged(prompt_ids, labels)
    cap = max(3, -(-max(sum(labels), 10_000 - sum(labels)) // min(sum(labels), 10_000 - sum(labels))))
    assert longest_run(ordered_labels) <= cap
    assert order_problems(ordered, ordered_labels) == []


def test_balanced_labels_never_run_past_three():
    prompt_ids, labels = rows_with_repeats(5_000, random.Random(4))
    assert longest_run(arranged(prompt_ids, labels)[1]) <= 3


def test_the_order_is_a_shuffle_decided_by_the_seed():
    prompt_ids, labels = rows_with_repeats(1_000, random.Random(5))
    first = arranged(prompt_ids, labels, seed=1)
    assert first == arranged(prompt_ids, labels, seed=1)
    assert first != arranged(prompt_ids, labels, seed=2)
    # The rows of a pair are far apart, not kept next to each other.
    places = {}
    for row, prompt in enumerate(first[0]):
        places.setdefault(prompt, []).append(row)
    gaps = sorted(rows[1] - rows[0] for rows in places.values() if len(rows) == 2)
    assert gaps[len(gaps) // 2] > 500


def test_order_problems_names_the_closest_rows_of_one_prompt_and_long_label_runs():
    prompt_ids = [f"p{i}" for i in range(4_000)]
    prompt_ids[2_500] = prompt_ids[2_000]
    labels = [i % 2 == 0 for i in range(4_000)]
    assert order_problems(prompt_ids, labels) == [
        "rows 2000 and 2500 share a prompt, 500 rows apart: a prompt's rows should be at least 1000 apart"
    ]
    assert order_problems(prompt_ids, labels, min_prompt_distance=500) == []
    problems = order_problems([str(i) for i in range(16)], [True] * 8 + [False] * 8)
    assert len(problems) == 1 and "run of 8 rows with label=True" in problems[0]
    # Fewer than a quarter of one label: long runs cannot be avoided, so none is reported.
    assert order_problems([str(i) for i in range(20)], [True] * 17 + [False] * 3) == []


def longest_run(labels):
    longest = run = 0
    for i, label in enumerate(labels):
        run = run + 1 if i and label == labels[i - 1] else 1
        longest = max(longest, run)
    return longest
