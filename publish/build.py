"""``python -m publish build``: run the builder and write the dataset folder the Hub expects.

The folder holds what ``Dataset.push_to_hub`` would write: ``README.md`` (the card),
``data/{split}-{i:05d}-of-{n:05d}.parquet`` for the ``default`` config and
``conversational/{split}-...`` for the other, written by ``datasets``' own parquet writer
(content-defined chunking and a page index, so a refreshed version re-uploads only what
changed). It is written into a hidden sibling and swapped in at the end, so a failed or
interrupted build leaves the previous folder as it was; a folder holding files no build wrote is
never replaced.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import dataclasses
import errno
import functools
import os
import re
import shlex
import shutil
import sys
import tempfile
import threading
import time
from pathlib import Path

import datasets
import pyarrow as pa
from datasets.utils.py_utils import convert_file_size_to_int

import publish
from publish.card import CardInputs, Provenance, rendered_files, write_record
from publish.errors import PublishError
from publish.options import given_options
from publish.plan import MARKER, OWN_FILES, PRIVATE_FILES
from publish.stats import SplitStats, split_stats
from ultrafeedback_kto import (
    UPSTREAMS,
    BadRowError,
    UltraFeedbackKTO,
    UltraFeedbackKTOConfig,
    UpstreamError,
    features,
    one_line,
    scrub_urls,
    standard_from_conversational,
)

#: The generated samples shipped with the tool (package data), made by tools/sample.py.
SAMPLE_DIR = Path(__file__).resolve().parent / "samples"
#: The generated samples shipped with the tool, per upstream and upstream split (not real data).
SAMPLES = {
    "argilla-cleaned": {"train": ["ultrafeedback-sample.parquet"]},
    "openbmb": {"train": ["openbmb-sample.parquet"]},
    "h4-binarized": {
        "train_prefs": ["h4-binarized/train_prefs.parquet"],
        "test_prefs": ["h4-binarized/test_prefs.parquet"],
    },
}
#: Where each config's shards go, as push_to_hub lays them out.
DATA_DIRS = {"default": "data", "conversational": "conversational"}
#: Arrow bytes per parquet shard (and per builder cache file). Smaller than push_to_hub's
#: 500MB so that a refresh re-uploads less and memory holds one shard at every size.
SHARD_SIZE = "128MB"
#: The files a build writes at the top of its folder (besides its configs' shards), and those
#: that are ufkto's all the same: earlier versions' ``dataset_infos.json``, a push's records.
BUILT_FILES = frozenset({"README.md", MARKER, *OWN_FILES, *PRIVATE_FILES})
#: A config's shard, as a build names it inside the config's folder.
SHARD_NAME = re.compile(r"[\w.]+-\d{5}-of-\d{5}\.parquet")


@dataclasses.dataclass
class BuildArguments:
    """What to build and where.

    Args:
        out: the folder to write (replaced only if an earlier build made it).
        sources: upstream parquet or JSON Lines files (paths or URLs), each ``SPLIT=PATH`` for an
            upstream with splits of its own (h4-binarized: ``train_prefs=...``; a path naming one
            of them needs no ``SPLIT=``); with neither this nor ``sample``, the upstream is read
            from the Hub and its commit recorded.
        sample: build from the generated sample shipped in ``publish/samples/`` (not real data).
        configs: the builder configs to write, e.g. ``["default", "conversational"]``.
        options: builder options, e.g. ``{"seed": 7, "test_size": 0.1}``.
        repo_id: the id the card's code snippets load; defaults to the folder name.
        shard_size: Arrow bytes per parquet shard: a number, or a size like ``"128MB"`` (the default).
        command: the command line, recorded in the card.
    """

    out: Path
    sources: list[str] | None = None
    sample: bool = False
    configs: list[str] = dataclasses.field(default_factory=lambda: list(DATA_DIRS))
    options: dict = dataclasses.field(default_factory=dict)
    repo_id: str | None = None
    shard_size: str | int = SHARD_SIZE
    command: str = "python -m publish build"

    @classmethod
    def from_namespace(cls, args) -> BuildArguments:
        configs = [name.strip() for name in args.configs.split(",") if name.strip()]
        unknown = [name for name in configs if name not in DATA_DIRS]
        if unknown or not configs:
            raise PublishError(f"--configs {args.configs!r}: choose among {', '.join(DATA_DIRS)}")
        return cls(
            out=Path(args.out),
            sources=args.source,
            sample=args.sample,
            configs=configs,
            options=given_options(args),
            repo_id=args.repo_id,
            shard_size=args.max_shard_size,
            command=_without_out(args.command_line),
        )


#: Every upstream's own split names: ``--source NAME=PATH`` says which one a file holds.
SPLIT_NAMES = frozenset(name for upstream in UPSTREAMS.values() for name in upstream.splits)


def split_source(source: str) -> tuple[str | None, str]:
    """``(split, path)`` of a ``--source``: ``NAME=PATH`` names one of `SPLIT_NAMES`; any other
    ``=`` belongs to the path (``lang=en/...``, ``?X-Amz-Signature=...``)."""
    name, equals, path = source.partition("=")
    return (name, path) if equals and name in SPLIT_NAMES else (None, source)


def public_name(source: str) -> str:
    """How the card names a source: a URL as the builder shows it (without credentials, query
    or fragment), a local file by its name alone (not the machine's folders); ``SPLIT=`` kept."""
    split, path = split_source(source)
    name = scrub_urls(path) if "://" in path else Path(path).name
    return f"{split}={name}" if split else name


def _without_out(command: str) -> str:
    """The command as the card records it: without ``--out`` (where the folder was written is
    not part of the data), and with sources named as `public_name` names them."""
    kept, option = [], None
    for word in shlex.split(command):
        if word.startswith("--"):
            option, _, value = word.partition("=")
            if option == "--out":
                continue
            kept.append(f"--source={public_name(value)}" if option == "--source" and value else word)
            if value:
                option = None
        elif option == "--out":
            option = None  # --out takes one value
        else:
            kept.append(public_name(word) if option == "--source" else word)
    return shlex.join(kept)


def say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def build_folder(args: BuildArguments) -> dict:
    """Build the folder; return its record (``MARKER`` inside it: what the card is made from,
    `publish.card.write_record`)."""
    started = time.monotonic()
    out = args.out.resolve()
    _check_replaceable(out)
    repo_id = _checked_repo_id(args.repo_id, out)
    shard_size = _shard_bytes(args.shard_size)
    config = _checked_config(args)
    data_files, options, provenance = _resolve_source(args, config)
    partial = _partial_folder(out)
    try:
        infos, stats, config = _write_configs(args.configs, data_files, options, partial, shard_size)
        inputs = CardInputs(
            infos=infos,
            data_dirs={name: DATA_DIRS[name] for name in infos},
            stats=stats,
            provenance=provenance,
            repo_id=repo_id,
            config=config,
        )
        # No dataset_infos.json: the card's YAML says the same, and the file written by
        # datasets 4.5+ (SplitInfo.original_shard_lengths) breaks load_dataset on older releases.
        for name, text in rendered_files(inputs).items():
            (partial / name).write_text(text, encoding="utf-8")
        record = write_record(partial, inputs)
        _check_replaceable(out)  # again: a file put there during the build is no build's either
        _swap_in(partial, out)
    except BaseException as error:
        shutil.rmtree(partial, ignore_errors=True)
        if isinstance(error, OSError):  # writing the card or the record, or the swap
            raise _write_failure(error, out.parent, f"in {out.parent}") from None
        raise
    _summarize(out, stats, time.monotonic() - started)
    return record


def _check_replaceable(out: Path) -> None:
    """Refuse an ``out`` whose replacement would delete a file no build wrote."""
    if not out.exists():
        return
    if not out.is_dir():
        raise PublishError(f"{out} exists and is not a folder; choose another --out")
    if any(out.iterdir()) and not (out / MARKER).is_file():
        made = f"{out} exists and was not made by `publish build` (no {MARKER})"
        raise PublishError(f"{made}; move it away or choose another --out")
    foreign = _not_built(out)
    if foreign:
        raise PublishError(
            f"{out} holds what no build wrote ({', '.join(foreign)}), which a rebuild would delete: "
            "move it out of the folder, or choose another --out"
        )


def _not_built(out: Path) -> list[str]:
    """What in an earlier build's folder a build did not write: top-level names (a folder with
    a slash: ``.git/``), and inside a config's folder, paths (``data/notes.txt``). Hidden ones
    count: a ``.git`` made to push by hand is as much the user's as their notes."""
    foreign = []
    for entry in sorted(out.iterdir()):
        if entry.name in DATA_DIRS.values() and entry.is_dir() and not entry.is_symlink():
            shards = {inner for inner in entry.iterdir() if SHARD_NAME.fullmatch(inner.name) and inner.is_file()}
            foreign += [f"{entry.name}/{inner.name}" for inner in sorted(set(entry.iterdir()) - shards)]
        elif entry.name not in BUILT_FILES:
            foreign.append(entry.name + ("/" if entry.is_dir() else ""))
    return foreign


def _checked_repo_id(repo_id: str | None, out: Path) -> str:
    """The id the card and dataset_info.json name, by the Hub's rules: ``NAME`` (the folder
    name by default, which loads the folder from beside it) or ``NAMESPACE/NAME``."""
    from huggingface_hub.utils import HFValidationError, validate_repo_id

    try:
        validate_repo_id(repo_id or out.name)
    except HFValidationError as error:
        if repo_id is None:
            message = f"the folder name {out.name!r} is not a valid repo id, which the card names: give --repo-id"
            raise PublishError(f"{message} NAMESPACE/NAME") from None
        raise PublishError(f"invalid --repo-id {repo_id!r}: {one_line(error)}") from None
    return repo_id or out.name


def _shard_bytes(size: str | int) -> int:
    """``--max-shard-size`` in bytes: a number, or a size as datasets writes them (``500KB``)."""
    try:
        shard_bytes = int(size) if str(size).isdigit() else convert_file_size_to_int(size)
    except ValueError:
        shard_bytes = 0
    if shard_bytes <= 0:
        raise PublishError(f"--max-shard-size {size!r}: expected a number of bytes or a size like 500KB or 128MB")
    return shard_bytes


def _partial_folder(out: Path) -> Path:
    """The hidden sibling the build is written into; a location that cannot take it is refused
    here, before any work."""
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        partial = Path(tempfile.mkdtemp(prefix=f".{out.name}.partial-", dir=out.parent))
    except OSError as error:
        raise PublishError(f"cannot write in {out.parent}: {error.strerror or error}; choose another --out") from None
    umask = os.umask(0)
    os.umask(umask)
    partial.chmod(0o777 & ~umask)  # mkdtemp makes it private; the result is an ordinary folder
    return partial


def _checked_config(args: BuildArguments) -> UltraFeedbackKTOConfig:
    """The builder's config of these options; refuse bad options and missing local files
    before anything starts."""
    try:
        config = UltraFeedbackKTOConfig(**args.options)
    except (TypeError, ValueError) as error:
        raise PublishError(str(error)) from None
    for source in args.sources or []:
        _, path = split_source(source)
        if "://" in path or any(char in path for char in "*?["):
            continue
        if Path(path).is_dir():
            raise PublishError(f"{path} is a folder: give the files in it, e.g. {Path(path) / '*.parquet'}")
        name, equals, rest = path.partition("=")
        if not Path(path).exists() and equals and Path(rest).exists():  # SPLIT=PATH with a split it does not have
            raise _not_a_split(f"{name}={public_name(rest)}", name, config.upstream)
        if not Path(path).exists():
            raise PublishError(f"{path}: file not found")
    return config


def _not_a_split(source: str, split: str, upstream: str) -> PublishError:
    splits = UPSTREAMS[upstream].splits
    if not splits:
        return PublishError(f"{source}: {upstream} has no splits of its own; give the file without {split}=")
    return PublishError(f"{source}: {split} is not one of {upstream}'s splits ({', '.join(splits)})")


def _resolve_source(
    args: BuildArguments, config: UltraFeedbackKTOConfig
) -> tuple[dict[str, list[str]] | None, dict, Provenance]:
    """The builder's data_files (by upstream split) and options, and the provenance the card
    records. From the Hub, the revision is resolved to a commit first and the build pinned to
    it, so the card names exactly what was read even if the upstream moves meanwhile."""
    options = dict(args.options)
    upstream_name = config.upstream
    common = {"tool_version": publish.__version__, "command": args.command, "options": options}
    if args.sample:
        files = {split: [str(SAMPLE_DIR / name) for name in names] for split, names in SAMPLES[upstream_name].items()}
        names = [name for split in SAMPLES[upstream_name].values() for name in split]
        return files, options, Provenance(source="sample", upstream_commit=None, source_files=names, **common)
    if args.sources:
        files = _data_files(args.sources, upstream_name)
        names = [public_name(path) for paths in files.values() for path in paths]
        return files, options, Provenance(source="files", upstream_commit=None, source_files=names, **common)
    repo = UPSTREAMS[upstream_name].repo
    options["upstream_revision"] = commit = _upstream_commit(repo, config.upstream_revision)
    say(f"upstream {repo} resolved to commit {commit}")
    return None, options, Provenance(source="hub", upstream_commit=commit, source_files=[], **common)


def _data_files(sources: list[str], upstream: str) -> dict[str, list[str]]:
    """``--source`` as the builder's data_files: ``SPLIT=PATH``, or a path whose name holds
    one of the upstream's split names, or (an upstream without splits) ``train``."""
    splits = UPSTREAMS[upstream].splits
    files: dict[str, list[str]] = {}
    for source in sources:
        split, path = split_source(source)
        if split and split not in splits:
            raise _not_a_split(public_name(source), split, upstream)
        if not split and splits:
            named = [name for name in splits if name in Path(path).name]
            if len(named) != 1:
                example = f"{next(iter(splits))}={public_name(path)}"
                raise PublishError(f"{public_name(source)}: say which upstream split it holds, e.g. {example}")
            split = named[0]
        files.setdefault(split or "train", []).append(path)
    return files


def _upstream_commit(repo: str, revision: str) -> str:
    from huggingface_hub import HfApi
    from huggingface_hub.errors import HfHubHTTPError, RepositoryNotFoundError, RevisionNotFoundError

    try:
        return HfApi().dataset_info(repo, revision=revision).sha
    except RevisionNotFoundError:
        raise PublishError(f"{repo} has no revision {revision!r}") from None
    except RepositoryNotFoundError:
        raise PublishError(f"{repo} was not found on the Hub") from None
    except (HfHubHTTPError, OSError) as error:
        message = f"cannot read {repo} from the Hub ({one_line(error)})"
        raise PublishError(f"{message}; offline, use --source FILES or --sample") from None


def _write_configs(
    configs: list[str], data_files, options: dict, partial: Path, shard_size: int
) -> tuple[dict, list[SplitStats], UltraFeedbackKTOConfig]:
    """Build, write and describe the configs; return their infos, the splits' statistics and
    the builder's config (every option as it was applied).

    The builder runs once. With both configs it builds ``conversational`` and ``default`` is
    made from those rows by `standard_from_conversational`, which gives the same rows in
    the same order as a second run from the upstream, at a fraction of the time.
    """
    built_config = "conversational" if "conversational" in configs else "default"
    # A fresh cache: a build never reuses rows prepared by an earlier run or another version.
    with tempfile.TemporaryDirectory(prefix="ufkto-cache-") as cache_dir:
        say(f"building config {built_config!r} from the upstream")
        try:
            builder = UltraFeedbackKTO(config_name=built_config, data_files=data_files, cache_dir=cache_dir, **options)
            builder.download_and_prepare(max_shard_size=shard_size)
            dataset = builder.as_dataset()
        except Exception as error:
            raise _builder_failure(error, options.get("shuffle_dir")) from None
        files = {split: [f["filename"] for f in split_dataset.cache_files] for split, split_dataset in dataset.items()}
        del dataset
        scale = UPSTREAMS[builder.config.upstream].ratings
        reports = builder.reports
        stats = [split_stats(split, _stat_columns(files[split]), reports.get(split), scale=scale) for split in files]
        writes = {
            built_config: functools.partial(_write_shards, files, partial / DATA_DIRS[built_config], builder.info)
        }
        if built_config != "default" and "default" in configs:
            standard = features("standard", builder.config.upstream)
            writes["default"] = functools.partial(
                _write_shards, files, partial / DATA_DIRS["default"], builder.info, standard=standard
            )
        say("writing " + " and ".join(f"config {name!r}" for name in writes))
        infos = _write_at_once(writes)
    return {name: infos[name] for name in configs}, stats, builder.config


class _Stopped(Exception):
    """A config's write, stopped because another failed or the build was interrupted."""


def _write_at_once(writes: dict) -> dict[str, datasets.DatasetInfo]:
    """Run each config's write (`_write_shards`) in its own thread; return their infos.

    pyarrow encodes parquet without the GIL, so on two cores the second config adds little
    to the wall time (bench/README.md). A failure, or Ctrl-C, stops the other writes before
    their next shard, and the first failure is raised, not the stops it caused.
    """
    stop = threading.Event()

    def run(write):
        try:
            return write(stop=stop)
        except BaseException:
            stop.set()
            raise

    with _no_progress_bars(), concurrent.futures.ThreadPoolExecutor(max_workers=len(writes)) as pool:
        futures = {name: pool.submit(run, write) for name, write in writes.items()}
        try:
            concurrent.futures.wait(futures.values())
        except BaseException:  # Ctrl-C: each thread ends its shard and stops
            stop.set()
            raise
    for future in futures.values():
        if future.exception() is not None and not isinstance(future.exception(), _Stopped):
            raise future.exception()
    return {name: future.result() for name, future in futures.items()}


@contextlib.contextmanager
def _no_progress_bars():
    """datasets' progress bars off for a while: two threads' bars garble one terminal."""
    were_disabled = datasets.are_progress_bars_disabled()
    datasets.disable_progress_bars()
    try:
        yield
    finally:
        if not were_disabled:
            datasets.enable_progress_bars()


def _stat_columns(cache_files: list[str]):
    """The columns the statistics read, one cache file at a time: datasets memory-maps its
    files and every page read stays in memory until the file is let go."""
    for cache_file in cache_files:
        shard = datasets.Dataset.from_file(cache_file)
        columns = ["prompt_id", "label", "source", "model", "average_rating", "annotations"]
        yield shard.data.table.select([name for name in columns if name in shard.column_names])
        del shard


def _builder_failure(error: Exception, shuffle_dir: str | None) -> PublishError:
    """The one-line cause of a failed builder run (datasets wraps it in its own error)."""
    if _disk_full(error):  # its cache is in the temporary folder, and by default its shuffle's files
        temporary = tempfile.gettempdir()
        if shuffle_dir and Path(shuffle_dir).resolve() != Path(temporary).resolve():
            return _no_space(f"{temporary} or {shuffle_dir}", "set TMPDIR or --shuffle-dir to a folder with more room")
        return _no_space(temporary, "set TMPDIR to a folder with more room")
    cause: BaseException | None = error
    while cause is not None:
        if isinstance(cause, (UpstreamError, BadRowError, FileNotFoundError, ValueError)):
            return PublishError(one_line(cause))
        cause = cause.__cause__ or cause.__context__
    return PublishError(f"the build failed: {type(error).__name__}: {one_line(error)}")


def _disk_full(error: BaseException | None) -> bool:
    """Whether a full disk (or a quota) caused ``error``, however the libraries wrapped it."""
    while error is not None:
        if isinstance(error, OSError) and error.errno in (errno.ENOSPC, errno.EDQUOT):
            return True
        error = error.__cause__ or error.__context__
    return False


def _no_space(folder: str | Path, instead: str) -> PublishError:
    return PublishError(f"no space left on device in {folder}: free some space there, or {instead}")


def _write_failure(error: OSError, folder: Path, written: str) -> PublishError:
    """One line for a failed write into the folder beside --out."""
    if _disk_full(error):
        return _no_space(folder, "choose another --out")
    return PublishError(f"could not write {written}: {error.strerror or one_line(error)}")


def _write_shards(
    files: dict[str, list[str]],
    folder: Path,
    built: datasets.DatasetInfo,
    *,
    stop: threading.Event,
    standard: datasets.Features | None = None,
) -> datasets.DatasetInfo:
    """Write each of the builder's cache files as one parquet shard; return the card's info.

    One file at a time, each opened alone: datasets memory-maps its Arrow files and writing
    reads every page, so memory holds one shard (``SHARD_SIZE``) and its parquet bytes, not the
    dataset. With ``standard`` (its features), the rows are turned into the ``default`` config's
    on the way. Once ``stop`` is set, it stops before the next shard.
    """
    folder.mkdir(parents=True)
    download_size = 0
    splits = {}
    for split, cache_files in files.items():
        num_bytes = 0
        for index, cache_file in enumerate(cache_files):
            if stop.is_set():
                raise _Stopped
            shard = datasets.Dataset.from_file(cache_file)
            if standard:
                try:
                    shard = shard.with_format("arrow").map(
                        standard_from_conversational,
                        batched=True,
                        batch_size=10_000,
                        features=standard,
                        cache_file_name=f"{cache_file}.standard",
                        desc=None,
                    )
                except OSError as error:
                    if _disk_full(error):  # the rows are made in the cache, in the temporary folder
                        raise _no_space(tempfile.gettempdir(), "set TMPDIR to a folder with more room") from None
                    raise
                shard = shard.with_format(None)
            path = folder / f"{split}-{index:05d}-of-{len(cache_files):05d}.parquet"
            # Encoded in memory, then written: pyarrow's parquet writer aborts the process (a
            # failed check, not an exception) when its file fails mid-write, as on a full disk.
            parquet = pa.BufferOutputStream()
            try:
                shard.to_parquet(parquet)
                path.write_bytes(parquet.getvalue())
            except OSError as error:  # the build stops; the previous folder is kept
                raise _write_failure(error, folder.parent.parent, f"{folder.name}/{path.name}") from None
            num_bytes += shard.data.nbytes
            download_size += path.stat().st_size
            del shard
            if standard:
                os.remove(f"{cache_file}.standard")
        rows = built.splits[split].num_examples
        num_bytes = num_bytes if standard else built.splits[split].num_bytes
        splits[split] = datasets.SplitInfo(name=split, num_bytes=num_bytes, num_examples=rows)
    return datasets.DatasetInfo(
        features=standard or built.features,
        splits=datasets.SplitDict(splits),
        download_size=download_size,
        dataset_size=sum(info.num_bytes for info in splits.values()),
        config_name="default" if standard else built.config_name,
    )


def _swap_in(partial: Path, out: Path) -> None:
    if not out.exists():
        os.rename(partial, out)
        return
    previous = Path(tempfile.mkdtemp(prefix=f".{out.name}.previous-", dir=out.parent))
    os.rename(out, previous / out.name)
    try:
        os.rename(partial, out)
    except BaseException:
        os.rename(previous / out.name, out)  # the previous folder back where it was
        raise
    shutil.rmtree(previous, ignore_errors=True)


def _summarize(out: Path, stats: list[SplitStats], seconds: float) -> None:
    lines = [f"built {out} in {seconds:.1f} s"]
    for s in stats:
        lines.append(f"  {s.name}: {s.rows:,} rows ({s.desirable:,} desirable, {s.undesirable:,} undesirable)")
    left_out: dict[tuple[str, str], int] = {}
    for s in stats:
        for item in s.left_out:
            left_out[item.reason, item.unit] = left_out.get((item.reason, item.unit), 0) + item.count
    lines.append("  left out:" + ("" if left_out else " nothing"))
    largest_first = sorted(left_out.items(), key=lambda item: -item[1])
    lines += [f"    {reason}: {count:,} {unit}(s)" for (reason, unit), count in largest_first]
    print("\n".join(lines), flush=True)
