"""``python -m publish verify FOLDER``: check a built folder before anyone loads or pushes it.

The folder is checked against the build's own record (``MARKER``, `publish.card.read_record`):
the card must be the one the record renders, byte for byte (a card edited by hand no longer
describes the data); every config is loaded as users will load it (``load_dataset`` on the
folder, normally and streaming) and compared with its card; the shards on disk must be exactly
those the card's ``configs`` name; each split must hold both labels, as many of each as the
build recorded, and its row order must keep the builder's guarantees; the card's metadata must
parse with the ``huggingface_hub`` and ``datasets`` classes the Hub uses, offline; and no
legacy ``dataset_infos.json`` may be left (it breaks older ``datasets``).
"""

from __future__ import annotations

import fnmatch
import gc
import itertools
import json
import re
import sys
import tempfile
from pathlib import Path

import datasets
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from datasets.info import DatasetInfosDict
from datasets.utils.metadata import MetadataConfigs
from huggingface_hub import DatasetCard

import publish
from publish.card import DATASET_INFO, DATASET_INFO_ENTRY, CardInputs, counted, read_record, rendered_files
from publish.errors import PublishError
from publish.stats import order_problems, size_category
from ultrafeedback_kto import one_line

REQUIRED_METADATA = tuple(
    "pretty_name license language task_categories tags size_categories source_datasets configs dataset_info".split()
)
SHARD_NAME = re.compile(r"(?P<split>[\w.]+)-(?P<index>\d{5})-of-(?P<count>\d{5})\.parquet$")


def verify_folder(folder: str | Path) -> list[str]:
    """Every problem found in a built folder, one line each; empty when it is sound."""
    try:
        inputs = _recorded(Path(folder))
    except PublishError as error:
        return [str(error)]
    return _problems(Path(folder), inputs)


def verify_or_fail(folder: str | Path) -> None:
    """Print a line per problem and raise `PublishError`, or print a one-line ``ok`` and what
    the build left out. What stops the check before it starts (no folder, no readable record)
    is the error's own line."""
    inputs = _recorded(Path(folder))
    problems = _problems(Path(folder), inputs)
    if problems:
        for problem in problems:
            print(f"  {problem}", file=sys.stderr)
        raise PublishError(f"{folder} fails verification: {len(problems)} problem(s), listed above")
    by_name = sorted(inputs.infos.items())  # as the card's dataset_info lists them
    described = "; ".join(f"{name}: {_split_sizes(info)}" for name, info in by_name)
    print(f"ok: {folder} ({described})")
    for split in inputs.stats:
        left_out = [f"{item.reason}: {counted(item.count, item.unit)}" for item in split.left_out]
        print(f"  left out of {split.name} by the build: {'; '.join(left_out) or 'nothing'}")


def _split_sizes(info: datasets.DatasetInfo) -> str:
    return ", ".join(f"{split} {split_info.num_examples:,} rows" for split, split_info in info.splits.items())


def _recorded(folder: Path) -> CardInputs:
    """The build's record of ``folder``; `PublishError` when there is no folder or record to check."""
    if folder.exists() and not folder.is_dir():
        raise PublishError(f"{folder} is a file, not a built folder: give the folder `ufkto build` wrote")
    if not folder.is_dir():
        raise PublishError(f"{folder}: no such folder")
    return read_record(folder)


def _problems(folder: Path, inputs: CardInputs) -> list[str]:
    card_path = folder / "README.md"
    if not card_path.is_file():
        return [f"{card_path}: missing (the dataset card)"]
    try:
        card = DatasetCard.load(card_path)
        configs = MetadataConfigs.from_dataset_card_data(card.data)
        infos = DatasetInfosDict.from_dataset_card_data(card.data)
    except Exception as error:  # any parse failure of the card is the finding itself
        return [f"{card_path}: invalid card metadata ({one_line(error)})"]
    labels = {split.name: (split.desirable, split.undesirable) for split in inputs.stats}
    distance = inputs.config.min_prompt_distance

    rendered = rendered_files(inputs)  # as the build wrote them
    problems = _card_problems(card_path.read_text(encoding="utf-8"), rendered["README.md"], inputs)
    problems += _metadata_problems(card, configs, infos)
    problems += _legacy_problems(folder) + _dataset_info_problems(folder, infos, rendered.get(DATASET_INFO))
    problems += _extra_parquet(folder, configs)
    for name, config in configs.items():
        shard_problems = _shard_problems(folder, name, config)
        problems += shard_problems
        if not shard_problems and name in infos:
            info = infos[name]
            loaded = _feature_problems(folder, name, config, info)
            problems += loaded or _load_problems(folder, name, info, labels, distance)
    return problems


