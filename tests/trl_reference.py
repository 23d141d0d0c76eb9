"""TRL's way of unpairing a preference dataset, as the reference for content.

A copy of ``_unpair_row`` and ``unpair_preference_dataset`` from ``trl/data_utils.py``
(huggingface/trl): TRL itself cannot be installed here without PyTorch. The tests compare
the builder's rows with what this gives on the same pairs, once chosen and rejected are
reduced to the assistant text, as a TRL user would do first.
"""

from __future__ import annotations

import datasets


def _unpair_row(examples: dict[str, list]) -> dict[str, list]:
    batch_size = len(examples["chosen"])
    new_rows = {
        "completion": examples["chosen"] + examples["rejected"],
        "label": [True] * batch_size + [False] * batch_size,
    }
    if "prompt" in examples:
        new_rows["prompt"] = examples["prompt"] + examples["prompt"]
    return new_rows


def unpair_preference_dataset(dataset: datasets.Dataset, num_proc=None, desc=None) -> datasets.Dataset:
    return dataset.map(_unpair_row, batched=True, remove_columns=["chosen", "rejected"], num_proc=num_proc, desc=desc)


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
