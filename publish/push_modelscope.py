"""Publish a built folder to ModelScope, with its SDK (``pip install modelscope``: it brings
``modelscope_hub``, which does the HTTP): one atomic commit of what changed.

The steps:

1. the token from ``MODELSCOPE_API_TOKEN`` (the endpoint, ``MODELSCOPE_ENDPOINT``, is read by the SDK);
2. ``create_repo`` (visibility 1 private or 5 public) unless it exists;
3. ``list_repo_files`` of ``master`` and a plan by content hash (sha256), as for the Hub;
4. blobs still missing uploaded (``legacy.validate_blobs``, ``legacy.upload_blob``), then one
   ``legacy.create_commit`` of every addition, change and deletion. The SDK's
   ``upload_folder`` is not used: it commits in batches and deletes in another commit, so a
   failure part way would leave old and new files mixed on ``master``;
5. ``create_repo_tag`` on ``master``.

ModelScope dataset repos have one branch, ``master``, and no pull requests.
"""

from __future__ import annotations

import base64
import logging
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import PurePosixPath
from typing import Any

from publish.errors import PublishError
from publish.plan import LocalFile, Plan, PushArguments, Remote, RemoteFile
from ultrafeedback_kto import one_line

REPO_TYPE = "dataset"
REVISION = "master"  # ModelScope's one branch (not "main")
VISIBILITY = {True: 1, False: 5}  # modelscope_hub.constants.Visibility: 1 private, 5 public
TOKEN_VARIABLE = "MODELSCOPE_API_TOKEN"
NOT_INSTALLED = "ModelScope support needs the modelscope package: pip install modelscope"


@contextmanager
def connect(args: PushArguments) -> Iterator[ModelScopeRepo]:
    """The dataset ``args.repo_id`` on ModelScope; the SDK's errors become one-line `PublishError` s."""
    if args.create_pr:
        raise PublishError("--create-pr is not supported on ModelScope: its SDK cannot open pull requests")
    if args.branch and args.branch != REVISION:
        raise PublishError(
            f"ModelScope branches are not supported by its SDK: leave out --branch to push to {REVISION}"
        )
    token = os.environ.get(TOKEN_VARIABLE, "").strip()
    if not token:
        raise PublishError(f"no ModelScope token: set {TOKEN_VARIABLE} (an SDK token of your ModelScope account)")
    try:
        import modelscope_hub
        import modelscope_hub.config
        import modelscope_hub.errors
    except ImportError:
        raise PublishError(NOT_INSTALLED) from None
    # Its request logs and bodies are its own business; the push says what happened in a line.
    logging.getLogger("modelscope_hub").setLevel(logging.WARNING)
    with _modelscope_errors(args.repo_id, token, modelscope_hub.errors):
        api = modelscope_hub.HubApi(token=token)
        yield ModelScopeRepo(api, args, modelscope_hub.errors, modelscope_hub.config.get_default_config().endpoint)