def _card_problems(card: str, rendered: str, inputs: CardInputs) -> list[str]:
    """The card must be the one the build's record renders: one edited by hand (another count,
    another snippet) no longer says what the data is."""
    if card == rendered:
        return []
    lines = list(itertools.zip_longest(card.splitlines(), rendered.splitlines()))
    number = next((number for number, (found, expected) in enumerate(lines, 1) if found != expected), None)
    if number is None:
        differs = "its line breaks differ from the card the build's record gives"
    else:
        found, expected = lines[number - 1]
        differs = f"line {number} reads {_shown(found)}, but the build's record gives {_shown(expected)}"
    built_by = inputs.provenance.tool_version
    if built_by != publish.__version__:  # the card of another version's build
        differs += f" (built by ufkto {built_by}, checked by {publish.__version__})"
    return [f"README.md: {differs}: rebuild the folder"]


def _shown(line: str | None) -> str:
    if line is None:
        return "the end of the card"
    return repr(line if len(line) <= 80 else line[:77] + "...")


def _metadata_problems(card: DatasetCard, configs: MetadataConfigs, infos: DatasetInfosDict) -> list[str]:
    data = card.data.to_dict()
    problems = [f"README.md: card metadata lacks {key!r}" for key in REQUIRED_METADATA if not data.get(key)]
    resources = Path(datasets.__file__).parent / "utils" / "resources"
    allowed_sizes = json.loads((resources / "size_categories.json").read_text())
    allowed_languages = json.loads((resources / "languages.json").read_text())
    for size in data.get("size_categories") or []:
        if size not in allowed_sizes:
            problems.append(f"README.md: size_categories {size!r} is not a Hub size category")
    for language in data.get("language") or []:
        if language not in allowed_languages:
            problems.append(f"README.md: language {language!r} is not a Hub language code")
    default = infos.get("default") or next(iter(infos.values()), None)
    if default is not None and default.splits:
        rows = sum(split.num_examples for split in default.splits.values())
        if data.get("size_categories") != [size_category(rows)]:
            found = f"the data has {rows:,} rows ({size_category(rows)})"
            problems.append(f"README.md: size_categories {data.get('size_categories')} but {found}")
    for name in configs:
        if name not in infos:
            problems.append(f"README.md: config {name!r} has no dataset_info")
    for name in infos:
        if name not in configs:
            problems.append(f"README.md: dataset_info {name!r} has no config")
    return problems


def _dataset_info_problems(folder: Path, infos: DatasetInfosDict, rendered: str | None) -> list[str]:
    """LLaMA-Factory's entry: present with the ``default`` config, naming its columns and a split,
    as the build's record gives it (``rendered``)."""
    if "default" not in infos:
        return []
    try:
        text = (folder / DATASET_INFO).read_text(encoding="utf-8")
        entry = json.loads(text)[DATASET_INFO_ENTRY]
        if not isinstance(entry, dict):
            raise TypeError(f"the entry is a {type(entry).__name__}, not an object")
    except (OSError, ValueError, KeyError, TypeError) as error:
        problem = f"missing, unreadable or without the entry {DATASET_INFO_ENTRY!r} ({one_line(error)})"
        return [f"{DATASET_INFO}: {problem}; LLaMA-Factory reads the default config through it"]
    default = infos["default"]
    columns = entry.get("columns", {})
    if not isinstance(columns, dict):
        return [f"{DATASET_INFO}: its 'columns' is a {type(columns).__name__}, not an object"]
    missing = {role: target for role, target in columns.items() if target not in default.features}
    problems = [
        f"{DATASET_INFO}: its column {target!r} ({role}) is not in the default config"
        for role, target in missing.items()
    ]
    if entry.get("subset") != "default" or entry.get("split") not in default.splits:
        problems.append(f"{DATASET_INFO}: it should name the default config and one of its splits")
    if not problems and text != rendered:
        problems.append(f"{DATASET_INFO}: differs from the one the build's record gives: rebuild the folder")
    return problems


