"""dataset_infos.json is generated from the builder by tools/infos.py, never edited by hand."""

from __future__ import annotations

import json

import datasets

from tests.conftest import PROJECT
from tools import infos


def test_dataset_infos_json_is_up_to_date():
    assert infos.PROJECT_INFOS == PROJECT / "dataset_infos.json"  # the checkout's, beside the builder
    assert infos.main(["--check"]) == 0, "dataset_infos.json is stale: run `python -m tools.infos`"


def test_stale_file_is_detected(tmp_path, capsys):
    stale = tmp_path / "dataset_infos.json"
    stale.write_text(infos.render().replace('"mit"', '"apache-2.0"'))
    assert infos.main(["--check", "--path", str(stale)]) == 1
    assert "is stale" in capsys.readouterr().err
    assert infos.main(["--path", str(stale)]) == 0
    assert infos.main(["--check", "--path", str(stale)]) == 0


def test_dataset_infos_describe_both_configs_readably():
    written = json.loads(infos.PROJECT_INFOS.read_text())
    assert sorted(written) == ["conversational", "default"]
    for name, info in written.items():
        parsed = datasets.DatasetInfo.from_dict(info)
        assert parsed.config_name == name and parsed.license == "mit" and str(parsed.version) == "1.0.0"
        assert list(parsed.features) == [
            "prompt",
            "completion",
            "label",
            "prompt_id",
            "source",
            "model",
            "average_rating",
        ]
