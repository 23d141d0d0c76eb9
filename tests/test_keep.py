"""The keep stage on its own: one example of each (prompt, completion, label) in a split, none
of a completion found with both labels, none of the upstream's test prompts in train."""

from __future__ import annotations

import pyarrow as pa

from ultrafeedback_kto import CONTRADICTORY, DUPLICATE, IN_UPSTREAM_TEST, keep


def keys(*examples: tuple[int, int, bool, int]) -> pa.Table:
    """A split's keys, one ``(prompt, completion, label, upstream row)`` per example."""
    prompt, completion, label, row = zip(*examples, strict=True)
    return pa.table(
        {
            "prompt_key": pa.array(prompt, pa.int64()),
            "completion_key": pa.array(completion, pa.int64()),
            "label": pa.array(label, pa.bool_()),
            "row": pa.array(row, pa.int64()),
            "rank": pa.array([0] * len(row), pa.int32()),
        }
    )


def test_keep_leaves_out_repeats_contradictions_and_test_prompts_and_says_where_they_were():
    split = keys(
        (1, 10, True, 0),
        (1, 11, False, 0),
        (1, 10, True, 5),  # the first again, later upstream: a duplicate
        (2, 20, True, 1),
        (2, 20, False, 7),  # the same completion with the other label: both go
        (3, 30, True, 2),  # a prompt of the upstream's test split
        (4, 40, False, 3),
    )
    kept, left_out = keep(split, excluded=pa.array([3], pa.int64()))
    assert kept.to_pylist() == [True, True, False, False, False, False, True]
    assert left_out == {DUPLICATE: [5], CONTRADICTORY: [1, 7], IN_UPSTREAM_TEST: [2]}


def test_keep_keeps_everything_of_a_clean_split():
    split = keys((1, 10, True, 0), (1, 11, False, 0), (2, 20, True, 1))
    kept, left_out = keep(split)
    assert kept.to_pylist() == [True, True, True] and left_out == {}
