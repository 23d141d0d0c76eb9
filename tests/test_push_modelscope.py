"""``python -m publish push --to modelscope`` with the real ``modelscope`` SDK against a LocalModelScope.

The SDK reads its settings when imported, so every push runs in a subprocess with
``server.client_env(...)`` (a fresh HOME, the fake token, failures surfacing at once, only
127.0.0.1 reachable); the folders are built once per module with the real
``python -m publish build --sample``. The files a push must publish are read from the folder,
never listed here.
"""

from __future__ import annotations

import socket
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip(
    "modelscope.hub.api", reason="the modelscope SDK is not installed (pip install modelscope): these tests run it"
)

from publish.__main__ import main  # noqa: E402
from tests.conftest import PROJECT, files_of, published  # noqa: E402
from tests.modelscope_server import BLOB_SIGNATURE, FAKE_TOKEN, OPERATIONS, LocalModelScope  # noqa: E402

BUILD_OPTIONS = ["--sample", "--max-pairs", "200"]
NO_TOKEN = "error: no ModelScope token: set MODELSCOPE_API_TOKEN (an SDK token of your ModelScope account)"
NOT_INSTALLED = "error: ModelScope support needs the modelscope package: pip install modelscope"
WRONG_TOKEN = "ms-refusedToken-9876543210fedcba"


# --------------------------------------------------------------------------------------
# fixtures and helpers
# --------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def server():
    with LocalModelScope() as local:
        yield local
        assert local.unknown_requests == [], local.unknown_requests
        assert local.token_leaks == [], local.token_leaks


@pytest.fixture
def fresh_server():
    """A server of its own, holding no blob yet (blobs are shared by every repo, as on ModelScope)."""
    with LocalModelScope() as local:
        yield local
        assert local.unknown_requests == [], local.unknown_requests
        assert local.token_leaks == [], local.token_leaks


