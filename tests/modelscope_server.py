"""A local, in-memory stand-in for ModelScope's dataset API, for tests.

``LocalModelScope`` runs a real HTTP server on 127.0.0.1 (stdlib only) that answers what
the installed ``modelscope`` SDK (1.40, doing its HTTP through ``modelscope-hub`` 0.5) asks
of a server to create a dataset repo, list its files, upload blobs with git-LFS, commit,
and tag. The SDK reads its settings once per process, so run the client in a subprocess
started with ``server.client_env(tmp_path)``::

    with LocalModelScope() as server:
        subprocess.run([sys.executable, "-c", code], env=server.client_env(tmp_path), check=True)
        assert server.unknown_requests == []

Endpoints (all under ``/api/v1``; answers are ``{"Code", "Success", "Message", "RequestId",
"Data"}``; every request must carry the token, as bearer header or ``m_session_id`` cookie):

- ``POST datasets`` (multipart form: Owner, Name, Visibility, License): create; an existing
  repo is HTTP 400 with business code 10020101001, which the SDK reads as "already exists";
- ``GET datasets/{owner}/{name}/repo/tree`` (Revision, Recursive, Root, PageNumber, PageSize):
  files with their Sha256, and directories (``Type: "tree"``);
- ``POST repos/datasets/{owner}/{name}/info/lfs/objects/batch``: git-LFS batch; blobs not yet
  stored get an upload href, ``PUT /__blobs/{sha256}``, where size and sha256 are checked;
- ``POST repos/datasets/{owner}/{name}/commit/{branch}``: one atomic commit of create, update
  and delete actions (inline base64 content, or LFS actions naming an uploaded blob);
- ``POST datasets/{owner}/{name}/repo/tag`` (TagName, Ref), and ``GET datasets/{owner}/{name}/revisions``
  (``RevisionMap: {Branches, Tags}``, each ``{Revision, CreatedAt}``).

A new repo has the branch ``master`` with one commit holding ``.gitattributes``; blobs are
shared by every repo (the SDK says "already exists globally"). Every request is recorded as
(method, path) in ``requests``, never a header or a query; requests the server does not know
are answered 501 and recorded in ``unknown_requests`` (as are those that hit a bug of the
server, answered 500); a token seen anywhere but in the auth headers (a path, a query, a body)
is recorded in ``token_leaks``. ``fail(operation, status)`` makes an operation answer an HTTP
error.
"""

from __future__ import annotations

import base64
import email.parser
import email.policy
import hashlib
import itertools
import json
import os
import posixpath
import re
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from tests.network_guard import blocked, guard

FAKE_TOKEN = "ms-localFakeToken-0123456789abcdefABCDEF"
#: Blob upload URLs are presigned, as ModelScope's are: the signature is a secret a push never shows.
BLOB_SIGNATURE = "blob-signature-never-shown"
DEFAULT_BRANCH = "master"
GITATTRIBUTES = b"*.parquet filter=lfs diff=lfs merge=lfs -text\n*.arrow filter=lfs diff=lfs merge=lfs -text\n"
ALREADY_EXISTS_CODE = 10020101001  # modelscope_hub.errors: "China site: dataset already exists"
OPERATIONS = ("create", "tree", "lfs_batch", "blob", "commit", "tag", "revisions")  # the names fail() takes


@dataclass
class Commit:
    id: str
    parent: str | None
    message: str
    files: dict[str, bytes]  # the whole tree after this commit
    lfs: frozenset[str]  # the paths stored with git-LFS
    created: int = field(default_factory=lambda: int(time.time()))


@dataclass
class Repo:
    repo_id: str
    visibility: int  # 1 private, 5 public
    license: str
    commits: dict[str, Commit] = field(default_factory=dict)
    branches: dict[str, str] = field(default_factory=dict)
    tags: dict[str, str] = field(default_factory=dict)


class ApiError(Exception):
    def __init__(self, status: int, message: str, code: int | None = None):
        super().__init__(message)
        self.status, self.message, self.code = status, message, code or status


