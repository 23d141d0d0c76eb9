"""`ufkto build` refuses what it cannot do as asked in one line, before any work, and
never deletes a file that no build wrote."""

from __future__ import annotations

from pathlib import Path

import pyarrow.parquet as pq
import pytest

from publish.__main__ import main
from tests.conftest import PROJECT, files_of
from tests.test_build import SAMPLE

H4_TRAIN = PROJECT / "publish" / "samples" / "h4-binarized" / "train_prefs.parquet"


def refused(capsys, *args: str) -> str:
    """The one line ``ufkto build ARGS`` refuses with, before any work."""
    capsys.readouterr()
    assert main(["build", *args]) == 1
    printed = capsys.readouterr()
    assert printed.out == "" and printed.err.count("\n") == 1, printed.err  # not even "building config"
    assert printed.err.startswith("error: ")
    return printed.err.strip()


@pytest.fixture
def earlier_build(tmp_path) -> Path:
    out = tmp_path / "ufkto"
    assert main(["build", "--sample", "--configs", "default", "--out", str(out)]) == 0
    return out


def test_a_rebuild_never_deletes_what_no_build_wrote(earlier_build, tmp_path, capsys):
    (earlier_build / "notes.txt").write_text("mine")
    (earlier_build / ".git").mkdir()
    (earlier_build / ".git" / "HEAD").write_text("ref: refs/heads/main\n")
    (earlier_build / "data" / "upstream.parquet").write_bytes(SAMPLE.read_bytes())
    before = files_of(earlier_build)
    line = refused(capsys, "--source", str(earlier_build / "data" / "upstream.parquet"), "--out", str(earlier_build))
    assert line == (
        f"error: {earlier_build} holds what no build wrote (.git/, data/upstream.parquet, notes.txt), which a "
        "rebuild would delete: move it out of the folder, or choose another --out"
    )
    assert files_of(earlier_build) == before
    assert sorted(path.name for path in tmp_path.iterdir()) == ["ufkto"]


def test_a_rebuild_replaces_every_file_a_build_wrote(earlier_build):
    # A legacy dataset_infos.json and more shards than the rebuild makes are ufkto's own.
    (earlier_build / "dataset_infos.json").write_text("{}")
    (earlier_build / "data" / "train-00001-of-00002.parquet").write_bytes(b"")
    assert main(["build", "--sample", "--out", str(earlier_build)]) == 0
    assert not (earlier_build / "dataset_infos.json").exists()
    assert sorted(path.name for path in (earlier_build / "data").iterdir()) == [
        "test-00000-of-00001.parquet",
        "train-00000-of-00001.parquet",
    ]


@pytest.mark.parametrize(
    ("repo_id", "words"),
    [
        ("a/b/c", "Repo id must be in the form 'repo_name' or 'namespace/repo_name'"),
        ("../x", "Repo id must use alphanumeric chars"),
        ('org/na"me', "Repo id must use alphanumeric chars"),
    ],
)
def test_an_invalid_repo_id_is_refused(tmp_path, capsys, repo_id, words):
    line = refused(capsys, "--sample", "--repo-id", repo_id, "--out", str(tmp_path / "ufkto"))
    assert line.startswith(f"error: invalid --repo-id {repo_id!r}: {words}")
    assert list(tmp_path.iterdir()) == []


def test_a_folder_name_that_is_no_repo_id_needs_one(tmp_path, capsys):
    line = refused(capsys, "--sample", "--out", str(tmp_path / "my data"))
    assert (
        line
        == "error: the folder name 'my data' is not a valid repo id, which the card names: give --repo-id NAMESPACE/NAME"
    )
    assert main(["build", "--sample", "--out", str(tmp_path / "my data"), "--repo-id", "org/my-data"]) == 0
    assert 'load_dataset("org/my-data")' in (tmp_path / "my data" / "README.md").read_text()


def test_max_shard_size_takes_bytes_and_sizes_and_refuses_the_rest(tmp_path, capsys):
    assert (
        main(["build", "--sample", "--configs", "default", "--max-shard-size", "300000", "--out", str(tmp_path / "a")])
        == 0
    )
    assert (
        main(["build", "--sample", "--configs", "default", "--max-shard-size", "300KB", "--out", str(tmp_path / "b")])
        == 0
    )
    shards = [sorted(path.name for path in (tmp_path / name / "data").iterdir()) for name in ("a", "b")]
    assert shards[0] == shards[1] and len(shards[0]) > 2
    for size in ("12XB", "0", "-5"):
        line = refused(capsys, "--sample", "--max-shard-size", size, "--out", str(tmp_path / "c"))
        assert line == f"error: --max-shard-size {size!r}: expected a number of bytes or a size like 500KB or 128MB"


def test_a_split_name_the_upstream_does_not_have_is_named(tmp_path, capsys):
    out = str(tmp_path / "ufkto")
    line = refused(capsys, "--upstream", "h4-binarized", "--source", f"train={H4_TRAIN}", "--out", out)
    assert (
        line == "error: train=train_prefs.parquet: train is not one of h4-binarized's splits (train_prefs, test_prefs)"
    )
    line = refused(capsys, "--source", f"train={SAMPLE}", "--out", out)
    assert line == (
        "error: train=ultrafeedback-sample.parquet: argilla-cleaned has no splits of its own; give the file without train="
    )


def test_a_folder_as_source_asks_for_its_files(tmp_path, capsys):
    folder = tmp_path / "upstream"
    folder.mkdir()
    pq.write_table(pq.read_table(SAMPLE), folder / "train.parquet")
    line = refused(capsys, "--source", str(folder), "--out", str(tmp_path / "ufkto"))
    assert line == f"error: {folder} is a folder: give the files in it, e.g. {folder}/*.parquet"
    assert main(["build", "--source", f"{folder}/*.parquet", "--out", str(tmp_path / "ufkto")]) == 0
