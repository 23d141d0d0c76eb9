"""`python -m publish verify`: a sound folder passes; each kind of breakage is named."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import datasets
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

from publish.__main__ import main
from publish.verify import verify_folder


@pytest.fixture(scope="module")
def sound_folder(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("sound") / "ufkto"
    assert main(["build", "--sample", "--out", str(out)]) == 0
    return out


@pytest.fixture
def folder(sound_folder, tmp_path) -> Path:
    copy = tmp_path / "ufkto"
    shutil.copytree(sound_folder, copy)
    return copy


def edit_card(folder: Path, old: str, new: str) -> None:
    card = folder / "README.md"
    text = card.read_text()
    assert old in text
    card.write_text(text.replace(old, new, 1))


def besides_the_edit(problems: list[str]) -> list[str]:
    """The problems other than the one line naming the card edited by hand, which must be there."""
    edited = [problem for problem in problems if problem.startswith("README.md: line ")]
    assert len(edited) == 1 and edited[0].endswith(": rebuild the folder"), problems
    return [problem for problem in problems if problem not in edited]


def test_sound_folder_passes(sound_folder, capsys):
    assert verify_folder(sound_folder) == []
    assert main(["verify", str(sound_folder)]) == 0
    sizes = "train 752 rows, test 48 rows"
    assert capsys.readouterr().out.splitlines() == [
        f"ok: {sound_folder} (conversational: {sizes}; default: {sizes})",
        "  left out of train by the build: nothing",
        "  left out of test by the build: nothing",
    ]


def test_missing_shard(folder):
    (folder / "data" / "test-00000-of-00001.parquet").unlink()
    assert verify_folder(folder) == ["config 'default' split 'test': no shard matches data/test-*"]


def test_missing_shard_of_a_set(folder):
    (folder / "data" / "test-00000-of-00001.parquet").rename(folder / "data" / "test-00001-of-00002.parquet")
    assert verify_folder(folder) == ["data/test-00000-of-00002.parquet: missing shard of config 'default'"]


def test_extra_shard(folder):
    shutil.copy(folder / "data" / "test-00000-of-00001.parquet", folder / "stray.parquet")
    assert verify_folder(folder) == ["stray.parquet: extra shard, named by no config of the card"]


def test_counts_disagreeing_with_the_card(folder):
    written = re.search(r"num_examples: (\d+)", (folder / "README.md").read_text())[1]
    edit_card(folder, f"num_examples: {written}", f"num_examples: {int(written) + 1}")
    problems = verify_folder(folder)
    assert any("load_dataset fails" in p or "rows per split" in p for p in problems)


def test_a_truncated_shard_is_named_not_a_traceback(folder, capsys):
    shard = folder / "data" / "test-00000-of-00001.parquet"
    shard.write_bytes(shard.read_bytes()[:100])
    problems = verify_folder(folder)
    assert len(problems) == 1 and problems[0].startswith("data/test-00000-of-00001.parquet: unreadable parquet")
    assert main(["verify", str(folder)]) == 1
    assert "Traceback" not in capsys.readouterr().err


def test_features_disagreeing_with_the_card(folder):
    edit_card(folder, "  - name: average_rating\n    dtype: float64", "  - name: average_rating\n    dtype: string")
    problems = besides_the_edit(verify_folder(folder))
    named = ("'conversational'", "features", "load_dataset fails")
    assert problems and all(any(words in p for words in named) for p in problems)
    assert problems == [
        f"conversational/{split}-00000-of-00001.parquet: features differ from the card's for config 'conversational'"
        for split in ("test", "train")
    ]


def test_broken_order(folder):
    shard = folder / "data" / "train-00000-of-00001.parquet"
    table = pq.read_table(shard)
    pq.write_table(table.take(pc.sort_indices(table, [("prompt_id", "ascending")])), shard)
    problems = verify_folder(folder)
    found = [p for p in problems if p.startswith("config 'default' split 'train': rows ")]
    assert any("share a prompt, 1 rows apart" in p for p in found)


def test_invalid_card_metadata(folder):
    edit_card(folder, "- n<1K", "- tiny")
    assert besides_the_edit(verify_folder(folder)) == [
        "README.md: size_categories 'tiny' is not a Hub size category",
        "README.md: size_categories ['tiny'] but the data has 800 rows (n<1K)",
    ]


def test_unparsable_card(folder):
    edit_card(folder, "license: mit", "license: [mit")
    problems = verify_folder(folder)
    assert len(problems) == 1 and "invalid card metadata" in problems[0]


def test_a_legacy_dataset_infos_json_is_refused(folder):
    # Written by earlier versions: datasets 4.5+ put a field in it that older releases cannot read.
    (folder / "dataset_infos.json").write_text(json.dumps({"default": {"splits": {}}}))
    problems = verify_folder(folder)
    assert len(problems) == 1 and problems[0].startswith("dataset_infos.json: a legacy file that breaks load_dataset")


def test_failing_folder_exits_1_with_the_problems_listed(folder, capsys):
    (folder / "data" / "test-00000-of-00001.parquet").unlink()
    assert main(["verify", str(folder)]) == 1
    err = capsys.readouterr().err
    assert "no shard matches data/test-*" in err
    assert err.strip().splitlines()[-1] == f"error: {folder} fails verification: 1 problem(s), listed above"


def test_missing_folder(tmp_path, capsys):
    assert main(["verify", str(tmp_path / "nowhere")]) == 1
    assert capsys.readouterr().err == f"error: {tmp_path / 'nowhere'}: no such folder\n"


def test_a_file_is_not_taken_for_a_missing_folder(sound_folder, capsys):
    card = sound_folder / "README.md"
    assert main(["verify", str(card)]) == 1
    assert (
        capsys.readouterr().err == f"error: {card} is a file, not a built folder: give the folder `ufkto build` wrote\n"
    )


def relabel(folder: Path, label: bool) -> None:
    """Every row of every shard given ``label``."""
    for shard in folder.glob("*/*.parquet"):
        table = pq.read_table(shard)
        labels = pa.array([label] * table.num_rows)
        pq.write_table(table.set_column(table.schema.get_field_index("label"), "label", labels), shard)


def test_a_split_with_one_label_is_refused(folder, capsys):
    relabel(folder, False)
    problems = verify_folder(folder)
    for config in ("conversational", "default"):
        for split, rows in (("train", 752), ("test", 48)):
            in_split = f"config {config!r} split {split!r}: "
            assert f"{in_split}all {rows} rows are undesirable: KTO needs both labels" in problems
            recorded = f"{rows // 2} and {rows // 2}"  # what the build wrote, and its card shows
            assert f"{in_split}0 desirable and {rows} undesirable rows, but the build recorded {recorded}" in problems
    assert main(["verify", str(folder)]) == 1
    assert capsys.readouterr().err.strip().endswith("problem(s), listed above")


def card_line(folder: Path, start: str) -> tuple[int, str]:
    """The number (from 1) and text of the card's line that starts with ``start``."""
    lines = (folder / "README.md").read_text().splitlines()
    return next((number, line) for number, line in enumerate(lines, 1) if line.startswith(start))


