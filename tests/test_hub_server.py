"""LocalHub driven by the real huggingface_hub and datasets clients.

The clients read HF_ENDPOINT when imported, so every client step runs in a subprocess
with ``hub.client_env(tmp_path)`` while the server runs in the pytest process.
"""

from __future__ import annotations

import hashlib
import io
import json
import subprocess
import sys
import textwrap
import urllib.error
import urllib.request
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from tests.hub_server import LocalHub, git_blob_oid

REPO = "local-org/kto-demo"
MARK = "@@RESULT@@"

PRELUDE = f"""
import json, sys
ARGS = json.loads(sys.argv[1])
def emit(obj):
    print({MARK!r} + json.dumps(obj, default=str), flush=True)
"""

README = """---
configs:
- config_name: default
  data_files:
  - split: train
    path: data/train-*.parquet
license: mit
---
# KTO demo

Rows for the LocalHub round trip.
"""

ROWS = [{"id": i, "prompt": f"prompt {i}", "label": i % 3 == 0} for i in range(12)]


# --------------------------------------------------------------------------------------
# helpers
# --------------------------------------------------------------------------------------
@pytest.fixture
def hub():
    with LocalHub() as server:
        yield server
        assert server.unknown_requests == [], server.unknown_requests


def run_client(hub: LocalHub, env_dir: Path, code: str, args: dict | None = None, timeout: float = 120) -> dict:
    """Run ``code`` in a fresh interpreter against ``hub``; return what it ``emit``-ed last."""
    env_dir.mkdir(parents=True, exist_ok=True)
    try:
        proc = subprocess.run(
            [sys.executable, "-c", PRELUDE + textwrap.dedent(code), json.dumps(args or {})],
            env=hub.client_env(env_dir),
            check=True,
            capture_output=True,
            text=True,
            timeout=timeout,
        )
    except subprocess.CalledProcessError as err:
        pytest.fail(f"client failed ({err.returncode}):\n{err.stdout}\n{err.stderr}")
    assert hub.unknown_requests == [], hub.unknown_requests
    assert LocalHub.blocked_connections(env_dir) == []
    results = [line[len(MARK) :] for line in proc.stdout.splitlines() if line.startswith(MARK)]
    assert results, f"client emitted nothing:\n{proc.stdout}\n{proc.stderr}"
    return json.loads(results[-1])


def parquet_bytes(rows: list[dict]) -> bytes:
    buf = io.BytesIO()
    pq.write_table(pa.Table.from_pylist(rows), buf)
    return buf.getvalue()


def write_dataset_files(folder: Path) -> dict[str, Path]:
    folder.mkdir(parents=True, exist_ok=True)
    files = {
        "README.md": README.encode(),
        "data/train-00000-of-00002.parquet": parquet_bytes(ROWS[:7]),
        "data/train-00001-of-00002.parquet": parquet_bytes(ROWS[7:]),
    }
    out = {}
    for name, data in files.items():
        path = folder / name.replace("/", "__")
        path.write_bytes(data)
        out[name] = path
    return out


def http(
    hub: LocalHub, method: str, path: str, body: bytes | None = None, headers: dict | None = None
) -> tuple[int, dict, bytes]:
    """A raw request to the hub (no proxies), for protocol details the clients hide."""
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    req = urllib.request.Request(hub.endpoint + path, data=body, method=method, headers=headers or {})
    try:
        with opener.open(req, timeout=10) as resp:
            return resp.status, dict(resp.headers), resp.read()
    except urllib.error.HTTPError as err:
        return err.code, dict(err.headers), err.read()


PUSH_CODE = """
from huggingface_hub import HfApi, CommitOperationAdd
api = HfApi()
head = api.repo_info(ARGS["repo"], repo_type="dataset").sha
ops = [CommitOperationAdd(path_in_repo=name, path_or_fileobj=path) for name, path in ARGS["files"].items()]
info = api.create_commit(ARGS["repo"], ops, commit_message="Add KTO rows", repo_type="dataset",
                         parent_commit=head)
emit({"parent": head, "oid": info.oid, "url": info.commit_url, "repo_id": info.repo_url.repo_id})
"""


def push_dataset(hub: LocalHub, tmp_path: Path) -> dict:
    hub.create_repo(REPO)
    files = write_dataset_files(tmp_path / "files")
    return run_client(hub, tmp_path / "push", PUSH_CODE, {"repo": REPO, "files": {k: str(v) for k, v in files.items()}})


