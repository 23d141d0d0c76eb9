"""``python -m publish push --to hf`` against a LocalHub that fails: what a user is promised.

Every push runs the real command in a subprocess with the real huggingface_hub (2.4) against
``LocalHub``, whose ``inject_fault`` answers chosen requests with an HTTP error or drops the
connection halfway through the request body.  The promises: a push that fails says so in one
line (no traceback, no token), publishes nothing (the remote's files, commit log and refs are
as they were), and running ``push`` again once the fault is gone completes the publish.

How huggingface_hub 2.4 retries (paths under ``site-packages/huggingface_hub/``):

- ``http_backoff`` (``utils/_http.py`` ``_http_backoff_base``, lines 461-569) makes up to 6
  tries (``max_retries=5``), waiting 1, 2, 4, 8, 8 s (``time.sleep`` line 566), on the
  statuses 408, 429, 500, 502, 503, 504 and on ``TimeoutException``, ``NetworkError`` and
  ``RemoteProtocolError`` (a connection closed without an answer); a file body is rewound to
  its start before each try (lines 497 and 509).
- It is used by the preupload call (``_commit_api.py`` line 762), the LFS batch call
  (``lfs.py`` line 206) and each LFS PUT (``lfs.py`` line 367).
- The commit POST is sent once: ``create_commit`` (``hf_api.py`` line 5280) leaves
  ``_send_commit``'s ``retry_on_error=False``, so it is a plain ``get_session().post``
  (``_commit_api.py`` lines 1064-1067).
- A failed LFS upload is re-raised as ``RuntimeError("Error while uploading 'PATH' to the
  Hub.")`` (``_commit_api.py`` line 530), after the other uploads have finished.

The backoff waits 23 seconds before giving up, so the tests in which the client retries
replace the ``time`` module of ``huggingface_hub.utils._http`` by one whose ``sleep`` writes
each wait down instead of waiting (`NO_BACKOFF_WAIT`): the retries are the client's own,
only the waiting is skipped. The tests check that the client retried and that every retry's
wait was skipped (so the patch took hold), not how many tries or seconds huggingface_hub
chooses: those are its policy, and may change.

What should be published is derived from the built folder (its non-hidden files), never
listed here: the folder's layout may change.
"""

from __future__ import annotations

import hashlib
import json
import re
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from tests.conftest import PROJECT
from tests.hub_server import FAKE_TOKEN, LFS_SIGNATURE, LocalHub
from tests.test_hub_server import http
from tests.test_push_hub import LAUNCHER, built_folder, commit_posts, published, remote, seed_with, snapshot

# Test-side patch (run by LAUNCHER before the command): huggingface_hub's backoff writes its
# waits to a file, one a line, instead of sleeping them.
NO_BACKOFF_WAIT = """
import time
import huggingface_hub.utils._http as _http
class _NoWait:
    def __getattr__(self, name):
        return getattr(time, name)
    def sleep(self, seconds):
        with open({waits!r}, "a") as log:
            log.write(f"{{seconds}}\\n")
_http.time = _NoWait()
"""

# What huggingface_hub's logger writes to stderr while it retries (its warnings, not errors).
RETRY_NOTICE = re.compile(r"^(HTTP Error \d+ thrown while requesting |'.*' thrown while requesting |Retrying in )")


# --------------------------------------------------------------------------------------
# fixtures and helpers
# --------------------------------------------------------------------------------------
@pytest.fixture
def hub():
    """A fresh hub per test: its LFS store starts empty, so every push really uploads."""
    with LocalHub() as server:
        yield server
        assert server.unknown_requests == [], server.unknown_requests


@pytest.fixture(scope="module")
def builds(tmp_path_factory) -> dict[str, Path]:
    """new: 200 sample pairs; old: the same with another seed (same paths, other bytes)."""
    base = tmp_path_factory.mktemp("fault-builds")
    with LocalHub() as server, ThreadPoolExecutor(2) as pool:  # the hub only for its client environment
        new = pool.submit(built_folder, server, base, "new")
        old = pool.submit(built_folder, server, base, "old", "--seed", "7")
        return {"new": new.result(), "old": old.result()}


