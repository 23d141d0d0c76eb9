"""``python -m publish push --to hf`` against a LocalHub, with the real huggingface_hub and datasets.

The clients read HF_ENDPOINT when imported, so every push and every load runs in a
subprocess with ``hub.client_env(...)`` (only 127.0.0.1 is reachable); the folders are
built once per module with the real ``python -m publish build --sample``.
"""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import sys
import textwrap
import urllib.error
import urllib.request
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from tests.conftest import PROJECT, files_of, published
from tests.hub_server import FAKE_TOKEN, LocalHub

MARK = "@@RESULT@@"
BUILD_OPTIONS = ["--sample", "--max-pairs", "200"]
NO_TOKEN = "error: no Hugging Face token: set HF_TOKEN or run `hf auth login`"

# Runs `python -m publish ...` after a few test-side patches given as code (argv[1]).
LAUNCHER = """
import runpy, sys
exec(sys.argv[1])
sys.argv = ["publish", *sys.argv[2:]]
runpy.run_module("publish", run_name="__main__", alter_sys=True)
"""


# Another writer commits to the branch after push read it and before push commits.
CONCURRENT_COMMIT = """
from huggingface_hub import CommitOperationAdd, HfApi
_create_commit = HfApi.create_commit
def create_commit(self, repo_id, operations, **kwargs):
    _create_commit(self, repo_id, [CommitOperationAdd("NOTES.md", b"someone else")], commit_message="concurrent",
                   repo_type=kwargs.get("repo_type"), revision=kwargs.get("revision"))
    return _create_commit(self, repo_id, operations, **kwargs)
HfApi.create_commit = create_commit
"""


# --------------------------------------------------------------------------------------
# fixtures and helpers
# --------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def hub():
    with LocalHub() as server:
        yield server
        assert server.unknown_requests == [], server.unknown_requests