# --------------------------------------------------------------------------------------
# 1. create_repo / repo_info
# --------------------------------------------------------------------------------------
def test_create_repo_exist_ok_and_repo_info(hub, tmp_path):
    out = run_client(
        hub,
        tmp_path,
        """
        from huggingface_hub import HfApi
        from huggingface_hub.errors import HfHubHTTPError
        api = HfApi()
        first = api.create_repo(ARGS["repo"], repo_type="dataset")
        again = api.create_repo(ARGS["repo"], repo_type="dataset", exist_ok=True)
        try:
            api.create_repo(ARGS["repo"], repo_type="dataset")
            conflict = None
        except HfHubHTTPError as err:
            conflict = err.response.status_code
        private = api.create_repo("local-org/secret", repo_type="dataset", private=True)
        info = api.repo_info(ARGS["repo"], repo_type="dataset")
        at_rev = api.dataset_info(ARGS["repo"], revision=info.sha, files_metadata=True)
        emit({"first": str(first), "again": str(again), "repo_id": first.repo_id, "repo_type": first.repo_type,
              "conflict": conflict, "private_url": str(private), "id": info.id, "sha": info.sha,
              "private": info.private, "siblings": [s.rfilename for s in info.siblings],
              "rev_sha": at_rev.sha, "sizes": {s.rfilename: s.size for s in at_rev.siblings},
              "secret_private": api.repo_info("local-org/secret", repo_type="dataset").private})
    """,
        {"repo": REPO},
    )
    url = f"{hub.endpoint}/datasets/{REPO}"
    assert out["first"] == out["again"] == url
    assert (out["repo_id"], out["repo_type"]) == (REPO, "dataset")
    assert out["conflict"] == 409
    assert out["id"] == REPO and out["private"] is False and out["secret_private"] is True
    assert out["sha"] == out["rev_sha"] == hub.head(REPO)
    assert len(out["sha"]) == 40
    assert out["siblings"] == [".gitattributes"]  # the Hub's initial commit
    assert out["sizes"][".gitattributes"] == len(hub.files(REPO)[".gitattributes"])
    assert hub.commit_log(REPO) == [(out["sha"], "initial commit")]
    writes = [w for w in hub.write_calls if w[1] == "/api/repos/create"]
    assert len(writes) == 4 and all(authed for _, _, authed in writes)


# --------------------------------------------------------------------------------------
# 2. commit README + parquet shards, then load_dataset (eager and streaming)
# --------------------------------------------------------------------------------------
LOAD_CODE = """
import datasets
datasets.config.USE_PARQUET_EXPORT = False
ds = datasets.load_dataset(ARGS["repo"], streaming=ARGS["streaming"])
emit({"splits": sorted(ds), "rows": [dict(r) for r in ds["train"]]})
"""


def test_commit_then_load_dataset(hub, tmp_path):
    pushed = push_dataset(hub, tmp_path)
    assert pushed["oid"] == hub.head(REPO)
    assert pushed["url"] == f"{hub.endpoint}/datasets/{REPO}/commit/{pushed['oid']}"
    assert pushed["repo_id"] == REPO
    assert hub.commit_log(REPO) == [(pushed["oid"], "Add KTO rows"), (pushed["parent"], "initial commit")]

    stored = hub.files(REPO)
    expected = {name: path.read_bytes() for name, path in write_dataset_files(tmp_path / "again").items()}
    assert {k: v for k, v in stored.items() if k != ".gitattributes"} == expected
    assert hub.lfs_paths(REPO) == {"data/train-00000-of-00002.parquet", "data/train-00001-of-00002.parquet"}
    # The shards went through the LFS batch + PUT path, the README inline in the commit.
    assert len(hub.requests_matching(r"^/__lfs/", "PUT")) == 2
    assert len(hub.requests_matching(r"\.git/info/lfs/objects/batch$", "POST")) == 1
    assert hub.requests_matching(r"^/api/validate-yaml$", "POST")

    for streaming in (False, True):  # each in a fresh cache
        out = run_client(hub, tmp_path / f"load-{streaming}", LOAD_CODE, {"repo": REPO, "streaming": streaming})
        assert out == {"splits": ["train"], "rows": ROWS}
    ranged = [r for r in hub.request_log if r["status"] == 206]
    assert ranged and all(r["range"] for r in ranged)  # the streaming reader used HTTP ranges


