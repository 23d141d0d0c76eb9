"""``python -m publish push``: verify a built folder, then publish it to the Hugging Face Hub or ModelScope.

The steps are the same for both: check the arguments, verify the folder, read the target
revision, plan what to add, change and delete (`publish.plan`), refuse a tag that exists
elsewhere, then either print the plan (``--dry-run``) or make one commit of it and tag it.
What differs, how to talk to each hub, lives in `publish.push_hub` and
`publish.push_modelscope`: each gives a `Repo`.
"""

from __future__ import annotations

import dataclasses
import tempfile
from pathlib import Path
from typing import Protocol

from publish.errors import PublishError
from publish.plan import LocalFile, Plan, PushArguments, Remote, list_files, plan_push, validate_repo_id


class Repo(Protocol):
    """A dataset repo on one hub, as a push sees it."""

    def read(self) -> Remote:
        """The target revision's head and files; creates the repo (and branch) unless a dry run."""

    def describe(self, remote: Remote) -> str:
        """The repo and revision in words: ``dataset org/name (main at 0123456789ab)``."""

    def tag_is_there(self, plan: Plan, remote: Remote) -> bool:
        """Whether ``--tag`` already marks what the push ends on; raises `PublishError` before
        anything is written when it exists elsewhere."""

    def commit(self, plan: Plan, remote: Remote) -> str | None:
        """Make one commit of ``plan``; return the revision to tag (None: nothing to tag)."""

    def tag(self, revision: str) -> None:
        """Create ``--tag`` on ``revision``."""


def push_folder(args: PushArguments) -> None:
    """Verify ``args.folder`` and publish its files to ``args.repo_id`` (see `PushArguments`)."""
    folder = Path(args.folder)
    if not folder.is_dir():
        what = "is not a folder" if folder.exists() else "does not exist"
        raise PublishError(f"{folder} {what}: build it first with `python -m publish build --out {folder}`")
    validate_repo_id(args.repo_id)
    if args.tag and args.create_pr:
        raise PublishError("--tag cannot be used with --create-pr: tag the commit once the pull request is merged")

    from publish.verify import verify_or_fail

    verify_or_fail(folder)
    with tempfile.TemporaryDirectory(prefix="ufkto-push-") as scratch:
        files = _for_repo(folder, list_files(folder), args.repo_id, Path(scratch))
        if not files:
            raise PublishError(f"{folder} has no files to publish")
        _push(args, files)


def _for_repo(folder: Path, files: list[LocalFile], repo_id: str, scratch: Path) -> list[LocalFile]:
    """The folder's files as published to ``repo_id``: for a folder built for another id, the
    card and LLaMA-Factory's ``dataset_info.json`` are made again from the build's record, by
    the function ``build`` wrote them with, naming this repo instead."""
    from publish.card import read_record, rendered_files

    inputs = read_record(folder)
    if inputs.repo_id == repo_id:
        return files
    texts = rendered_files(dataclasses.replace(inputs, repo_id=repo_id))
    published = []
    for file in files:
        if file.path in texts:
            rendered = scratch / file.path
            rendered.write_text(texts[file.path], encoding="utf-8")
            file = LocalFile(file.path, rendered, rendered.stat().st_size)
        published.append(file)
    return published


def _push(args: PushArguments, files: list[LocalFile]) -> None:
    if args.to == "hf":
        from publish.push_hub import connect
    else:
        from publish.push_modelscope import connect
    with connect(args) as repo:
        remote = repo.read()
        plan = plan_push(files, remote.files)
        tag_is_there = bool(args.tag) and repo.tag_is_there(plan, remote)
        if args.dry_run:
            print(f"dry run for {repo.describe(remote)}: nothing is created, uploaded or committed")
            for line in remote.notes + plan.lines():
                print(line)
            print(("up to date: " if plan.up_to_date else "") + plan.summary())
            if args.tag:
                print(f"tag {args.tag} " + ("already points there" if tag_is_there else "would be created"))
            return
        if plan.up_to_date:
            print(f"{repo.describe(remote)} is up to date: nothing to commit")
            revision = remote.head
        else:
            print(f"pushing to {repo.describe(remote)}: {plan.summary()}")
            for line in plan.lines():
                print(line)
            revision = repo.commit(plan, remote)
        if args.tag and revision:
            if tag_is_there:
                print(f"tag {args.tag} already points at {revision}")
            else:
                repo.tag(revision)
