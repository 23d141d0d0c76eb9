"""`python -m publish build`: the folder, how users load it, and how it is replaced."""

from __future__ import annotations

import contextlib
import errno
import functools
import http.server
import json
import os
import re
import subprocess
import sys
import threading
import time
from pathlib import Path

import datasets
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import publish.card
from publish.__main__ import main
from tests.conftest import PROJECT, build, files_of
from tests.network_guard import blocked, guard
from tests.test_bad_input import bad_rows_file
from tools.sample import write_upstream
from ultrafeedback_kto import UPSTREAM_REPO

SAMPLE = PROJECT / "publish" / "samples" / "ultrafeedback-sample.parquet"
EXPECTED_FILES = [
    ".ufkto-build.json",
    "README.md",
    "conversational/test-00000-of-00001.parquet",
    "conversational/train-00000-of-00001.parquet",
    "data/test-00000-of-00001.parquet",
    "data/train-00000-of-00001.parquet",
    "dataset_info.json",
]


def run_cli(*args: str, cwd: Path = PROJECT, **env: str) -> subprocess.CompletedProcess:
    """``python -m publish ARGS`` in a subprocess, with ``env`` added to this environment."""
    env = {**os.environ, "PYTHONPATH": str(PROJECT), **env}
    command = [sys.executable, "-m", "publish", *args]
    return subprocess.run(command, cwd=cwd, capture_output=True, text=True, timeout=300, env=env)


def is_default_config(dataset: datasets.Dataset) -> bool:
    """Whether a dataset being written holds the default config's rows (text prompts)."""
    return dataset.features["prompt"] == datasets.Value("string")


