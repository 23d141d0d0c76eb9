"""Rows the builder cannot use, as a user meets them: text that is not Unicode (a lone surrogate
in JSON Lines, bytes that are not UTF-8 in parquet) and ratings off
the upstream's scale follow on_bad_rows; every message names the line an editor shows in JSON
Lines and the row in parquet; a threshold off the scale, or a split left with one label, is
refused before any row is written."""

from __future__ import annotations

import json
import logging
import re

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

from tests.conftest import build, make_builder
from tests.test_bad_input import failed_build, write_as
from tools.sample import generate_table
from tools.sample_family import generate_h4_tables

SURROGATE = "text that is not valid Unicode (a lone surrogate)"
NOT_UTF8 = "text that is not valid UTF-8"


def warnings_of(caplog) -> str:
    return "\n".join(r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING)


@pytest.fixture(scope="module")
def pairs() -> pa.Table:
    return generate_table(1_100, seed=5)


def with_lone_surrogates(tmp_path, pairs):
    """JSON Lines whose rows 5 (a ``\\ud800`` escape) and 1050 (the same character as raw
    bytes, which json.loads also accepts) hold a lone surrogate, as scraped text does."""
    lines = [json.dumps(row).encode() for row in pairs.to_pylist()]
    lines[5] = lines[5].replace(b'"prompt": "', b'"prompt": "\\ud800', 1)
    lines[1050] = lines[1050].replace(b'"role": "assistant"}]', b'"role": "assistant\xed\xa0\x80"}]', 1)
    path = tmp_path / "scraped.jsonl"
    path.write_bytes(b"\n".join(lines) + b"\n")
    return path


def test_a_lone_surrogate_is_left_out_silently_with_skip(tmp_path, pairs, caplog):
    path = with_lone_surrogates(tmp_path, pairs)
    with caplog.at_level(logging.WARNING):
        built = build(tmp_path / "cache", path, test_size=0, on_bad_rows="skip")
    assert built["train"].num_rows == 2 * (1_100 - 2)
    assert SURROGATE not in warnings_of(caplog)


def as_text(values: list[bytes]) -> pa.Array:
    """Bytes as a string column, unchecked: parquet keeps a string's bytes as written."""
    return pa.array(values, pa.binary()).view(pa.string())


def with_invalid_utf8(tmp_path, pairs):
    """Parquet whose row 5's chosen answer starts with the byte 0xff and whose row 1050's rejected
    model ends in a cut two-byte character, as text decoded with the wrong encoding has."""
    chosen = pairs.column("chosen").combine_chunks()
    content = pc.struct_field(chosen.values, "content").cast(pa.binary()).to_pylist()
    content[chosen.offsets[6].as_py() - 1] = b"\xff" + content[chosen.offsets[6].as_py() - 1]
    messages = pa.StructArray.from_arrays(
        [as_text(content), pc.struct_field(chosen.values, "role")], ["content", "role"]
    )
    models = pairs.column("rejected-model").cast(pa.binary()).to_pylist()
    models[1050] += b"\xc3"
    table = pairs.set_column(2, "chosen", pa.ListArray.from_arrays(chosen.offsets, messages))
    table = table.set_column(table.schema.get_field_index("rejected-model"), "rejected-model", as_text(models))
    path = tmp_path / "scraped.parquet"
    pq.write_table(table, path)
    return path


#: Text that is not Unicode, as each format holds it, and where the two bad rows are, as messages name them.
NOT_UNICODE = [
    pytest.param(with_lone_surrogates, SURROGATE, ("line 6", "line 1051"), id="jsonl-lone-surrogate"),
    pytest.param(with_invalid_utf8, NOT_UTF8, ("row 5", "row 1050"), id="parquet-not-utf8"),
]


@pytest.mark.parametrize(("write", "reason", "places"), NOT_UNICODE)
def test_text_that_is_not_unicode_is_a_malformed_row_left_out_with_a_warning(
    tmp_path, pairs, caplog, write, reason, places
):
    path = write(tmp_path, pairs)
    with caplog.at_level(logging.WARNING):
        built = build(tmp_path / "cache", path, test_size=0)
    assert built["train"].num_rows == 2 * (1_100 - 2)
    assert f"{reason}: 2 pair(s) (first at {path} {places[0]}; {path} {places[1]})" in warnings_of(caplog)
    assert len(built["train"].to_list()) == built["train"].num_rows  # every row reads (parquet's used not to)


@pytest.mark.parametrize(("write", "reason", "places"), NOT_UNICODE)
def test_text_that_is_not_unicode_stops_the_build_with_error_naming_file_and_row(
    tmp_path, pairs, write, reason, places
):
    path = write(tmp_path, pairs)
    message = failed_build(tmp_path, path, test_size=0, on_bad_rows="error")
    assert message.startswith(f"{path} {places[0]}: {reason} (on_bad_rows='error'")