class LocalModelScope:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._repos: dict[str, Repo] = {}
        self._blobs: dict[str, bytes] = {}  # sha256 -> content
        self._failures: dict[str, tuple[int, int]] = {}  # operation -> (status, calls to let through)
        self._ids = itertools.count(1)
        self.requests: list[tuple[str, str]] = []
        self.unknown_requests: list[tuple[str, str]] = []
        self.token_leaks: list[tuple[str, str]] = []
        self.upload_endpoint: str | None = None  # where blob upload URLs point (None: this server)
        self._server: ThreadingHTTPServer | None = None

    # ---- lifecycle ---------------------------------------------------------------------
    def __enter__(self) -> LocalModelScope:
        handler = type("Handler", (_Handler,), {"server_state": self})
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, name="LocalModelScope", daemon=True).start()
        return self

    def __exit__(self, *exc: object) -> None:
        assert self._server is not None
        self._server.shutdown()
        self._server.server_close()

    @property
    def endpoint(self) -> str:
        assert self._server is not None, "the server is not running"
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def client_env(self, tmp_path: str | os.PathLike, **overrides: str) -> dict[str, str]:
        """os.environ for a client subprocess that talks only to this server.

        A fresh HOME, MODELSCOPE_HOME and MODELSCOPE_CACHE under ``tmp_path``; the token;
        failures that surface at once (one attempt per commit and per blob, no wait after the
        last one, one transport retry, no recovery rounds, which wait seconds between files);
        no proxies and no other MODELSCOPE_* setting; and the network guard
        (``tests/network_guard.py``), whose refusals ``blocked_connections`` lists.
        """
        base = Path(tmp_path)
        env = {
            name: value
            for name, value in os.environ.items()
            if not name.startswith("MODELSCOPE_") and name.lower() not in ("http_proxy", "https_proxy", "all_proxy")
        }
        env.update(
            HOME=str(base / "home"),
            MODELSCOPE_HOME=str(base / "home" / ".modelscope"),
            MODELSCOPE_CACHE=str(base / "home" / "cache"),
            MODELSCOPE_ENDPOINT=self.endpoint,
            MODELSCOPE_API_TOKEN=FAKE_TOKEN,
            MODELSCOPE_UPLOAD_COMMIT_MAX_ATTEMPTS="1",
            MODELSCOPE_UPLOAD_COMMIT_RETRY_TOTAL_WAIT_SECONDS="1",
            MODELSCOPE_UPLOAD_BLOB_MAX_ATTEMPTS="1",
            MODELSCOPE_API_MAX_RETRIES="1",
            MODELSCOPE_UPLOAD_RECOVERY_ENABLED="false",
            NO_PROXY="127.0.0.1,localhost",
            no_proxy="127.0.0.1,localhost",
        )
        return guard({**env, **overrides}, base)

    @staticmethod
    def blocked_connections(tmp_path: str | os.PathLike) -> list[str]:
        return blocked(tmp_path)

    # ---- test helpers ------------------------------------------------------------------
    def fail(self, operation: str, status: int | None = 500, after: int = 0) -> None:
        """Answer every ``operation`` (one of OPERATIONS) with HTTP ``status`` once ``after``
        calls have gone through, until ``fail(operation, None)``."""
        assert operation in OPERATIONS, operation
        with self._lock:
            if status is None:
                self._failures.pop(operation, None)
            else:
                self._failures[operation] = (status, after)

    def seed(
        self,
        repo_id: str,
        files: dict[str, bytes],
        message: str = "seed",
        delete: Iterable[str] = (),
        visibility: int = 5,
        tag: str | None = None,
    ) -> str:
        """Commit ``files`` (parquet as LFS) and delete ``delete`` on master, creating the repo
        if needed, and tag the commit ``tag``; returns the commit id."""
        with self._lock:
            repo = self._repos.get(repo_id) or self._create(repo_id, visibility, "mit")
            head = repo.commits[repo.branches[DEFAULT_BRANCH]]
            tree, lfs = dict(head.files), set(head.lfs) - set(delete)
            for path in delete:
                del tree[path]
            for path, data in files.items():
                tree[path] = data
                if path.endswith(".parquet"):
                    lfs.add(path)
                    self._blobs[hashlib.sha256(data).hexdigest()] = data
                else:
                    lfs.discard(path)
            commit_id = self._commit(repo, DEFAULT_BRANCH, message, tree, lfs).id
            if tag:
                repo.tags[tag] = commit_id
            return commit_id

    def repo(self, repo_id: str) -> Repo | None:
        with self._lock:
            return self._repos.get(repo_id)

    def files(self, repo_id: str, revision: str = DEFAULT_BRANCH) -> dict[str, bytes]:
        with self._lock:
            return dict(self._resolve(self._get(repo_id), revision).files)

    def lfs_paths(self, repo_id: str, revision: str = DEFAULT_BRANCH) -> set[str]:
        with self._lock:
            return set(self._resolve(self._get(repo_id), revision).lfs)

    def commit_log(self, repo_id: str, revision: str = DEFAULT_BRANCH) -> list[tuple[str, str]]:
        """(commit id, message), newest first."""
        with self._lock:
            repo = self._get(repo_id)
            commit: Commit | None = self._resolve(repo, revision)
            log = []
            while commit is not None:
                log.append((commit.id, commit.message))
                commit = repo.commits.get(commit.parent or "")
            return log

    def tags(self, repo_id: str) -> dict[str, str]:
        with self._lock:
            return dict(self._get(repo_id).tags)

    def stored_bytes(self) -> list[bytes]:
        """Everything the server holds: every blob and every file of every commit."""
        with self._lock:
            held = list(self._blobs.values())
            for repo in self._repos.values():
                held += [data for commit in repo.commits.values() for data in commit.files.values()]
            return held

    def requests_matching(self, pattern: str, method: str | None = None) -> list[tuple[str, str]]:
        rx = re.compile(pattern)
        with self._lock:
            return [(m, p) for m, p in self.requests if rx.search(p) and method in (None, m)]

    def clear_log(self) -> None:
        with self._lock:
            self.requests.clear()

    # ---- the model (call with the lock held) ---------------------------------------------
    def _get(self, repo_id: str) -> Repo:
        if repo_id not in self._repos:
            raise ApiError(404, f"dataset {repo_id} not found")
        return self._repos[repo_id]

    def _create(self, repo_id: str, visibility: int, license: str) -> Repo:
        repo = self._repos[repo_id] = Repo(repo_id, visibility, license)
        self._commit(repo, DEFAULT_BRANCH, "initial commit", {".gitattributes": GITATTRIBUTES}, set())
        return repo

    def _commit(self, repo: Repo, branch: str, message: str, files: dict[str, bytes], lfs: set[str]) -> Commit:
        commit_id = hashlib.sha1(f"{repo.repo_id}:{next(self._ids)}:{message}".encode()).hexdigest()
        commit = Commit(commit_id, repo.branches.get(branch), message, files, frozenset(lfs & set(files)))
        repo.commits[commit_id] = commit
        repo.branches[branch] = commit_id
        return commit

    @staticmethod
    def _resolve(repo: Repo, revision: str) -> Commit:
        commit_id = repo.branches.get(revision) or repo.tags.get(revision) or revision
        if commit_id not in repo.commits:
            raise ApiError(404, f"revision {revision} not found")
        return repo.commits[commit_id]

    def _check_failure(self, operation: str) -> None:
        if operation in self._failures:
            status, after = self._failures[operation]
            if after > 0:
                self._failures[operation] = (status, after - 1)
            else:
                raise ApiError(status, f"injected failure of {operation}")


