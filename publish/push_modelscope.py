"""Publish a built folder to ModelScope with its SDK (``pip install modelscope``, no extras).

The steps, with the SDK's calls (``modelscope.hub.api.HubApi``, a shim over ``modelscope_hub``):

1. the token from ``MODELSCOPE_API_TOKEN`` (the endpoint, ``MODELSCOPE_ENDPOINT``, is read by the SDK);
2. ``create_repo(repo_type="dataset", visibility=1 or 5, license="mit", exist_ok=True)`` first:
   ``upload_folder`` would otherwise create a missing repo itself, and always public;
3. ``list_repo_files`` of ``master`` and a plan by content hash (sha256), like the Hub push;
4. ``upload_folder`` of the files to add or change, to ``master``, with ``use_cache=False`` (no
   ``.ms_upload_cache`` written into the folder) and only the listed files allowed (never the
   hidden ones). The SDK commits in batches of up to 256 files: unlike the Hub push this is not
   one atomic commit, and ModelScope's SDK offers neither a parent commit check nor pull requests;
5. ``delete_files`` of the stale data shards, only after the upload succeeded;
6. ``create_repo_tag(repo_id, "dataset", tag, revision="master")``.

``--dry-run`` lists the remote files (a missing repo counts as empty) and prints the plan.
"""

from __future__ import annotations

import glob
import os
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from publish.errors import PublishError
from publish.push import LocalFile, Plan, PushArguments, stale_data_files

REPO_TYPE = "dataset"
REVISION = "master"  # ModelScope's default branch (not "main")
VISIBILITY = {True: 1, False: 5}  # modelscope_hub.constants.Visibility: 1 private, 5 public
LICENSE = "mit"
TOKEN_VARIABLE = "MODELSCOPE_API_TOKEN"
NOT_INSTALLED = "ModelScope support needs the modelscope package: pip install modelscope"
HIDDEN = [".*", "*/.*"]  # fnmatch patterns of hidden files and of files in hidden folders


def push_to_modelscope(args: PushArguments, files: list[LocalFile]) -> None:
    """Publish ``files`` to the ModelScope dataset ``args.repo_id`` (see the module docstring)."""
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
        from modelscope.hub.api import HubApi
    except ImportError:
        raise PublishError(NOT_INSTALLED) from None
    errors = _error_classes()
    with _modelscope_errors(args.repo_id, token, errors):
        api = HubApi(token=token)
        _push(api, args, files)


def _push(api: Any, args: PushArguments, files: list[LocalFile]) -> None:
    repo_id = args.repo_id
    if not args.dry_run:
        created = api.create_repo(
            repo_id,
            repo_type=REPO_TYPE,
            visibility=VISIBILITY[args.private],
            license=LICENSE,
            exist_ok=True,
        )
        if created is None and args.private:  # the legacy create_repo answers None when it already existed
            print(f"note: {repo_id} already exists on ModelScope; --private does not change its visibility")
    remote = _remote_files(api, args)
    plan = plan_push(files, remote)
    url = f"{str(getattr(api, 'endpoint', None) or 'https://modelscope.cn').rstrip('/')}/datasets/{repo_id}"

    if args.dry_run:
        print(f"dry run for ModelScope dataset {repo_id} ({REVISION}): nothing is created, uploaded or committed")
        if remote is None:
            visibility = "private" if args.private else "public"
            print(f"repository {repo_id} does not exist: it would be created ({visibility})")
        for line in plan.lines():
            print(line)
        print(("up to date: " if plan.up_to_date else "") + plan.summary())
        if args.tag:
            print(f"tag {args.tag} would be created on {REVISION}")
        return

    if plan.up_to_date:
        print(f"{repo_id} is up to date on ModelScope ({REVISION}): nothing to upload")
    else:
        print(f"pushing to ModelScope dataset {repo_id} ({REVISION}): {plan.summary()}")
        for line in plan.lines():
            print(line)
        if plan.uploads:
            _upload(api, args, plan)
        if plan.deleted:
            api.delete_files(
                repo_id,
                repo_type=REPO_TYPE,
                file_paths=plan.deleted,
                revision=REVISION,
                commit_message=f"Delete {len(plan.deleted)} stale data files",
            )
            print(f"deleted {len(plan.deleted)} stale data files")
        print(f"pushed: {url}")
    if args.tag:
        api.create_repo_tag(repo_id, REPO_TYPE, args.tag, revision=REVISION)
        print(f"tagged {REVISION} as {args.tag}")


