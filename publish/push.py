"""``python -m publish push``: verify a built folder, then publish it to the Hugging Face Hub or ModelScope.

This module checks what both destinations have in common (the folder, the repo id, the
verification, the list of files to publish, the plan of what changes) and hands over to
`publish.push_hub` or `publish.push_modelscope`, which talk to the hubs.
"""

from __future__ import annotations

import argparse
import hashlib
import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Literal

from publish.errors import PublishError

Destination = Literal["hf", "modelscope"]

# Files of the build that describe the build itself and never leave the machine.
PRIVATE_FILES = frozenset({".ufkto-build.json", ".ms_upload_cache", ".ms_upload_progress"})


@dataclass
class PushArguments:
    """What ``python -m publish push`` was asked to do.

    Attributes:
        folder: the built folder (``python -m publish build --out``); it is verified first.
        repo_id: ``namespace/name`` of the dataset repo to publish to.
        to: ``"hf"`` for the Hugging Face Hub, ``"modelscope"`` for ModelScope.
        private: create the repo private. An existing repo keeps its visibility.
        branch: the branch to commit to (Hub: created from ``main`` when missing); None is the
            default branch (``main`` on the Hub, ``master`` on ModelScope, which supports no other).
        create_pr: open a pull request with the change instead of committing to the branch (Hub only).
        tag: create this tag on the pushed commit (or on the current head when nothing changed);
            an existing tag is accepted only if it already points at that commit.
        message: the commit message; None gives one that counts the added, changed and deleted files.
        dry_run: only print what would be added, changed and deleted; create, upload and commit nothing.
    """

    folder: Path
    repo_id: str
    to: Destination = "hf"
    private: bool = False
    branch: str | None = None
    create_pr: bool = False
    tag: str | None = None
    message: str | None = None
    dry_run: bool = False

    @classmethod
    def from_namespace(cls, args: argparse.Namespace) -> PushArguments:
        return cls(
            folder=Path(args.folder),
            repo_id=args.repo_id,
            to=args.to,
            private=bool(args.private),
            branch=args.branch or None,
            create_pr=bool(args.create_pr),
            tag=args.tag or None,
            message=args.message or None,
            dry_run=bool(args.dry_run),
        )


@dataclass
class LocalFile:
    """One file to publish: its path in the repo (POSIX, relative) and on disk."""

    path: str
    source: Path
    size: int

    @cached_property
    def _digests(self) -> tuple[str, str]:
        sha256 = hashlib.sha256()
        blob = hashlib.sha1(b"blob %d\0" % self.size)
        with self.source.open("rb") as stream:
            while chunk := stream.read(1 << 20):
                sha256.update(chunk)
                blob.update(chunk)
        return sha256.hexdigest(), blob.hexdigest()

    @property
    def sha256(self) -> str:
        """sha256 of the content: what git-LFS (and ModelScope) identify a file by."""
        return self._digests[0]

    @property
    def git_blob_id(self) -> str:
        """The git blob id (sha1 of ``blob <size>\\0<content>``): what git identifies a regular file by."""
        return self._digests[1]


@dataclass
class Plan:
    """What a push changes: paths to add, to change, left as they are, and to delete."""

    added: list[LocalFile] = field(default_factory=list)
    changed: list[LocalFile] = field(default_factory=list)
    unchanged: list[LocalFile] = field(default_factory=list)
    deleted: list[str] = field(default_factory=list)

    @property
    def up_to_date(self) -> bool:
        return not (self.added or self.changed or self.deleted)

    @property
    def uploads(self) -> list[LocalFile]:
        return self.added + self.changed

    def summary(self) -> str:
        return (
            f"{len(self.added)} to add, {len(self.changed)} to change, {len(self.deleted)} to delete, "
            f"{len(self.unchanged)} unchanged"
        )

    def lines(self) -> list[str]:
        out = [f"add {f.path} ({human_size(f.size)})" for f in self.added]
        out += [f"change {f.path} ({human_size(f.size)})" for f in self.changed]
        out += [f"delete {path}" for path in self.deleted]
        return out

    def default_message(self) -> str:
        return (
            f"Update ufkto dataset ({len(self.added)} files added, {len(self.changed)} changed, "
            f"{len(self.deleted)} deleted)"
        )


def human_size(size: int) -> str:
    """Decimal units, as the Hub shows them: 999 B, 12.3 kB, 12.3 MB, 1.2 GB."""
    value = float(size)
    for unit in ("B", "kB", "MB", "GB"):
        if value < 1000 or unit == "GB":
            return f"{size} B" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1000
    raise AssertionError("unreachable")


def is_hidden(path: str) -> bool:
    return any(part.startswith(".") for part in path.split("/"))


#: Files earlier versions of ufkto published that a push removes when the folder no longer has
#: them: ``dataset_infos.json`` breaks load_dataset on datasets older than 4.5.
LEGACY_FILES = frozenset({"dataset_infos.json"})


def stale_data_files(remote_paths: Iterable[str], files: Iterable[LocalFile]) -> list[str]:
    """Remote files the folder no longer has that a push deletes: data shards (``*.parquet`` inside a
    folder: ``data/``, ``conversational/``, ...) and `LEGACY_FILES`. Nothing else remote is ever
    deleted (``.gitattributes``, other files)."""
    local = {f.path for f in files}
    return sorted(
        path
        for path in remote_paths
        if path not in local
        and (path in LEGACY_FILES or (path.endswith(".parquet") and "/" in path and not is_hidden(path)))
    )


def list_files(folder: Path) -> list[LocalFile]:
    """Every non-hidden file under ``folder``, sorted by its POSIX path relative to the folder.

    Hidden files and folders (``.ufkto-build.json``, ``.ms_upload_cache``, ``.git``, ...) are
    never published.
    """
    files = []
    for root, dirs, names in os.walk(folder):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        for name in names:
            source = Path(root) / name
            path = source.relative_to(folder).as_posix()
            if is_hidden(path) or name in PRIVATE_FILES or not source.is_file():
                continue
            files.append(LocalFile(path=path, source=source, size=source.stat().st_size))
    return sorted(files, key=lambda f: f.path)


def validate_repo_id(repo_id: str) -> None:
    """``namespace/name`` as the Hub accepts it (huggingface_hub's rules plus exactly one slash)."""
    from huggingface_hub.utils import HFValidationError
    from huggingface_hub.utils import validate_repo_id as hub_validate_repo_id

    if repo_id.count("/") != 1:
        raise PublishError(f"invalid --repo-id {repo_id!r}: expected NAMESPACE/NAME, e.g. my-org/ultrafeedback-kto")
    try:
        hub_validate_repo_id(repo_id)
    except HFValidationError as error:
        reason = str(error).splitlines()[0]
        raise PublishError(f"invalid --repo-id {repo_id!r}: {reason}") from None


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
    files = list_files(folder)
    if not files:
        raise PublishError(f"{folder} has no files to publish")

    if args.to == "hf":
        from publish.push_hub import push_to_hub

        push_to_hub(args, files)
    elif args.to == "modelscope":
        from publish.push_modelscope import push_to_modelscope

        push_to_modelscope(args, files)
    else:
        raise PublishError(f"unknown destination {args.to!r}: use hf or modelscope")
