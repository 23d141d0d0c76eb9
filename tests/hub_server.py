"""A local, in-memory stand-in for the Hugging Face Hub, for tests.

``LocalHub`` runs a real HTTP server on 127.0.0.1 (stdlib only) that answers the
endpoints the installed ``huggingface_hub`` (2.x) and ``datasets`` (5.x) clients call
to create repos, commit files (regular and git-LFS), list trees, download files
(with HTTP ranges) and manage branches, tags and pull-request refs.  The real clients
can therefore push and load datasets against it with no network.

The clients read ``HF_ENDPOINT`` when they are imported, so client code should run in
a subprocess started with ``hub.client_env(tmp_path)``::

    with LocalHub() as hub:
        subprocess.run([sys.executable, "-c", code], env=hub.client_env(tmp_path), check=True)
        assert hub.unknown_requests == []

State lives in memory and is guarded by one lock; the server thread is a daemon.
Requests the server does not know are answered with 501 and recorded in
``hub.unknown_requests``.  Header values (tokens) are never logged.

Faults can be injected to test how clients cope with a failing Hub::

    hub.inject_fault("POST", r"/commit/", 500)            # every commit answered 500
    hub.inject_fault("PUT", r"^/__lfs/", "drop", times=1)  # next LFS upload cut off mid-body
    hub.clear_faults()
"""

from __future__ import annotations

import base64
import hashlib
import itertools
import json
import os
import re
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, quote, unquote, urlsplit

from tests.network_guard import blocked, guard

LFS_SIGNATURE = "lfs-signature-never-shown"
FAKE_TOKEN = "hf_localhubFakeToken0123456789abcdefABCDEF"
FAKE_USER = "local-user"
DEFAULT_BRANCH = "main"
LFS_THRESHOLD = 10 * 1024 * 1024  # files above this size go to LFS

# Extensions stored with git-LFS by the Hub's default .gitattributes (a practical subset).
LFS_EXTENSIONS = (
    ".7z",
    ".arrow",
    ".avro",
    ".bin",
    ".bz2",
    ".ckpt",
    ".ftz",
    ".gz",
    ".h5",
    ".joblib",
    ".lz4",
    ".mlmodel",
    ".model",
    ".msgpack",
    ".npy",
    ".npz",
    ".onnx",
    ".ot",
    ".parquet",
    ".pb",
    ".pickle",
    ".pkl",
    ".pt",
    ".pth",
    ".rar",
    ".safetensors",
    ".tar",
    ".tflite",
    ".tgz",
    ".wasm",
    ".xz",
    ".zip",
    ".zst",
    ".mp3",
    ".ogg",
    ".wav",
    ".flac",
    ".jpg",
    ".jpeg",
    ".png",
    ".webp",
    ".gif",
    ".mds",
    ".tfrecord",
    ".db",
)

GITATTRIBUTES = "".join(f"*{ext} filter=lfs diff=lfs merge=lfs -text\n" for ext in LFS_EXTENSIONS).encode()

REPO_TYPES = {"models": "model", "datasets": "dataset", "spaces": "space", "kernels": "kernel"}
URL_PREFIX = {"model": "", "dataset": "datasets/", "space": "spaces/", "kernel": "kernels/"}
_HEX_SHORT = re.compile(r"^[0-9a-f]{7,40}$")
_PR_REF = re.compile(r"^refs/pr/(\d+)$")

Key = tuple[str, str]  # (repo_type, "namespace/name")
Fault = int | str  # an HTTP status answered instead of the real one, or "drop"


# --------------------------------------------------------------------------------------
# Content helpers
# --------------------------------------------------------------------------------------
def git_blob_oid(data: bytes) -> str:
    """The git blob id (sha1 of ``blob <len>\\0<data>``)."""
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


def lfs_pointer(data: bytes) -> bytes:
    sha = hashlib.sha256(data).hexdigest()
    return f"version https://git-lfs.github.com/spec/v1\noid sha256:{sha}\nsize {len(data)}\n".encode()


def is_lfs_candidate(path: str, size: int, sample: bytes) -> bool:
    """The rule this server uses to answer ``uploadMode``: lfs for data/binary/large files."""
    return path.lower().endswith(LFS_EXTENSIONS) or size > LFS_THRESHOLD or b"\0" in sample


def parse_front_matter(readme: bytes) -> dict | None:
    """cardData from the YAML front matter of a README.md, if yaml is importable."""
    try:
        import yaml  # installed with datasets
    except ImportError:  # pragma: no cover
        return None
    text = readme.decode("utf-8", errors="replace")
    match = re.match(r"^\s*---\s*\n(.*?)\n---\s*(\n|$)", text, flags=re.DOTALL)
    if not match:
        return None
    try:
        data = yaml.safe_load(match.group(1))
    except yaml.YAMLError:
        return None
    return data if isinstance(data, dict) else None


def _iso(ts: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ts)) + f".{int(ts * 1000) % 1000:03d}Z"


# --------------------------------------------------------------------------------------
# Repository model
# --------------------------------------------------------------------------------------
@dataclass
class Commit:
    sha: str
    parent: str | None
    message: str
    description: str
    files: dict[str, bytes]  # full snapshot
    lfs: frozenset[str]  # paths stored as LFS in this snapshot
    date: float


@dataclass
class Repo:
    repo_type: str
    repo_id: str
    private: bool
    created_at: float
    commits: dict[str, Commit] = field(default_factory=dict)
    branches: dict[str, str] = field(default_factory=dict)
    tags: dict[str, str] = field(default_factory=dict)
    prs: dict[int, str] = field(default_factory=dict)  # N -> sha of refs/pr/N
    next_discussion: int = 1

    @property
    def url_path(self) -> str:
        return URL_PREFIX[self.repo_type] + self.repo_id


class HubError(Exception):
    """An HTTP error answer: JSON ``{"error": message}`` plus optional X-Error-Code."""

    def __init__(
        self, status: int, message: str, code: str | None = None, headers: dict | None = None, body: dict | None = None
    ):
        super().__init__(message)
        self.status = status
        self.message = message
        self.code = code
        self.headers = dict(headers or {})
        self.body = body


