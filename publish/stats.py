"""Statistics of a built split, computed from its rows: what the card reports.

Everything here is a pure function of the Arrow table of a split (any config: the columns
``label``, ``source``, ``model`` and ``average_rating`` are the same in both) and the
builder's report of what it left out; `closest_rows` and `order_problems` check the order a
built split keeps (the builder's promise: rows of one prompt far apart, labels mixed).
"""

from __future__ import annotations

import dataclasses
import functools
import math
from collections import Counter
from collections.abc import Iterable, Sequence

import pyarrow as pa
import pyarrow.compute as pc

from ultrafeedback_kto import SplitReport, prompt_distance

#: The aspects of openbmb/UltraFeedback's annotations, each rated "1" to "5" or "N/A".
ASPECTS = ("helpfulness", "honesty", "instruction_following", "truthfulness")


@dataclasses.dataclass
class LabelCounts:
    """Rows of one group (a source, a model, a rating band) by label."""

    name: str
    desirable: int
    undesirable: int

    @property
    def rows(self) -> int:
        return self.desirable + self.undesirable


@dataclasses.dataclass
class LeftOut:
    """What a split left out for one reason: ``count`` of ``unit`` (pair, example, ...);
    ``kind`` is malformed, option or rule (see ``ultrafeedback_kto.Reason``)."""

    reason: str
    count: int
    unit: str
    kind: str


@dataclasses.dataclass
class SplitStats:
    name: str
    rows: int
    desirable: int
    undesirable: int
    by_source: list[LabelCounts]
    by_model: list[LabelCounts]
    by_rating: list[LabelCounts]
    pairs_read: int | None = None
    closest_rows: tuple[int, int] | None = None  # the two closest rows of one prompt (None: no prompt has two)
    left_out: list[LeftOut] = dataclasses.field(default_factory=list)
    by_aspect: dict[str, list[LabelCounts]] = dataclasses.field(default_factory=dict)  # with annotations

    def to_record(self) -> dict:
        """These statistics as JSON data (`from_record` reads them back, equal)."""
        return dataclasses.asdict(self)

    @classmethod
    def from_record(cls, record: dict) -> SplitStats:
        """The statistics `to_record` wrote."""

        def groups(items: list[dict]) -> list[LabelCounts]:
            return [LabelCounts(**item) for item in items]

        closest = record["closest_rows"]
        nested = {
            "by_source": groups(record["by_source"]),
            "by_model": groups(record["by_model"]),
            "by_rating": groups(record["by_rating"]),
            "closest_rows": None if closest is None else tuple(closest),
            "left_out": [LeftOut(**item) for item in record["left_out"]],
            "by_aspect": {aspect: groups(items) for aspect, items in record["by_aspect"].items()},
        }
        return cls(**{**record, **nested})


def _count(counts: dict, table: pa.Table, column, name_of, key_of=None) -> None:
    """Add a table's label counts per value of ``column`` to ``counts``, under
    ``key_of(value)`` (the value itself by default)."""
    grouped = (
        pa.table({"key": column, "label": table.column("label")})
        .group_by(["key", "label"])
        .aggregate([([], "count_all")])
        .to_pylist()
    )
    for row in grouped:
        key = row["key"] if key_of is None else key_of(row["key"])
        group = counts.setdefault(key, LabelCounts(name_of(row["key"]), 0, 0))
        if row["label"]:
            group.desirable += row["count_all"]
        else:
            group.undesirable += row["count_all"]


def _largest_first(counts: dict) -> list[LabelCounts]:
    return sorted(counts.values(), key=lambda group: (-group.rows, group.name))


def rating_bands(scale: tuple[float, float]) -> list[tuple[float, float]]:
    """The bands of the rating table: one point wide across the upstream's scale, then its top."""
    low, high = scale
    return [(start, start + 1) for start in range(int(low), int(high))] + [(high, high)]


def _band(rating: float | None, scale: tuple[float, float]) -> str:
    if rating is None or math.isnan(rating):
        return "missing"
    for low, high in rating_bands(scale):
        if low == high == rating:
            return f"{low:.1f}"
        if low <= rating < high:
            return f"{low:.1f} to under {high:.1f}"
    return f"{rating} (outside {scale[0]:g} to {scale[1]:g})"


