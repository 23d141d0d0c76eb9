"""``python -m publish push --to modelscope`` against a recording stand-in for the ModelScope SDK.

``FakeHubApi`` takes the place of ``modelscope.hub.api.HubApi`` (injected into ``sys.modules``
for the lazy import), with the signatures of the real one (modelscope 1.40): it records every
call with its arguments, keeps the remote files in memory, and behaves like the SDK where it
matters (``upload_folder`` creates a missing repo as public and writes ``.ms_upload_cache``
into the folder unless ``use_cache=False``). The last test checks, where the real SDK is
installed, that the real methods accept exactly the calls recorded here.
"""

from __future__ import annotations

import fnmatch
import functools
import hashlib
import inspect
import subprocess
import sys
import types
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from publish.__main__ import main
from tests.conftest import PROJECT, files_of

REPO = "local-org/ufkto"
TOKEN = "ms-secret-token-0123456789abcdef"
NOT_INSTALLED = "error: ModelScope support needs the modelscope package: pip install modelscope"

try:
    import modelscope_hub.errors as ms_errors
except ImportError:  # the SDK is not installed: the same hierarchy, reduced to what push uses
    ms_errors = types.ModuleType("modelscope_hub.errors")
    exec(
        "class HubError(Exception): pass\n"
        "class APIError(HubError): pass\n"
        "class AuthenticationError(APIError): pass\n"
        "class PermissionDeniedError(APIError): pass\n"
        "class NotExistError(APIError): pass\n"
        "class AlreadyExistsError(APIError, ValueError): pass\n"
        "class NetworkError(HubError, ConnectionError): pass\n"
        "class StorageError(HubError): pass\n",
        ms_errors.__dict__,
    )


# --------------------------------------------------------------------------------------
# the recording stand-in
# --------------------------------------------------------------------------------------
@dataclass
class FakeFile:
    """Like modelscope_hub.types.FileInfo (the fields push reads)."""

    path: str
    size: int
    sha256: str
    type: str = "blob"


@dataclass
class FakeRepo:
    visibility: int
    license: str | None
    files: dict[str, bytes] = field(default_factory=dict)
    tags: dict[str, str] = field(default_factory=dict)
    commits: list[str] = field(default_factory=list)


@dataclass
class FakeModelScope:
    """The remote state and the record of calls, shared by every FakeHubApi of a test."""

    repos: dict[str, FakeRepo] = field(default_factory=dict)
    calls: list[tuple[str, tuple, dict]] = field(default_factory=list)
    uploaded: list[str] = field(default_factory=list)
    fail: dict[str, Exception] = field(default_factory=dict)

    def names(self) -> list[str]:
        return [name for name, _, _ in self.calls]

    def call(self, name: str) -> tuple[tuple, dict]:
        found = [(args, kwargs) for n, args, kwargs in self.calls if n == name]
        assert len(found) == 1, (name, self.names())
        return found[0]


def recorded(method):
    """Record a call exactly as made, then bind it to the method's (real) signature and run it."""

    @functools.wraps(method)
    def wrapper(self, *args, **kwargs):
        state = self.state
        state.calls.append((method.__name__, args, kwargs))
        inspect.signature(method).bind(self, *args, **kwargs)  # a TypeError, as the SDK would raise
        if method.__name__ in state.fail:
            raise state.fail[method.__name__]
        return method(self, *args, **kwargs)

    return wrapper


