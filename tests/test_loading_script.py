"""On datasets 3.6, the last release that runs loading scripts, the file works as a script.

The main test run uses the newest datasets, where this is skipped; .ci/run runs this file
again in a second virtual environment with datasets 3.6.
"""

from __future__ import annotations

import datasets
import pytest

from tests.conftest import PROJECT, build
from tools.sample import write_upstream

SCRIPT_RELEASES = int(datasets.__version__.split(".")[0]) < 4


@pytest.mark.skipif(not SCRIPT_RELEASES, reason=f"datasets {datasets.__version__} runs no loading scripts")
@pytest.mark.parametrize("config_name", ["default", "conversational"])
def test_load_dataset_runs_the_script(tmp_path, config_name):
    upstream = write_upstream(tmp_path / "upstream.parquet", 300, seed=6)
    loaded = datasets.load_dataset(
        str(PROJECT / "ultrafeedback_kto.py"),
        config_name,
        data_files=str(upstream),
        trust_remote_code=True,
        cache_dir=str(tmp_path / "script-cache"),
    )
    direct = build(tmp_path / "builder-cache", upstream, config_name)
    assert sorted(loaded) == sorted(direct) == ["test", "train"]
    for split in direct:
        assert loaded[split].features == direct[split].features
        assert loaded[split].to_list() == direct[split].to_list()