def _legacy_problems(folder: Path) -> list[str]:
    if (folder / "dataset_infos.json").is_file():
        return [
            "dataset_infos.json: a legacy file that breaks load_dataset on datasets older than 4.5 "
            "(the card's YAML replaces it): rebuild the folder"
        ]
    return []


def _patterns(config: dict) -> dict[str, list[str]]:
    return {
        entry["split"]: [entry["path"]] if isinstance(entry["path"], str) else list(entry["path"])
        for entry in config.get("data_files", [])
    }


def _relative_parquet(folder: Path) -> list[str]:
    return sorted(
        path.relative_to(folder).as_posix()
        for path in folder.rglob("*.parquet")
        if not any(part.startswith(".") for part in path.relative_to(folder).parts)
    )


def _extra_parquet(folder: Path, configs: MetadataConfigs) -> list[str]:
    patterns = [pattern for config in configs.values() for globs in _patterns(config).values() for pattern in globs]
    return [
        f"{path}: extra shard, named by no config of the card"
        for path in _relative_parquet(folder)
        if not any(fnmatch.fnmatch(path, pattern) for pattern in patterns)
    ]


def _shard_problems(folder: Path, name: str, config: dict) -> list[str]:
    problems = []
    files = _relative_parquet(folder)
    for split, globs in _patterns(config).items():
        shards = [path for path in files if any(fnmatch.fnmatch(path, pattern) for pattern in globs)]
        if not shards:
            problems.append(f"config {name!r} split {split!r}: no shard matches {', '.join(globs)}")
            continue
        counts = set()
        for path in shards:
            match = SHARD_NAME.search(path)
            if match is None or match["split"] != split:
                problems.append(f"{path}: extra shard, not named {split}-NNNNN-of-NNNNN.parquet")
            else:
                counts.add(int(match["count"]))
        for count in counts:
            directory = Path(shards[0]).parent.as_posix()
            for index in range(count):
                expected = f"{directory}/{split}-{index:05d}-of-{count:05d}.parquet"
                if expected not in shards:
                    problems.append(f"{expected}: missing shard of config {name!r}")
        if len(counts) > 1:
            problems.append(f"config {name!r} split {split!r}: shards of different sets ({sorted(counts)} in all)")
    return problems


def _feature_problems(folder: Path, name: str, config: dict, info: datasets.DatasetInfo) -> list[str]:
    """Shards whose own features differ from the card's (load_dataset would cast them silently)."""
    globs = [pattern for patterns in _patterns(config).values() for pattern in patterns]
    problems = []
    for path in _relative_parquet(folder):
        if not any(fnmatch.fnmatch(path, pattern) for pattern in globs):
            continue
        try:
            schema = pq.read_schema(folder / path)
        except (OSError, pa.ArrowException) as error:  # truncated, or not parquet at all
            problems.append(f"{path}: unreadable parquet ({one_line(error)})")
            continue
        if datasets.Features.from_arrow_schema(schema) != info.features:
            problems.append(f"{path}: features differ from the card's for config {name!r}")
    return problems


