"""Publish a built folder to the Hugging Face Hub: one atomic commit of what changed.

The steps, with huggingface_hub's own calls:

1. the token from huggingface_hub's usual lookup (`get_token`: HF_TOKEN, then `hf auth login`);
2. `create_repo(exist_ok=True)` and, for ``--branch``, `create_branch` when it is missing;
3. one read of the target revision (`repo_info(files_metadata=True)`): its head commit and, for
   every remote file, its content hash (LFS sha256 or git blob id);
4. one `create_commit` of the plan with ``parent_commit`` set to the head that was read, so a
   concurrent change makes the Hub refuse the commit (412) instead of silently mixing two pushes;
5. `create_tag` on the pushed commit.

A dry run reads (steps 1 and 3) and creates, uploads and commits nothing.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator
from contextlib import contextmanager

from huggingface_hub import CommitOperationAdd, CommitOperationDelete, HfApi, constants, get_token
from huggingface_hub.errors import HfHubHTTPError, HFValidationError, RepositoryNotFoundError, RevisionNotFoundError

from publish.errors import PublishError
from publish.plan import Plan, PushArguments, Remote, RemoteFile
from ultrafeedback_kto import one_line, scrub_urls

try:  # the HTTP client huggingface_hub 2.x is built on; its connection errors are not HfHubHTTPError
    from httpx2 import TransportError
except ImportError:  # pragma: no cover - older huggingface_hub releases used httpx
    from httpx import TransportError

REPO_TYPE = "dataset"
NO_TOKEN = "no Hugging Face token: set HF_TOKEN or run `hf auth login`"
RUN_AGAIN = "nothing was committed; run push again"


class _WithoutQueries(logging.Filter):
    """huggingface_hub's retry warnings name the URL they retry, signature and all: they are
    shown without URL queries."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.msg, record.args = scrub_urls(record.getMessage()), ()
        return True


@contextmanager
def connect(args: PushArguments) -> Iterator[HubRepo]:
    """The repo ``args.repo_id`` on the Hub; the Hub's errors become one-line `PublishError` s."""
    try:
        token = get_token()
    except Exception as error:  # e.g. a failed OIDC exchange (HF_OIDC_RESOURCE)
        raise PublishError(f"could not get a Hugging Face token: {one_line(error)}") from None
    if not token:
        raise PublishError(NO_TOKEN)
    handlers, scrub = logging.getLogger("huggingface_hub").handlers, _WithoutQueries()
    for handler in handlers:
        handler.addFilter(scrub)
    try:
        with _hub_errors(args.repo_id, token):
            yield HubRepo(HfApi(token=token, library_name="ufkto"), args)
    finally:
        for handler in handlers:
            handler.removeFilter(scrub)