def make_fake_api(fake_state: FakeModelScope) -> type:
    class FakeHubApi:
        """Signatures as in modelscope 1.40.2 (legacy class, or the inner API it forwards to)."""

        state = fake_state

        @recorded
        def __init__(self, endpoint=None, timeout=90, max_retries=5, token=None):
            self.endpoint = endpoint or "https://modelscope.example"

        # legacy: modelscope_hub.compat.LegacyHubApi.create_repo
        @recorded
        def create_repo(
            self,
            repo_id,
            *,
            token=None,
            visibility=None,
            repo_type="model",
            chinese_name=None,
            license=None,
            exist_ok=False,
            create_default_config=False,
            endpoint=None,
            **kwargs,
        ):
            assert repo_type == "dataset"
            if repo_id in self.state.repos:
                if exist_ok:
                    return None
                raise ms_errors.AlreadyExistsError("exists")
            self.state.repos[repo_id] = FakeRepo(visibility=5 if visibility is None else int(visibility),
                                                 license=license)  # fmt: skip
            return types.SimpleNamespace(id=repo_id)

        # forwarded to modelscope_hub.api.HubApi.list_repo_files
        @recorded
        def list_repo_files(self, repo_id, repo_type, *, revision=None, recursive=True):
            if repo_id not in self.state.repos:
                raise ms_errors.NotExistError(f"dataset {repo_id} not found")
            files = self.state.repos[repo_id].files
            return [FakeFile(p, len(d), hashlib.sha256(d).hexdigest()) for p, d in sorted(files.items())]

        # legacy shim: kwargs go to modelscope_hub.api.HubApi.upload_folder
        @recorded
        def upload_folder(self, repo_id, folder_path=None, **kwargs):
            state, folder = self.state, Path(folder_path)
            if repo_id not in state.repos:  # the SDK's own auto-create: always public
                state.repos[repo_id] = FakeRepo(visibility=5, license=None)
            if kwargs.get("use_cache") is not False:  # the SDK's resume tracker, inside the folder
                (folder / ".ms_upload_cache").write_text("{}")
            allow, ignore = kwargs.get("allow_patterns"), list(kwargs.get("ignore_patterns") or [])
            ignore += [".git", ".git/*", ".cache", ".cache/*", ".ms_upload_cache", "*/.ms_upload_cache"]
            for path in sorted(p for p in folder.rglob("*") if p.is_file()):
                rel = path.relative_to(folder).as_posix()
                if allow and not any(fnmatch.fnmatch(rel, pattern) for pattern in allow):
                    continue
                if any(fnmatch.fnmatch(rel, pattern) for pattern in ignore):
                    continue
                state.repos[repo_id].files[rel] = path.read_bytes()
                state.uploaded.append(rel)
            state.repos[repo_id].commits.append(f"{kwargs.get('commit_message')} (batch 1/1)")
            return {"commit": "fake"}

        # legacy: modelscope_hub.compat.LegacyHubApi.delete_files
        @recorded
        def delete_files(
            self,
            repo_id,
            repo_type="model",
            delete_patterns=None,
            *,
            file_paths=None,
            revision="master",
            commit_message=None,
            endpoint=None,
            token=None,
        ):
            for path in file_paths:
                del self.state.repos[repo_id].files[path]
            self.state.repos[repo_id].commits.append(commit_message)
            return {}

        # forwarded to modelscope_hub.api.HubApi.create_repo_tag
        @recorded
        def create_repo_tag(self, repo_id, repo_type, tag, *, revision=None):
            self.state.repos[repo_id].tags[tag] = revision or "master"
            return {}

    return FakeHubApi


def install_fake_sdk(monkeypatch: pytest.MonkeyPatch, state: FakeModelScope) -> None:
    package, hub_package, api_module = (
        types.ModuleType(n) for n in ("modelscope", "modelscope.hub", "modelscope.hub.api")
    )
    api_module.HubApi = make_fake_api(state)
    package.hub, hub_package.api = hub_package, api_module
    for name, module in (("modelscope", package), ("modelscope.hub", hub_package), ("modelscope.hub.api", api_module)):
        monkeypatch.setitem(sys.modules, name, module)
    if ms_errors.__name__ not in sys.modules or sys.modules[ms_errors.__name__] is not ms_errors:
        hub_root = sys.modules.get("modelscope_hub") or types.ModuleType("modelscope_hub")
        monkeypatch.setitem(sys.modules, "modelscope_hub", hub_root)
        monkeypatch.setitem(sys.modules, "modelscope_hub.errors", ms_errors)
    monkeypatch.setenv("MODELSCOPE_API_TOKEN", TOKEN)


