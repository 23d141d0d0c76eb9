"""The conversion of one pair, written plainly: the reference the builder's Arrow conversion
(`ultrafeedback_kto.convert_pairs`) is tested against, row by row.

It states every acceptance rule of a pair in the order `convert_pairs` documents; the tests
compare the two on generated pairs broken in every way they know.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Sequence
from typing import Any

import ultrafeedback_kto as kto


def render_prompt(turns: Sequence[dict]) -> str:
    """The ``default`` config's prompt: a single user turn is its own text; several are joined
    as ``"{role}: {content}"`` blocks separated by a blank line."""
    if len(turns) == 1:
        return turns[0]["content"]
    return "\n\n".join(f"{turn['role']}: {turn['content']}" for turn in turns)


def prompt_id(prompt_text: str) -> str:
    """Hex sha256 of the ``default`` config's prompt text."""
    return hashlib.sha256(prompt_text.encode("utf-8")).hexdigest()


class Refused(Exception):
    def __init__(self, reason: kto.Reason):
        super().__init__(reason.text)
        self.reason = reason


def _messages(value: Any) -> list[dict]:
    if not value:
        raise Refused(kto.EMPTY_COMPLETION)
    if any(message is None or message.get("role") is None for message in value):
        raise Refused(kto.MALFORMED_MESSAGE)
    if any(message.get("content") is None for message in value[:-1]):
        raise Refused(kto.MALFORMED_MESSAGE)
    if value[-1]["role"] != "assistant":
        raise Refused(kto.NO_FINAL_ASSISTANT)
    if not (value[-1].get("content") or "").strip():
        raise Refused(kto.EMPTY_COMPLETION)
    return [{"content": message["content"], "role": message["role"]} for message in value]


def _rating(value) -> float | None:
    return None if value is None or math.isnan(value) else float(value)


def pair_to_examples(pair: dict, config: kto.UltraFeedbackKTOConfig) -> list[dict]:
    """One upstream pair in, its two examples out (chosen, then rejected), in the
    ``conversational`` shape; raises `Refused` with the first reason the pair fails."""
    prompt = pair.get("prompt")
    if not isinstance(prompt, str) or not prompt.strip():
        raise Refused(kto.EMPTY_PROMPT)
    chosen, rejected = _messages(pair.get("chosen")), _messages(pair.get("rejected"))
    turns = chosen[:-1]
    if turns != rejected[:-1]:
        raise Refused(kto.TURNS_DIFFER)
    if not turns or turns[0]["role"] != "user" or turns[0]["content"] != prompt:
        raise Refused(kto.PROMPT_MISMATCH)
    if chosen[-1]["content"] == rejected[-1]["content"]:
        raise Refused(kto.SAME_COMPLETION)
    ratings = _rating(pair.get("chosen-rating")), _rating(pair.get("rejected-rating"))
    low, high = kto.UPSTREAMS[config.upstream].ratings
    if any(rating is not None and not low <= rating <= high for rating in ratings):
        raise Refused(kto.Reason(f"rating outside the upstream's scale ({low:g} to {high:g})"))
    if None not in ratings and ratings[1] > ratings[0]:
        raise Refused(kto.REJECTED_ABOVE_CHOSEN)
    if (config.label_rule == "absolute" or config.min_rating_margin is not None) and None in ratings:
        raise Refused(kto.MISSING_RATING)
    if config.min_rating_margin is not None and ratings[0] - ratings[1] < config.min_rating_margin:
        raise Refused(kto.SMALL_MARGIN)
    if config.label_rule == "absolute":
        labels = [rating >= config.desirable_threshold for rating in ratings]
    else:
        labels = [True, False]
    return [
        {
            "prompt": turns,
            "completion": [side[-1]],
            "label": label,
            "prompt_id": prompt_id(render_prompt(turns)),
            "source": pair.get("source"),
            "model": pair.get(f"{name}-model"),
            "average_rating": rating,
        }
        for name, side, label, rating in zip(("chosen", "rejected"), (chosen, rejected), labels, ratings, strict=True)
    ]