# --------------------------------------------------------------------------------------
# 3. stale parent_commit -> 412; commit to a missing branch -> RevisionNotFound
# --------------------------------------------------------------------------------------
def test_stale_parent_commit_is_rejected(hub, tmp_path):
    stale = hub.seed(REPO, {"a.txt": b"a"})
    concurrent = hub.seed(REPO, {"b.txt": b"someone else"}, message="concurrent change")
    out = run_client(
        hub,
        tmp_path,
        """
        from huggingface_hub import HfApi, CommitOperationAdd, CommitOperationDelete
        from huggingface_hub.errors import HfHubHTTPError, RevisionNotFoundError
        api = HfApi()
        try:
            api.create_commit(ARGS["repo"], [CommitOperationAdd("c.txt", b"mine")], commit_message="late",
                              repo_type="dataset", parent_commit=ARGS["stale"])
            stale = None
        except HfHubHTTPError as err:
            stale = {"status": err.response.status_code, "message": str(err), "server": err.server_message}
        try:  # a delete-only commit skips preupload: this reaches the commit endpoint itself
            api.create_commit(ARGS["repo"], [CommitOperationDelete("a.txt")], commit_message="nowhere",
                              repo_type="dataset", revision="no-such-branch")
            missing = None
        except RevisionNotFoundError as err:
            missing = err.response.status_code
        emit({"stale": stale, "missing": missing})
    """,
        {"repo": REPO, "stale": stale},
    )
    assert out["stale"]["status"] == 412
    assert "A commit has happened since" in out["stale"]["server"]
    assert out["missing"] == 404
    assert hub.requests_matching(r"/commit/no-such-branch$", "POST")
    assert hub.head(REPO) == concurrent
    assert "c.txt" not in hub.files(REPO) and "a.txt" in hub.files(REPO)
    assert hub.commit_log(REPO)[0] == (concurrent, "concurrent change")
    assert hub.refs(REPO)["branches"] == {"main": concurrent}


# --------------------------------------------------------------------------------------
# 4. delete, branches, tags, pull requests, refs
# --------------------------------------------------------------------------------------
def test_delete_branch_tag_pr_and_refs(hub, tmp_path):
    seeded = hub.seed(REPO, {"keep.txt": b"keep", "drop.txt": b"drop", "old/a.txt": b"a", "old/b.txt": b"b"})
    out = run_client(
        hub,
        tmp_path,
        """
        from huggingface_hub import HfApi, CommitOperationAdd, CommitOperationDelete, hf_hub_download
        api = HfApi()
        repo, kw = ARGS["repo"], {"repo_type": "dataset"}
        deleted = api.create_commit(repo, [CommitOperationDelete("drop.txt"), CommitOperationDelete("old/")],
                                    commit_message="delete", **kw)
        api.create_branch(repo, branch="dev", **kw)
        api.create_branch(repo, branch="dev", exist_ok=True, **kw)
        on_dev = api.create_commit(repo, [CommitOperationAdd("dev.txt", b"dev only")],
                                   commit_message="dev work", revision="dev", **kw)
        api.create_tag(repo, tag="v1", tag_message="first", **kw)
        pr = api.create_commit(repo, [CommitOperationAdd("pr.txt", b"proposal")], commit_message="proposal",
                               create_pr=True, **kw)
        pr_file = open(hf_hub_download(repo, "pr.txt", revision=pr.pr_revision, **kw), "rb").read().decode()
        pr_info = api.dataset_info(repo, revision=pr.pr_revision)
        refs = api.list_repo_refs(repo, include_pull_requests=True, **kw)
        emit({"deleted": deleted.oid, "on_dev": on_dev.oid, "pr_url": pr.pr_url, "pr_revision": pr.pr_revision,
              "pr_num": pr.pr_num, "pr_oid": pr.oid, "pr_file": pr_file, "pr_info_sha": pr_info.sha,
              "branches": {b.name: b.target_commit for b in refs.branches},
              "tags": {t.name: t.target_commit for t in refs.tags},
              "prs": {p.name: p.target_commit for p in refs.pull_requests}})
    """,
        {"repo": REPO},
    )
    main = hub.files(REPO)
    assert "drop.txt" not in main and not any(p.startswith("old/") for p in main)
    assert main["keep.txt"] == b"keep" and "dev.txt" not in main and "pr.txt" not in main
    assert hub.head(REPO) == out["deleted"]
    assert hub.commit_log(REPO)[:2] == [(out["deleted"], "delete"), (seeded, "seed")]

    assert hub.head(REPO, branch="dev") == out["on_dev"]
    assert hub.files(REPO, "dev")["dev.txt"] == b"dev only"
    assert hub.commit_log(REPO, branch="dev")[1][0] == out["deleted"]

    assert out["pr_url"] == f"{hub.endpoint}/datasets/{REPO}/discussions/1"
    assert (out["pr_revision"], out["pr_num"]) == ("refs/pr/1", 1)
    assert out["pr_file"] == "proposal" and out["pr_info_sha"] == out["pr_oid"]
    assert hub.files(REPO, "refs/pr/1")["pr.txt"] == b"proposal"
    assert hub.commit_log(REPO, branch="refs/pr/1")[1][0] == out["deleted"]  # PR based on main

    assert out["branches"] == {"main": out["deleted"], "dev": out["on_dev"]}
    assert out["tags"] == {"v1": out["deleted"]}
    assert out["prs"] == {"refs/pr/1": out["pr_oid"]}
    assert hub.refs(REPO) == {"branches": out["branches"], "tags": out["tags"], "pull_requests": out["prs"]}
    # URL-quoted revision on the wire
    assert hub.requests_matching(r"/resolve/refs%2Fpr%2F1/pr\.txt$")


