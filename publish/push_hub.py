"""Publish a built folder to the Hugging Face Hub: one atomic commit of what changed.

The steps, with huggingface_hub's own calls:

1. the token from huggingface_hub's usual lookup (`get_token`: HF_TOKEN, then `hf auth login`);
2. `create_repo(exist_ok=True)` and, for ``--branch``, `create_branch` when it is missing;
3. one read of the target revision (`repo_info(files_metadata=True)`): its head commit and, for
   every remote file, its content hash (LFS sha256 or git blob id), compared with the local files
   to plan what to add, change and delete (stale data shards only);
4. one `create_commit` of that plan with ``parent_commit`` set to the head that was read, so a
   concurrent change makes the Hub refuse the commit (412) instead of silently mixing two pushes;
5. `create_tag` on the pushed commit.

``--dry-run`` reads (steps 1 and 3) and prints the plan; it creates, uploads and commits nothing.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

from huggingface_hub import CommitOperationAdd, CommitOperationDelete, HfApi, constants, get_token
from huggingface_hub.errors import (
    HfHubHTTPError,
    HFValidationError,
    RepositoryNotFoundError,
    RevisionNotFoundError,
)

from publish.errors import PublishError
from publish.push import LocalFile, Plan, PushArguments, stale_data_files

try:  # the HTTP client huggingface_hub 2.x is built on; its connection errors are not HfHubHTTPError
    from httpx2 import TransportError
except ImportError:  # pragma: no cover - older huggingface_hub releases used httpx
    from httpx import TransportError

REPO_TYPE = "dataset"
NO_TOKEN = "no Hugging Face token: set HF_TOKEN or run `hf auth login`"


@dataclass
class RemoteFile:
    """A file of the remote revision, identified by its content hash."""

    path: str
    size: int | None
    blob_id: str | None  # git blob id (sha1); for LFS files the id of the pointer file
    lfs_sha256: str | None  # sha256 of the content, for files stored with git-LFS

    def same_content(self, local: LocalFile) -> bool:
        if self.lfs_sha256:
            return self.lfs_sha256 == local.sha256
        if self.blob_id:
            return self.blob_id == local.git_blob_id
        return False  # no hash to compare with: upload again rather than guess


@dataclass
class RemoteState:
    """The target revision as read before planning."""

    exists: bool  # the repo exists
    head: str | None  # commit the revision points at (None: no repo yet)
    private: bool | None
    files: dict[str, RemoteFile] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)  # what a dry run would also create


def push_to_hub(args: PushArguments, files: list[LocalFile]) -> None:
    """Publish ``files`` to the dataset repo ``args.repo_id`` on the Hub (see the module docstring)."""
    try:
        token = get_token()
    except Exception as error:  # e.g. a failed OIDC exchange (HF_OIDC_RESOURCE)
        raise PublishError(f"could not get a Hugging Face token: {_one_line(error)}") from None
    if not token:
        raise PublishError(NO_TOKEN)
    api = HfApi(token=token, library_name="ufkto")
    with _hub_errors(args.repo_id, token):
        _push(api, args, files)


def _push(api: HfApi, args: PushArguments, files: list[LocalFile]) -> None:
    repo_id = args.repo_id
    revision = args.branch or constants.DEFAULT_REVISION
    if not args.dry_run:
        # private=None leaves the visibility to the Hub (an organisation may default to private).
        api.create_repo(repo_id, repo_type=REPO_TYPE, private=True if args.private else None, exist_ok=True)
    remote = _read_remote(api, args, revision)
    plan = plan_push(files, remote.files)
    tag_target = _check_tag(api, args, remote, plan)

    where = f"{repo_id} ({revision}" + (f" at {remote.head[:12]})" if remote.head else ")")
    if args.dry_run:
        print(f"dry run for dataset {where}: nothing is created, uploaded or committed")
        for note in remote.notes:
            print(note)
        for line in plan.lines():
            print(line)
        print(("up to date: " if plan.up_to_date else "") + plan.summary())
        if args.tag:
            print(f"tag {args.tag} " + ("already points there" if tag_target else "would be created"))
        return

    if args.private and remote.private is False:
        print(f"note: {repo_id} already exists and is public; --private does not change an existing repo")
    if plan.up_to_date:
        print(f"{repo_id} is up to date on {revision} at commit {remote.head}: nothing to commit")
        commit = remote.head
    else:
        print(f"pushing to dataset {where}: {plan.summary()}")
        for line in plan.lines():
            print(line)
        commit = _commit(api, args, revision, remote.head, plan)
    if args.tag and commit:
        if tag_target:
            print(f"tag {args.tag} already points at {commit}")
        else:
            _create_tag(api, args, commit)


def plan_push(files: list[LocalFile], remote: dict[str, RemoteFile]) -> Plan:
    """Compare the local files with the remote ones by content hash; stale remote shards are deleted."""
    plan = Plan(deleted=stale_data_files(remote, files))
    for local in files:
        other = remote.get(local.path)
        if other is None:
            plan.added.append(local)
        elif other.same_content(local):
            plan.unchanged.append(local)
        else:
            plan.changed.append(local)
    return plan


def _read_remote(api: HfApi, args: PushArguments, revision: str) -> RemoteState:
    """Head commit and file hashes of ``revision`` in one read (``repo_info`` with files metadata).

    A dry run treats a missing repo as empty and a missing branch as a copy of ``main``; a real
    push has just created the repo and creates the branch here.
    """
    # repo_info rather than list_repo_tree: one answer carries both the commit sha and the hashes
    # of that very snapshot (the tree listing does not say which commit it lists), so the plan and
    # the parent_commit of the commit cannot disagree.
    notes: list[str] = []
    try:
        info = api.repo_info(args.repo_id, repo_type=REPO_TYPE, revision=revision, files_metadata=True)
    except RepositoryNotFoundError:
        if not args.dry_run:
            raise
        visibility = "private" if args.private else "public"
        notes.append(f"repository {args.repo_id} does not exist: it would be created ({visibility})")
        return RemoteState(exists=False, head=None, private=None, notes=notes)
    except RevisionNotFoundError:
        if not args.branch:
            raise
        if args.dry_run:
            notes.append(f"branch {args.branch} does not exist: it would be created from {constants.DEFAULT_REVISION}")
            info = api.repo_info(args.repo_id, repo_type=REPO_TYPE, files_metadata=True)
        else:
            api.create_branch(args.repo_id, branch=args.branch, repo_type=REPO_TYPE, exist_ok=True)
            print(f"created branch {args.branch} from {constants.DEFAULT_REVISION}")
            info = api.repo_info(args.repo_id, repo_type=REPO_TYPE, revision=revision, files_metadata=True)
    files = {
        sibling.rfilename: RemoteFile(
            path=sibling.rfilename,
            size=sibling.size,
            blob_id=sibling.blob_id,
            lfs_sha256=sibling.lfs.sha256 if sibling.lfs else None,
        )
        for sibling in info.siblings or []
    }
    return RemoteState(exists=True, head=info.sha, private=info.private, files=files, notes=notes)


def _check_tag(api: HfApi, args: PushArguments, remote: RemoteState, plan: Plan) -> bool:
    """Before anything is committed: refuse a tag that exists elsewhere. True when it already points
    at the commit the push ends on (nothing to change and the tag is on the head)."""
    if not args.tag or not remote.exists:
        return False
    # list_repo_refs rather than create_tag(exist_ok=True): that would accept a tag pointing anywhere.
    refs = api.list_repo_refs(args.repo_id, repo_type=REPO_TYPE)
    target = next((ref.target_commit for ref in refs.tags if ref.name == args.tag), None)
    if target is None:
        return False
    if plan.up_to_date and target == remote.head:
        return True
    raise PublishError(
        f"tag {args.tag} already exists on {args.repo_id} and points at {target[:12]}, not at the commit "
        "this push makes: choose another --tag; nothing was committed"
    )


def _commit(api: HfApi, args: PushArguments, revision: str, head: str | None, plan: Plan) -> str | None:
    operations: list[CommitOperationAdd | CommitOperationDelete] = [
        CommitOperationAdd(path_in_repo=f.path, path_or_fileobj=str(f.source)) for f in plan.uploads
    ]
    operations += [CommitOperationDelete(path_in_repo=path) for path in plan.deleted]
    try:
        info = api.create_commit(
            args.repo_id,
            operations,
            commit_message=args.message or plan.default_message(),
            repo_type=REPO_TYPE,
            revision=revision,
            create_pr=args.create_pr,
            parent_commit=head,
        )
    except HfHubHTTPError as error:
        if _status(error) == 412:
            raise PublishError(
                f"the branch {revision} of {args.repo_id} moved since it was read (at {head}): "
                "nothing was committed; run push again"
            ) from None
        raise
    if args.create_pr:
        print(f"opened pull request {info.pr_url} ({info.pr_revision}, commit {info.oid}); {revision} is unchanged")
        return None
    print(f"committed {info.oid}: {info.commit_url}")
    return info.oid


def _create_tag(api: HfApi, args: PushArguments, commit: str) -> None:
    try:
        api.create_tag(args.repo_id, tag=args.tag, revision=commit, repo_type=REPO_TYPE)
    except HfHubHTTPError as error:
        if _status(error) == 409:
            raise PublishError(
                f"tag {args.tag} was created on {args.repo_id} by someone else meanwhile; "
                f"the push itself succeeded at {commit}: choose another --tag"
            ) from None
        raise
    print(f"tagged {commit} as {args.tag}")


@contextmanager
def _hub_errors(repo_id: str, token: str) -> Iterator[None]:
    """Turn the Hub's exceptions into one-line `PublishError` s that say what to do (token scrubbed)."""
    try:
        yield
    except PublishError:
        raise
    except RepositoryNotFoundError:
        message = (
            f"dataset repo {repo_id} was not found, or the token may not see it: check --repo-id and that "
            "the token (HF_TOKEN or `hf auth login`) has write access to its namespace"
        )
    except RevisionNotFoundError as error:
        message = f"revision not found in {repo_id}: {_server_message(error)}"
    except HfHubHTTPError as error:
        status = _status(error)
        detail = f": {_server_message(error)}" if getattr(error, "server_message", None) else ""
        if status == 401:
            message = (
                f"the Hugging Face Hub refused the token for {repo_id} (401 unauthorized{detail}): "
                "set a valid HF_TOKEN or run `hf auth login`"
            )
        elif status == 403:
            message = (
                f"the token may not write to {repo_id} (403 forbidden{detail}): use a token with write access "
                f"to {repo_id.split('/')[0]}"
            )
        else:
            message = f"the Hugging Face Hub answered {status} for {repo_id}: {_server_message(error)}"
    except HFValidationError as error:
        message = f"invalid argument for {repo_id}: {_one_line(error)}"
    except (TransportError, OSError) as error:
        message = (
            f"could not reach the Hugging Face Hub at {constants.ENDPOINT} for {repo_id} ({_one_line(error)}): "
            "check the network (or HF_ENDPOINT) and run push again"
        )
    else:
        return
    raise PublishError(message.replace(token, "***")) from None


def _status(error: HfHubHTTPError) -> int | None:
    response = getattr(error, "response", None)
    return getattr(response, "status_code", None)


def _server_message(error: HfHubHTTPError) -> str:
    return _one_line(getattr(error, "server_message", None) or error)


def _one_line(error: object) -> str:
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    return lines[0] if lines else type(error).__name__