@pytest.fixture
def sdk(monkeypatch) -> FakeModelScope:
    state = FakeModelScope()
    install_fake_sdk(monkeypatch, state)
    return state


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("ms") / "ufkto"
    done = subprocess.run(
        [sys.executable, "-m", "publish", "build", "--sample", "--max-pairs", "200", "--out", str(out)],
        cwd=PROJECT, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    return out


def published(folder: Path) -> dict[str, bytes]:
    """What a push publishes: every non-hidden file, by POSIX path."""
    return files_of(folder, hidden=False)


def snapshot(folder: Path) -> dict[str, bytes]:
    return files_of(folder)


def push(capsys, folder: Path, *options: str) -> tuple[int, str, str]:
    """Run ``python -m publish push --to modelscope`` in-process; check the folder is untouched and
    the token never shown."""
    before = snapshot(folder)
    code = main(["push", str(folder), "--repo-id", REPO, "--to", "modelscope", *options])
    out, err = capsys.readouterr()
    assert TOKEN not in out + err
    after = snapshot(folder)
    assert after == before and ".ms_upload_cache" not in after
    return code, out, err


def error_line(code: int, err: str) -> str:
    assert code == 1, err
    assert "Traceback" not in err
    return err.strip().splitlines()[-1]


# --------------------------------------------------------------------------------------
# pushes
# --------------------------------------------------------------------------------------
def test_first_push_creates_the_dataset_repo_public_then_uploads_to_master(sdk, built, capsys):
    code, out, err = push(capsys, built)
    assert code == 0, err
    assert sdk.names() == ["__init__", "create_repo", "list_repo_files", "upload_folder"]
    assert sdk.call("__init__") == ((), {"token": TOKEN})
    assert sdk.call("create_repo") == (
        (REPO,),
        {"repo_type": "dataset", "visibility": 5, "license": "mit", "exist_ok": True},
    )
    assert sdk.call("list_repo_files") == ((REPO, "dataset"), {"revision": "master"})
    args, kwargs = sdk.call("upload_folder")
    assert args == (REPO,)
    assert kwargs["folder_path"] == str(built)
    assert (kwargs["repo_type"], kwargs["revision"], kwargs["use_cache"]) == ("dataset", "master", False)
    assert kwargs["commit_message"] == "Update ufkto dataset (6 files added, 0 changed, 0 deleted)"
    assert sorted(kwargs["allow_patterns"]) == sorted(published(built))
    repo = sdk.repos[REPO]
    assert (repo.visibility, repo.license) == (5, "mit")
    assert repo.files == published(built)  # never .ufkto-build.json or .ms_upload_cache
    assert sorted(sdk.uploaded) == sorted(published(built))
    assert "add data/train-00000-of-00001.parquet (" in out
    assert "pushed: https://modelscope.example/datasets/local-org/ufkto" in out


def test_private_creates_the_repo_with_visibility_1(sdk, built, capsys):
    code, _, err = push(capsys, built, "--private")
    assert code == 0, err
    assert sdk.call("create_repo")[1]["visibility"] == 1
    assert sdk.repos[REPO].visibility == 1


def test_an_identical_push_uploads_nothing(sdk, built, capsys):
    assert push(capsys, built)[0] == 0
    sdk.calls.clear()
    code, out, err = push(capsys, built)
    assert code == 0, err
    assert sdk.names() == ["__init__", "create_repo", "list_repo_files"]
    assert f"{REPO} is up to date on ModelScope (master): nothing to upload" in out


def test_changed_files_are_uploaded_and_stale_data_files_deleted_after(sdk, built, capsys):
    files = published(built)
    stale = ["data/train-00000-of-00002.parquet", "data/train-00001-of-00002.parquet"]
    sdk.repos[REPO] = FakeRepo(visibility=5, license="mit", files={
        **files, "README.md": b"an older card", ".gitattributes": b"*.parquet lfs\n", "LICENSE.txt": b"kept",
        **{path: b"old rows" for path in stale},
    })  # fmt: skip
    code, out, err = push(capsys, built, "--message", "Refresh")
    assert code == 0, err
    assert sdk.names() == ["__init__", "create_repo", "list_repo_files", "upload_folder", "delete_files"]
    _, upload = sdk.call("upload_folder")
    assert upload["allow_patterns"] == ["README.md"] and upload["commit_message"] == "Refresh"
    assert sdk.call("delete_files") == (
        (REPO,),
        {"repo_type": "dataset", "file_paths": stale, "revision": "master", "commit_message": "Delete 2 stale data files"},
    )  # fmt: skip
    remote = sdk.repos[REPO].files
    assert remote == {**files, ".gitattributes": b"*.parquet lfs\n", "LICENSE.txt": b"kept"}
    assert "change README.md (" in out and all(f"delete {path}" in out for path in stale)


def test_tag_is_created_on_master_of_the_dataset(sdk, built, capsys):
    code, out, err = push(capsys, built, "--tag", "v1.0")
    assert code == 0, err
    assert sdk.names()[-1] == "create_repo_tag"
    assert sdk.call("create_repo_tag") == ((REPO, "dataset", "v1.0"), {"revision": "master"})
    assert sdk.repos[REPO].tags == {"v1.0": "master"}
    assert "tagged master as v1.0" in out


def test_dry_run_only_reads(sdk, built, capsys):
    code, out, err = push(capsys, built, "--dry-run", "--private", "--tag", "v1")
    assert code == 0, err
    assert sdk.names() == ["__init__", "list_repo_files"]
    assert f"repository {REPO} does not exist: it would be created (private)" in out
    assert "6 to add, 0 to change, 0 to delete, 0 unchanged" in out and "tag v1 would be created" in out
    assert REPO not in sdk.repos

    sdk.repos[REPO] = FakeRepo(
        visibility=5, license="mit", files={**published(built), "data/x-00000-of-00001.parquet": b""}
    )
    sdk.calls.clear()
    code, out, err = push(capsys, built, "--dry-run")
    assert code == 0, err
    assert sdk.names() == ["__init__", "list_repo_files"]
    assert "delete data/x-00000-of-00001.parquet" in out and "0 to add, 0 to change, 1 to delete, 6 unchanged" in out


# --------------------------------------------------------------------------------------
# refusals and errors: one line, exit 1
# --------------------------------------------------------------------------------------
def test_missing_token_fails_before_any_call(sdk, built, capsys, monkeypatch):
    monkeypatch.delenv("MODELSCOPE_API_TOKEN")
    code, _, err = push(capsys, built)
    assert error_line(code, err).startswith("error: no ModelScope token: set MODELSCOPE_API_TOKEN")
    assert sdk.calls == []


@pytest.mark.parametrize(
    ("options", "expected"),
    [
        (["--branch", "dev"], "error: ModelScope branches are not supported by its SDK"),
        (["--create-pr"], "error: --create-pr is not supported on ModelScope"),
    ],
)
def test_branches_and_pull_requests_are_refused(sdk, built, capsys, options, expected):
    code, _, err = push(capsys, built, *options)
    assert error_line(code, err).startswith(expected)
    assert sdk.calls == []


def test_branch_master_is_accepted(sdk, built, capsys):
    code, _, err = push(capsys, built, "--branch", "master")
    assert code == 0, err
    assert sdk.call("upload_folder")[1]["revision"] == "master"


def test_missing_sdk_is_one_line(built, capsys, monkeypatch):
    for name in ("modelscope", "modelscope.hub", "modelscope.hub.api"):
        monkeypatch.setitem(sys.modules, name, None)  # import fails as if not installed
    monkeypatch.setenv("MODELSCOPE_API_TOKEN", TOKEN)
    code, _, err = push(capsys, built)
    assert error_line(code, err) == NOT_INSTALLED


@pytest.mark.parametrize(
    ("method", "error", "expected"),
    [
        ("create_repo", ms_errors.AuthenticationError(f"token {TOKEN} is invalid"),
         "error: ModelScope refused the token for local-org/ufkto: set a valid MODELSCOPE_API_TOKEN"),
        ("create_repo", ms_errors.PermissionDeniedError("forbidden"),
         "error: the token may not write to local-org/ufkto on ModelScope"),
        ("list_repo_files", ms_errors.NotExistError("gone"),
         "error: ModelScope dataset local-org/ufkto was not found"),
        ("upload_folder", ms_errors.StorageError(f"2 file(s) failed to upload\nAuthorization: Bearer {TOKEN}"),
         "error: the upload to ModelScope failed for local-org/ufkto (batches committed before the failure "
         "stay on master)"),
        ("create_repo_tag", ms_errors.NetworkError("connection reset"),
         "error: could not reach ModelScope for local-org/ufkto: "),
        ("delete_files", ms_errors.HubError("odd"), "error: ModelScope failed for local-org/ufkto"),
        ("create_repo_tag", ms_errors.AlreadyExistsError("tag v1 exists"),
         "error: ModelScope says it already exists in local-org/ufkto ("),
    ],
    ids=["auth", "permission", "not-found", "upload-storage", "network", "other", "tag-exists"],
)  # fmt: skip
def test_sdk_errors_are_one_line_without_the_token(sdk, built, capsys, method, error, expected):
    sdk.repos[REPO] = FakeRepo(visibility=5, license="mit", files={"data/old-00000-of-00001.parquet": b""})
    sdk.fail[method] = error
    code, _, err = push(capsys, built, "--tag", "v1")
    line = error_line(code, err)
    assert line.startswith(expected), line
    assert err.count("\n") == 1 and TOKEN not in err
    assert sdk.names()[-1] == method  # stopped at the failing call


# --------------------------------------------------------------------------------------
# the real SDK still takes these calls
# --------------------------------------------------------------------------------------
def test_the_real_sdk_accepts_the_recorded_calls(built, capsys, tmp_path):
    state = FakeModelScope()
    state.repos[REPO] = FakeRepo(visibility=5, license="mit", files={"data/old-00000-of-00001.parquet": b""})
    with pytest.MonkeyPatch.context() as patch:
        install_fake_sdk(patch, state)
        code, _, err = push(capsys, built, "--private", "--tag", "v1", "--message", "m")
    assert code == 0, err
    assert set(state.names()) == {"__init__", "create_repo", "list_repo_files", "upload_folder", "delete_files",
                                  "create_repo_tag"}  # fmt: skip

    pytest.importorskip("modelscope", reason="the modelscope SDK is not installed (pip install modelscope)")
    from modelscope.hub.api import HubApi
    from modelscope_hub import errors
    from modelscope_hub.api import HubApi as InnerApi
    from modelscope_hub.constants import Visibility

    assert (Visibility.PRIVATE, Visibility.PUBLIC) == (1, 5)
    for name in ("HubError", "AuthenticationError", "PermissionDeniedError", "NotExistError", "NetworkError",
                 "StorageError"):  # fmt: skip
        assert issubclass(getattr(errors, name), errors.HubError)
    assert "__getattr__" in vars(HubApi)  # methods the legacy class lacks are forwarded to the inner API

    for name, args, kwargs in state.calls:
        static = inspect.getattr_static(HubApi, name, None)
        target = static if static is not None else getattr(InnerApi, name)
        inspect.signature(target).bind(None, *args, **kwargs)  # TypeError if the SDK no longer takes them
        if name == "upload_folder":  # the shim forwards **kwargs to the inner API: check them there too
            inner = dict(kwargs)
            inspect.signature(InnerApi.upload_folder).bind(None, repo_id=args[0], **inner)
        if name in ("list_repo_files", "create_repo_tag"):
            assert static is None, f"{name} is now defined on the legacy class: check its signature"