# --------------------------------------------------------------------------------------
# HTTP
# --------------------------------------------------------------------------------------
class _Handler(BaseHTTPRequestHandler):
    server_state: LocalModelScope
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_GET(self) -> None:
        self._dispatch()

    do_POST = do_PUT = do_DELETE = do_HEAD = do_GET

    def _dispatch(self) -> None:
        state = self.server_state
        body = self._read_body()
        parts = urlsplit(self.path)
        path = parts.path.replace(FAKE_TOKEN, "***")
        query = {k: v[0] for k, v in parse_qs(parts.query, keep_blank_values=True).items()}
        with state._lock:
            state.requests.append((self.command, path))
            if FAKE_TOKEN in unquote(self.path) or FAKE_TOKEN.encode() in body:
                state.token_leaks.append((self.command, path))
        route = _route(self.command, [unquote(s) for s in parts.path.strip("/").split("/")])
        if route is None:
            with state._lock:
                state.unknown_requests.append((self.command, path))
            return self._send(501, {"Code": 501, "Success": False, "Message": "not implemented here"})
        operation, handler, args = route
        try:
            if not self._authorized():
                raise ApiError(401, "the token is missing or invalid")
            with state._lock:
                state._check_failure(operation)
                data = handler(state, self, query, body, *args)
        except ApiError as error:
            return self._send(error.status, {"Code": error.code, "Success": False, "Message": error.message})
        except Exception as error:  # a bug of this server: recorded as a request it could not answer
            with state._lock:
                state.unknown_requests.append((self.command, f"{path} ({error!r})"))
            return self._send(500, {"Code": 500, "Success": False, "Message": f"LocalModelScope bug: {error!r}"})
        if isinstance(data, _Raw):
            return self._send(200, data.body, "application/json" if data.body else "text/plain")
        self._send(200, {"Code": 200, "Success": True, "Message": "", "Data": data})

    def _authorized(self) -> bool:
        bearer = self.headers.get("Authorization") == f"Bearer {FAKE_TOKEN}"
        return bearer or f"m_session_id={FAKE_TOKEN}" in (self.headers.get("Cookie") or "").replace(" ", "")

    def _read_body(self) -> bytes:
        # The SDK always sends Content-Length (the blob PUT sets it itself), never a chunked body.
        return self.rfile.read(int(self.headers.get("Content-Length") or 0))

    def _send(self, status: int, payload: Any, content_type: str = "application/json") -> None:
        body = payload if isinstance(payload, bytes) else json.dumps({"RequestId": "local", **payload}).encode()
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)


