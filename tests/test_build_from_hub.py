"""`publish build` with no --source reads the upstream from the Hub and records its commit."""

from __future__ import annotations

import subprocess
import sys

import pytest

from tests.conftest import PROJECT, files_of
from tests.hub_server import LocalHub
from tests.test_build import SAMPLE
from ultrafeedback_kto import UPSTREAM_REPO


@pytest.fixture(scope="module")
def hub():
    with LocalHub() as hub:
        yield hub


def publish(hub, tmp_path, *args) -> subprocess.CompletedProcess:
    done = subprocess.run(
        [sys.executable, "-m", "publish", *args],
        cwd=PROJECT,
        env=hub.client_env(tmp_path),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert LocalHub.blocked_connections(tmp_path) == []
    return done


def test_build_reads_the_hub_upstream_and_records_its_commit(hub, tmp_path):
    commit = hub.seed(UPSTREAM_REPO, {"data/train-00000-of-00001.parquet": SAMPLE.read_bytes()})
    hub.seed("someone/else", {"README.md": b"moving main elsewhere does not matter"})
    from_hub = publish(hub, tmp_path, "build", "--out", str(tmp_path / "hub" / "ufkto"))
    assert from_hub.returncode == 0, from_hub.stderr[-2000:]
    assert f"resolved to commit {commit}" in from_hub.stderr
    card = (tmp_path / "hub" / "ufkto" / "README.md").read_text()
    assert f"at commit `{commit}`" in card
    assert f'"upstream_revision": "{commit}"' in (tmp_path / "hub" / "ufkto" / ".ufkto-build.json").read_text()

    from_file = publish(hub, tmp_path, "build", "--source", str(SAMPLE), "--out", str(tmp_path / "file" / "ufkto"))
    assert from_file.returncode == 0, from_file.stderr[-2000:]
    hub_files, file_files = files_of(tmp_path / "hub" / "ufkto"), files_of(tmp_path / "file" / "ufkto")
    for path in hub_files:
        if path.endswith(".parquet"):
            assert hub_files[path] == file_files[path], path  # the same rows in the same order


def test_unknown_upstream_revision_is_one_line(hub, tmp_path):
    hub.seed(UPSTREAM_REPO, {"data/train-00000-of-00001.parquet": SAMPLE.read_bytes()})
    done = publish(hub, tmp_path, "build", "--upstream-revision", "v9", "--out", str(tmp_path / "out"))
    assert done.returncode == 1
    assert done.stderr.strip().splitlines() == [f"error: {UPSTREAM_REPO} has no revision 'v9'"]
    assert not (tmp_path / "out").exists()