def _run(hub: LocalHub, env_dir: Path, argv: list[str], env: dict | None = None) -> subprocess.CompletedProcess:
    env_dir.mkdir(parents=True, exist_ok=True)
    done = subprocess.run(
        [sys.executable, *argv],
        env=env if env is not None else hub.client_env(env_dir),
        cwd=PROJECT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert LocalHub.blocked_connections(env_dir) == []
    assert "Traceback" not in done.stderr, done.stderr[-3000:]
    return done


def built_folder(hub: LocalHub, base: Path, name: str, *options: str) -> Path:
    out = base / name
    command = ["-m", "publish", "build", *BUILD_OPTIONS, *options, "--out", str(out)]
    done = _run(hub, base / f"env-{name}", command)
    assert done.returncode == 0, done.stderr[-3000:]
    assert (out / ".ufkto-build.json").is_file()
    return out


@pytest.fixture(scope="module")
def builds(hub, tmp_path_factory) -> dict[str, Path]:
    """one: 200 pairs, one shard per split; other: another seed (same names, other bytes);
    sharded: the 400 sample pairs in 2+ shards per train split."""
    base = tmp_path_factory.mktemp("builds")
    folders = {
        "one": built_folder(hub, base, "one"),
        "other": built_folder(hub, base, "other", "--seed", "7"),
        "sharded": built_folder(hub, base, "sharded", "--max-pairs", "400", "--max-shard-size", "200KB"),
    }
    assert len(list((folders["sharded"] / "data").glob("train-*.parquet"))) >= 2
    assert len(list((folders["one"] / "data").glob("train-*.parquet"))) == 1
    return folders


def snapshot(folder: Path) -> dict[str, bytes]:
    return files_of(folder)


def push(
    hub: LocalHub,
    env_dir: Path,
    folder: Path,
    repo_id: str,
    *options: str,
    env: dict | None = None,
    patch: str | None = None,
) -> subprocess.CompletedProcess:
    """Run the push command; check it left the folder as it was and showed no token."""
    before = snapshot(folder) if folder.is_dir() else None
    argv = ["-m", "publish", "push", str(folder), "--repo-id", repo_id, *options]
    if patch:
        argv = ["-c", LAUNCHER, patch, *argv[2:]]
    done = _run(hub, env_dir, argv, env)
    assert FAKE_TOKEN not in done.stdout + done.stderr
    if before is not None:
        after = snapshot(folder)
        assert after == before  # nothing written into the folder (no caches, no markers)
        assert not any(FAKE_TOKEN.encode() in data for data in after.values())
    return done


def seed_with(hub: LocalHub, repo_id: str, folder: Path, **kwargs) -> str:
    """Put a build on the hub server-side (as an earlier push would have)."""
    return hub.seed(repo_id, published(folder, repo_id), message="earlier push", **kwargs)


def remote(hub: LocalHub, repo_id: str, revision: str = "main") -> dict[str, bytes]:
    return {k: v for k, v in hub.files(repo_id, revision).items() if k != ".gitattributes"}


def commit_posts(hub: LocalHub, repo_id: str) -> list:
    return hub.requests_matching(rf"^/api/datasets/{repo_id}/commit/", "POST")


def one_error_line(done: subprocess.CompletedProcess) -> str:
    assert done.returncode == 1, (done.stdout, done.stderr)
    lines = done.stderr.strip().splitlines()
    assert lines and lines[-1].startswith("error: "), done.stderr
    return lines[-1]


# --------------------------------------------------------------------------------------
# push, then push the same again
# --------------------------------------------------------------------------------------
def test_first_push_commits_once_and_an_identical_push_commits_nothing(hub, builds, tmp_path):
    repo = "local-org/first-push"
    hub.clear_log()
    done = push(hub, tmp_path / "1", builds["one"], repo)
    assert done.returncode == 0, done.stderr
    assert remote(hub, repo) == published(builds["one"], repo)  # byte for byte, and nothing hidden
    assert ".ufkto-build.json" not in hub.files(repo)
    assert hub.lfs_paths(repo) == {p for p in published(builds["one"]) if p.endswith(".parquet")}
    log = hub.commit_log(repo)
    assert [message for _, message in log] == [
        f"Update ufkto dataset ({len(published(builds['one']))} files added, 0 changed, 0 deleted)",
        "initial commit",
    ]
    assert len(commit_posts(hub, repo)) == 1
    assert f"committed {log[0][0]}: {hub.endpoint}/datasets/{repo}/commit/{log[0][0]}" in done.stdout
    assert "add data/train-00000-of-00001.parquet (" in done.stdout

    hub.clear_log()
    again = push(hub, tmp_path / "2", builds["one"], repo)
    assert again.returncode == 0, again.stderr
    assert f"dataset {repo} (main at {log[0][0][:12]}) is up to date: nothing to commit" in again.stdout
    assert hub.commit_log(repo) == log
    assert commit_posts(hub, repo) == []
    assert hub.requests_matching(r"/preupload/|/info/lfs/|^/__lfs/") == []  # nothing uploaded either


def test_private_creates_a_private_repo(hub, builds, tmp_path):
    repo = "local-org/private-push"
    done = push(hub, tmp_path, builds["one"], repo, "--private")
    assert done.returncode == 0, done.stderr
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    with pytest.raises(urllib.error.HTTPError) as anonymous:  # no token: the private repo is hidden
        opener.open(f"{hub.endpoint}/api/datasets/{repo}", timeout=10)
    assert anonymous.value.code == 401
    assert remote(hub, repo) == published(builds["one"], repo)


# --------------------------------------------------------------------------------------
# a changed build: shards replaced in one commit, stale shards deleted
# --------------------------------------------------------------------------------------
def test_changed_build_replaces_shards_in_one_commit_and_deletes_stale_ones(hub, builds, tmp_path):
    repo = "local-org/changed"
    seed_with(hub, repo, builds["one"])
    hub.seed(repo, {"LICENSE.txt": b"kept: not a data file"}, message="someone's file")
    # What earlier versions published, and breaks load_dataset on datasets < 4.5.
    hub.seed(repo, {"dataset_infos.json": b'{"default": {}}'}, message="an earlier ufkto push")
    start = len(hub.commit_log(repo))
    one, sharded, other = (set(published(builds[name])) for name in ("one", "sharded", "other"))

    hub.clear_log()
    done = push(hub, tmp_path / "sharded", builds["sharded"], repo)
    assert done.returncode == 0, done.stderr
    assert len(hub.commit_log(repo)) == start + 1 and len(commit_posts(hub, repo)) == 1
    files = remote(hub, repo)
    assert set(files) == sharded | {"LICENSE.txt"}
    assert {p: files[p] for p in sharded} == published(builds["sharded"], repo)
    stale = sorted(one - sharded) + ["dataset_infos.json"]
    assert all(p.endswith(".parquet") for p in stale[:-1]) and len(stale) > 1
    for path in stale:
        assert f"delete {path}" in done.stdout
    assert "change README.md" in done.stdout
    assert ".gitattributes" in hub.files(repo)

    hub.clear_log()
    back = push(hub, tmp_path / "other", builds["other"], repo, "--message", "Reshuffle with seed 7")
    assert back.returncode == 0, back.stderr
    assert hub.commit_log(repo)[0][1] == "Reshuffle with seed 7"
    assert len(hub.commit_log(repo)) == start + 2 and len(commit_posts(hub, repo)) == 1
    assert remote(hub, repo) == {**published(builds["other"], repo), "LICENSE.txt": b"kept: not a data file"}
    assert other == one
    for path in sorted(sharded - other):
        assert f"delete {path}" in back.stdout
    assert "change data/train-00000-of-00001.parquet" not in back.stdout  # it was deleted, now added back
    assert "add data/train-00000-of-00001.parquet" in back.stdout


# --------------------------------------------------------------------------------------
# pull requests, branches, tags
# --------------------------------------------------------------------------------------
def test_create_pr_opens_a_pull_request_and_leaves_main_alone(hub, builds, tmp_path):
    repo = "local-org/with-pr"
    head = seed_with(hub, repo, builds["one"])
    done = push(hub, tmp_path, builds["other"], repo, "--create-pr")
    assert done.returncode == 0, done.stderr
    refs = hub.refs(repo)
    assert refs["branches"] == {"main": head}
    assert set(refs["pull_requests"]) == {"refs/pr/1"}
    assert remote(hub, repo, "refs/pr/1") == published(builds["other"], repo)
    assert remote(hub, repo) == published(builds["one"], repo)
    assert f"opened pull request {hub.endpoint}/datasets/{repo}/discussions/1" in done.stdout


def test_branch_is_created_and_tags_name_the_pushed_commit(hub, builds, tmp_path):
    repo = "local-org/branches"
    main = seed_with(hub, repo, builds["one"])

    done = push(hub, tmp_path / "1", builds["other"], repo, "--branch", "dev", "--tag", "v1")
    assert done.returncode == 0, done.stderr
    refs = hub.refs(repo)
    assert refs["branches"]["main"] == main
    dev = refs["branches"]["dev"]
    assert hub.commit_log(repo, "dev")[1][0] == main  # the branch started from main
    assert refs["tags"] == {"v1": dev}
    assert remote(hub, repo, "dev") == published(builds["other"], repo)
    assert "created branch dev from main" in done.stdout and f"tagged {dev} as v1" in done.stdout

    # Nothing changed and the tag is already there: fine, and no commit.
    again = push(hub, tmp_path / "2", builds["other"], repo, "--branch", "dev", "--tag", "v1")
    assert again.returncode == 0, again.stderr
    assert f"tag v1 already points at {dev}" in again.stdout
    assert hub.refs(repo)["branches"]["dev"] == dev

    # A change with an existing tag is refused before anything is committed.
    hub.clear_log()
    refused = push(hub, tmp_path / "3", builds["one"], repo, "--branch", "dev", "--tag", "v1")
    assert "tag v1 already exists" in one_error_line(refused)
    assert hub.refs(repo)["branches"]["dev"] == dev and commit_posts(hub, repo) == []

    later = push(hub, tmp_path / "4", builds["one"], repo, "--branch", "dev", "--tag", "v2")
    assert later.returncode == 0, later.stderr
    refs = hub.refs(repo)
    assert refs["tags"] == {"v1": dev, "v2": refs["branches"]["dev"]} and refs["branches"]["dev"] != dev
    assert refs["branches"]["main"] == main


def test_tag_and_create_pr_are_not_combined(hub, builds, tmp_path):
    line = one_error_line(push(hub, tmp_path, builds["one"], "local-org/pr-tag", "--create-pr", "--tag", "v1"))
    assert "--tag cannot be used with --create-pr" in line


# --------------------------------------------------------------------------------------
# a concurrent change between read and commit
# --------------------------------------------------------------------------------------
def test_a_concurrent_commit_makes_the_push_fail_and_commit_nothing(hub, builds, tmp_path):
    repo = "local-org/race"
    read = seed_with(hub, repo, builds["one"])
    done = push(hub, tmp_path, builds["other"], repo, patch=CONCURRENT_COMMIT)
    line = one_error_line(done)
    assert f"the branch main of {repo} moved since it was read (at {read})" in line
    assert "nothing was committed; run push again" in line
    log = hub.commit_log(repo)
    assert log[0][1] == "concurrent" and log[1][0] == read  # only the other writer's commit landed
    assert remote(hub, repo) == {**published(builds["one"], repo), "NOTES.md": b"someone else"}


# --------------------------------------------------------------------------------------
# dry run
# --------------------------------------------------------------------------------------
def test_dry_run_prints_the_plan_and_writes_nothing(hub, builds, tmp_path):
    missing = "local-org/not-yet"
    hub.clear_log()
    done = push(hub, tmp_path / "1", builds["one"], missing, "--dry-run", "--private", "--tag", "v1")
    assert done.returncode == 0, done.stderr
    assert f"repository {missing} does not exist: it would be created (private)" in done.stdout
    for path in published(builds["one"]):
        assert f"add {path} (" in done.stdout
    assert f"{len(published(builds['one']))} to add, 0 to change, 0 to delete, 0 unchanged" in done.stdout
    assert "tag v1 would be created" in done.stdout
    assert hub.write_calls == [] and not hub.repo_exists(missing)

    repo = "local-org/dry"
    head = seed_with(hub, repo, builds["one"])
    hub.clear_log()
    done = push(hub, tmp_path / "2", builds["sharded"], repo, "--dry-run", "--branch", "next")
    assert done.returncode == 0, done.stderr
    assert "branch next does not exist: it would be created from main" in done.stdout
    assert "delete data/train-00000-of-00001.parquet" in done.stdout
    assert "change README.md (" in done.stdout
    assert "add data/train-00001-of-" in done.stdout
    assert hub.write_calls == []
    assert hub.refs(repo) == {"branches": {"main": head}, "tags": {}, "pull_requests": {}}


# --------------------------------------------------------------------------------------
# refusals: one line, exit 1, nothing sent
# --------------------------------------------------------------------------------------
def test_missing_token_fails_before_any_request(hub, builds, tmp_path):
    env = hub.client_env(tmp_path)
    del env["HF_TOKEN"]  # and HF_HOME is a fresh, empty folder: no stored login either
    hub.clear_log()
    done = push(hub, tmp_path, builds["one"], "local-org/no-token", env=env)
    assert one_error_line(done) == NO_TOKEN
    assert hub.requests == []


@pytest.mark.parametrize(
    ("repo_id", "expected"),
    [
        ("no-namespace", "invalid --repo-id 'no-namespace': expected NAMESPACE/NAME"),
        ("a/b/c", "invalid --repo-id 'a/b/c': expected NAMESPACE/NAME"),
        ("local-org/bad--name", "invalid --repo-id 'local-org/bad--name': Cannot have -- or .."),
        ("local-org/spa ce", "invalid --repo-id 'local-org/spa ce': Repo id must use alphanumeric chars"),
    ],
)
def test_bad_repo_id_is_one_line(hub, builds, tmp_path, repo_id, expected):
    hub.clear_log()
    done = push(hub, tmp_path, builds["one"], repo_id)
    assert one_error_line(done).startswith(f"error: {expected}")
    assert done.stderr.count("\n") == 1 and hub.requests == []


def test_missing_folder_is_one_line(hub, tmp_path):
    hub.clear_log()
    done = push(hub, tmp_path, tmp_path / "nowhere", "local-org/x")
    assert one_error_line(done) == (
        f"error: {tmp_path / 'nowhere'} does not exist: build it first with "
        f"`python -m publish build --out {tmp_path / 'nowhere'}`"
    )
    assert done.stderr.count("\n") == 1 and hub.requests == []


def test_a_folder_failing_verification_is_refused(hub, builds, tmp_path):
    broken = tmp_path / "broken"
    shutil.copytree(builds["one"], broken)
    (broken / "data" / "test-00000-of-00001.parquet").unlink()
    hub.clear_log()
    line = one_error_line(push(hub, tmp_path / "env", broken, "local-org/broken"))
    assert line == f"error: {broken} fails verification: " + line.split("fails verification: ")[1]
    assert hub.requests == []


def test_an_unreachable_hub_is_one_line(hub, builds, tmp_path):
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    env = hub.client_env(tmp_path)
    env["HF_ENDPOINT"] = f"http://127.0.0.1:{port}"
    line = one_error_line(push(hub, tmp_path, builds["one"], "local-org/offline", env=env))
    assert line.startswith(
        f"error: could not reach the Hugging Face Hub at http://127.0.0.1:{port} for local-org/offline"
    )
    assert line.endswith("check the network (or HF_ENDPOINT) and run push again")


# The Hub answering create_repo with an error, through huggingface_hub's own error mapping.
HUB_ANSWERS = """
import httpx2
from huggingface_hub import HfApi
from huggingface_hub.utils import hf_raise_for_status
def create_repo(self, repo_id, **kwargs):
    request = httpx2.Request("POST", "http://127.0.0.1/api/repos/create")
    hf_raise_for_status(httpx2.Response({status}, request=request, headers={headers!r}, json={body!r}))
HfApi.create_repo = create_repo
"""


NO_RIGHTS = "You don't have the rights to create a dataset under the namespace local-org"
#: What the Hub answers (status, headers, body) and the line push shows for it.
HUB_ERRORS = [
    (
        401,
        {},
        {"error": f"Invalid credentials: {FAKE_TOKEN}"},
        "error: the Hugging Face Hub refused the token for local-org/refused (401 unauthorized: Invalid "
        "credentials: ***): set a valid HF_TOKEN or run `hf auth login`",
    ),
    (
        403,
        {},
        {"error": NO_RIGHTS},
        f"error: the token may not write to local-org/refused (403 forbidden: {NO_RIGHTS}): use a token with write "
        "access to local-org",
    ),
    (
        404,
        {"X-Error-Code": "RepoNotFound"},
        {"error": "Repository not found"},
        "error: dataset repo local-org/refused was not found, or the token may not see it: check --repo-id",
    ),
    (500, {}, {"error": "boom"}, "error: the Hugging Face Hub answered 500 for local-org/refused: boom"),
]


@pytest.mark.parametrize(
    ("status", "headers", "body", "expected"), HUB_ERRORS, ids=[str(case[0]) for case in HUB_ERRORS]
)
def test_hub_errors_are_one_line(hub, builds, tmp_path, status, headers, body, expected):
    hub.clear_log()
    patch = HUB_ANSWERS.format(status=status, headers=headers, body=body)
    done = push(hub, tmp_path, builds["one"], "local-org/refused", patch=patch)
    assert one_error_line(done).startswith(expected)
    assert hub.requests == []


# --------------------------------------------------------------------------------------
# what users load back
# --------------------------------------------------------------------------------------
LOAD = """
import json, os, sys
os.environ["HF_UPDATE_DOWNLOAD_COUNTS"] = "0"  # no HEAD to a download counter (read at import)
import datasets
datasets.config.USE_PARQUET_EXPORT = False
repo = sys.argv[1]
out = {}
for config in ("default", "conversational"):
    for streaming in (False, True):
        ds = datasets.load_dataset(repo, None if config == "default" else config, streaming=streaming)
        out[f"{config}/{streaming}"] = {split: [dict(row) for row in ds[split]] for split in sorted(ds)}
print(MARK + json.dumps(out, default=str))
"""


def test_load_dataset_returns_the_built_rows_in_order(hub, builds, tmp_path):
    repo = "local-org/round-trip"
    done = push(hub, tmp_path / "push", builds["one"], repo)
    assert done.returncode == 0, done.stderr
    loaded = _run(hub, tmp_path / "load", ["-c", f"MARK = {MARK!r}\n" + textwrap.dedent(LOAD), repo])
    assert loaded.returncode == 0, loaded.stderr[-3000:]
    result = json.loads(next(line for line in loaded.stdout.splitlines() if line.startswith(MARK))[len(MARK) :])
    for config, folder in (("default", "data"), ("conversational", "conversational")):
        expected = {
            split: pq.read_table(builds["one"] / folder / f"{split}-00000-of-00001.parquet").to_pylist()
            for split in ("test", "train")
        }
        assert len(expected["train"]) + len(expected["test"]) == 400  # 200 pairs, two rows each
        for streaming in (False, True):
            got = result[f"{config}/{streaming}"]
            assert json.dumps(got, sort_keys=True) == json.dumps(expected, sort_keys=True, default=str), config
    ranged = [r for r in hub.request_log if r["status"] == 206]
    assert ranged  # the streaming reads used HTTP ranges on the pushed shards


def test_a_folder_built_for_another_repo_is_published_naming_the_repo_it_is_pushed_to(hub, builds, tmp_path):
    repo = "local-org/renamed"
    built_for = json.loads((builds["one"] / ".ufkto-build.json").read_text())["repo_id"]
    assert built_for == "one" and f'load_dataset("{built_for}")' in (builds["one"] / "README.md").read_text()
    done = push(hub, tmp_path, builds["one"], repo)
    assert done.returncode == 0, done.stderr
    card = hub.files(repo)["README.md"].decode()
    assert f'load_dataset("{repo}")' in card and f"REMOTE:{repo}" in card and f"hf::{repo}" in card
    assert f'load_dataset("{built_for}")' not in card
    entry = json.loads(hub.files(repo)["dataset_info.json"])["ufkto"]
    assert (entry["hf_hub_url"], entry["ms_hub_url"], entry["subset"]) == (repo, repo, "default")
    assert entry["columns"] == {"prompt": "prompt", "response": "completion", "kto_tag": "label"}


def test_a_build_without_the_default_config_removes_the_llama_factory_entry(hub, builds, tmp_path):
    repo = "local-org/conversational-only"
    seed_with(hub, repo, builds["one"])
    assert "dataset_info.json" in remote(hub, repo)
    conversational = built_folder(hub, tmp_path, "conversational", "--configs", "conversational")
    assert not (conversational / "dataset_info.json").exists()  # LLaMA-Factory reads the default config
    done = push(hub, tmp_path / "push", conversational, repo)
    assert done.returncode == 0, done.stderr
    assert "delete dataset_info.json" in done.stdout
    assert set(remote(hub, repo)) == set(published(conversational, repo))


def test_an_unreadable_build_record_is_one_line_and_pushes_nothing(hub, builds, tmp_path):
    repo = "local-org/unreadable-record"
    folder = tmp_path / "one"
    shutil.copytree(builds["one"], folder)
    (folder / ".ufkto-build.json").write_text("{not json")
    done = push(hub, tmp_path / "push", folder, repo)
    assert ".ufkto-build.json: unreadable" in one_error_line(done) and "rebuild the folder" in done.stderr
    assert commit_posts(hub, repo) == []