def _run(server: LocalModelScope, env_dir: Path, argv: list[str], env: dict | None = None):
    done = subprocess.run(
        [sys.executable, *argv],
        env=env if env is not None else server.client_env(env_dir),
        cwd=PROJECT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert LocalModelScope.blocked_connections(env_dir) == []
    assert "Traceback" not in done.stderr, done.stderr[-3000:]
    return done


@pytest.fixture(scope="module")
def builds(server, tmp_path_factory) -> dict[str, Path]:
    """one: 200 pairs, one shard per split; other: another seed (same names, other bytes);
    sharded: 400 pairs, 2+ shards per train split."""
    base = tmp_path_factory.mktemp("builds")
    options = {"one": [], "other": ["--seed", "7"], "sharded": ["--max-pairs", "400", "--max-shard-size", "200KB"]}
    for name, extra in options.items():
        command = ["-m", "publish", "build", *BUILD_OPTIONS, *extra, "--out", str(base / name)]
        done = _run(server, base / f"env-{name}", command)
        assert done.returncode == 0, done.stderr[-3000:]
    assert len(list((base / "sharded" / "data").glob("train-*.parquet"))) >= 2
    return {name: base / name for name in options}


def remote(server: LocalModelScope, repo_id: str) -> dict[str, bytes]:
    """The files of master, without the ``.gitattributes`` every new repo starts with."""
    return {path: data for path, data in server.files(repo_id).items() if path != ".gitattributes"}


def push(server: LocalModelScope, env_dir: Path, folder: Path, repo_id: str, *options: str, **env: str):
    """Run ``python -m publish push FOLDER --repo-id REPO --to modelscope`` (``env``: changes to the
    client environment, a value of None removing the variable). Checks that the folder is left
    byte for byte as it was, that no token is shown, and that none is written under HOME."""
    client_env = server.client_env(env_dir)
    for name, value in env.items():
        if value is None:
            del client_env[name]
        else:
            client_env[name] = value
    before = files_of(folder)
    command = ["-m", "publish", "push", str(folder), "--repo-id", repo_id, "--to", "modelscope", *options]
    done = _run(server, env_dir, command, env=client_env)
    for token in (FAKE_TOKEN, WRONG_TOKEN):
        assert token not in done.stdout + done.stderr
        written = [path for path in (env_dir / "home").rglob("*") if path.is_file()]
        assert not [path for path in written if token.encode() in path.read_bytes()]  # no log, no stored login
    assert files_of(folder) == before  # no .ms_upload_cache, nothing else written into the folder
    return done


def one_error_line(done: subprocess.CompletedProcess) -> str:
    """The push failed with exit 1 and exactly one ``error:`` line, the last one on stderr."""
    assert done.returncode == 1, (done.stdout, done.stderr[-3000:])
    lines = done.stderr.strip().splitlines()
    assert [line for line in lines if line.startswith("error:")] == lines[-1:], done.stderr[-3000:]
    return lines[-1]


def commit_posts(server: LocalModelScope, repo_id: str) -> list:
    return server.requests_matching(rf"^/api/v1/repos/datasets/{repo_id}/commit/", "POST")


# --------------------------------------------------------------------------------------
# a first push, then the same again
# --------------------------------------------------------------------------------------
FIRST = "local-org/first-push"


@pytest.fixture(scope="module")
def first_push(server, builds, tmp_path_factory) -> tuple[subprocess.CompletedProcess, list[tuple[str, str]]]:
    """The push of the build ``one`` to a new repo, and the requests it made."""
    server.clear_log()
    done = push(server, tmp_path_factory.mktemp("first-push"), builds["one"], FIRST)
    return done, list(server.requests)


def test_first_push_creates_the_dataset_repo_and_publishes_exactly_the_folder_to_master(server, builds, first_push):
    done, _ = first_push
    assert done.returncode == 0, done.stderr[-3000:]
    files = published(builds["one"], FIRST)
    assert remote(server, FIRST) == files  # byte for byte; nothing hidden (.ufkto-build.json) went up
    repo = server.repo(FIRST)
    assert (repo.visibility, repo.license) == (5, "mit") and set(repo.branches) == {"master"}
    assert server.lfs_paths(FIRST) == {path for path in files if path.endswith(".parquet")}
    log = server.commit_log(FIRST)
    assert len(log) == 2 and log[1][1] == "initial commit"
    assert log[0][1].startswith(f"Update ufkto dataset ({len(files)} files added, 0 changed, 0 deleted)")
    for path in files:
        assert f"add {path} (" in done.stdout
    assert f": {server.endpoint}/datasets/{FIRST}" in done.stdout and "committed " in done.stdout


def test_an_identical_second_push_makes_no_commit(server, builds, first_push, tmp_path):
    log = server.commit_log(FIRST)
    server.clear_log()
    done = push(server, tmp_path, builds["one"], FIRST)
    assert done.returncode == 0, done.stderr[-3000:]
    assert f"ModelScope dataset {FIRST} (master) is up to date: nothing to commit" in done.stdout
    assert server.commit_log(FIRST) == log and commit_posts(server, FIRST) == []
    assert server.requests_matching(r"/info/lfs/|^/__blobs/") == []  # nothing uploaded either


def test_the_token_is_never_printed_logged_uploaded_or_left_in_the_folder(server, builds, first_push):
    done, requests = first_push
    assert done.returncode == 0, done.stderr[-3000:]
    # push() checked stdout, stderr, the files under HOME and the folder (byte for byte) for
    # every push; here, what reached the server: no request carried it outside the auth
    # headers, and no blob or committed file holds it.
    assert server.token_leaks == []
    assert not [data for data in server.stored_bytes() if FAKE_TOKEN.encode() in data]
    assert not (builds["one"] / ".ms_upload_cache").exists() and not (builds["one"] / ".ms_upload_progress").exists()
    assert ("POST", f"/api/v1/repos/datasets/{FIRST}/commit/master") in requests  # it did push


# --------------------------------------------------------------------------------------
# a changed build
# --------------------------------------------------------------------------------------
def test_a_changed_build_replaces_the_data_and_deletes_stale_shards(server, builds, tmp_path):
    repo = "local-org/changed"
    server.seed(repo, published(builds["sharded"], repo), message="earlier push")
    server.seed(repo, {"LICENSE.txt": b"kept: not a data file"}, message="someone's file")
    seeded = len(server.commit_log(repo))
    done = push(server, tmp_path, builds["other"], repo, "--message", "Reshuffle with seed 7")
    assert done.returncode == 0, done.stderr[-3000:]
    assert remote(server, repo) == {**published(builds["other"], repo), "LICENSE.txt": b"kept: not a data file"}
    assert ".gitattributes" in server.files(repo)
    stale = sorted(set(published(builds["sharded"])) - set(published(builds["other"])))
    assert stale and all(path.endswith(".parquet") for path in stale)
    for path in stale:
        assert f"delete {path}" in done.stdout
    assert "change README.md (" in done.stdout
    pushed = server.commit_log(repo)[:-seeded]
    assert [message for _, message in pushed] == ["Reshuffle with seed 7"]  # one commit: additions and deletions


# --------------------------------------------------------------------------------------
# tags, branches, visibility
# --------------------------------------------------------------------------------------
def test_tag_is_created_on_the_pushed_master_commit(server, builds, tmp_path):
    repo = "local-org/tagged"
    seeded = server.seed(repo, published(builds["one"], repo))
    done = push(server, tmp_path, builds["other"], repo, "--tag", "v1", "--branch", "master")  # master: accepted
    assert done.returncode == 0, done.stderr[-3000:]
    head = server.commit_log(repo)[0][0]
    assert head != seeded and server.tags(repo) == {"v1": head}
    assert server.files(repo, "v1") == server.files(repo)
    assert "tagged master as v1" in done.stdout


def test_private_creates_the_repo_with_visibility_1_and_an_existing_repo_keeps_its_own(server, builds, tmp_path):
    done = push(server, tmp_path / "new", builds["one"], "local-org/private", "--private")
    assert done.returncode == 0, done.stderr[-3000:]
    assert server.repo("local-org/private").visibility == 1
    assert remote(server, "local-org/private") == published(builds["one"], "local-org/private")

    server.seed("local-org/public", published(builds["one"], "local-org/public"), visibility=5)
    done = push(server, tmp_path / "existing", builds["one"], "local-org/public", "--private")
    assert done.returncode == 0, done.stderr[-3000:]
    assert server.repo("local-org/public").visibility == 5
    note = "note: local-org/public already exists on ModelScope; --private does not change its visibility"
    assert note in done.stdout


def test_pushing_the_same_build_again_with_its_tag_succeeds(server, builds, tmp_path):
    repo = "local-org/retag"
    server.seed(repo, published(builds["one"], repo), tag="v1")  # as an earlier push --tag v1 left it
    tags = server.tags(repo)
    done = push(server, tmp_path, builds["one"], repo, "--tag", "v1")
    assert done.returncode == 0, done.stderr[-3000:]
    assert server.tags(repo) == tags


def test_a_change_with_an_existing_tag_is_refused_before_anything_is_committed(server, builds, tmp_path):
    repo = "local-org/tag-exists"
    server.seed(repo, published(builds["one"], repo), tag="v1")
    log = server.commit_log(repo)
    refused = push(server, tmp_path, builds["other"], repo, "--tag", "v1")
    assert "v1" in one_error_line(refused)
    assert server.commit_log(repo) == log and remote(server, repo) == published(builds["one"], repo)


# --------------------------------------------------------------------------------------
# failures
# --------------------------------------------------------------------------------------
@pytest.fixture
def failing(server):
    """server.fail(...) for one test, cleared after it."""
    yield server.fail
    for operation in OPERATIONS:
        server.fail(operation, None)


def test_a_failing_commit_is_one_error_line_and_leaves_the_remote_as_it_was(server, builds, failing, tmp_path):
    repo = "local-org/commit-fails"
    server.seed(repo, published(builds["sharded"]))
    files, log = server.files(repo), server.commit_log(repo)
    failing("commit", status=500)
    server.clear_log()
    done = push(server, tmp_path, builds["other"], repo, "--tag", "v1")
    line = one_error_line(done)
    assert repo in line and "failed" in line
    assert commit_posts(server, repo)  # the SDK did try to commit: the server refused
    assert server.files(repo) == files and server.commit_log(repo) == log and server.tags(repo) == {}


def test_a_failing_commit_error_line_gives_the_server_answer_and_no_false_advice(server, builds, failing, tmp_path):
    repo = "local-org/commit-fails-reason"
    server.seed(repo, published(builds["sharded"]))
    failing("commit", status=500)
    line = one_error_line(push(server, tmp_path, builds["other"], repo))
    assert "500" in line and "automatically skipped" not in line


@pytest.mark.parametrize(("operation", "after"), [("commit", 0), ("blob", 1)], ids=["the-commit", "a-blob"])
def test_a_push_failing_part_way_changes_nothing_and_push_again_completes(
    fresh_server, builds, tmp_path, operation, after
):
    repo = "local-org/part-way"
    fresh_server.seed(repo, published(builds["sharded"]))
    before = remote(fresh_server, repo)
    fresh_server.fail(operation, status=500, after=after)
    done = push(fresh_server, tmp_path / "failing", builds["other"], repo)
    assert "nothing was committed" in one_error_line(done)
    now = remote(fresh_server, repo)
    newer = published(builds["other"], repo)
    assert now == before, {path: "new" if newer.get(path) == data else "old" for path, data in now.items()}
    fresh_server.fail(operation, None)
    assert push(fresh_server, tmp_path / "again", builds["other"], repo).returncode == 0
    assert remote(fresh_server, repo) == published(builds["other"], repo)


def test_an_unreachable_upload_url_is_one_line_without_its_signature_and_push_again_completes(
    fresh_server, builds, tmp_path
):
    repo = "local-org/upload-unreachable"
    fresh_server.seed(repo, published(builds["sharded"]))
    before = remote(fresh_server, repo)
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        fresh_server.upload_endpoint = f"http://127.0.0.1:{probe.getsockname()[1]}"
    done = push(fresh_server, tmp_path / "failing", builds["other"], repo)
    assert "could not reach ModelScope" in one_error_line(done)
    assert BLOB_SIGNATURE not in done.stdout + done.stderr  # the presigned upload URL is never shown
    assert remote(fresh_server, repo) == before
    fresh_server.upload_endpoint = None
    assert push(fresh_server, tmp_path / "again", builds["other"], repo).returncode == 0
    assert remote(fresh_server, repo) == published(builds["other"], repo)


SDK_ERRORS = {
    "refused-token": "error: ModelScope refused the token for local-org/errors: set a valid MODELSCOPE_API_TOKEN (",
    "forbidden": (
        "error: the token may not write to local-org/errors on ModelScope: use a token of an account that owns "
        "local-org ("
    ),
    "unreachable": "error: could not reach ModelScope for local-org/errors: ",
}


@pytest.mark.parametrize(("case", "expected"), list(SDK_ERRORS.items()), ids=list(SDK_ERRORS))
def test_sdk_errors_are_one_line_without_the_token(server, builds, failing, tmp_path, case, expected):
    env = {}
    if case == "refused-token":
        env["MODELSCOPE_API_TOKEN"] = WRONG_TOKEN  # the server answers 401
    elif case == "forbidden":
        failing("create", status=403)
    else:
        with socket.socket() as probe:  # a port nobody listens on
            probe.bind(("127.0.0.1", 0))
            env["MODELSCOPE_ENDPOINT"] = f"http://127.0.0.1:{probe.getsockname()[1]}"
    done = push(server, tmp_path, builds["one"], "local-org/errors", **env)
    assert one_error_line(done).startswith(expected)
    assert server.repo("local-org/errors") is None


# --------------------------------------------------------------------------------------
# dry run
# --------------------------------------------------------------------------------------
def test_dry_run_only_reads(server, builds, tmp_path):
    missing = "local-org/not-yet"
    server.clear_log()
    done = push(server, tmp_path / "1", builds["one"], missing, "--dry-run", "--private", "--tag", "v1")
    assert done.returncode == 0, done.stderr[-3000:]
    files = published(builds["one"])
    assert f"repository {missing} does not exist: it would be created (private)" in done.stdout
    for path in files:
        assert f"add {path} (" in done.stdout
    assert f"{len(files)} to add, 0 to change, 0 to delete, 0 unchanged" in done.stdout
    assert "tag v1 would be created" in done.stdout
    assert server.repo(missing) is None and {method for method, _ in server.requests} == {"GET"}

    repo = "local-org/dry"
    server.seed(repo, published(builds["sharded"]))
    log = server.commit_log(repo)
    server.clear_log()
    done = push(server, tmp_path / "2", builds["one"], repo, "--dry-run")
    assert done.returncode == 0, done.stderr[-3000:]
    for path in sorted(set(published(builds["sharded"])) - set(files)):
        assert f"delete {path}" in done.stdout
    assert "change README.md (" in done.stdout and "add data/train-00000-of-00001.parquet (" in done.stdout
    assert {method for method, _ in server.requests} == {"GET"} and server.commit_log(repo) == log


# --------------------------------------------------------------------------------------
# refusals: one line, exit 1, nothing sent
# --------------------------------------------------------------------------------------
def test_missing_token_is_one_line_before_any_request(server, builds, tmp_path):
    server.clear_log()
    done = push(server, tmp_path, builds["one"], "local-org/no-token", MODELSCOPE_API_TOKEN=None)
    assert one_error_line(done) == NO_TOKEN
    assert server.requests == []


@pytest.mark.parametrize(
    ("options", "expected"),
    [
        (["--branch", "dev"], "error: ModelScope branches are not supported by its SDK: leave out --branch"),
        (["--create-pr"], "error: --create-pr is not supported on ModelScope: its SDK cannot open pull requests"),
    ],
    ids=["branch-dev", "create-pr"],
)
def test_other_branches_and_pull_requests_are_refused_before_any_request(server, builds, tmp_path, options, expected):
    server.clear_log()
    done = push(server, tmp_path, builds["one"], "local-org/refused", *options)
    assert one_error_line(done).startswith(expected)
    assert server.requests == []


def test_missing_sdk_is_one_line(builds, capsys, monkeypatch):
    for name in ("modelscope", "modelscope_hub"):
        monkeypatch.setitem(sys.modules, name, None)  # import fails as if not installed
    monkeypatch.setenv("MODELSCOPE_API_TOKEN", FAKE_TOKEN)
    code = main(["push", str(builds["one"]), "--repo-id", "local-org/x", "--to", "modelscope"])
    err = capsys.readouterr().err
    assert code == 1 and "Traceback" not in err
    assert err.strip().splitlines()[-1] == NOT_INSTALLED
