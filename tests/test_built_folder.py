"""A built folder loads with every `datasets` release from 3.6 to the newest, for every upstream.

The main run builds folders from the shipped samples. `.ci/run` builds them with the newest
`datasets` and runs this file again under `datasets` 3.6 and 4.0, naming the folders in
UFKTO_BUILT_FOLDERS (separated by the path separator): those environments have `datasets`
alone, not the publish commands.
"""

from __future__ import annotations

import os
from pathlib import Path

import datasets
import pyarrow.parquet as pq
import pytest

CONFIG_FOLDERS = {"default": "data", "conversational": "conversational"}
UPSTREAMS = ("argilla-cleaned", "openbmb", "h4-binarized")


@pytest.fixture(scope="module")
def folders(tmp_path_factory) -> list[Path]:
    if os.environ.get("UFKTO_BUILT_FOLDERS"):
        return [Path(folder) for folder in os.environ["UFKTO_BUILT_FOLDERS"].split(os.pathsep)]
    from publish.__main__ import main

    built = []
    for upstream in UPSTREAMS:
        out = tmp_path_factory.mktemp(upstream) / "ufkto"
        assert main(["build", "--sample", "--upstream", upstream, "--out", str(out)]) == 0
        built.append(out)
    return built


def rows_on_disk(folder: Path, config: str, split: str) -> list[dict]:
    """The rows of a split as its shards hold them, in shard order: what loading must give."""
    shards = sorted((folder / CONFIG_FOLDERS[config]).glob(f"{split}-*.parquet"))
    return [row for shard in shards for row in pq.read_table(shard).to_pylist()]


@pytest.mark.parametrize("config", list(CONFIG_FOLDERS))
def test_load_dataset_gives_the_rows_of_the_shards_in_order(folders, config, tmp_path):
    assert folders
    for folder in folders:
        loaded = datasets.load_dataset(str(folder), config, cache_dir=str(tmp_path / folder.parent.name))
        assert sorted(loaded) == ["test", "train"]
        for split, dataset in loaded.items():
            assert dataset.to_list() == rows_on_disk(folder, config, split), (datasets.__version__, folder, split)
            streamed = datasets.load_dataset(str(folder), config, split=split, streaming=True)
            assert list(streamed) == dataset.to_list()