# --------------------------------------------------------------------------------------
# 5. downloads, tree, paths-info
# --------------------------------------------------------------------------------------
def test_download_tree_and_paths_info(hub, tmp_path):
    pushed = push_dataset(hub, tmp_path)
    out = run_client(
        hub,
        tmp_path / "read",
        """
        from huggingface_hub import HfApi, RepoFile, hf_hub_download
        api = HfApi()
        repo, kw = ARGS["repo"], {"repo_type": "dataset"}
        lfs_path = hf_hub_download(repo, "data/train-00001-of-00002.parquet", **kw)
        readme_path = hf_hub_download(repo, "README.md", **kw)
        def entry(e):
            d = {"type": "file" if isinstance(e, RepoFile) else "directory", "path": e.path}
            if isinstance(e, RepoFile):
                d.update(size=e.size, blob_id=e.blob_id, lfs=dict(e.lfs) if e.lfs else None)
            return d
        tree = [entry(e) for e in api.list_repo_tree(repo, recursive=True, **kw)]
        top = [entry(e) for e in api.list_repo_tree(repo, **kw)]
        under = [entry(e) for e in api.list_repo_tree(repo, path_in_repo="data", **kw)]
        info = [entry(e) for e in api.get_paths_info(repo, ["README.md", "data", "missing.txt"], **kw)]
        card = api.dataset_info(repo).card_data.to_dict()
        emit({"card": card, "lfs": open(lfs_path, "rb").read().hex(), "readme": open(readme_path, "rb").read().hex(),
              "lfs_in_snapshot": ARGS["oid"] in lfs_path, "tree": tree, "top": top, "under": under,
              "info": info})
    """,
        {"repo": REPO, "oid": pushed["oid"]},
    )
    files = hub.files(REPO)
    shard = "data/train-00001-of-00002.parquet"
    assert bytes.fromhex(out["lfs"]) == files[shard]
    assert bytes.fromhex(out["readme"]) == files["README.md"]
    assert out["lfs_in_snapshot"]

    by_path = {e["path"]: e for e in out["tree"]}
    assert sorted(by_path) == sorted([*files, "data"])
    assert by_path["data"]["type"] == "directory"
    assert by_path[shard]["lfs"] == {
        "size": len(files[shard]),
        "sha256": hashlib.sha256(files[shard]).hexdigest(),
        "pointer_size": by_path[shard]["lfs"]["pointer_size"],
    }
    assert by_path["README.md"]["lfs"] is None
    assert by_path["README.md"]["blob_id"] == git_blob_oid(files["README.md"])
    assert all(by_path[p]["size"] == len(files[p]) for p in files)
    assert [e["path"] for e in out["top"]] == ["data", ".gitattributes", "README.md"]
    assert [e["path"] for e in out["under"]] == sorted(p for p in files if p.startswith("data/"))
    assert [(e["type"], e["path"]) for e in out["info"]] == [("file", "README.md"), ("directory", "data")]
    assert out["card"]["license"] == "mit"
    assert out["card"]["configs"] == [
        {"config_name": "default", "data_files": [{"split": "train", "path": "data/train-*.parquet"}]}
    ]