def test_a_card_edited_to_show_other_label_counts_fails_in_one_line_naming_it(folder, capsys):
    number, line = card_line(folder, "| train | 752 | 376 | 376 |")
    edited = line.replace("| 376 | 376 |", "| 380 | 372 |")
    edit_card(folder, line, edited)
    # The data still agrees with the build's record: the card alone is wrong.
    assert verify_folder(folder) == [
        f"README.md: line {number} reads {edited!r}, but the build's record gives {line!r}: rebuild the folder"
    ]
    assert main(["verify", str(folder)]) == 1
    assert capsys.readouterr().err.splitlines()[0] == f"  {verify_folder(folder)[0]}"


def test_a_card_edited_to_name_another_repo_fails(folder):
    number, line = card_line(folder, 'dataset = load_dataset("ufkto")')
    edit_card(folder, line, line.replace('"ufkto"', '"org/ufkto"'))
    [problem] = verify_folder(folder)
    assert problem.startswith(f'README.md: line {number} reads \'dataset = load_dataset("org/ufkto")')


def test_a_folder_without_its_build_record_is_one_line(folder, capsys):
    record = folder / ".ufkto-build.json"
    record.unlink()
    [problem] = verify_folder(folder)
    assert problem.startswith(f"{record}: missing (the build's record")
    assert main(["verify", str(folder)]) == 1
    assert capsys.readouterr().err == f"error: {problem}\n"


@pytest.mark.parametrize(
    ("written", "reason"),
    [
        ("{not json", None),  # json's own words
        ("[]", None),
        # What an earlier version recorded: no data for the card.
        ('{"tool": "ufkto", "version": "1.0.0", "repo_id": "ufkto", "provenance": {}}', "no 'options'"),
    ],
)
def test_an_unreadable_build_record_is_one_line(folder, capsys, written, reason):
    record = folder / ".ufkto-build.json"
    record.write_text(written)
    [problem] = verify_folder(folder)
    assert problem.startswith(f"{record}: unreadable (") and problem.endswith("); rebuild the folder")
    assert reason is None or f"({reason}" in problem
    assert main(["verify", str(folder)]) == 1
    assert capsys.readouterr().err == f"error: {problem}\n"


def rewrite_shard(folder: Path, change) -> None:
    shard = folder / "data" / "train-00000-of-00001.parquet"
    pq.write_table(change(pq.read_table(shard)), shard)