def _repeats(dataset: datasets.Dataset) -> list[str]:
    """Examples found more than once, and (prompt, completion) found with both labels."""
    table = dataset.data.table
    completion = table.column("completion")
    if not pa.types.is_string(completion.type):  # conversational: the one message's text
        completion = pc.struct_field(pc.list_element(completion, 0), "content")
    groups = (
        pa.table({"prompt_id": table.column("prompt_id"), "completion": completion, "label": table.column("label")})
        .group_by(["prompt_id", "completion"], use_threads=False)
        .aggregate([("label", "count"), ("label", "count_distinct")])
    )
    contradictory = pc.sum(pc.greater(groups.column("label_count_distinct"), 1)).as_py() or 0
    duplicates = pc.sum(pc.subtract(groups.column("label_count"), groups.column("label_count_distinct"))).as_py() or 0
    return ([f"{contradictory} (prompt, completion) have both labels"] if contradictory else []) + (
        [f"{duplicates} examples are duplicates"] if duplicates else []
    )


def _text_problems(table: pa.Table) -> list[str]:
    """Text whose bytes are not UTF-8, which every reader of the split fails on (a UnicodeDecodeError):
    checked for the whole split at once, the first such row then found row by row."""
    try:
        table.validate(full=True)
        return []
    except pa.ArrowInvalid as error:
        invalid = f"invalid Arrow data ({one_line(error)})"
    for row in range(table.num_rows):
        try:
            table.slice(row, 1).to_pylist()
        except UnicodeDecodeError:
            return [f"row {row} holds text that is not valid UTF-8, on which every reader fails"]
    return [invalid]


def _label_problems(labels: list[bool], recorded: tuple[int, int] | None) -> list[str]:
    """A split with one label cannot train KTO; and the build's counts are what its card tells users."""
    desirable = sum(labels)
    undesirable = len(labels) - desirable
    problems = []
    if not desirable or not undesirable:
        label = "desirable" if desirable else "undesirable"
        problems.append(f"all {len(labels):,} rows are {label}: KTO needs both labels")
    if recorded is None:
        problems.append("the build recorded no statistics of this split (nor does its card show any)")
    elif recorded != (desirable, undesirable):
        found = f"{desirable:,} desirable and {undesirable:,} undesirable rows"
        problems.append(f"{found}, but the build recorded {recorded[0]:,} and {recorded[1]:,}")
    return problems


def _streamed_prompt_ids(folder: Path, name: str, split: str) -> list[str]:
    streamed = datasets.load_dataset(str(folder), name, split=split, streaming=True)
    return [row["prompt_id"] for row in streamed.select_columns(["prompt_id"])]


def _load_problems(
    folder: Path, name: str, info: datasets.DatasetInfo, labels: dict[str, tuple[int, int]], distance: int
) -> list[str]:
    with tempfile.TemporaryDirectory(prefix="ufkto-verify-") as cache_dir:
        try:
            loaded = datasets.load_dataset(str(folder), name, cache_dir=cache_dir)
        except Exception as error:  # what load_dataset refuses (counts, features, files) is the finding
            return [f"config {name!r}: load_dataset fails: {one_line(error)[:400]}"]
        problems = []
        expected = {split: split_info.num_examples for split, split_info in info.splits.items()}
        found = {split: dataset.num_rows for split, dataset in loaded.items()}
        if found != expected:
            problems.append(f"config {name!r}: rows per split {found} but the card says {expected}")
        for split, dataset in loaded.items():
            if dataset.features != info.features:
                problems.append(f"config {name!r} split {split!r}: features differ from the card")
            order = dataset.select_columns(["prompt_id", "label"]).to_dict()
            in_split = _label_problems(order["label"], labels.get(split))
            in_split += order_problems(order["prompt_id"], order["label"], distance) + _repeats(dataset)
            in_split += _text_problems(dataset.data.table)
            problems += [f"config {name!r} split {split!r}: {problem}" for problem in in_split]
            if _streamed_prompt_ids(folder, name, split) != order["prompt_id"]:
                problems.append(f"config {name!r} split {split!r}: streaming gives other rows or another order")
        del loaded
        # A finished stream's parquet scanner keeps its threads until the garbage collector frees it;
        # left to the interpreter's exit, Arrow is gone by then and the process aborts ("terminate
        # called without an active exception", huggingface/datasets#7566, apache/arrow#34314).
        gc.collect()
        return problems