# --------------------------------------------------------------------------------------
# Protocol details checked directly over HTTP (no client)
# --------------------------------------------------------------------------------------
def test_resolve_headers_ranges_and_errors(hub):
    data = bytes(range(256)) * 8
    head = hub.seed(REPO, {"blob.bin": data, "notes.txt": b"hello notes\n"})
    status, headers, _ = http(hub, "HEAD", f"/datasets/{REPO}/resolve/main/blob.bin")
    sha = hashlib.sha256(data).hexdigest()
    assert status == 200
    assert headers["X-Repo-Commit"] == head
    assert headers["ETag"] == headers["X-Linked-Etag"] == f'"{sha}"'
    assert headers["X-Linked-Size"] == headers["Content-Length"] == str(len(data))

    status, headers, body = http(hub, "GET", f"/datasets/{REPO}/resolve/{head}/notes.txt")
    assert (status, body) == (200, b"hello notes\n")
    assert headers["ETag"] == f'"{git_blob_oid(body)}"' and "X-Linked-Etag" not in headers

    for rng, part in (("bytes=10-19", data[10:20]), ("bytes=2040-", data[2040:]), ("bytes=-5", data[-5:])):
        status, headers, body = http(hub, "GET", f"/datasets/{REPO}/resolve/main/blob.bin", headers={"Range": rng})
        assert (status, body) == (206, part)
        assert headers["Content-Range"].endswith(f"/{len(data)}")
    status, headers, _ = http(hub, "GET", f"/datasets/{REPO}/resolve/main/blob.bin", headers={"Range": "bytes=9999-"})
    assert status == 416 and headers["Content-Range"] == f"bytes */{len(data)}"

    for path, code in (
        (f"/datasets/{REPO}/resolve/main/nope.txt", "EntryNotFound"),
        (f"/datasets/{REPO}/resolve/nope/notes.txt", "RevisionNotFound"),
        ("/datasets/local-org/nope/resolve/main/notes.txt", "RepoNotFound"),
        (f"/api/datasets/{REPO}/revision/refs%2Fpr%2F9", "RevisionNotFound"),
        (f"/api/datasets/{REPO}/tree/main/nope", "EntryNotFound"),
    ):
        status, headers, _ = http(hub, "GET", path)
        assert (status, headers.get("X-Error-Code")) == (404, code), path

    hub.set_private(REPO)
    status, headers, _ = http(hub, "GET", f"/api/datasets/{REPO}")  # no Authorization header
    assert (status, headers.get("X-Error-Code")) == (401, "RepoNotFound")
    assert http(hub, "GET", f"/api/datasets/{REPO}", headers={"Authorization": "Bearer x"})[0] == 200

    status, _, _ = http(hub, "GET", "/api/spaces/x/y/something-new")
    assert status == 501
    assert hub.unknown_requests == [("GET", "/api/spaces/x/y/something-new")]
    hub.unknown_requests.clear()


def test_lfs_upload_is_verified(hub):
    hub.create_repo(REPO)
    data = b"\0lfs payload" * 100
    oid = hashlib.sha256(data).hexdigest()
    batch = json.dumps(
        {
            "operation": "upload",
            "transfers": ["basic"],
            "hash_algo": "sha256",
            "objects": [{"oid": oid, "size": len(data)}],
        }
    ).encode()
    status, _, body = http(hub, "POST", f"/datasets/{REPO}.git/info/lfs/objects/batch", batch)
    href = json.loads(body)["objects"][0]["actions"]["upload"]["href"]
    assert status == 200 and href.startswith(hub.endpoint)
    path = href[len(hub.endpoint) :]
    assert http(hub, "PUT", path, data[:-1])[0] == 400  # wrong sha256
    assert http(hub, "PUT", path, data)[0] == 200
    status, _, body = http(hub, "POST", f"/datasets/{REPO}.git/info/lfs/objects/batch", batch)
    assert "actions" not in json.loads(body)["objects"][0]  # already stored

    line = json.dumps({"key": "lfsFile", "value": {"path": "x.bin", "algo": "sha256", "oid": oid, "size": len(data)}})
    header = json.dumps({"key": "header", "value": {"summary": "add x"}})
    status, _, body = http(
        hub,
        "POST",
        f"/api/datasets/{REPO}/commit/main",
        f"{header}\n{line}\n".encode(),
        {"Content-Type": "application/x-ndjson"},
    )
    assert status == 200 and json.loads(body)["commitOid"] == hub.head(REPO)
    assert hub.files(REPO)["x.bin"] == data and "x.bin" in hub.lfs_paths(REPO)
    assert not any(authed for method, p, authed in hub.write_calls if method == "PUT")  # no token sent


def test_network_guard_blocks_other_hosts(hub, tmp_path):
    env_dir = tmp_path / "guard"
    env_dir.mkdir()
    code = PRELUDE + textwrap.dedent("""
        import socket
        try:
            socket.create_connection(("example.com", 443), timeout=1)
            blocked = False
        except OSError as err:
            blocked = "network guard" in str(err)
        emit({"blocked": blocked})
    """)
    proc = subprocess.run(
        [sys.executable, "-c", code, "{}"],
        env=hub.client_env(env_dir),
        check=True,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert f'{MARK}{{"blocked": true}}' in proc.stdout
    assert LocalHub.blocked_connections(env_dir) == ["example.com"]