@dataclass
class _Raw:
    body: bytes


def _route(method: str, seg: list[str]) -> tuple[str, Any, tuple] | None:
    """(operation, handler, handler arguments) for a request path, or None."""
    if method == "PUT" and len(seg) == 2 and seg[0] == "__blobs":
        return "blob", _put_blob, (seg[1],)
    if seg[:2] != ["api", "v1"]:
        return None
    seg = seg[2:]
    if method == "POST" and seg == ["datasets"]:
        return "create", _create_repo, ()
    if len(seg) == 5 and seg[0] == "datasets" and seg[3] == "repo":
        repo_id = f"{seg[1]}/{seg[2]}"
        if method == "GET" and seg[4] == "tree":
            return "tree", _tree, (repo_id,)
        if method == "POST" and seg[4] == "tag":
            return "tag", _tag, (repo_id,)
    if method == "GET" and len(seg) == 4 and seg[0] == "datasets" and seg[3] == "revisions":
        return "revisions", _revisions, (f"{seg[1]}/{seg[2]}",)
    if len(seg) >= 6 and seg[:2] == ["repos", "datasets"] and method == "POST":
        repo_id = f"{seg[2]}/{seg[3]}"
        if seg[4:] == ["info", "lfs", "objects", "batch"]:
            return "lfs_batch", _lfs_batch, (repo_id,)
        if seg[4] == "commit" and len(seg) >= 6:
            return "commit", _commit, (repo_id, "/".join(seg[5:]))
    return None


def _json(body: bytes) -> Any:
    try:
        return json.loads(body)
    except ValueError:
        raise ApiError(400, "the body is not JSON") from None


def _create_repo(state: LocalModelScope, request: _Handler, query: dict, body: bytes) -> dict:
    form = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(
        f"Content-Type: {request.headers.get('Content-Type')}\r\n\r\n".encode() + body
    )
    fields = {part.get_param("name", header="content-disposition"): part.get_content() for part in form.iter_parts()}
    if not {"Owner", "Name", "Visibility"} <= set(fields):
        raise ApiError(400, f"Owner, Name and Visibility are required, got {sorted(fields)}")
    repo_id = f"{fields['Owner']}/{fields['Name']}"
    if repo_id in state._repos:
        raise ApiError(400, "dataset name already in use", ALREADY_EXISTS_CODE)
    repo = state._create(repo_id, int(fields["Visibility"]), fields.get("License", ""))
    return {"Id": len(state._repos), "Owner": fields["Owner"], "Name": fields["Name"], "Visibility": repo.visibility}


def _tree(state: LocalModelScope, request: _Handler, query: dict, body: bytes, repo_id: str) -> dict:
    repo = state._get(repo_id)
    commit = state._resolve(repo, query.get("Revision", DEFAULT_BRANCH))
    root = query.get("Root", "/").strip("/")
    entries = {}
    for path, data in commit.files.items():
        parts = path.split("/")
        for depth in range(1, len(parts)):  # the directories above the file
            entries.setdefault("/".join(parts[:depth]), None)
        entries[path] = data
    listed = []
    for path, data in sorted(entries.items()):
        parent = posixpath.dirname(path)
        if (root and not path.startswith(root + "/")) or (query.get("Recursive") != "True" and parent != root):
            continue
        entry = {"Path": path, "Name": posixpath.basename(path), "Type": "tree" if data is None else "blob"}
        if data is not None:
            sha256 = hashlib.sha256(data).hexdigest()
            entry |= {"Size": len(data), "Sha256": sha256, "IsLFS": path in commit.lfs, "CommitId": commit.id}
        listed.append(entry)
    page, size = int(query.get("PageNumber", 1)), int(query.get("PageSize", 100))
    return {"Files": listed[(page - 1) * size : page * size]}