@pytest.fixture(scope="module")
def sample_folder(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("built") / "ufkto"
    assert main(["build", "--sample", "--out", str(out)]) == 0
    return out


def test_folder_has_the_hub_layout(sample_folder):
    assert sorted(files_of(sample_folder)) == EXPECTED_FILES


def test_load_dataset_beside_the_folder_gives_the_builder_rows(sample_folder, tmp_path):
    direct = build(tmp_path / "direct", SAMPLE)
    conversational = build(tmp_path / "direct-c", SAMPLE, "conversational")
    code = """
import json, sys, datasets
datasets.disable_progress_bars()
out = {}
for config in ("default", "conversational"):
    loaded = datasets.load_dataset("ufkto", config, cache_dir=sys.argv[1])
    streamed = {s: list(datasets.load_dataset("ufkto", config, split=s, streaming=True)) for s in loaded}
    out[config] = {s: {"rows": loaded[s].to_list(), "streamed": streamed[s]} for s in loaded}
print(json.dumps(out))
"""
    command = [sys.executable, "-c", code, str(tmp_path / "cache")]
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    done = subprocess.run(command, cwd=sample_folder.parent, capture_output=True, text=True, timeout=300, env=env)
    assert done.returncode == 0, done.stderr[-2000:]
    loaded = json.loads(done.stdout)
    for config, expected in (("default", direct), ("conversational", conversational)):
        assert sorted(loaded[config]) == ["test", "train"]
        for split in ("train", "test"):
            assert loaded[config][split]["rows"] == expected[split].to_list()
            assert loaded[config][split]["streamed"] == expected[split].to_list()


def test_shards_are_what_push_to_hub_would_write_of_their_rows(sample_folder, tmp_path):
    # datasets' own parquet writer (content-defined chunking, a page index): a refreshed version
    # re-uploads only what changed, against a build or a push_to_hub alike. Whatever it records,
    # the bytes are those it makes of the rows.
    for shard in sorted(sample_folder.glob("*/*.parquet")):
        rows = datasets.Dataset.from_parquet(str(shard), cache_dir=str(tmp_path / shard.parent.name))
        written = pa.BufferOutputStream()
        rows.to_parquet(written)
        assert written.getvalue().to_pybytes() == shard.read_bytes(), shard


def test_summary_reports_rows_drops_and_time(tmp_path, capsys):
    path, bad = bad_rows_file(tmp_path, pq.read_table(SAMPLE).slice(0, 200))
    assert main(["build", "--source", str(path), "--out", str(tmp_path / "out"), "--configs", "default"]) == 0
    printed = capsys.readouterr().out
    assert f"built {tmp_path / 'out'} in " in printed
    shards = str(tmp_path / "out" / "data" / "train-*.parquet")
    built = datasets.load_dataset("parquet", data_files=shards, cache_dir=str(tmp_path / "c"))["train"]
    desirable = sum(built["label"])
    assert f"({desirable:,} desirable, {built.num_rows - desirable:,} undesirable)" in printed
    assert "left out:\n" in printed and "    empty or missing completion: 2 pair(s)" in printed
    assert sum(int(n) for n in re.findall(r"^    .*: (\d+) pair\(s\)$", printed, flags=re.M)) == len(bad)


def test_rebuild_replaces_its_own_folder(tmp_path):
    out = tmp_path / "ufkto"
    assert main(["build", "--sample", "--out", str(out), "--configs", "default"]) == 0
    assert main(["build", "--sample", "--out", str(out), "--configs", "default", "--seed", "7"]) == 0
    assert "--seed 7" in (out / "README.md").read_text()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ufkto"]  # no partial or previous folder left


def test_failed_build_leaves_the_previous_folder_untouched(tmp_path):
    out = tmp_path / "ufkto"
    assert main(["build", "--sample", "--out", str(out), "--configs", "default"]) == 0
    before = files_of(out)
    empty = tmp_path / "empty.parquet"
    pq.write_table(pq.read_table(SAMPLE).slice(0, 0), empty)
    assert main(["build", "--source", str(empty), "--out", str(out)]) == 1
    assert files_of(out) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["empty.parquet", "ufkto"]


def test_interrupted_build_leaves_the_previous_folder_untouched(tmp_path, monkeypatch):
    out = tmp_path / "ufkto"
    assert main(["build", "--sample", "--out", str(out), "--configs", "default"]) == 0
    before = files_of(out)

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(publish.card, "render_card", interrupted)
    assert main(["build", "--sample", "--out", str(out)]) == 130
    assert files_of(out) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ufkto"]


def test_a_shard_that_cannot_be_written_fails_in_one_line_and_keeps_the_folder(tmp_path, monkeypatch, capsys):
    out = tmp_path / "ufkto"
    assert main(["build", "--sample", "--out", str(out)]) == 0
    before = files_of(out)
    to_parquet = datasets.Dataset.to_parquet

    def disk_full_for_default(dataset, path, *args, **kwargs):
        if is_default_config(dataset):  # the default config's shards, written beside the others
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return to_parquet(dataset, path, *args, **kwargs)

    monkeypatch.setattr(datasets.Dataset, "to_parquet", disk_full_for_default)
    bars_were_disabled = datasets.are_progress_bars_disabled()
    capsys.readouterr()
    assert main(["build", "--sample", "--out", str(out), "--seed", "7"]) == 1
    printed = capsys.readouterr().err.splitlines()
    full = f"error: no space left on device in {tmp_path}: free some space there, or choose another --out"
    assert printed[-1] == full
    assert not any("Traceback" in line for line in printed)
    assert files_of(out) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ufkto"]
    assert datasets.are_progress_bars_disabled() == bars_were_disabled


def test_a_failing_config_stops_the_other_before_its_next_shard(tmp_path, monkeypatch, capsys):
    to_parquet = datasets.Dataset.to_parquet
    written, first_written, failing = [], threading.Event(), threading.Event()

    def one_config_fails(dataset, path, *args, **kwargs):
        if is_default_config(dataset):
            first_written.wait(60)
            failing.set()
            raise OSError(errno.EIO, os.strerror(errno.EIO))
        result = to_parquet(dataset, path, *args, **kwargs)
        written.append(dataset.num_rows)
        first_written.set()
        failing.wait(60)
        time.sleep(0.5)  # for the failure to reach the other thread
        return result

    monkeypatch.setattr(datasets.Dataset, "to_parquet", one_config_fails)
    out = tmp_path / "ufkto"
    assert main(["build", "--sample", "--out", str(out), "--max-shard-size", "300KB"]) == 1
    error = capsys.readouterr().err.splitlines()[-1]
    shards = re.fullmatch(r"error: could not write data/train-00000-of-(\d{5})\.parquet: Input/output error", error)
    assert shards and int(shards[1]) >= 2
    assert len(written) == 1  # the conversational config's first shard only
    assert list(tmp_path.iterdir()) == []


def test_refuses_to_replace_a_folder_it_did_not_create(tmp_path, capsys):
    out = tmp_path / "mine"
    out.mkdir()
    (out / "notes.txt").write_text("keep me")
    assert main(["build", "--sample", "--out", str(out)]) == 1
    assert "was not made by `publish build`" in capsys.readouterr().err
    assert files_of(out) == {"notes.txt": b"keep me"}


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (["--source", "nowhere.parquet"], "nowhere.parquet"),
        (["--sample", "--configs", "default,chat"], "--configs 'default,chat': choose among default, conversational"),
        (["--sample", "--test-size", "2"], "test_size=2.0: expected a fraction in [0, 1)"),
    ],
)
def test_bad_input_is_one_line_and_exit_1(tmp_path, args, words):
    done = run_cli("build", *args, "--out", str(tmp_path / "out"))
    assert done.returncode == 1
    assert done.stderr.startswith("error: ") and done.stderr.strip().count("\n") == 0  # one line, before any step
    assert words in done.stderr
    assert "Traceback" not in done.stderr
    assert not (tmp_path / "out").exists()


