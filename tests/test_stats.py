"""The card's statistics of a split, from its rows alone."""

from __future__ import annotations

import json
import math

import pyarrow as pa

from publish.stats import ASPECTS, SplitStats, split_stats
from ultrafeedback_kto import Reason, SplitReport


def test_rating_bands_count_each_row_once_by_label():
    ratings = [1.0, 1.5, 2.0, 4.75, 5.0, 5.0, None, math.nan, 6.0, 4.75]
    labels = [False, False, True, True, True, False, True, False, True, False]
    table = pa.table({"label": labels, "source": ["s"] * 10, "model": ["m"] * 10, "average_rating": ratings})
    # Two pieces, as the builder's cache files come: a band's counts add up across them.
    stats = split_stats("train", [table.slice(0, 5), table.slice(5)])
    bands = {group.name: (group.desirable, group.undesirable) for group in stats.by_rating}
    assert bands == {
        "1.0 to under 2.0": (0, 2),
        "2.0 to under 3.0": (1, 0),
        "3.0 to under 4.0": (0, 0),
        "4.0 to under 5.0": (1, 1),
        "5.0": (1, 1),
        "missing": (1, 1),
        "6.0 (outside 1 to 5)": (1, 0),
    }
    bands_in_order = ["1.0 to under 2.0", "2.0 to under 3.0", "3.0 to under 4.0", "4.0 to under 5.0", "5.0", "missing"]
    assert [group.name for group in stats.by_rating][:6] == bands_in_order
    assert (stats.rows, stats.desirable, stats.undesirable) == (10, 5, 5)


def test_rating_bands_cover_the_upstreams_scale_h4_scores_reach_10():
    ratings = [1.0, 6.5, 8.0, 9.5, 10.0]
    labels = [False, False, True, True, True]
    table = pa.table({"label": labels, "source": ["s"] * 5, "model": ["m"] * 5, "average_rating": ratings})
    stats = split_stats("train", table, scale=(1.0, 10.0))
    bands = {group.name: group.rows for group in stats.by_rating if group.rows}
    expected = {"1.0 to under 2.0": 1, "6.0 to under 7.0": 1, "8.0 to under 9.0": 1, "9.0 to under 10.0": 1, "10.0": 1}
    assert bands == expected
    assert len(stats.by_rating) == 11  # nine one-point bands, the top score, missing


def test_statistics_read_back_from_their_json_record_are_equal():
    aspect = {"Rating": "4", "Rationale": "fine"}
    annotations = [{name: aspect for name in ASPECTS}, {name: {**aspect, "Rating": "N/A"} for name in ASPECTS}]
    table = pa.table(
        {
            "prompt_id": ["a", "a"],
            "label": [True, False],
            "source": ["s", None],
            "model": ["m", "n"],
            "average_rating": [4.5, None],
            "annotations": annotations,
        }
    )
    report = SplitReport("train", read=3)
    report.add(Reason("empty or missing prompt"), ["row 2"])
    report.add(Reason("duplicate example", unit="example", kind="rule"), ["row 0"], count=2)
    stats = split_stats("train", table, report)
    assert stats.by_aspect and stats.left_out and stats.closest_rows == (0, 1)
    assert SplitStats.from_record(json.loads(json.dumps(stats.to_record()))) == stats