def attempt(hub: LocalHub, env_dir: Path, folder: Path, repo_id: str, patch: str | None = None):
    """Run the push command (through LAUNCHER with ``patch``); check it showed no token, wrote
    nothing into the folder and talked to nothing but the hub. A traceback is left to the caller."""
    before = snapshot(folder)
    argv = ["-m", "publish", "push", str(folder), "--repo-id", repo_id]
    if patch:
        argv = ["-c", LAUNCHER, patch, *argv[2:]]
    env_dir.mkdir(parents=True, exist_ok=True)
    done = subprocess.run(
        [sys.executable, *argv],
        env=hub.client_env(env_dir),
        cwd=PROJECT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert LocalHub.blocked_connections(env_dir) == []
    assert FAKE_TOKEN not in done.stdout + done.stderr
    assert snapshot(folder) == before
    return done


def push_ok(hub: LocalHub, env_dir: Path, folder: Path, repo_id: str, patch: str | None = None):
    """A push that must succeed."""
    done = attempt(hub, env_dir, folder, repo_id, patch)
    assert done.returncode == 0 and "Traceback" not in done.stderr, done.stderr[-3000:]
    return done


def the_error_line(done: subprocess.CompletedProcess) -> str:
    """The one ``error: ...`` line of a failed push: exit 1, no traceback, and nothing else on
    stderr but huggingface_hub's own retry notices."""
    assert done.returncode == 1, (done.stdout[-2000:], done.stderr[-3000:])
    assert "Traceback" not in done.stderr, done.stderr[-3000:]
    lines = [line for line in done.stderr.splitlines() if line.strip() and not RETRY_NOTICE.match(line)]
    assert len(lines) == 1 and lines[0].startswith("error: "), done.stderr[-3000:]
    assert done.stderr.rstrip().endswith(lines[0])
    return lines[0]


def state(hub: LocalHub, repo_id: str) -> tuple:
    """Everything a reader of the repo can see: files (with .gitattributes), commit log, refs."""
    return hub.files(repo_id), hub.commit_log(repo_id), hub.refs(repo_id)


def assert_completes(hub: LocalHub, env_dir: Path, folder: Path, repo_id: str, before: tuple) -> None:
    """Pushing again, with no fault left, publishes the folder in one commit on top of ``before``."""
    hub.clear_faults()
    push_ok(hub, env_dir, folder, repo_id)
    assert remote(hub, repo_id) == published(folder, repo_id)
    assert hub.commit_log(repo_id)[1:] == before[1]


def largest_lfs_upload(folder: Path) -> str:
    """The path LocalHub takes the PUT of the folder's largest parquet file on."""
    data = max((d for p, d in published(folder).items() if p.endswith(".parquet")), key=len)
    return f"^/__lfs/{hashlib.sha256(data).hexdigest()}$"


def waits(env_dir: Path) -> list[float]:
    log = env_dir / "backoff-waits"
    return [float(line) for line in log.read_text().split()] if log.exists() else []


def retried(hub: LocalHub, env_dir: Path, done: subprocess.CompletedProcess) -> bool:
    """Whether the client tried the failing request again after waiting (the wait skipped),
    and said so on stderr."""
    tries = len(hub.fault_log) + int(done.returncode == 0)  # the last try went through
    notices = any(RETRY_NOTICE.match(line) for line in done.stderr.splitlines())
    return tries > 1 and len(waits(env_dir)) == tries - 1 and notices


def no_wait(env_dir: Path) -> str:
    env_dir.mkdir(parents=True, exist_ok=True)
    return NO_BACKOFF_WAIT.format(waits=str(env_dir / "backoff-waits"))


COMMIT = r"/commit/"
PREUPLOAD = r"/preupload/"
LFS_BATCH = r"\.git/info/lfs/objects/batch$"


# --------------------------------------------------------------------------------------
# the fault injection itself
# --------------------------------------------------------------------------------------
def test_an_injected_fault_answers_the_next_matching_requests_instead_of_the_server_then_stops(hub):
    create = json.dumps({"name": "faulty", "organization": "local-org", "type": "dataset"}).encode()
    upload = "/__lfs/" + "0" * 64
    hub.inject_fault("POST", r"^/api/repos/create$", 503, times=2)
    hub.inject_fault("PUT", r"^/__lfs/", "drop")

    for _ in range(2):
        status, _, body = http(hub, "POST", "/api/repos/create", create)
        assert (status, json.loads(body)) == (503, {"error": "LocalHub injected fault: 503"})
        assert not hub.repo_exists("local-org/faulty")  # the real handler did not run
    assert http(hub, "POST", "/api/repos/create", create)[0] == 200  # the third one is not faulted
    assert http(hub, "GET", "/api/datasets/local-org/faulty")[0] == 200  # nor is any other request
    for _ in range(2):
        with pytest.raises(OSError):  # no answer at all
            http(hub, "PUT", upload, b"x" * 100_000)
    hub.clear_faults()
    assert http(hub, "PUT", upload, b"x")[0] == 404  # the real handler: no upload was announced
    assert hub.fault_log == [("POST", "/api/repos/create", 503)] * 2 + [("PUT", upload, "drop")] * 2


# --------------------------------------------------------------------------------------
# the commit itself fails: 500, or the branch moved (412)
# --------------------------------------------------------------------------------------
@pytest.mark.parametrize("existing", [False, True], ids=["first-push-to-empty-repo", "update-of-a-published-repo"])
def test_a_500_on_every_commit_fails_in_one_line_publishes_nothing_and_push_again_completes(
    hub, builds, tmp_path, existing
):
    repo = "local-org/commit-500"
    if existing:
        seed_with(hub, repo, builds["old"])
    else:
        hub.create_repo(repo)
    before = state(hub, repo)
    hub.inject_fault("POST", COMMIT, 500)

    done = attempt(hub, tmp_path / "1", builds["new"], repo)
    line = the_error_line(done)
    assert line.startswith(f"error: the Hugging Face Hub answered 500 for {repo}: LocalHub injected fault: 500")
    assert done.stderr.strip() == line  # the commit is not retried (_send_commit: retry_on_error=False)
    assert hub.fault_log == [("POST", f"/api/datasets/{repo}/commit/main", 500)]
    assert state(hub, repo) == before

    assert_completes(hub, tmp_path / "2", builds["new"], repo, before)


def test_a_500_on_the_commit_says_to_run_push_again(hub, builds, tmp_path):
    repo = "local-org/commit-500-advice"
    hub.create_repo(repo)
    hub.inject_fault("POST", COMMIT, 500)
    line = the_error_line(attempt(hub, tmp_path, builds["new"], repo))
    assert "run push again" in line, line


def test_a_concurrent_change_412_fails_in_one_line_saying_push_again_and_push_again_completes(hub, builds, tmp_path):
    repo = "local-org/commit-412"
    read = seed_with(hub, repo, builds["old"])
    before = state(hub, repo)
    hub.inject_fault("POST", COMMIT, 412)  # what the Hub answers when parentCommit is no longer the head

    done = attempt(hub, tmp_path / "1", builds["new"], repo)
    line = the_error_line(done)
    assert line == (
        f"error: the branch main of {repo} moved since it was read (at {read}): nothing was committed; run push again"
    )
    assert len(commit_posts(hub, repo)) == 1  # the client does not retry a refused commit
    assert state(hub, repo) == before

    assert_completes(hub, tmp_path / "2", builds["new"], repo, before)


def test_a_connection_dropped_while_sending_the_commit_fails_in_one_line_and_push_again_completes(
    hub, builds, tmp_path
):
    repo = "local-org/commit-dropped"
    seed_with(hub, repo, builds["old"])
    before = state(hub, repo)
    hub.inject_fault("POST", COMMIT, "drop", times=1)

    done = attempt(hub, tmp_path / "1", builds["new"], repo)
    line = the_error_line(done)  # the commit is sent once: a lost connection is not retried either
    assert line.startswith(f"error: could not reach the Hugging Face Hub at {hub.endpoint} for {repo}")
    assert line.endswith("and run push again")
    assert len(hub.fault_log) == 1 and len(commit_posts(hub, repo)) == 1
    assert state(hub, repo) == before

    assert_completes(hub, tmp_path / "2", builds["new"], repo, before)


# --------------------------------------------------------------------------------------
# the LFS upload of a shard fails
# --------------------------------------------------------------------------------------
def test_a_connection_dropped_once_during_an_lfs_upload_is_retried_and_the_push_succeeds(hub, builds, tmp_path):
    # The client retries, so the push succeeds: each LFS PUT goes through http_backoff (lfs.py
    # line 367), which retries a connection closed without an answer (RemoteProtocolError, or a
    # NetworkError if it was still writing; utils/_http.py lines 461-464, 550) after 1 s,
    # re-sending the file from its start (lines 497, 509). The commit then goes out once.
    repo = "local-org/lfs-drop-once"
    seed_with(hub, repo, builds["old"])
    before = state(hub, repo)
    upload = largest_lfs_upload(builds["new"])
    hub.inject_fault("PUT", upload, "drop", times=1)

    done = push_ok(hub, tmp_path / "1", builds["new"], repo, patch=no_wait(tmp_path / "1"))
    assert len(hub.fault_log) == 1 and retried(hub, tmp_path / "1", done)
    assert len(hub.requests_matching(upload, "PUT")) == 2  # dropped, then sent again whole
    assert "error:" not in done.stderr
    assert remote(hub, repo) == published(builds["new"], repo)  # byte for byte: the retried upload is intact
    assert hub.commit_log(repo)[1:] == before[1] and len(commit_posts(hub, repo)) == 1

    again = push_ok(hub, tmp_path / "2", builds["new"], repo)  # a second push has nothing left to do
    assert f"dataset {repo} (main at " in again.stdout and "is up to date: nothing to commit" in again.stdout
    assert hub.commit_log(repo)[1:] == before[1]


@pytest.mark.parametrize(
    ("fault", "times", "retries"),
    [("drop", None, True), (403, 1, False)],
    ids=["dropped-on-every-try", "refused-403"],
)
def test_an_lfs_upload_that_keeps_failing_stops_the_push_publishes_nothing_and_push_again_completes(
    hub, builds, tmp_path, fault, times, retries
):
    # A dropped connection is retried (huggingface_hub 2.4: 5 times, waiting 1, 2, 4, 8, 8 s) and then raised;
    # a 403 (e.g. an expired upload URL) is not a retried status: it is raised at once. Either
    # way create_commit stops before the commit: nothing is published. (How the push reports
    # it is the next test.)
    repo = "local-org/lfs-fails"
    seed_with(hub, repo, builds["old"])
    before = state(hub, repo)
    upload = largest_lfs_upload(builds["new"])
    hub.inject_fault("PUT", upload, fault, times=times)

    done = attempt(hub, tmp_path / "1", builds["new"], repo, patch=no_wait(tmp_path / "1"))
    assert done.returncode == 1, done.stderr[-3000:]
    assert retried(hub, tmp_path / "1", done) == retries
    assert retries or (len(hub.fault_log) == 1 and waits(tmp_path / "1") == [])
    assert commit_posts(hub, repo) == []  # the commit is never sent when an upload failed
    assert state(hub, repo) == before

    assert_completes(hub, tmp_path / "2", builds["new"], repo, before)


def test_an_lfs_upload_dropped_on_every_try_fails_in_one_line_saying_push_again(hub, builds, tmp_path):
    repo = "local-org/lfs-fails-line"
    hub.create_repo(repo)
    hub.inject_fault("PUT", largest_lfs_upload(builds["new"]), "drop")
    done = attempt(hub, tmp_path, builds["new"], repo, patch=no_wait(tmp_path))
    line = the_error_line(done)
    assert repo in line and "run push again" in line, line
    assert LFS_SIGNATURE not in done.stdout + done.stderr  # the signed upload URL is never shown


# --------------------------------------------------------------------------------------
# the calls before the uploads fail: preupload, LFS batch
# --------------------------------------------------------------------------------------
def test_a_500_once_on_preupload_is_retried_and_the_push_succeeds(hub, builds, tmp_path):
    repo = "local-org/preupload-500-once"
    hub.create_repo(repo)
    hub.inject_fault("POST", PREUPLOAD, 500, times=1)

    done = push_ok(hub, tmp_path, builds["new"], repo, patch=no_wait(tmp_path))
    assert len(hub.fault_log) == 1 and len(hub.requests_matching(PREUPLOAD, "POST")) == 2
    assert retried(hub, tmp_path, done)
    assert "error:" not in done.stderr
    assert remote(hub, repo) == published(builds["new"], repo)
    assert len(commit_posts(hub, repo)) == 1


@pytest.mark.parametrize("call", [PREUPLOAD, LFS_BATCH], ids=["preupload", "lfs-batch"])
def test_a_500_on_every_try_before_the_uploads_fails_in_one_line_after_the_retries_and_publishes_nothing(
    hub, builds, tmp_path, call
):
    repo = "local-org/before-uploads-500"
    seed_with(hub, repo, builds["old"])
    before = state(hub, repo)
    hub.inject_fault("POST", call, 500)

    done = attempt(hub, tmp_path, builds["new"], repo, patch=no_wait(tmp_path))
    line = the_error_line(done)
    assert line.startswith(f"error: the Hugging Face Hub answered 500 for {repo}: LocalHub injected fault: 500")
    assert retried(hub, tmp_path, done)  # the line comes after the client's own retries
    assert hub.requests_matching(r"^/__lfs/") == [] and commit_posts(hub, repo) == []
    assert state(hub, repo) == before
