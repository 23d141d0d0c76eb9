"""Bad input: whole-file problems stop the build before any row is written; bad pairs
follow on_bad_rows."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from tests.conftest import build, make_builder
from tools.sample import generate_table
from ultrafeedback_kto import UpstreamError


def write_as(table: pa.Table, path: Path) -> None:
    """Write upstream-like rows as parquet or JSON Lines, by the path's suffix."""
    if path.suffix == ".parquet":
        pq.write_table(table, path)
    else:
        path.write_text("".join(json.dumps(row) + "\n" for row in table.to_pylist()))


def written_arrow_files(cache: Path) -> list[Path]:
    return list(cache.rglob("*.arrow")) if cache.exists() else []


def failed_build(tmp_path: Path, data_files, **options) -> str:
    """Run a build that must fail; return the one-line message of the cause."""
    cache = tmp_path / "cache"
    with pytest.raises(Exception) as failure:
        build(cache, data_files, **options)
    error = failure.value
    while not isinstance(error, (UpstreamError, ValueError)) and error.__cause__ is not None:
        error = error.__cause__
    assert written_arrow_files(cache) == [], "a failed build left rows behind"
    message = str(error)
    assert "\n" not in message
    return message


@pytest.fixture
def pairs():
    return generate_table(200, seed=4)


def test_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="nowhere.parquet"):
        build(tmp_path / "cache", tmp_path / "nowhere.parquet")


def test_truncated_parquet(tmp_path, pairs):
    path = tmp_path / "cut.parquet"
    pq.write_table(pairs, path)
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    message = failed_build(tmp_path, path)
    assert str(path) in message and "unreadable parquet" in message


def test_not_a_parquet_file(tmp_path):
    path = tmp_path / "text.parquet"
    path.write_text("hello")
    assert "unreadable parquet" in failed_build(tmp_path, path)


@pytest.mark.parametrize("suffix", [".parquet", ".jsonl"])
def test_empty_file(tmp_path, pairs, suffix):
    path = tmp_path / f"empty{suffix}"
    if suffix == ".parquet":
        pq.write_table(pairs.slice(0, 0), path)
    else:
        path.write_text("")
    message = failed_build(tmp_path, path)
    assert str(path) in message and "empty file" in message


def test_empty_file_among_good_ones_stops_before_any_row(tmp_path, pairs):
    good, empty = tmp_path / "good.parquet", tmp_path / "empty.jsonl"
    pq.write_table(pairs, good)
    empty.write_text("\n")
    assert "empty file" in failed_build(tmp_path, [str(good), str(empty)])


@pytest.mark.parametrize("suffix", [".parquet", ".jsonl"])
def test_missing_upstream_column(tmp_path, pairs, suffix):
    path = tmp_path / f"part{suffix}"
    table = pairs.drop_columns(["chosen-rating"])
    write_as(table, path)
    message = failed_build(tmp_path, path)
    assert str(path) in message and "missing upstream column(s) chosen-rating" in message


@pytest.mark.parametrize("suffix", [".parquet", ".jsonl"])
def test_column_of_the_wrong_type(tmp_path, pairs, suffix):
    path = tmp_path / f"part{suffix}"
    table = pairs.set_column(2, "chosen", pa.array([str(c) for c in pairs.column("chosen").to_pylist()]))
    write_as(table, path)
    message = failed_build(tmp_path, path)
    assert str(path) in message and "column 'chosen' should be a list of {content, role} messages" in message


def test_two_parquet_columns_of_one_name(tmp_path, pairs):
    path = tmp_path / "twice.parquet"
    twice = pa.Table.from_arrays([*pairs.columns, pairs.column("prompt")], [*pairs.column_names, "prompt"])
    pq.write_table(twice, path)
    assert failed_build(tmp_path, path) == f"{path}: more than one column named 'prompt'"


@pytest.mark.parametrize("first_bad", [0, 3])
def test_json_lines_not_in_utf8(tmp_path, pairs, first_bad):
    rows = pairs.to_pylist()
    for row in rows[first_bad:]:
        row["prompt"] = row["chosen"][0]["content"] = row["rejected"][0]["content"] = row["prompt"] + " café"
    path = tmp_path / "latin1.jsonl"
    # Rows from first_bad on as a Latin-1 editor saves them; those before, in ASCII (\u escapes).
    path.write_bytes(
        b"".join(
            json.dumps(row, ensure_ascii=number < first_bad).encode("latin-1", "replace") + b"\n"
            for number, row in enumerate(rows)
        )
    )
    message = failed_build(tmp_path, path)
    assert message == f"{path} line {first_bad + 1}: not UTF-8 text, as JSON Lines must be"


def test_unknown_file_type(tmp_path, pairs):
    path = tmp_path / "pairs.csv"
    path.write_text("prompt\nhi\n")
    assert "not a parquet or JSON Lines file" in failed_build(tmp_path, path)