def _lfs_batch(state: LocalModelScope, request: _Handler, query: dict, body: bytes, repo_id: str) -> _Raw:
    state._get(repo_id)
    objects = []
    for obj in _json(body).get("objects", []):
        oid, size = obj["oid"], int(obj["size"])
        answer: dict[str, Any] = {"oid": oid, "size": size}
        if oid not in state._blobs:
            base = state.upload_endpoint or state.endpoint
            href = f"{base}/__blobs/{oid}?size={size}&X-Amz-Signature={BLOB_SIGNATURE}"
            answer["actions"] = {"upload": {"href": href}}
        objects.append(answer)
    return _Raw(json.dumps({"transfer": "basic", "objects": objects}).encode())


def _put_blob(state: LocalModelScope, request: _Handler, query: dict, body: bytes, oid: str) -> _Raw:
    if len(body) != int(query.get("size", -1)) or hashlib.sha256(body).hexdigest() != oid:
        raise ApiError(400, f"blob {oid[:12]} does not match its size or sha256")
    state._blobs[oid] = body
    return _Raw(b"")


def _commit(state: LocalModelScope, request: _Handler, query: dict, body: bytes, repo_id: str, branch: str) -> dict:
    repo = state._get(repo_id)
    if branch not in repo.branches:
        raise ApiError(404, f"branch {branch} not found")
    payload = _json(body)
    actions = payload.get("actions") or []
    if not actions or not payload.get("commit_message"):
        raise ApiError(400, "a commit needs a commit_message and actions")
    head = repo.commits[repo.branches[branch]]
    tree, lfs = dict(head.files), set(head.lfs)
    for action in actions:  # every action is checked before anything changes: the commit is atomic
        kind, path = action.get("action"), action.get("path") or ""
        if not path or path.startswith("/") or ".." in path.split("/"):
            raise ApiError(400, f"invalid path {path!r}")
        if kind not in ("create", "update", "delete"):
            raise ApiError(400, f"unknown action {kind!r}")
        if kind != "create" and path not in tree:
            raise ApiError(400, f"no file at {path} to {kind}")
        if kind == "delete":
            del tree[path]
            lfs.discard(path)
        elif action.get("type") == "lfs":
            data = state._blobs.get(action.get("sha256") or "")
            if data is None or len(data) != action.get("size"):
                raise ApiError(400, f"{path}: no uploaded blob with this sha256 and size")
            tree[path] = data
            lfs.add(path)
        elif action.get("type") == "normal" and action.get("encoding") == "base64":
            try:
                data = base64.b64decode(action.get("content") or "", validate=True)
            except ValueError:
                raise ApiError(400, f"{path}: the content is not base64") from None
            if len(data) != action.get("size", len(data)):
                raise ApiError(400, f"{path}: the content is not {action.get('size')} bytes")
            tree[path] = data
            lfs.discard(path)
        else:
            raise ApiError(400, f"{path}: unknown type {action.get('type')!r} or encoding {action.get('encoding')!r}")
    commit = state._commit(repo, branch, payload["commit_message"], tree, lfs)
    return {"CommitId": commit.id, "CommitMessage": commit.message}


def _tag(state: LocalModelScope, request: _Handler, query: dict, body: bytes, repo_id: str) -> dict:
    repo, payload = state._get(repo_id), _json(body)
    tag, ref = payload.get("TagName"), payload.get("Ref") or DEFAULT_BRANCH
    if not tag:
        raise ApiError(400, "TagName is required")
    if tag in repo.tags or tag in repo.branches:
        raise ApiError(400, f"tag {tag} already exists")
    repo.tags[tag] = state._resolve(repo, ref).id
    return {"TagName": tag, "CommitId": repo.tags[tag]}


def _revisions(state: LocalModelScope, request: _Handler, query: dict, body: bytes, repo_id: str) -> dict:
    repo = state._get(repo_id)
    listed = {
        kind: [{"Revision": name, "CreatedAt": repo.commits[commit_id].created} for name, commit_id in refs.items()]
        for kind, refs in (("Branches", repo.branches), ("Tags", repo.tags))
    }
    return {"RevisionMap": listed}