def test_help_of_every_command():
    for command in ("build", "verify", "push"):
        done = run_cli(command, "--help")
        assert done.returncode == 0 and "usage: python -m publish " + command in done.stdout


def test_max_shard_size_splits_a_split_into_numbered_shards(tmp_path):
    out = tmp_path / "ufkto"
    assert main(["build", "--sample", "--out", str(out), "--max-shard-size", "300KB"]) == 0
    for folder in ("data", "conversational"):
        shards = sorted(p.name for p in (out / folder).glob("train-*.parquet"))
        assert len(shards) >= 2
        assert shards == [f"train-{i:05d}-of-{len(shards):05d}.parquet" for i in range(len(shards))]
    assert main(["verify", str(out)]) == 0
    rows = sum(pq.read_metadata(p).num_rows for p in (out / "data").glob("train-*.parquet"))
    assert rows == build(tmp_path / "direct", SAMPLE)["train"].num_rows


def test_card_names_sources_without_folders_or_credentials(tmp_path):
    from publish.build import public_name

    source = tmp_path / "private" / "upstream.parquet"
    source.parent.mkdir()
    source.write_bytes(SAMPLE.read_bytes())
    more = [source.with_name(name) for name in ("a.parquet", "b.parquet")]
    for start, path in enumerate(more):
        pq.write_table(pq.read_table(SAMPLE).slice(start * 5, 5), path)
    out = tmp_path / "ufkto"
    sources = [f"--source={source}", "--source", *map(str, more)]
    assert main(["build", *sources, f"--out={out}", "--configs", "default", "--seed", "3"]) == 0
    card = (out / "README.md").read_text() + (out / ".ufkto-build.json").read_text()
    assert "upstream.parquet" in card and str(source.parent) not in card and str(out) not in card
    # The command as the card records it: without --out, each source named as public_name names it.
    recorded = (
        "python -m publish build --source=upstream.parquet --source a.parquet b.parquet --configs default --seed 3"
    )
    assert f"- Command: `{recorded}`" in card
    signed = "https://user:hf_secret@files.example.com:8443/up/x.parquet?X-Amz-Signature=abc#part"
    assert public_name(signed) == "https://files.example.com:8443/up/x.parquet"