def bad_rows_file(tmp_path, pairs) -> tuple[Path, dict[int, str]]:
    """JSON Lines with a few broken pairs at known rows; returns the file and {row: reason}."""
    rows = pairs.to_pylist()
    rows[3]["prompt"] = ""
    rows[7]["chosen"][-1]["content"] = ""
    rows[8]["rejected"] = rows[8]["rejected"][:-1]
    rows[11]["rejected"][0]["content"] += " (edited)"
    rows[12]["prompt"] = rows[12]["prompt"] + "?"
    rows[15]["chosen-rating"], rows[15]["rejected-rating"] = 2.0, 4.0
    rows[20]["chosen"][-1]["content"] = "  "
    lines = [json.dumps(row, ensure_ascii=False) for row in rows]
    lines[30] = "{not json"
    path = tmp_path / "bad.jsonl"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path, {
        3: "empty or missing prompt",
        7: "empty or missing completion",
        8: "conversation does not end with an assistant turn",
        11: "chosen and rejected differ before the last turn",
        12: "prompt differs from the first user turn",
        15: "rejected rated above chosen",
        20: "empty or missing completion",
        30: "not a JSON object",
    }


def test_warn_leaves_bad_pairs_out_and_reports_each_reason(tmp_path, pairs, caplog):
    path, bad = bad_rows_file(tmp_path, pairs)
    with caplog.at_level(logging.WARNING):
        built = build(tmp_path / "cache", path, test_size=0)
    assert built["train"].num_rows == 2 * (200 - len(bad))
    report = "\n".join(r.getMessage() for r in caplog.records if r.levelno == logging.WARNING)
    assert "Left out malformed upstream data of split 'train':" in report
    assert f"empty or missing completion: 2 pair(s) (first at {path} line 8; {path} line 21)" in report
    for row, reason in bad.items():
        assert f"{reason}: " in report and f"{path} line {row + 1}" in report


def test_skip_leaves_bad_pairs_out_silently(tmp_path, pairs, caplog):
    path, bad = bad_rows_file(tmp_path, pairs)
    with caplog.at_level(logging.WARNING):
        built = build(tmp_path / "cache", path, test_size=0, on_bad_rows="skip")
    assert built["train"].num_rows == 2 * (200 - len(bad))
    assert not [r for r in caplog.records if "bad pair" in r.getMessage()]


def test_error_stops_at_the_first_bad_pair(tmp_path, pairs):
    path, _ = bad_rows_file(tmp_path, pairs)
    message = failed_build(tmp_path, path, test_size=0, on_bad_rows="error")
    assert message.startswith(f"{path} line 4: empty or missing prompt")


def test_bad_options_are_refused_clearly(tmp_path, pairs):
    path = tmp_path / "ok.parquet"
    pq.write_table(pairs, path)
    for options, words in [
        ({"order": "random"}, "order='random': expected one of shuffled, upstream"),
        ({"label_rule": "vibes"}, "label_rule='vibes'"),
        ({"on_bad_rows": "ignore"}, "on_bad_rows='ignore'"),
        ({"test_size": 1.5}, "test_size=1.5"),
        ({"max_pairs": 0}, "max_pairs=0"),
    ]:
        with pytest.raises(ValueError, match=words):
            make_builder(tmp_path / "cache", path, **options)


def test_builder_keeps_a_report_of_left_out_pairs(tmp_path, pairs):
    path, bad = bad_rows_file(tmp_path, pairs)
    builder = make_builder(tmp_path / "cache", path, test_size=0, min_rating_margin=0.5)
    builder.download_and_prepare()
    report = builder.reports["train"]
    assert report.read == 200
    malformed = {reason.text: count for reason, count in report.left_out.items() if reason.kind == "malformed"}
    by_option = {reason.text: count for reason, count in report.left_out.items() if reason.kind == "option"}
    assert sum(malformed.values()) == len(bad) and malformed["empty or missing completion"] == 2
    assert by_option["rating margin below min_rating_margin"] > 0
    assert builder.as_dataset()["train"].num_rows == 2 * (200 - len(bad) - sum(by_option.values()))


@pytest.mark.parametrize("order", ["shuffled", "upstream"])
def test_error_names_the_first_bad_pair_whichever_split_it_is_in(tmp_path, pairs, order):
    from ultrafeedback_kto import split_of

    rows = pairs.to_pylist()
    test_row = next(i for i, row in enumerate(rows) if split_of(row["prompt"], 0.2) == "test")
    train_row = next(i for i, row in enumerate(rows) if i > test_row and split_of(row["prompt"], 0.2) == "train")
    rows[test_row]["chosen"][-1]["content"] = ""
    rows[train_row]["prompt"] = ""
    path = tmp_path / "bad.jsonl"
    write_as(pa.Table.from_pylist(rows), path)
    message = failed_build(tmp_path, path, test_size=0.2, on_bad_rows="error", order=order)
    assert message.startswith(f"{path} line {test_row + 1}: empty or missing completion")


def test_wrong_typed_json_values_are_bad_pairs(tmp_path, pairs, caplog):
    lines = [json.dumps(row) for row in pairs.to_pylist()]
    rows = [json.loads(line) for line in lines]
    rows[5]["chosen-rating"] = "high"
    rows[6]["source"] = 7
    rows[9]["rejected-rating"] = True
    lines = ["{not json"] + [json.dumps(row) for row in rows[1:]]  # a malformed first line too
    path = tmp_path / "typed.jsonl"
    path.write_text("\n".join(lines) + "\n")
    with caplog.at_level(logging.WARNING):
        built = build(tmp_path / "cache", path, test_size=0)
    assert built["train"].num_rows == 2 * (200 - 4)
    report = caplog.text
    assert "not a JSON object: 1 pair(s)" in report
    assert "a value of the wrong type: 3 pair(s)" in report
    for row in (5, 6, 9):
        assert f"{path} line {row + 1}" in report