class ModelScopeRepo:
    """A dataset repo on ModelScope (see `publish.push.Repo`)."""

    def __init__(self, api: Any, args: PushArguments, errors: Any, endpoint: str):
        self.api, self.args, self.errors = api, args, errors
        self.url = f"{endpoint.rstrip('/')}/datasets/{args.repo_id}"

    def describe(self, remote: Remote) -> str:
        return f"ModelScope dataset {self.args.repo_id} ({REVISION})"

    def read(self) -> Remote:
        args = self.args
        if not args.dry_run:
            try:
                self.api.create_repo(args.repo_id, REPO_TYPE, visibility=VISIBILITY[args.private], license="mit")
            except self.errors.AlreadyExistsError:
                if args.private:
                    print(
                        f"note: {args.repo_id} already exists on ModelScope; --private does not change its visibility"
                    )
        try:
            listed = self.api.list_repo_files(args.repo_id, REPO_TYPE, revision=REVISION)
        except self.errors.NotExistError:
            if not args.dry_run:
                raise
            return Remote.to_create(args)
        files = {info.path: RemoteFile(info.path, sha256=info.sha256) for info in listed if info.type != "tree"}
        return Remote(exists=True, head=REVISION, files=files)

    def tag_is_there(self, plan: Plan, remote: Remote) -> bool:
        """The tags list names no commit: a tag is "there" when it holds the very files pushed."""
        if not remote.exists:
            return False
        _, tags = self.api.legacy.list_revisions_detail(self.args.repo_id, REPO_TYPE)
        if self.args.tag not in {tag.get("Revision") for tag in tags}:
            return False
        tagged = self.api.list_repo_files(self.args.repo_id, REPO_TYPE, revision=self.args.tag)
        if plan.up_to_date and {f.path: f.sha256 for f in tagged if f.type != "tree"} == {
            path: file.sha256 for path, file in remote.files.items()
        }:
            return True
        raise PublishError(
            f"tag {self.args.tag} already exists on ModelScope dataset {self.args.repo_id} and marks "
            "other files: choose another --tag; nothing was committed"
        )

    def commit(self, plan: Plan, remote: Remote) -> str:
        legacy, repo_id = self.api.legacy, self.args.repo_id
        lfs = [f for f in plan.uploads if _stored_with_lfs(f)]
        blobs = [{"oid": f.sha256, "size": f.size} for f in lfs]
        missing = legacy.validate_blobs(repo_id, REPO_TYPE, blobs) if lfs else {}
        for file in lfs:
            if missing.get(file.sha256):
                with file.source.open("rb") as data:
                    legacy.upload_blob(missing[file.sha256], data, file.size)
        actions = [_creation(f) for f in plan.uploads] + [{"action": "delete", "path": path} for path in plan.deleted]
        message = self.args.message or plan.default_message()
        answer = legacy.create_commit(repo_id, REPO_TYPE, actions, message, revision=REVISION)
        print(f"committed {(answer or {}).get('CommitId', REVISION)}: {self.url}")
        return REVISION

    def tag(self, revision: str) -> None:
        try:
            self.api.create_repo_tag(self.args.repo_id, REPO_TYPE, self.args.tag, revision=revision)
        except self.errors.HubError as error:
            raise PublishError(
                f"ModelScope could not tag {revision} of {self.args.repo_id} as {self.args.tag} "
                f"({one_line(error)}); the push itself is done: run push again to tag it"
            ) from None
        print(f"tagged {revision} as {self.args.tag}")


def _creation(file: LocalFile) -> dict:
    """The commit's action for an uploaded file: an LFS pointer to its blob, or its content inline."""
    if _stored_with_lfs(file):
        return {"action": "create", "path": file.path, "type": "lfs", "size": file.size, "sha256": file.sha256}
    content = base64.b64encode(file.source.read_bytes()).decode()
    inline = {"content": content, "encoding": "base64"}
    return {"action": "create", "path": file.path, "type": "normal", "size": file.size, "sha256": "", **inline}


def _stored_with_lfs(file: LocalFile) -> bool:
    """The SDK's own rule (``modelscope_hub._upload._is_lfs``), from its public constants: files
    the hub reads itself (the card) stay inline; large files and data suffixes go to git-LFS."""
    from modelscope_hub import constants

    if PurePosixPath(file.path).name.upper() in constants.UPLOAD_INLINE_METADATA_PATHS:
        return False
    return (
        file.size > constants.UPLOAD_LFS_FORCE_THRESHOLD_BYTES
        or PurePosixPath(file.path).suffix.lower() in constants.DATASET_LFS_SUFFIX
    )


@contextmanager
def _modelscope_errors(repo_id: str, token: str, errors: Any) -> Iterator[None]:
    """Turn the SDK's exceptions into one-line `PublishError` s that say what to do (token scrubbed)."""
    try:
        yield
    except PublishError:
        raise
    except Exception as error:
        reason = one_line(error)
        if isinstance(error, errors.AuthenticationError):
            message = f"ModelScope refused the token for {repo_id}: set a valid {TOKEN_VARIABLE} ({reason})"
        elif isinstance(error, errors.PermissionDeniedError):
            message = (
                f"the token may not write to {repo_id} on ModelScope: use a token of an account that "
                f"owns {repo_id.split('/')[0]} ({reason})"
            )
        elif isinstance(error, errors.NotExistError):
            message = (
                f"ModelScope dataset {repo_id} was not found, or the token may not see it: check --repo-id ({reason})"
            )
        elif isinstance(error, (errors.NetworkError, OSError)):
            message = f"could not reach ModelScope for {repo_id}: {reason}; run push again"
        elif isinstance(error, errors.HubError):  # the commit is all or nothing
            message = f"ModelScope failed for {repo_id}: {reason}; nothing was committed: run push again"
        else:
            raise  # not the SDK's: a bug to see whole
        raise PublishError(message.replace(token, "***")) from None