class HubRepo:
    """A dataset repo on the Hub (see `publish.push.Repo`)."""

    def __init__(self, api: HfApi, args: PushArguments):
        self.api, self.args = api, args
        self.revision = args.branch or constants.DEFAULT_REVISION

    def describe(self, remote: Remote) -> str:
        return f"dataset {self.args.repo_id} ({self.revision}" + (f" at {remote.head[:12]})" if remote.head else ")")

    def read(self) -> Remote:
        """Head commit and file hashes of the revision in one read (``repo_info`` with files
        metadata), so that the plan and the commit's parent cannot disagree. A dry run takes a
        missing repo as empty and a missing branch as a copy of ``main``."""
        api, args = self.api, self.args
        if not args.dry_run:
            # private=None leaves the visibility to the Hub (an organisation may default to private).
            api.create_repo(args.repo_id, repo_type=REPO_TYPE, private=True if args.private else None, exist_ok=True)
        notes = []
        try:
            info = api.repo_info(args.repo_id, repo_type=REPO_TYPE, revision=self.revision, files_metadata=True)
        except RepositoryNotFoundError:
            if not args.dry_run:
                raise
            return Remote.to_create(args)
        except RevisionNotFoundError:
            if not args.branch:
                raise
            if args.dry_run:
                notes.append(
                    f"branch {args.branch} does not exist: it would be created from {constants.DEFAULT_REVISION}"
                )
            else:
                api.create_branch(args.repo_id, branch=args.branch, repo_type=REPO_TYPE, exist_ok=True)
                print(f"created branch {args.branch} from {constants.DEFAULT_REVISION}")
            revision = None if args.dry_run else self.revision  # a dry run reads main, which the branch would copy
            info = api.repo_info(args.repo_id, repo_type=REPO_TYPE, revision=revision, files_metadata=True)
        if args.private and info.private is False and not args.dry_run:
            print(f"note: {args.repo_id} already exists and is public; --private does not change an existing repo")
        files = {sibling.rfilename: _remote_file(sibling) for sibling in info.siblings or []}
        return Remote(exists=True, head=info.sha, files=files, notes=notes)

    def tag_is_there(self, plan: Plan, remote: Remote) -> bool:
        if not remote.exists:
            return False
        # list_repo_refs rather than create_tag(exist_ok=True): that would accept a tag pointing anywhere.
        refs = self.api.list_repo_refs(self.args.repo_id, repo_type=REPO_TYPE)
        target = next((ref.target_commit for ref in refs.tags if ref.name == self.args.tag), None)
        if target is None:
            return False
        if plan.up_to_date and target == remote.head:
            return True
        raise PublishError(
            f"tag {self.args.tag} already exists on {self.args.repo_id} and points at {target[:12]}, not "
            "at the commit this push makes: choose another --tag; nothing was committed"
        )

    def commit(self, plan: Plan, remote: Remote) -> str | None:
        args = self.args
        operations: list[CommitOperationAdd | CommitOperationDelete] = [
            CommitOperationAdd(path_in_repo=f.path, path_or_fileobj=str(f.source)) for f in plan.uploads
        ]
        operations += [CommitOperationDelete(path_in_repo=path) for path in plan.deleted]
        try:
            info = self.api.create_commit(
                args.repo_id,
                operations,
                commit_message=args.message or plan.default_message(),
                repo_type=REPO_TYPE,
                revision=self.revision,
                create_pr=args.create_pr,
                parent_commit=remote.head,
            )
        except HfHubHTTPError as error:
            if _status(error) == 412:
                raise PublishError(
                    f"the branch {self.revision} of {args.repo_id} moved since it was read "
                    f"(at {remote.head}): {RUN_AGAIN}"
                ) from None
            raise
        if args.create_pr:
            opened = f"opened pull request {info.pr_url} ({info.pr_revision}, commit {info.oid})"
            print(f"{opened}; {self.revision} is unchanged")
            return None
        print(f"committed {info.oid}: {info.commit_url}")
        return info.oid

    def tag(self, revision: str) -> None:
        try:
            self.api.create_tag(self.args.repo_id, tag=self.args.tag, revision=revision, repo_type=REPO_TYPE)
        except HfHubHTTPError as error:
            if _status(error) == 409:
                raise PublishError(
                    f"tag {self.args.tag} was created on {self.args.repo_id} by someone else meanwhile; "
                    f"the push itself succeeded at {revision}: choose another --tag"
                ) from None
            raise
        print(f"tagged {revision} as {self.args.tag}")


def _remote_file(sibling) -> RemoteFile:
    """A file of the revision as ``repo_info`` lists it: an LFS file known by its sha256, a
    regular one by its git blob id."""
    sha256 = sibling.lfs.sha256 if sibling.lfs else None
    return RemoteFile(sibling.rfilename, sha256, sibling.blob_id)


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
        message = _http_message(repo_id, error)
    except HFValidationError as error:
        message = f"invalid argument for {repo_id}: {one_line(error)}"
    except (TransportError, OSError) as error:
        message = (
            f"could not reach the Hugging Face Hub at {constants.ENDPOINT} for {repo_id} ({one_line(error)}): "
            "check the network (or HF_ENDPOINT) and run push again"
        )
    except RuntimeError as error:
        # huggingface_hub wraps a failed LFS upload (after its retries) in a RuntimeError; an
        # HTTP error is told by its status (its text names the signed upload URL).
        upload = re.fullmatch(r"Error while uploading '(.+)' to the Hub\.", str(error))
        if upload is None:
            raise
        cause = error.__cause__
        reason = f"the Hub answered {_status(cause)}" if isinstance(cause, HfHubHTTPError) else one_line(cause)
        message = f"could not upload {upload[1]} to {repo_id} ({reason}): {RUN_AGAIN}"
    else:
        return
    raise PublishError(message.replace(token, "***")) from None


def _http_message(repo_id: str, error: HfHubHTTPError) -> str:
    status = _status(error)
    detail = f": {_server_message(error)}" if getattr(error, "server_message", None) else ""
    if status == 401:
        return (
            f"the Hugging Face Hub refused the token for {repo_id} (401 unauthorized{detail}): "
            "set a valid HF_TOKEN or run `hf auth login`"
        )
    if status == 403:
        return (
            f"the token may not write to {repo_id} (403 forbidden{detail}): use a token with write access "
            f"to {repo_id.split('/')[0]}"
        )
    if status is not None and status >= 500:  # a commit that failed is all or nothing
        return f"the Hugging Face Hub answered {status} for {repo_id}: {_server_message(error)}: run push again"
    return f"the Hugging Face Hub answered {status} for {repo_id}: {_server_message(error)}"


def _status(error: HfHubHTTPError) -> int | None:
    return getattr(getattr(error, "response", None), "status_code", None)


def _server_message(error: HfHubHTTPError) -> str:
    return one_line(getattr(error, "server_message", None) or error)