def test_two_rows_of_one_prompt_too_close_are_named(folder):
    # Row 3 gets the prompt of row 0: a batch of 4 would pair row 0 with a completion of its own prompt.
    def matched(table):
        rows = table.to_pylist()
        rows[3] = {**rows[3], "prompt": rows[0]["prompt"], "prompt_id": rows[0]["prompt_id"]}
        return pa.Table.from_pylist(rows, schema=table.schema)

    rewrite_shard(folder, matched)
    [problem] = verify_folder(folder)
    assert problem.startswith("config 'default' split 'train': rows 0 and 3 share a prompt, 3 rows apart: ")


def test_duplicates_and_contradictions_are_named(folder):
    def repeated(table):
        rows = table.to_pylist()
        rows[10] = dict(rows[5])  # an exact duplicate, not next to its original
        rows[20] = {**rows[6], "label": not rows[6]["label"]}  # the same example with the other label
        return pa.Table.from_pylist(rows, schema=table.schema)

    rewrite_shard(folder, repeated)
    # The order and the card's label counts no longer hold either: other findings.
    elsewhere = ("share a prompt", "the build recorded")
    problems = [p for p in verify_folder(folder) if not any(words in p for words in elsewhere)]
    assert problems == [
        "config 'default' split 'train': 1 (prompt, completion) have both labels",
        "config 'default' split 'train': 1 examples are duplicates",
    ]


def test_text_that_is_not_utf8_is_named_by_its_row(folder):
    # A folder built before the builder checked parquet text: every reader fails on row 7.
    def undecodable(table):
        completions = table.column("completion").cast(pa.binary()).to_pylist()
        completions[7] = b"\xff" + completions[7]
        return table.set_column(1, "completion", pa.array(completions, pa.binary()).view(pa.string()))

    rewrite_shard(folder, undecodable)
    assert verify_folder(folder) == [
        "config 'default' split 'train': row 7 holds text that is not valid UTF-8, on which every reader fails"
    ]


def test_verify_shows_what_the_build_left_out(tmp_path, capsys):
    from tests.test_bad_input import bad_rows_file
    from tests.test_build import SAMPLE

    path, bad = bad_rows_file(tmp_path, pq.read_table(SAMPLE).slice(0, 200))
    out = tmp_path / "ufkto"
    assert main(["build", "--source", str(path), "--out", str(out), "--test-size", "0"]) == 0
    capsys.readouterr()
    assert main(["verify", str(out)]) == 0
    shown = capsys.readouterr().out.splitlines()[1:]
    assert len(shown) == 1 and shown[0].startswith("  left out of train by the build: ")
    assert "empty or missing completion: 2 pairs" in shown[0]
    assert sum(int(count) for count in re.findall(r": (\d+) pairs?\b", shown[0])) == len(bad)
    assert ": 1 pair" in shown[0] and ": 1 pairs" not in shown[0]  # one of a unit is singular
    # What was left out is the build's record; a card edited to show another count fails.
    number, line = card_line(out, "| empty or missing completion | 2 | pairs |")
    edit_card(out, line, line.replace("| 2 |", "| 1 |"))
    [problem] = verify_folder(out)
    assert problem.startswith(f"README.md: line {number} reads '| empty or missing completion | 1 | pairs |")


def test_llama_factory_entry_is_checked(folder):
    info = folder / "dataset_info.json"
    built = info.read_text()
    info.write_text(built.replace('"hf_hub_url": "ufkto"', '"hf_hub_url": "org/other"'))
    assert verify_folder(folder) == [
        "dataset_info.json: differs from the one the build's record gives: rebuild the folder"
    ]
    info.write_text(built)
    entry = json.loads(info.read_text())
    entry["ufkto"]["columns"]["kto_tag"] = "tag"
    info.write_text(json.dumps(entry))
    assert verify_folder(folder) == ["dataset_info.json: its column 'tag' (kto_tag) is not in the default config"]
    for broken in ({"ufkto": 5}, {"ufkto": {"columns": 5}}):
        info.write_text(json.dumps(broken))
        assert len(verify_folder(folder)) == 1 and verify_folder(folder)[0].startswith("dataset_info.json: ")
    info.unlink()
    assert len(verify_folder(folder)) == 1 and verify_folder(folder)[0].startswith("dataset_info.json: missing")


def test_llama_factory_entry_changes_nothing_load_dataset_loads(sound_folder, tmp_path):
    without = tmp_path / "without"
    shutil.copytree(sound_folder, without)
    (without / "dataset_info.json").unlink()
    for config in ("default", "conversational"):
        loaded = datasets.load_dataset(str(sound_folder), config, cache_dir=str(tmp_path / "a"))
        other = datasets.load_dataset(str(without), config, cache_dir=str(tmp_path / "b"))
        assert {split: d.to_list() for split, d in loaded.items()} == {split: d.to_list() for split, d in other.items()}
        assert {split: d.features for split, d in loaded.items()} == {split: d.features for split, d in other.items()}