def test_build_where_every_pair_is_left_out_fails_in_one_line(tmp_path):
    done = run_cli("build", "--sample", "--min-rating-margin", "9", "--out", str(tmp_path / "out"))
    assert done.returncode == 1
    assert done.stderr.strip().splitlines()[-1].startswith("error: no examples left to build from (rating margin below")
    assert "Traceback" not in done.stderr and not (tmp_path / "out").exists()


#: Column names ms-swift and TRL rename or act on: a metadata column so named would be taken
#: for something it is not (ms-swift's auto column mapping, TRL's preference formats).
ACTED_ON = set(
    "instruction input question problem response answer output text content solution system system_prompt messages "
    "chosen rejected images".split()
)


@pytest.mark.parametrize("upstream", ["argilla-cleaned", "openbmb", "h4-binarized"])
def test_each_upstream_builds_verifies_and_loads(tmp_path, upstream):
    out = tmp_path / "ufkto"
    assert main(["build", "--sample", "--upstream", upstream, "--out", str(out)]) == 0
    assert main(["verify", str(out)]) == 0
    for config, folder in (("default", "data"), ("conversational", "conversational")):
        loaded = datasets.load_dataset(str(out), config, cache_dir=str(tmp_path / "cache"))
        assert sorted(loaded) == ["test", "train"]
        assert not set(loaded["train"].column_names) & ACTED_ON
        assert loaded["train"].column_names[:3] == ["prompt", "completion", "label"]
        for split, dataset in loaded.items():
            shards = sorted((out / folder).glob(f"{split}-*.parquet"))
            assert dataset.to_list() == [row for shard in shards for row in pq.read_table(shard).to_pylist()]
            assert list(datasets.load_dataset(str(out), config, split=split, streaming=True)) == dataset.to_list()


@pytest.mark.parametrize("upstream", ["argilla-cleaned", "h4-binarized"])
def test_a_refused_source_is_named_without_its_credentials(tmp_path, capsys, upstream):
    # argilla-cleaned has no split of that name; h4-binarized cannot tell which split the file is.
    signed = "https://user:hf_secret@files.example.com/up/x.parquet?X-Amz-Signature=abc"
    source = f"train_prefs={signed}" if upstream == "argilla-cleaned" else signed
    assert main(["build", "--upstream", upstream, "--source", source, "--out", str(tmp_path / "out")]) == 1
    line = capsys.readouterr().err.strip()
    assert line.startswith("error: ") and "files.example.com/up/x.parquet" in line
    assert "hf_secret" not in line and "abc" not in line


def test_every_source_given_is_read_and_recorded(tmp_path, capsys):
    first = tmp_path / "a.parquet"
    pq.write_table(pq.read_table(SAMPLE).slice(0, 100), first)
    second = write_upstream(tmp_path / "b.jsonl", 60, seed=5)
    out = tmp_path / "ufkto"
    args = ["build", "--source", str(first), "--source", str(second), "--test-size", "0", "--out", str(out)]
    assert main([*args, "--configs", "default"]) == 0
    record = json.loads((out / ".ufkto-build.json").read_text())
    assert record["provenance"]["source_files"] == ["a.parquet", "b.jsonl"]
    assert re.search(r"^\| train \| [\d,]+ \| [\d,]+ \| [\d,]+ \| 160 \|", (out / "README.md").read_text(), flags=re.M)


def test_every_split_given_is_read_for_h4_binarized(tmp_path):
    samples = PROJECT / "publish" / "samples" / "h4-binarized"
    out = tmp_path / "ufkto"
    sources = ["--source", f"train_prefs={samples / 'train_prefs.parquet'}"]
    sources += ["--source", f"test_prefs={samples / 'test_prefs.parquet'}"]
    assert main(["build", "--upstream", "h4-binarized", *sources, "--out", str(out)]) == 0
    record = json.loads((out / ".ufkto-build.json").read_text())
    assert record["provenance"]["source_files"] == ["train_prefs.parquet", "test_prefs.parquet"]
    assert sorted(path.name for path in (out / "data").iterdir()) == [
        "test-00000-of-00001.parquet",
        "train-00000-of-00001.parquet",
    ]


