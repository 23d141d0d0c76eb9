"""TRL's way of unpairing a preference dataset, as the reference for content.

A copy of ``_unpair_row`` and ``unpair_preference_dataset`` from ``trl/data_utils.py``
(huggingface/trl 1.16.0, unchanged): TRL itself cannot be installed here without PyTorch. The tests compare
the builder's rows with what this gives on the same pairs, once chosen and rejected are
reduced to the assistant text, as a TRL user would do first.
"""

from __future__ import annotations

from typing import Any

import datasets


def _unpair_row(batch: dict[str, list[Any]]) -> dict[str, list[Any]]:
    batch_size = len(batch["chosen"])
    new_batch = {
        "completion": batch["chosen"] + batch["rejected"],
        "label": [True] * batch_size + [False] * batch_size,
    }
    if "prompt" in batch:
        new_batch["prompt"] = batch["prompt"] + batch["prompt"]
    for k in batch:
        if k not in ("chosen", "rejected", "prompt"):
            new_batch[k] = batch[k] + batch[k]
    return new_batch


def unpair_preference_dataset(dataset, **map_kwargs):
    if isinstance(dataset, datasets.DatasetDict):
        column_names = next(iter(dataset.values())).column_names
    elif isinstance(dataset, datasets.Dataset):
        column_names = dataset.column_names
    else:  # IterableDataset
        column_names = dataset.column_names or list(next(iter(dataset)).keys())
    return dataset.map(_unpair_row, batched=True, remove_columns=column_names, **map_kwargs)


def to_assistant_text(examples: dict[str, list]) -> dict[str, list]:
    """Reduce chosen and rejected conversations to their final assistant text (batched)."""
    return {
        "chosen": [conversation[-1]["content"] for conversation in examples["chosen"]],
        "rejected": [conversation[-1]["content"] for conversation in examples["rejected"]],
    }


def trl_examples(upstream: datasets.Dataset) -> list[tuple[str, str, bool]]:
    """(prompt, completion, label) for every row TRL's recipe makes of the upstream."""
    pairs = upstream.select_columns(["prompt", "chosen", "rejected"]).map(to_assistant_text, batched=True)
    unpaired = unpair_preference_dataset(pairs)
    return list(zip(unpaired["prompt"], unpaired["completion"], unpaired["label"], strict=False))
