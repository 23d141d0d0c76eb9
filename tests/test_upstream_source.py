"""Without data_files the builder reads the upstream from the Hub, at upstream_revision.

A local Hub hosts an upstream copy at the real upstream path; the real datasets client
reads it in a subprocess (the clients read HF_ENDPOINT when imported).
"""

from __future__ import annotations

import io
import json
import subprocess
import sys

import pyarrow.parquet as pq
import pytest

from tests.conftest import PROJECT
from tests.hub_server import LocalHub
from tools.sample import generate_table
from ultrafeedback_kto import UPSTREAM_REPO

BUILD = """
import json, sys
from ultrafeedback_kto import UltraFeedbackKTO
options = json.loads(sys.argv[1])
streaming = options.pop("streaming", False)
builder = UltraFeedbackKTO(config_name="default", cache_dir=sys.argv[2], **options)
if streaming:
    rows = list(builder.as_streaming_dataset(split="train"))
else:
    builder.download_and_prepare()
    rows = builder.as_dataset(split="train").to_list()
print(json.dumps({"rows": len(rows), "prompt_ids": sorted({r["prompt_id"] for r in rows})}))
"""


def parquet_bytes(table) -> bytes:
    buffer = io.BytesIO()
    pq.write_table(table, buffer)
    return buffer.getvalue()


@pytest.fixture(scope="module")
def hub():
    with LocalHub() as hub:
        yield hub


@pytest.fixture(scope="module")
def upstream_commits(hub):
    """Two upstream revisions: 300 pairs, then a refresh to 400 pairs on main."""
    old = hub.seed(UPSTREAM_REPO, {"data/train-00000-of-00001.parquet": parquet_bytes(generate_table(300, seed=8))})
    new = hub.seed(UPSTREAM_REPO, {"data/train-00000-of-00001.parquet": parquet_bytes(generate_table(400, seed=8))})
    return old, new


def run_build(hub, tmp_path, **options) -> dict:
    done = subprocess.run(
        [sys.executable, "-c", BUILD, json.dumps({"test_size": 0, **options}), str(tmp_path / "cache")],
        env=hub.client_env(tmp_path),
        cwd=PROJECT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert LocalHub.blocked_connections(tmp_path) == []
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_default_source_is_the_upstream_main_branch(hub, upstream_commits, tmp_path):
    assert run_build(hub, tmp_path)["rows"] == 800


def test_upstream_revision_pins_an_older_commit(hub, upstream_commits, tmp_path):
    old, _ = upstream_commits
    assert run_build(hub, tmp_path, upstream_revision=old)["rows"] == 600


def test_streaming_reads_the_hub_upstream_too(hub, upstream_commits, tmp_path):
    old, _ = upstream_commits
    streamed = run_build(hub, tmp_path / "s", upstream_revision=old, streaming=True)
    prepared = run_build(hub, tmp_path / "p", upstream_revision=old)
    assert streamed == prepared