def test_a_source_over_http_is_read(tmp_path):
    # The dependencies bring fsspec's HTTP filesystem (aiohttp); a local server stands in for the remote one.
    served = tmp_path / "served"
    served.mkdir()
    (served / "up.parquet").write_bytes(SAMPLE.read_bytes())
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(served))
    with http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler) as server:
        threading.Thread(target=server.serve_forever, daemon=True).start()
        url = f"http://127.0.0.1:{server.server_address[1]}/up.parquet"
        env = guard({**os.environ, "HF_HUB_OFFLINE": "0", "HF_DATASETS_OFFLINE": "0"}, tmp_path / "guard")
        env["PYTHONPATH"] += os.pathsep + str(PROJECT)
        command = [sys.executable, "-m", "publish", "build", "--source", url, "--out", str(tmp_path / "ufkto")]
        done = subprocess.run(command, capture_output=True, text=True, timeout=300, env=env, cwd=tmp_path)
        server.shutdown()
    assert done.returncode == 0, done.stderr[-2000:]
    assert blocked(tmp_path / "guard") == []
    direct = build(tmp_path / "direct", SAMPLE)["train"].to_list()
    assert pq.read_table(tmp_path / "ufkto" / "data" / "train-00000-of-00001.parquet").to_pylist() == direct
    card = (tmp_path / "ufkto" / "README.md").read_text()
    assert f"files of `{UPSTREAM_REPO}`: `{url}`" in card and "local files" not in card


@contextlib.contextmanager
def small_filesystem(folder: Path, options: str = "size=1m"):
    """``folder`` as a filesystem of its own (tmpfs, ``options``: 1 MB), or a skip saying why
    this machine cannot make one (mounting takes root)."""
    folder.mkdir()
    try:
        done = subprocess.run(
            ["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(folder)], capture_output=True, text=True
        )
    except FileNotFoundError:
        pytest.skip("no mount command here to make a small filesystem")
    if done.returncode != 0:
        pytest.skip(f"cannot mount a small filesystem here: {done.stderr.strip()}")
    try:
        yield folder
    finally:
        subprocess.run(["umount", str(folder)], check=True)


@pytest.mark.parametrize("full", ["--out", "TMPDIR"])
def test_a_full_disk_ends_in_one_line_naming_it_with_nothing_left(tmp_path, full):
    # The sample's folder takes 1.3 MB, its build's temporary files more: either fills 1 MB.
    temporary = tmp_path / "tmp"
    with small_filesystem(tmp_path / "small") as small:
        if full == "TMPDIR":
            temporary = small
        temporary.mkdir(exist_ok=True)
        out = (small if full == "--out" else tmp_path) / "ufkto"
        done = run_cli("build", "--sample", "--out", str(out), TMPDIR=str(temporary))
        left = sorted(os.listdir(small)) + sorted(os.listdir(temporary))
    instead = "choose another --out" if full == "--out" else "set TMPDIR to a folder with more room"
    full_line = f"error: no space left on device in {small}: free some space there, or {instead}"
    assert done.returncode == 1, done.stderr[-2000:]
    assert done.stderr.splitlines()[-1] == full_line and "Traceback" not in done.stderr
    assert left == []  # no partial folder, no cache or shuffle files
    assert not any(name.startswith(".ufkto") for name in os.listdir(tmp_path))


def test_a_read_only_location_ends_in_one_line(tmp_path):
    with small_filesystem(tmp_path / "read-only", "size=1m,ro") as read_only:
        done = run_cli("build", "--sample", "--out", str(read_only / "ufkto"))
    assert done.returncode == 1
    assert done.stderr == f"error: cannot write in {read_only}: Read-only file system; choose another --out\n"
