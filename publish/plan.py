"""What a push publishes and what it changes, the same for both destinations.

The folder's files (`list_files`), the remote's (`RemoteFile`, read by `publish.push_hub`
or `publish.push_modelscope`), and the `Plan` between them (`plan_push`): what to add,
change and delete, found by content hash.
"""

from __future__ import annotations

import argparse
import hashlib
import os
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Literal

from publish.errors import PublishError
from ultrafeedback_kto import one_line

#: Marks a folder written by ``build`` and records the data its card is made from
#: (`publish.card.write_record`), which ``verify`` and ``push`` read; never published.
MARKER = ".ufkto-build.json"
# Files of the build that describe the build itself and never leave the machine.
PRIVATE_FILES = frozenset({MARKER, ".ms_upload_cache", ".ms_upload_progress"})
#: Top-level files of ufkto's that a push deletes when the folder no longer has them:
#: ``dataset_infos.json`` (earlier versions wrote it) breaks load_dataset on datasets older than
#: 4.5; ``dataset_info.json`` left behind would point LLaMA-Factory at a config no longer there.
OWN_FILES = frozenset({"dataset_infos.json", "dataset_info.json"})


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
            an existing tag is accepted only if it already points at what the push ends on.
        message: the commit message; None gives one that counts the added, changed and deleted files.
        dry_run: only print what would be added, changed and deleted; create, upload and commit nothing.
    """

    folder: Path
    repo_id: str
    to: Literal["hf", "modelscope"] = "hf"
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
class RemoteFile:
    """A file of the remote revision, known by a hash of its content: the sha256 (LFS files,
    every ModelScope file) or the git blob id (regular files on the Hub)."""

    path: str
    sha256: str | None = None
    git_blob_id: str | None = None

    def same_content(self, local: LocalFile) -> bool:
        if self.sha256:
            return self.sha256 == local.sha256
        if self.git_blob_id:
            return self.git_blob_id == local.git_blob_id
        return False  # no hash to compare with: upload again rather than guess


@dataclass
class Remote:
    """The revision a push targets, as read before planning."""

    exists: bool  # the repo exists
    head: str | None = None  # the commit the revision points at, where the destination says
    files: dict[str, RemoteFile] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)  # what a dry run would also create

    @classmethod
    def to_create(cls, args: PushArguments) -> Remote:
        """What a dry run sees of a repo that does not exist yet."""
        visibility = "private" if args.private else "public"
        note = f"repository {args.repo_id} does not exist: it would be created ({visibility})"
        return cls(exists=False, notes=[note])


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
        changes = f"{len(self.added)} to add, {len(self.changed)} to change, {len(self.deleted)} to delete"
        return f"{changes}, {len(self.unchanged)} unchanged"

    def lines(self) -> list[str]:
        out = [f"add {f.path} ({human_size(f.size)})" for f in self.added]
        out += [f"change {f.path} ({human_size(f.size)})" for f in self.changed]
        out += [f"delete {path}" for path in self.deleted]
        return out

    def default_message(self) -> str:
        added, changed, deleted = len(self.added), len(self.changed), len(self.deleted)
        return f"Update ufkto dataset ({added} files added, {changed} changed, {deleted} deleted)"


def plan_push(files: list[LocalFile], remote: dict[str, RemoteFile]) -> Plan:
    """Compare the folder's files with the remote ones by content hash. Remote files the folder
    no longer has are deleted when they are data shards (``*.parquet`` inside a folder:
    ``data/``, ``conversational/``, ...) or `OWN_FILES`; nothing else remote is ever
    deleted (``.gitattributes``, someone's other files)."""
    local = {f.path for f in files}
    plan = Plan(deleted=sorted(path for path in remote if path not in local and _stale_if_gone(path)))
    for file in files:
        other = remote.get(file.path)
        if other is None:
            plan.added.append(file)
        elif other.same_content(file):
            plan.unchanged.append(file)
        else:
            plan.changed.append(file)
    return plan


def _stale_if_gone(path: str) -> bool:
    """Whether a remote file is ufkto's to delete once the folder no longer has it: a data
    shard (a visible ``*.parquet`` inside a folder) or one of `OWN_FILES`."""
    shard = path.endswith(".parquet") and "/" in path and not is_hidden(path)
    return path in OWN_FILES or shard


def human_size(size: int) -> str:
    """Decimal units, as the Hub shows them: 999 B, 12.3 kB, 12.3 MB, 1.2 GB."""
    value = float(size)
    for unit in ("B", "kB", "MB"):
        if value < 1000:
            return f"{size} B" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1000
    return f"{value:.1f} GB"


def is_hidden(path: str) -> bool:
    return any(part.startswith(".") for part in path.split("/"))


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
        raise PublishError(f"invalid --repo-id {repo_id!r}: {one_line(error)}") from None