def split_stats(
    name: str,
    tables: pa.Table | Iterable[pa.Table],
    report: SplitReport | None = None,
    *,
    scale: tuple[float, float] = (1.0, 5.0),
) -> SplitStats:
    """Statistics of a split given as one table or as pieces (counted one at a time); ``scale``
    is the upstream's rating scale (``Upstream.ratings``), which the rating bands cover."""
    band = functools.partial(_band, scale=scale)
    rows = desirable = 0
    sources: dict = {}
    models: dict = {}
    ratings: dict = {}
    aspects: dict[str, dict] = {}
    prompts: list[int] = []  # a hash of each row's prompt id, in order (a split's strings would take more)
    for table in [tables] if isinstance(tables, pa.Table) else tables:
        rows += table.num_rows
        if "prompt_id" in table.column_names:
            prompts += map(hash, table.column("prompt_id").to_pylist())
        desirable += pc.sum(table.column("label").cast(pa.int64())).as_py() or 0
        _count(sources, table, table.column("source"), lambda v: "(none)" if v is None else v)
        _count(models, table, table.column("model"), lambda v: "(none)" if v is None else v)
        # Grouped by rating first: a split has few distinct ratings and many rows.
        _count(ratings, table, table.column("average_rating"), band, key_of=band)
        for aspect in ASPECTS if "annotations" in table.column_names else ():
            rating = pc.struct_field(table.column("annotations"), [aspect, "Rating"])
            _count(aspects.setdefault(aspect, {}), table, rating, lambda v: "(none)" if v is None else v)
    band_order = [band(low) for low, _ in rating_bands(scale)] + ["missing"]
    stats = SplitStats(
        name=name,
        rows=rows,
        desirable=desirable,
        undesirable=rows - desirable,
        by_source=_largest_first(sources),
        by_model=_largest_first(models),
        by_rating=[ratings.get(shown, LabelCounts(shown, 0, 0)) for shown in band_order]
        + [group for shown, group in ratings.items() if shown not in band_order],
        by_aspect={aspect: sorted(counts.values(), key=lambda group: group.name) for aspect, counts in aspects.items()},
        closest_rows=closest_rows(prompts),
    )
    if report is not None:
        stats.pairs_read = report.read
        largest_first = report.left_out.most_common()
        stats.left_out = [LeftOut(reason.text, count, reason.unit, reason.kind) for reason, count in largest_first]
    return stats


def kto_weights(desirable: int, undesirable: int) -> tuple[float, float]:
    """``(desirable_weight, undesirable_weight)`` by the KTO paper's rule (Eq. 8).

    The rule keeps ``desirable_weight * desirable / (undesirable_weight * undesirable)``
    within [1, 4/3]; the minority label is weighted up and the other kept at 1. Weights are
    rounded to two decimals in the direction that stays inside the range.
    """
    if not desirable or not undesirable:
        return 1.0, 1.0
    ratio = desirable / undesirable
    if 1 <= ratio <= 4 / 3:
        return 1.0, 1.0
    if ratio < 1:
        return math.ceil(100 / ratio) / 100, 1.0
    return 1.0, math.floor(100 * ratio) / 100


def size_category(rows: int) -> str:
    """The Hub's ``size_categories`` value for a number of rows."""
    bounds = [
        (1_000, "n<1K"),
        (10_000, "1K<n<10K"),
        (100_000, "10K<n<100K"),
        (1_000_000, "100K<n<1M"),
        (10_000_000, "1M<n<10M"),
        (100_000_000, "10M<n<100M"),
        (1_000_000_000, "100M<n<1B"),
    ]
    for bound, category in bounds:
        if rows < bound:
            return category
    return "1B<n<10B"


def closest_rows(prompt_ids: Sequence) -> tuple[int, int] | None:
    """The positions of the two closest rows that share a prompt (None when no prompt has two)."""
    latest, closest = {}, None
    for position, prompt in enumerate(prompt_ids):
        if prompt in latest and (closest is None or position - latest[prompt] < closest[1] - closest[0]):
            closest = (latest[prompt], position)
        latest[prompt] = position
    return closest


def order_problems(
    prompt_ids: Sequence[str], labels: Sequence[bool], min_prompt_distance: int = 1000, window: int = 8
) -> list[str]:
    """What is wrong with a split's row order for KTO training (empty when nothing): two rows of
    one prompt closer than `prompt_distance` allows and, when each label is at least a quarter
    of the rows, ``window`` consecutive rows with one label only."""
    problems = []
    closest = closest_rows(prompt_ids)
    if closest is not None:
        first, second = closest
        distance = prompt_distance(len(prompt_ids), max(Counter(prompt_ids).values()), min_prompt_distance)
        if second - first < distance:
            problems.append(
                f"rows {first} and {second} share a prompt, {second - first} rows apart: "
                f"a prompt's rows should be at least {distance} apart"
            )
    rows, desirable = len(labels), sum(map(bool, labels))
    if rows and min(desirable, rows - desirable) >= rows / 4:
        run = longest = end = 0
        for position, label in enumerate(labels):
            run = run + 1 if position and label == labels[position - 1] else 1
            if run > longest:
                longest, end = run, position
        if longest >= window:
            problems.append(
                f"a run of {longest} rows with label={labels[end]} ends at row {end}; "
                f"every {window} consecutive rows should hold both labels"
            )
    return problems
