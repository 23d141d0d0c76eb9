"""A built folder loads with every `datasets` release from 3.6 to the newest.

The main run builds a folder from the shipped sample. `.ci/run` builds one with the newest
`datasets` and runs this file again under `datasets` 3.6 and 4.0, naming the folder in
UFKTO_BUILT_FOLDER (those environments have `datasets` alone, not the publish commands).
"""

from __future__ import annotations

import os
from pathlib import Path

import datasets
import pyarrow.parquet as pq
import pytest

CONFIG_FOLDERS = {"default": "data", "conversational": "conversational"}


@pytest.fixture(scope="module")
def folder(tmp_path_factory) -> Path:
    if os.environ.get("UFKTO_BUILT_FOLDER"):
        return Path(os.environ["UFKTO_BUILT_FOLDER"])
    from publish.__main__ import main

    out = tmp_path_factory.mktemp("built") / "ufkto"
    assert main(["build", "--sample", "--out", str(out)]) == 0
    return out


def rows_on_disk(folder: Path, config: str, split: str) -> list[dict]:
    """The rows of a split as its shards hold them, in shard order: what loading must give."""
    shards = sorted((folder / CONFIG_FOLDERS[config]).glob(f"{split}-*.parquet"))
    return [row for shard in shards for row in pq.read_table(shard).to_pylist()]


@pytest.mark.parametrize("config", list(CONFIG_FOLDERS))
def test_load_dataset_gives_the_rows_of_the_shards_in_order(folder, config, tmp_path):
    loaded = datasets.load_dataset(str(folder), config, cache_dir=str(tmp_path))
    assert sorted(loaded) == ["test", "train"]
    for split, dataset in loaded.items():
        assert dataset.to_list() == rows_on_disk(folder, config, split), (datasets.__version__, split)
        streamed = datasets.load_dataset(str(folder), config, split=split, streaming=True)
        assert list(streamed) == dataset.to_list()