def plan_push(files: list[LocalFile], remote: dict[str, Any] | None) -> Plan:
    """Compare with the remote files by sha256 (a remote file without one is uploaded again)."""
    remote = remote or {}
    plan = Plan(deleted=stale_data_files(remote, files))
    for local in files:
        other = remote.get(local.path)
        if other is None:
            plan.added.append(local)
        elif getattr(other, "sha256", None) and other.sha256 == local.sha256:
            plan.unchanged.append(local)
        else:
            plan.changed.append(local)
    return plan


def _remote_files(api: Any, args: PushArguments) -> dict[str, Any] | None:
    """Remote files of master by path (FileInfo), or None when the repo does not exist (dry run)."""
    from modelscope_hub.errors import NotExistError

    try:
        listed = api.list_repo_files(args.repo_id, REPO_TYPE, revision=REVISION)
    except NotExistError:
        if args.dry_run:
            return None
        raise
    return {info.path: info for info in listed if getattr(info, "type", "blob") != "tree" and info.path}


def _upload(api: Any, args: PushArguments, plan: Plan) -> None:
    try:
        api.upload_folder(
            args.repo_id,
            folder_path=str(args.folder),
            repo_type=REPO_TYPE,
            revision=REVISION,
            commit_message=args.message or plan.default_message(),
            # Exact paths (glob.escape: fnmatch would read "[" as a pattern); hidden files are
            # ignored again in case a listed path ever matched one.
            allow_patterns=[glob.escape(f.path) for f in plan.uploads],
            ignore_patterns=list(HIDDEN),
            use_cache=False,
        )
    except PublishError:
        raise
    except Exception as error:
        # Batches already committed stay committed; say so on top of the SDK's reason.
        raise _UploadFailed(error) from error
    print(f"uploaded {len(plan.uploads)} files")


class _UploadFailed(Exception):
    def __init__(self, error: Exception):
        super().__init__(str(error))
        self.error = error


def _error_classes() -> dict[str, type[BaseException]]:
    try:
        import modelscope_hub.errors as errors
    except ImportError:
        raise PublishError("ModelScope support needs modelscope 1.40 or later: pip install -U modelscope") from None
    names = ("AuthenticationError", "PermissionDeniedError", "NotExistError", "AlreadyExistsError", "StorageError",
             "NetworkError")  # fmt: skip
    return {name: getattr(errors, name) for name in names} | {"HubError": errors.HubError}


@contextmanager
def _modelscope_errors(repo_id: str, token: str, errors: dict[str, type[BaseException]]) -> Iterator[None]:
    """Turn the SDK's exceptions into one-line `PublishError` s that say what to do (token scrubbed)."""
    try:
        yield
    except PublishError:
        raise
    except Exception as raised:
        error, note = raised, ""
        if isinstance(raised, _UploadFailed):
            error, note = raised.error, " (batches committed before the failure stay on master)"
        reason = _one_line(error)
        if isinstance(error, errors["AuthenticationError"]):
            message = f"ModelScope refused the token for {repo_id}: set a valid {TOKEN_VARIABLE} ({reason})"
        elif isinstance(error, errors["PermissionDeniedError"]):
            message = (
                f"the token may not write to {repo_id} on ModelScope: use a token of an account that "
                f"owns {repo_id.split('/')[0]} ({reason})"
            )
        elif isinstance(error, errors["NotExistError"]):
            message = (
                f"ModelScope dataset {repo_id} was not found, or the token may not see it: check --repo-id ({reason})"
            )
        elif isinstance(error, errors["AlreadyExistsError"]):  # create_repo has exist_ok: this is the tag
            message = f"ModelScope says it already exists in {repo_id} ({reason}): choose another --tag"
        elif isinstance(error, errors["NetworkError"]):
            message = f"could not reach ModelScope for {repo_id}{note}: {reason}; run push again"
        elif isinstance(error, errors["StorageError"]):  # how upload_folder reports any failure, 401 included
            message = (
                f"the upload to ModelScope failed for {repo_id}{note}: {reason}; check {TOKEN_VARIABLE} "
                "and the network, then run push again"
            )
        elif isinstance(error, errors["HubError"]):
            message = f"ModelScope failed for {repo_id}{note}: {reason}"
        elif isinstance(error, OSError) or type(error).__module__.startswith(("requests", "urllib3")):
            message = f"could not reach ModelScope for {repo_id}{note}: {reason}; run push again"
        else:
            if error is raised:
                raise  # not the SDK's: a bug to see whole
            raise error from None  # the same, unwrapped from _UploadFailed
        raise PublishError(message.replace(token, "***")) from None


def _one_line(error: BaseException) -> str:
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    return lines[0] if lines else type(error).__name__