def _repo_not_found(key: Key) -> HubError:
    return HubError(404, f"Repository {key[1]} ({key[0]}) not found", "RepoNotFound")


def _revision_not_found(rev: str) -> HubError:
    return HubError(404, f"Invalid rev id: {rev}", "RevisionNotFound")


@dataclass
class _FaultRule:
    method: str | None
    pattern: re.Pattern[str]
    fault: Fault
    times: int | None  # requests left to fail; None: every one


def _truthy(value: Any) -> bool:
    return str(value).lower() in ("1", "true", "yes", "on")


@dataclass
class _Response:
    status: int = 200
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)


def _json_response(obj: Any, status: int = 200, headers: dict | None = None) -> _Response:
    body = json.dumps(obj).encode()
    return _Response(status, body, {"Content-Type": "application/json; charset=utf-8", **(headers or {})})


# --------------------------------------------------------------------------------------
# The hub
# --------------------------------------------------------------------------------------
class LocalHub:
    """In-memory Hub served over HTTP on 127.0.0.1 (see module docstring).

    Observation lists (append-only while running; ``clear_log()`` empties them):
      - ``requests``: (method, raw path without query), e.g. ("GET", "/api/datasets/o/n/revision/refs%2Fpr%2F1")
      - ``unknown_requests``: (method, path with query) of requests answered 501
      - ``write_calls``: (method, path, had an Authorization header) for POST/PUT/DELETE
      - ``errors``: (method, path, status, message) of every 4xx/5xx answer
      - ``request_log``: dicts with method, path, query, status, auth (bool), range (Range header)
      - ``fault_log``: (method, path, fault) of every request an injected fault answered or dropped

    A new repo gets the Hub's initial commit ("initial commit", one ``.gitattributes``).
    """

    def __init__(self, port: int = 0):
        self._lock = threading.RLock()
        self._repos: dict[Key, Repo] = {}
        self._lfs: dict[str, bytes] = {}  # sha256 hex -> content
        self._lfs_pending: dict[str, int] = {}  # sha256 hex -> announced size
        self._seq = itertools.count(1)
        self.requests: list[tuple[str, str]] = []
        self.unknown_requests: list[tuple[str, str]] = []
        self.write_calls: list[tuple[str, str, bool]] = []  # (method, path, had Authorization)
        self.errors: list[tuple[str, str, int, str]] = []  # (method, path, status, message)
        # One dict per request: method, path, query, status, auth (bool), range (Range header or None).
        self.request_log: list[dict[str, Any]] = []
        self.fault_log: list[tuple[str, str, Fault]] = []
        self._faults: list[_FaultRule] = []
        self._port = port
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # ---- lifecycle -------------------------------------------------------------------
    def start(self) -> LocalHub:
        if self._server is not None:
            return self
        hub = self

        class Handler(_Handler):
            pass

        Handler.hub = hub
        server = ThreadingHTTPServer(("127.0.0.1", self._port), Handler)
        server.daemon_threads = True
        self._server = server
        self._thread = threading.Thread(target=server.serve_forever, name="LocalHub", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is None:
            return
        self._server.shutdown()
        self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._server = None
        self._thread = None

    def __enter__(self) -> LocalHub:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def port(self) -> int:
        if self._server is None:
            raise RuntimeError("LocalHub is not running")
        return self._server.server_address[1]

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def token(self) -> str:
        return FAKE_TOKEN

    # ---- client environment ----------------------------------------------------------
    def client_env(self, tmp_path: str | os.PathLike) -> dict[str, str]:
        """os.environ plus what a client subprocess needs to talk only to this hub.

        Fresh HF_HOME / HF_HUB_CACHE / HF_DATASETS_CACHE under ``tmp_path``; offline
        switches, proxies and stray token/cache variables are removed; and the network guard
        (``tests/network_guard.py``), whose refusals :meth:`blocked_connections` lists.
        """
        base = Path(tmp_path) / "localhub-client"
        home = base / "hf_home"
        env = dict(os.environ)
        for name in (
            "HF_HUB_OFFLINE",
            "TRANSFORMERS_OFFLINE",
            "HF_DATASETS_OFFLINE",
            "HUGGINGFACE_HUB_CACHE",
            "HUGGINGFACE_ASSETS_CACHE",
            "HF_ASSETS_CACHE",
            "HF_TOKEN_PATH",
            "HF_STORED_TOKENS_PATH",
            "HUGGING_FACE_HUB_TOKEN",
            "HF_HUB_ENABLE_HF_TRANSFER",
            "HF_XET_CACHE",
            "HF_MODULES_CACHE",
            "HF_DATASETS_DOWNLOADED_DATASETS_PATH",
            "HF_DATASETS_EXTRACTED_DATASETS_PATH",
            "HUGGINGFACE_CO_STAGING",
            "HF_HUB_DISABLE_IMPLICIT_TOKEN",
            "HTTP_PROXY",
            "HTTPS_PROXY",
            "ALL_PROXY",
            "http_proxy",
            "https_proxy",
            "all_proxy",
        ):
            env.pop(name, None)
        env.update(
            {
                "HF_ENDPOINT": self.endpoint,
                "HF_TOKEN": FAKE_TOKEN,
                "HF_HUB_DISABLE_XET": "1",
                "HF_HOME": str(home),
                "HF_HUB_CACHE": str(home / "hub"),
                "HF_DATASETS_CACHE": str(base / "datasets_cache"),
                "HF_HUB_DISABLE_TELEMETRY": "1",
                "HF_HUB_DISABLE_UPDATE_CHECK": "1",
                "HF_HUB_DISABLE_PROGRESS_BARS": "1",
                "HF_DATASETS_DISABLE_PROGRESS_BARS": "1",
                "HF_HUB_DISABLE_SYMLINKS_WARNING": "1",
                "HF_HUB_DISABLE_EXPERIMENTAL_WARNING": "1",
                # datasets HEADs an S3 bucket to count downloads unless this is off.
                "HF_UPDATE_DOWNLOAD_COUNTS": "0",
                "NO_PROXY": "127.0.0.1,localhost",
                "no_proxy": "127.0.0.1,localhost",
            }
        )
        return guard(env, base)

    @staticmethod
    def blocked_connections(tmp_path: str | os.PathLike) -> list[str]:
        """Hosts the network guard of ``client_env(tmp_path)`` refused (empty if none)."""
        return blocked(Path(tmp_path) / "localhub-client")

    # ---- test helpers ----------------------------------------------------------------
    def create_repo(
        self, repo_id: str, repo_type: str = "dataset", private: bool = False, exist_ok: bool = True
    ) -> str:
        """Create a repo (with the Hub's initial ``.gitattributes`` commit); returns its URL."""
        with self._lock:
            key = (repo_type, repo_id)
            if key in self._repos:
                if not exist_ok:
                    raise ValueError(f"{repo_type} repo {repo_id} exists")
            else:
                self._create_repo(key, private)
            return f"{self.endpoint}/{self._repos[key].url_path}"

    def seed(
        self,
        repo_id: str,
        files: dict[str, bytes],
        repo_type: str = "dataset",
        branch: str = DEFAULT_BRANCH,
        message: str = "seed",
        delete: Iterable[str] = (),
    ) -> str:
        """Commit ``files`` (and delete ``delete`` paths) on ``branch``; creates repo/branch if needed."""
        with self._lock:
            key = (repo_type, repo_id)
            if key not in self._repos:
                self._create_repo(key, private=False)
            repo = self._repos[key]
            if branch not in repo.branches:
                repo.branches[branch] = repo.branches[DEFAULT_BRANCH]
            parent = repo.commits[repo.branches[branch]]
            snapshot = dict(parent.files)
            lfs = set(parent.lfs)
            for path in delete:
                snapshot.pop(path, None)
                lfs.discard(path)
            for path, data in files.items():
                data = bytes(data)
                snapshot[path] = data
                lfs.discard(path)
                if data and is_lfs_candidate(path, len(data), data[:512]):
                    lfs.add(path)
                    self._lfs[hashlib.sha256(data).hexdigest()] = data
            commit = self._new_commit(repo, parent.sha, message, "", snapshot, lfs)
            repo.branches[branch] = commit.sha
            return commit.sha

    def head(self, repo_id: str, branch: str = DEFAULT_BRANCH, repo_type: str = "dataset") -> str:
        with self._lock:
            return self._resolve(self._get_repo((repo_type, repo_id)), branch).sha

    def files(self, repo_id: str, revision: str = DEFAULT_BRANCH, repo_type: str = "dataset") -> dict[str, bytes]:
        with self._lock:
            return dict(self._resolve(self._get_repo((repo_type, repo_id)), revision).files)

    def lfs_paths(self, repo_id: str, revision: str = DEFAULT_BRANCH, repo_type: str = "dataset") -> set[str]:
        with self._lock:
            return set(self._resolve(self._get_repo((repo_type, repo_id)), revision).lfs)

    def commit_log(
        self, repo_id: str, branch: str = DEFAULT_BRANCH, repo_type: str = "dataset"
    ) -> list[tuple[str, str]]:
        """(sha, message) from the head of ``branch`` (any revision) back to the first commit."""
        with self._lock:
            repo = self._get_repo((repo_type, repo_id))
            out = []
            commit: Commit | None = self._resolve(repo, branch)
            while commit is not None:
                out.append((commit.sha, commit.message))
                commit = repo.commits.get(commit.parent) if commit.parent else None
            return out

    def refs(self, repo_id: str, repo_type: str = "dataset") -> dict[str, dict[str, str]]:
        """``{"branches": {name: sha}, "tags": {name: sha}, "pull_requests": {"refs/pr/N": sha}}``."""
        with self._lock:
            repo = self._get_repo((repo_type, repo_id))
            return {
                "branches": dict(repo.branches),
                "tags": dict(repo.tags),
                "pull_requests": {f"refs/pr/{n}": sha for n, sha in repo.prs.items()},
            }

    def repo_exists(self, repo_id: str, repo_type: str = "dataset") -> bool:
        with self._lock:
            return (repo_type, repo_id) in self._repos

    def set_private(self, repo_id: str, private: bool = True, repo_type: str = "dataset") -> None:
        with self._lock:
            self._get_repo((repo_type, repo_id)).private = private

    def requests_matching(self, pattern: str, method: str | None = None) -> list[tuple[str, str]]:
        """Recorded requests whose path matches the regex ``pattern`` (and ``method``)."""
        rx = re.compile(pattern)
        with self._lock:
            return [(m, p) for m, p in self.requests if rx.search(p) and (method is None or m == method)]

    def clear_log(self) -> None:
        with self._lock:
            self.requests.clear()
            self.unknown_requests.clear()
            self.write_calls.clear()
            self.errors.clear()
            self.request_log.clear()
            self.fault_log.clear()

    # ---- fault injection -------------------------------------------------------------
    def inject_fault(self, method: str | None, path_pattern: str, fault: Fault, times: int | None = None) -> None:
        """Fail the next ``times`` requests (None: every one) whose method is ``method`` (None: any)
        and whose raw path matches the regex ``path_pattern``.

        ``fault`` is an HTTP status (500, 412, ...) answered, with a JSON error body, instead of
        what the server would have done (nothing is changed), or ``"drop"``: the connection is
        closed halfway through reading the request body, with no answer.  Each faulted request
        is recorded in ``fault_log``.  Rules are tried in the order they were added.
        """
        if fault != "drop" and not (isinstance(fault, int) and 400 <= fault <= 599):
            raise ValueError(f"fault must be an HTTP error status or 'drop', not {fault!r}")
        if times is not None and times < 1:
            raise ValueError(f"times must be at least 1 (or None), not {times}")
        with self._lock:
            self._faults.append(_FaultRule(method, re.compile(path_pattern), fault, times))

    def clear_faults(self) -> None:
        """Remove every injected fault (``fault_log`` is kept)."""
        with self._lock:
            self._faults.clear()

    def _take_fault(self, method: str, path: str) -> Fault | None:
        """The fault for this request, if a rule matches (counting it down), else None."""
        with self._lock:
            for rule in self._faults:
                if (rule.method is None or rule.method == method) and rule.pattern.search(path):
                    if rule.times is not None:
                        rule.times -= 1
                        if rule.times == 0:
                            self._faults.remove(rule)
                    self.fault_log.append((method, path, rule.fault))
                    return rule.fault
        return None

    # ---- internals (call with the lock held) -------------------------------------------
    def _get_repo(self, key: Key) -> Repo:
        repo = self._repos.get(key)
        if repo is None:
            raise _repo_not_found(key)
        return repo

    def _create_repo(self, key: Key, private: bool) -> Repo:
        repo = Repo(repo_type=key[0], repo_id=key[1], private=private, created_at=time.time())
        self._repos[key] = repo
        first = self._new_commit(repo, None, "initial commit", "", {".gitattributes": GITATTRIBUTES}, set())
        repo.branches[DEFAULT_BRANCH] = first.sha
        return repo

    def _new_commit(
        self,
        repo: Repo,
        parent: str | None,
        message: str,
        description: str,
        files: dict[str, bytes],
        lfs: Iterable[str],
    ) -> Commit:
        lfs = frozenset(p for p in lfs if p in files)
        h = hashlib.sha1()
        for part in (repo.repo_type, repo.repo_id, parent or "", message, description, str(next(self._seq))):
            h.update(part.encode() + b"\0")
        for path in sorted(files):
            h.update(f"{path}\0{self._entry_oid(files[path], path in lfs)}\n".encode())
        commit = Commit(h.hexdigest(), parent, message, description, files, lfs, time.time())
        repo.commits[commit.sha] = commit
        return commit

    @staticmethod
    def _entry_oid(data: bytes, is_lfs: bool) -> str:
        return git_blob_oid(lfs_pointer(data) if is_lfs else data)

    def _resolve(self, repo: Repo, rev: str) -> Commit:
        sha = None
        if rev in repo.branches:
            sha = repo.branches[rev]
        elif rev in repo.tags:
            sha = repo.tags[rev]
        elif rev.startswith("refs/heads/") and rev[11:] in repo.branches:
            sha = repo.branches[rev[11:]]
        elif rev.startswith("refs/tags/") and rev[10:] in repo.tags:
            sha = repo.tags[rev[10:]]
        elif (m := _PR_REF.match(rev)) and int(m.group(1)) in repo.prs:
            sha = repo.prs[int(m.group(1))]
        elif rev in repo.commits:
            sha = rev
        elif _HEX_SHORT.match(rev):
            matches = [s for s in repo.commits if s.startswith(rev)]
            if len(matches) == 1:
                sha = matches[0]
        if sha is None:
            raise _revision_not_found(rev)
        return repo.commits[sha]

    def _repo_for_read(self, key: Key, authed: bool) -> Repo:
        repo = self._get_repo(key)
        if repo.private and not authed:
            raise HubError(401, "Repository not found", "RepoNotFound")
        return repo

    def _file_entry(self, repo: Repo, commit: Commit, path: str, expand: bool) -> dict:
        data = commit.files[path]
        is_lfs = path in commit.lfs
        entry: dict[str, Any] = {
            "type": "file",
            "oid": self._entry_oid(data, is_lfs),
            "size": len(data),
            "path": path,
        }
        if is_lfs:
            entry["lfs"] = {
                "oid": hashlib.sha256(data).hexdigest(),
                "size": len(data),
                "pointerSize": len(lfs_pointer(data)),
            }
        if expand:
            entry["lastCommit"] = self._last_commit(repo, commit, lambda c: c.files.get(path))
            entry["securityFileStatus"] = {
                "status": "safe",
                "avScan": {"status": "safe"},
                "pickleImportScan": {"status": "unscanned", "imports": []},
            }
        return entry

    def _dir_entry(self, repo: Repo, commit: Commit, path: str, expand: bool) -> dict:
        prefix = path + "/"
        children = sorted(
            (p, self._entry_oid(d, p in commit.lfs)) for p, d in commit.files.items() if p.startswith(prefix)
        )
        oid = hashlib.sha1(json.dumps(children).encode()).hexdigest()
        entry: dict[str, Any] = {"type": "directory", "oid": oid, "size": 0, "path": path}
        if expand:
            entry["lastCommit"] = self._last_commit(
                repo, commit, lambda c: sorted((p, d) for p, d in c.files.items() if p.startswith(prefix)) or None
            )
        return entry

    @staticmethod
    def _last_commit(repo: Repo, commit: Commit, view) -> dict:
        current = view(commit)
        last = commit
        while last.parent is not None:
            parent = repo.commits[last.parent]
            if view(parent) != current:
                break
            last = parent
        return {"id": last.sha, "title": last.message, "date": _iso(last.date)}

    @staticmethod
    def _dirs(files: Iterable[str]) -> set[str]:
        out = set()
        for path in files:
            parts = path.split("/")[:-1]
            for i in range(1, len(parts) + 1):
                out.add("/".join(parts[:i]))
        return out


# --------------------------------------------------------------------------------------
# HTTP layer
# --------------------------------------------------------------------------------------
class _Request:
    def __init__(self, method: str, target: str, headers, body: bytes):
        parts = urlsplit(target)
        self.method = method
        self.raw_path = parts.path
        self.query = parse_qs(parts.query, keep_blank_values=True)
        self.segments = [unquote(s) for s in parts.path.split("/")[1:]]
        self.headers = headers
        self.body = body
        self.authed = bool(headers.get("Authorization"))

    def q(self, name: str, default: str | None = None) -> str | None:
        values = self.query.get(name)
        return values[0] if values else default

    def json(self) -> Any:
        if not self.body:
            return {}
        try:
            return json.loads(self.body)
        except ValueError as err:
            raise HubError(400, f"Invalid JSON body: {err}") from err


class _Handler(BaseHTTPRequestHandler):
    hub: LocalHub
    protocol_version = "HTTP/1.1"
    server_version = "LocalHub/1.0"

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_GET(self) -> None:
        self._dispatch("GET")

    def do_HEAD(self) -> None:
        self._dispatch("HEAD")

    def do_POST(self) -> None:
        self._dispatch("POST")

    def do_PUT(self) -> None:
        self._dispatch("PUT")

    def do_DELETE(self) -> None:
        self._dispatch("DELETE")

    def _read_body(self) -> bytes:
        if "chunked" in (self.headers.get("Transfer-Encoding") or "").lower():
            chunks = []
            while True:
                line = self.rfile.readline().strip()
                size = int(line.split(b";")[0] or b"0", 16)
                if size == 0:
                    while self.rfile.readline().strip():  # trailers
                        pass
                    break
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
            return b"".join(chunks)
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def _dispatch(self, method: str) -> None:
        hub = self.hub
        fault = hub._take_fault(method, urlsplit(self.path).path)
        if fault == "drop":
            self._drop(method)
            return
        try:
            body = self._read_body()
        except (ValueError, OSError):
            self.close_connection = True
            return
        req = _Request(method, self.path, self.headers, body)
        with hub._lock:
            hub.requests.append((method, req.raw_path))
            if method in ("POST", "PUT", "DELETE"):
                hub.write_calls.append((method, req.raw_path, req.authed))
        try:
            if fault is not None:
                raise HubError(int(fault), f"LocalHub injected fault: {fault}")
            resp = _route(hub, req)
        except HubError as err:
            headers = dict(err.headers)
            if err.code:
                headers["X-Error-Code"] = err.code
            headers["X-Error-Message"] = err.message.encode("ascii", "replace").decode()
            resp = _json_response(err.body or {"error": err.message}, err.status, headers)
            with hub._lock:
                hub.errors.append((method, req.raw_path, err.status, err.message))
        except Exception as err:  # noqa: BLE001 - any server bug becomes a 500 the client reports
            resp = _json_response({"error": f"LocalHub internal error: {err!r}"}, 500)
            with hub._lock:
                hub.errors.append((method, req.raw_path, 500, repr(err)))
        if resp is None:
            with hub._lock:
                hub.unknown_requests.append((method, self.path))
            resp = _json_response({"error": f"LocalHub does not implement {method} {req.raw_path}"}, 501)
        with hub._lock:
            hub.request_log.append(
                {
                    "method": method,
                    "path": req.raw_path,
                    "query": urlsplit(self.path).query,
                    "status": resp.status,
                    "auth": req.authed,
                    "range": self.headers.get("Range"),
                }
            )
        self._send(method, resp)

    def _drop(self, method: str) -> None:
        """Read half of the request body, then close the connection without an answer."""
        path = urlsplit(self.path).path
        with self.hub._lock:
            self.hub.requests.append((method, path))
            if method in ("POST", "PUT", "DELETE"):
                self.hub.write_calls.append((method, path, bool(self.headers.get("Authorization"))))
        try:
            self.rfile.read(int(self.headers.get("Content-Length") or 0) // 2)
        except (ValueError, OSError):
            pass
        self.close_connection = True

    def _send(self, method: str, resp: _Response) -> None:
        self.send_response(resp.status)
        headers = {"Content-Type": "application/octet-stream", **resp.headers}
        headers.setdefault("Content-Length", str(len(resp.body)))
        for name, value in headers.items():
            self.send_header(name, value)
        self.end_headers()
        if method != "HEAD" and resp.body:
            self.wfile.write(resp.body)


# --------------------------------------------------------------------------------------
# Routing
# --------------------------------------------------------------------------------------
def _route(hub: LocalHub, req: _Request) -> _Response | None:
    seg, m = req.segments, req.method
    if seg and seg[-1] == "" and len(seg) > 1:
        seg = seg[:-1]
    if not seg:
        return None
    if seg[0] == "api":
        return _route_api(hub, req, seg[1:])
    if seg[0] == "__lfs" and len(seg) == 2 and m == "PUT":
        return _lfs_put(hub, req, seg[1])
    # /{prefix}{ns}/{name}.git/info/lfs/objects/batch  and  /{prefix}{ns}/{name}/resolve/{rev}/{path}
    repo_type = "model"
    rest = seg
    if seg[0] in REPO_TYPES and len(seg) > 3:
        repo_type, rest = REPO_TYPES[seg[0]], seg[1:]
    if len(rest) >= 6 and rest[1].endswith(".git") and rest[2:] == ["info", "lfs", "objects", "batch"] and m == "POST":
        return _lfs_batch(hub, req, (repo_type, f"{rest[0]}/{rest[1][:-4]}"))
    if len(rest) >= 5 and rest[2] == "resolve" and m in ("GET", "HEAD"):
        return _resolve_file(hub, req, (repo_type, f"{rest[0]}/{rest[1]}"), rest[3], "/".join(rest[4:]))
    return None


def _route_api(hub: LocalHub, req: _Request, seg: list[str]) -> _Response | None:
    m = req.method
    if seg == ["repos", "create"] and m == "POST":
        return _create_repo(hub, req)
    if seg == ["repos", "delete"] and m == "DELETE":
        return _delete_repo(hub, req)
    if seg == ["validate-yaml"] and m == "POST":
        return _json_response({"errors": [], "warnings": []})
    if seg == ["whoami-v2"] and m == "GET":
        return _json_response(
            {
                "type": "user",
                "id": "0" * 24,
                "name": FAKE_USER,
                "fullname": "Local User",
                "orgs": [],
                "auth": {"type": "access_token", "accessToken": {"displayName": "local", "role": "write"}},
            }
        )
    if len(seg) < 3 or seg[0] not in REPO_TYPES:
        return None
    key: Key = (REPO_TYPES[seg[0]], f"{seg[1]}/{seg[2]}")
    action, args = (seg[3] if len(seg) > 3 else None), seg[4:]
    if action is None and m == "GET":
        return _repo_info(hub, req, key, None)
    if action == "revision" and args and m == "GET":
        return _repo_info(hub, req, key, "/".join(args))
    if action == "preupload" and args and m == "POST":
        return _preupload(hub, req, key, "/".join(args))
    if action == "commit" and args and m == "POST":
        return _commit(hub, req, key, "/".join(args))
    if action == "tree" and args and m == "GET":
        return _tree(hub, req, key, args[0], "/".join(args[1:]))
    if action == "paths-info" and args and m == "POST":
        return _paths_info(hub, req, key, "/".join(args))
    if action == "commits" and args and m == "GET":
        return _list_commits(hub, req, key, "/".join(args))
    if action == "refs" and not args and m == "GET":
        return _list_refs(hub, req, key)
    if action == "branch" and args and m in ("POST", "DELETE"):
        return _branch(hub, req, key, "/".join(args))
    if action == "tag" and args and m in ("POST", "DELETE"):
        return _tag(hub, req, key, "/".join(args))
    return None


# ---- repos ---------------------------------------------------------------------------
def _create_repo(hub: LocalHub, req: _Request) -> _Response:
    body = req.json()
    name = body.get("name")
    if not name or "/" in name:
        raise HubError(400, "Invalid repo name")
    namespace = body.get("organization") or FAKE_USER
    repo_type = body.get("type") or "model"
    if repo_type not in URL_PREFIX:
        raise HubError(400, f"Invalid repo type {repo_type}")
    private = body.get("visibility", "private" if body.get("private") else "public") == "private"
    key = (repo_type, f"{namespace}/{name}")
    with hub._lock:
        url = f"{hub.endpoint}/{URL_PREFIX[repo_type]}{key[1]}"
        if key in hub._repos:
            return _json_response({"error": "You already created this dataset repo", "url": url}, 409)
        hub._create_repo(key, private)
    return _json_response({"url": url, "name": key[1], "id": key[1]})


def _delete_repo(hub: LocalHub, req: _Request) -> _Response:
    body = req.json()
    key = (body.get("type") or "model", f"{body.get('organization') or FAKE_USER}/{body.get('name')}")
    with hub._lock:
        if key not in hub._repos:
            raise _repo_not_found(key)
        del hub._repos[key]
    return _json_response({})


def _repo_info(hub: LocalHub, req: _Request, key: Key, revision: str | None) -> _Response:
    with hub._lock:
        repo = hub._repo_for_read(key, req.authed)
        commit = hub._resolve(repo, revision or DEFAULT_BRANCH)
        blobs = _truthy(req.q("blobs", "false"))
        siblings = []
        for path in sorted(commit.files):
            sib: dict[str, Any] = {"rfilename": path}
            if blobs:
                entry = hub._file_entry(repo, commit, path, expand=False)
                sib.update(size=entry["size"], blobId=entry["oid"])
                if "lfs" in entry:
                    sib["lfs"] = {
                        "sha256": entry["lfs"]["oid"],
                        "size": entry["lfs"]["size"],
                        "pointerSize": entry["lfs"]["pointerSize"],
                    }
            siblings.append(sib)
        info: dict[str, Any] = {
            "_id": hashlib.sha1(f"{key}".encode()).hexdigest()[:24],
            "id": repo.repo_id,
            "author": repo.repo_id.split("/")[0],
            "sha": commit.sha,
            "lastModified": _iso(commit.date),
            "createdAt": _iso(repo.created_at),
            "private": repo.private,
            "gated": False,
            "disabled": False,
            "downloads": 0,
            "likes": 0,
            "tags": [],
            "siblings": siblings,
            "usedStorage": sum(len(d) for d in commit.files.values()),
        }
        if repo.repo_type == "model":
            info["modelId"] = repo.repo_id
        readme = commit.files.get("README.md")
        card = parse_front_matter(readme) if readme is not None else None
        if card is not None:
            info["cardData"] = card
    expand = req.query.get("expand") or req.query.get("expand[]")
    if expand:
        info = {k: v for k, v in info.items() if k in ("_id", "id") or k in expand}
    return _json_response(info)


# ---- uploads -------------------------------------------------------------------------
def _preupload(hub: LocalHub, req: _Request, key: Key, revision: str) -> _Response:
    body = req.json()
    with hub._lock:
        repo = hub._get_repo(key)
        try:
            commit = hub._resolve(repo, revision)
        except HubError:
            if not _truthy(req.q("create_pr", "0")):
                raise
            commit = hub._resolve(repo, DEFAULT_BRANCH)
        out = []
        for item in body.get("files", []):
            path = item["path"]
            sample = base64.b64decode(item.get("sample") or "")
            lfs = is_lfs_candidate(path, int(item.get("size", 0)), sample)
            entry: dict[str, Any] = {"path": path, "uploadMode": "lfs" if lfs else "regular", "shouldIgnore": False}
            if path in commit.files:
                data = commit.files[path]
                entry["oid"] = hashlib.sha256(data).hexdigest() if path in commit.lfs else git_blob_oid(data)
            out.append(entry)
    return _json_response({"files": out, "commitOid": commit.sha})


def _lfs_batch(hub: LocalHub, req: _Request, key: Key) -> _Response | None:
    body = req.json()
    if body.get("operation") != "upload":
        return None  # git-lfs downloads are not implemented: answered 501 and recorded
    objects = []
    with hub._lock:
        hub._get_repo(key)
        for obj in body.get("objects", []):
            oid, size = str(obj.get("oid")), int(obj.get("size", -1))
            item: dict[str, Any] = {"oid": oid, "size": size, "authenticated": True}
            if not re.fullmatch(r"[0-9a-f]{64}", oid) or size < 0:
                item["error"] = {"code": 422, "message": "Invalid oid or size"}
            elif oid in hub._lfs and len(hub._lfs[oid]) == size:
                pass  # already stored: no actions
            else:
                hub._lfs_pending[oid] = size
                # Signed like the Hub's S3 upload URLs: the signature is a secret a push never shows.
                href = f"{hub.endpoint}/__lfs/{oid}?X-Amz-Signature={LFS_SIGNATURE}"
                item["actions"] = {"upload": {"href": href, "expires_in": 86400}}
            objects.append(item)
    return _Response(
        200,
        json.dumps({"transfer": "basic", "objects": objects, "hash_algo": "sha256"}).encode(),
        {"Content-Type": "application/vnd.git-lfs+json"},
    )


def _lfs_put(hub: LocalHub, req: _Request, oid: str) -> _Response:
    data = req.body
    actual = hashlib.sha256(data).hexdigest()
    with hub._lock:
        expected_size = hub._lfs_pending.get(oid)
        if expected_size is None and oid not in hub._lfs:
            raise HubError(404, f"No LFS upload was announced for {oid}")
        if actual != oid:
            raise HubError(400, f"sha256 mismatch: expected {oid}, got {actual}")
        if expected_size is not None and expected_size != len(data):
            raise HubError(400, f"size mismatch: expected {expected_size}, got {len(data)}")
        hub._lfs[oid] = data
        hub._lfs_pending.pop(oid, None)
    return _Response(200, b"", {})


def _commit(hub: LocalHub, req: _Request, key: Key, revision: str) -> _Response:
    lines = [json.loads(line) for line in req.body.splitlines() if line.strip()]
    if not lines or lines[0].get("key") != "header":
        raise HubError(400, "Commit payload must start with a header line")
    header = lines[0].get("value") or {}
    summary = header.get("summary") or ""
    if not summary:
        raise HubError(400, "Commit summary is required")
    parent_commit = header.get("parentCommit")
    create_pr = _truthy(req.q("create_pr", "0"))
    with hub._lock:
        repo = hub._get_repo(key)
        pr_num: int | None = None
        if create_pr:
            if revision not in repo.branches:
                raise _revision_not_found(revision)
            base = hub._resolve(repo, parent_commit) if parent_commit else repo.commits[repo.branches[revision]]
        else:
            match = _PR_REF.match(revision)
            if match and int(match.group(1)) in repo.prs:
                pr_num = int(match.group(1))
                base = repo.commits[repo.prs[pr_num]]
            elif revision in repo.branches:
                base = repo.commits[repo.branches[revision]]
            else:
                raise _revision_not_found(revision)
            if parent_commit and not base.sha.startswith(parent_commit):
                raise HubError(
                    412,
                    "A commit has happened since. Please refresh and try again.",
                    headers={"X-Repo-Commit": base.sha},
                )
        files = dict(base.files)
        lfs = set(base.lfs)
        for line in lines[1:]:
            kind, value = line.get("key"), line.get("value") or {}
            path = str(value.get("path", "")).strip("/")
            if not path and kind in ("file", "lfsFile", "deletedFile"):
                raise HubError(400, f"Missing path in {kind} line")
            if kind == "file":
                if value.get("encoding", "base64") == "base64":
                    data = base64.b64decode(value.get("content", ""))
                else:
                    data = str(value.get("content", "")).encode()
                files[path] = data
                lfs.discard(path)
            elif kind == "lfsFile":
                oid = value.get("oid")
                if value.get("algo", "sha256") != "sha256" or oid not in hub._lfs:
                    raise HubError(422, f"LFS object {oid} for {path} was not uploaded")
                data = hub._lfs[oid]
                if "size" in value and int(value["size"]) != len(data):
                    raise HubError(422, f"LFS object {oid} has size {len(data)}, not {value['size']}")
                files[path] = data
                lfs.add(path)
            elif kind == "deletedFile":
                if path not in files:
                    raise HubError(404, f"A file with this name doesn't exist: {path}", "EntryNotFound")
                del files[path]
                lfs.discard(path)
            elif kind == "deletedFolder":
                prefix = path + "/" if path else ""
                doomed = [p for p in files if p.startswith(prefix)]
                if not doomed:
                    raise HubError(404, f"A folder with this name doesn't exist: {path}", "EntryNotFound")
                for p in doomed:
                    del files[p]
                    lfs.discard(p)
            else:
                raise HubError(400, f"Unknown commit operation {kind!r}")
        commit = hub._new_commit(repo, base.sha, summary, header.get("description") or "", files, lfs)
        base_url = f"{hub.endpoint}/{repo.url_path}"
        answer: dict[str, Any] = {
            "success": True,
            "commitOid": commit.sha,
            "commitUrl": f"{base_url}/commit/{commit.sha}",
            "hookOutput": "",
        }
        if create_pr:
            pr_num = repo.next_discussion
            repo.next_discussion += 1
            repo.prs[pr_num] = commit.sha
            answer["pullRequestUrl"] = f"{base_url}/discussions/{pr_num}"
        elif pr_num is not None:
            repo.prs[pr_num] = commit.sha
            answer["pullRequestUrl"] = f"{base_url}/discussions/{pr_num}"
        else:
            repo.branches[revision] = commit.sha
    return _json_response(answer)


# ---- reads ---------------------------------------------------------------------------
def _tree(hub: LocalHub, req: _Request, key: Key, revision: str, path: str) -> _Response:
    recursive = _truthy(req.q("recursive", "false"))
    expand = _truthy(req.q("expand", "false"))
    path = path.strip("/")
    with hub._lock:
        repo = hub._repo_for_read(key, req.authed)
        commit = hub._resolve(repo, revision)
        dirs = hub._dirs(commit.files)
        if path and path not in dirs:
            raise HubError(404, f"{path} does not exist on {revision}", "EntryNotFound", {"X-Repo-Commit": commit.sha})
        prefix = path + "/" if path else ""
        depth = prefix.count("/")
        entries = []
        for d in sorted(dirs):
            if d.startswith(prefix) and (recursive or d.count("/") == depth):
                entries.append(hub._dir_entry(repo, commit, d, expand))
        for p in sorted(commit.files):
            if p.startswith(prefix) and (recursive or p.count("/") == depth):
                entries.append(hub._file_entry(repo, commit, p, expand))
        if recursive:
            entries.sort(key=lambda e: e["path"])
    return _json_response(entries, headers={"X-Repo-Commit": commit.sha})


def _paths_info(hub: LocalHub, req: _Request, key: Key, revision: str) -> _Response:
    ctype = (req.headers.get("Content-Type") or "").lower()
    if "json" in ctype:
        body = req.json()
        paths, expand = body.get("paths", []), _truthy(body.get("expand", False))
    else:
        form = parse_qs(req.body.decode(), keep_blank_values=True)
        paths, expand = form.get("paths", []), _truthy((form.get("expand") or ["false"])[0])
    if isinstance(paths, str):
        paths = [paths]
    with hub._lock:
        repo = hub._repo_for_read(key, req.authed)
        commit = hub._resolve(repo, revision)
        dirs = hub._dirs(commit.files)
        out = []
        for path in paths:
            path = path.strip("/")
            if path in commit.files:
                out.append(hub._file_entry(repo, commit, path, expand))
            elif path in dirs:
                out.append(hub._dir_entry(repo, commit, path, expand))
    return _json_response(out, headers={"X-Repo-Commit": commit.sha})


def _list_commits(hub: LocalHub, req: _Request, key: Key, revision: str) -> _Response:
    with hub._lock:
        repo = hub._repo_for_read(key, req.authed)
        commit: Commit | None = hub._resolve(repo, revision)
        out = []
        while commit is not None:
            title = commit.message
            message = f"{title}\n\n{commit.description}" if commit.description else title
            out.append(
                {
                    "id": commit.sha,
                    "title": title,
                    "message": message,
                    "date": _iso(commit.date),
                    "authors": [{"user": FAKE_USER}],
                    "parents": [commit.parent] if commit.parent else [],
                }
            )
            commit = repo.commits.get(commit.parent) if commit.parent else None
    return _json_response(out)


def _list_refs(hub: LocalHub, req: _Request, key: Key) -> _Response:
    with hub._lock:
        repo = hub._repo_for_read(key, req.authed)
        out: dict[str, Any] = {
            "branches": [{"name": n, "ref": f"refs/heads/{n}", "targetCommit": s} for n, s in repo.branches.items()],
            "tags": [{"name": n, "ref": f"refs/tags/{n}", "targetCommit": s} for n, s in repo.tags.items()],
            "converts": [],
        }
        if _truthy(req.q("include_prs", "0")):
            out["pullRequests"] = [
                {"name": f"refs/pr/{n}", "ref": f"refs/pr/{n}", "targetCommit": s} for n, s in sorted(repo.prs.items())
            ]
    return _json_response(out)


def _branch(hub: LocalHub, req: _Request, key: Key, branch: str) -> _Response:
    with hub._lock:
        repo = hub._get_repo(key)
        if req.method == "DELETE":
            if branch not in repo.branches:
                raise _revision_not_found(branch)
            if branch == DEFAULT_BRANCH:
                raise HubError(403, "Cannot delete the default branch")
            del repo.branches[branch]
            return _json_response({})
        if branch in repo.branches:
            raise HubError(409, f"Reference refs/heads/{branch} already exists")
        if branch.startswith("refs/") or not branch:
            raise HubError(400, f"Invalid branch name {branch}")
        start = req.json().get("startingPoint") or DEFAULT_BRANCH
        repo.branches[branch] = hub._resolve(repo, start).sha
    return _json_response({})


def _tag(hub: LocalHub, req: _Request, key: Key, arg: str) -> _Response:
    with hub._lock:
        repo = hub._get_repo(key)
        if req.method == "DELETE":
            if arg not in repo.tags:
                raise _revision_not_found(arg)
            del repo.tags[arg]
            return _json_response({})
        body = req.json()
        tag = body.get("tag")
        if not tag:
            raise HubError(400, "Missing tag name")
        if tag in repo.tags:
            raise HubError(409, f"Tag {tag} already exists")
        repo.tags[tag] = hub._resolve(repo, arg).sha
    return _json_response({})


def _resolve_file(hub: LocalHub, req: _Request, key: Key, revision: str, path: str) -> _Response:
    with hub._lock:
        repo = hub._repo_for_read(key, req.authed)
        commit = hub._resolve(repo, revision)
        if path not in commit.files:
            raise HubError(404, f"Entry not found: {path}", "EntryNotFound", {"X-Repo-Commit": commit.sha})
        data = commit.files[path]
        is_lfs = path in commit.lfs
    headers = {
        "X-Repo-Commit": commit.sha,
        "Accept-Ranges": "bytes",
        "Content-Type": "application/octet-stream",
        "Content-Disposition": f"inline; filename*=UTF-8''{quote(path.rsplit('/', 1)[-1])}",
    }
    if is_lfs:
        sha = hashlib.sha256(data).hexdigest()
        headers.update({"ETag": f'"{sha}"', "X-Linked-Etag": f'"{sha}"', "X-Linked-Size": str(len(data))})
    else:
        headers["ETag"] = f'"{git_blob_oid(data)}"'
    rng = req.headers.get("Range")
    if rng:
        span = _parse_range(rng, len(data))
        if span is None:
            headers["Content-Range"] = f"bytes */{len(data)}"
            return _Response(416, b"", headers)
        start, end = span
        headers["Content-Range"] = f"bytes {start}-{end}/{len(data)}"
        return _Response(206, data[start : end + 1], headers)
    return _Response(200, data, headers)


def _parse_range(header: str, size: int) -> tuple[int, int] | None:
    """First range of a ``bytes=`` header as inclusive (start, end); None if unsatisfiable."""
    match = re.fullmatch(r"\s*bytes\s*=\s*(\d*)\s*-\s*(\d*)\s*(,.*)?", header)
    if not match or (match.group(1) == "" and match.group(2) == ""):
        return None if size == 0 else (0, size - 1)
    first, last = match.group(1), match.group(2)
    if first == "":
        n = int(last)
        if n == 0 or size == 0:
            return None
        return max(0, size - n), size - 1
    start = int(first)
    end = min(int(last), size - 1) if last else size - 1
    if start >= size or end < start:
        return None
    return start, end