def test_json_lines_messages_name_the_line_an_editor_shows_and_parquet_the_row(tmp_path, caplog):
    rows = generate_table(60, seed=6).to_pylist()
    rows[10]["prompt"] = ""
    rows[20] = rows[19]  # a duplicate: left out by a rule over the whole split, also named by its line
    jsonl = tmp_path / "spaced.jsonl"
    # A blank first line, a blank line after every tenth row, and Windows line ends.
    jsonl.write_text("\r\n" + "".join(json.dumps(row) + "\r\n" + "\r\n" * (i % 10 == 9) for i, row in enumerate(rows)))
    parquet = tmp_path / "same.parquet"
    write_as(pa.Table.from_pylist(rows, schema=generate_table(1).schema), parquet)
    lines = jsonl.read_text().splitlines()
    assert (lines[13 - 1], lines[24 - 1]) == (json.dumps(rows[10]), json.dumps(rows[20]))  # as an editor numbers them
    message = failed_build(tmp_path / "jsonl", jsonl, test_size=0, on_bad_rows="error")
    assert message.startswith(f"{jsonl} line 13: empty or missing prompt")
    message = failed_build(tmp_path / "parquet", parquet, test_size=0, on_bad_rows="error")
    assert message.startswith(f"{parquet} row 10: empty or missing prompt")  # from 0, as pyarrow and datasets count
    with caplog.at_level(logging.INFO, logger="ultrafeedback_kto"):
        build(tmp_path / "cache", jsonl, test_size=0)
    log = "\n".join(r.getMessage() for r in caplog.records)
    assert f"empty or missing prompt: 1 pair(s) (first at {jsonl} line 13)" in log
    assert f"duplicate example: 2 example(s) (first at {jsonl} line 24)" in log


@pytest.mark.parametrize("suffix", [".jsonl", ".parquet"])
def test_a_rating_off_the_upstream_scale_is_a_malformed_row(tmp_path, suffix, caplog):
    table = generate_table(200, seed=7)
    rows = table.to_pylist()
    rows[4]["chosen-rating"] = 99.0
    rows[6]["rejected-rating"], rows[6]["chosen-rating"] = -1.0, None
    rows[8]["chosen-rating"] = float("nan")  # missing, not off the scale: kept with the default label rule
    path = tmp_path / f"ratings{suffix}"
    write_as(pa.Table.from_pylist(rows, schema=table.schema), path)
    first = (f"{path} line 5", f"{path} line 7") if suffix == ".jsonl" else (f"{path} row 4", f"{path} row 6")
    with caplog.at_level(logging.WARNING):
        built = build(tmp_path / "cache", path, test_size=0)
    assert built["train"].num_rows == 2 * (200 - 2)
    assert f"rating outside the upstream's scale (1 to 5): 2 pair(s) (first at {'; '.join(first)})" in caplog.text
    message = failed_build(tmp_path / "error", path, test_size=0, on_bad_rows="error")
    assert message.startswith(f"{first[0]}: rating outside the upstream's scale (1 to 5)")


def test_h4_scores_off_its_1_to_10_scale_are_malformed(tmp_path, caplog):
    tables = generate_h4_tables(100, 30, seed=3)  # scores up to 10: one pair off the scale, no other
    rows = tables["train_prefs"].to_pylist()
    rows[7]["score_chosen"] = 11.0
    tables["train_prefs"] = pa.Table.from_pylist(rows, schema=tables["train_prefs"].schema)
    files = {split: str(tmp_path / f"{split}.parquet") for split in tables}
    for split, table in tables.items():
        pq.write_table(table, files[split])
    with caplog.at_level(logging.WARNING):
        build(tmp_path / "cache", files, upstream="h4-binarized")
    report = caplog.text
    assert f"rating outside the upstream's scale (1 to 10): 1 pair(s) (first at {files['train_prefs']} row 7)" in report


OFF_SCALE_THRESHOLDS = [("argilla-cleaned", 8, "1 to 5"), ("openbmb", 0.5, "1 to 5"), ("h4-binarized", 11, "1 to 10")]


@pytest.mark.parametrize(("upstream", "threshold", "scale"), OFF_SCALE_THRESHOLDS)
def test_a_threshold_off_the_upstream_scale_is_refused_at_once(tmp_path, upstream, threshold, scale):
    path = tmp_path / "ok.parquet"
    pq.write_table(generate_table(10, seed=1), path)
    with pytest.raises(ValueError) as refused:
        make_builder(tmp_path / "cache", path, upstream=upstream, label_rule="absolute", desirable_threshold=threshold)
    assert str(refused.value) == (
        f"desirable_threshold={threshold}: expected a rating from {scale}, the scale of upstream={upstream!r}"
    )


def test_h4_takes_a_threshold_on_its_own_scale(tmp_path):
    path = tmp_path / "ok.parquet"
    pq.write_table(generate_table(10, seed=1), path)
    options = {"upstream": "h4-binarized", "label_rule": "absolute", "desirable_threshold": 8}
    assert make_builder(tmp_path / "cache", {"train_prefs": str(path)}, **options).config.desirable_threshold == 8


def test_a_split_with_one_label_is_refused_before_any_row_is_written(tmp_path):
    path = tmp_path / "pairs.parquet"
    pq.write_table(generate_table(200, seed=4), path)
    message = failed_build(tmp_path, path, test_size=0, label_rule="absolute", desirable_threshold=1)
    assert re.fullmatch(
        r"split 'train' would hold one label only, which KTO cannot train on: \d+ desirable and "
        r"0 undesirable examples \(label_rule='absolute', desirable_threshold=1 on the upstream's "
        r"scale, 1 to 5\)",
        message,
    )
