"""The dataset card (README.md of the built folder), generated from the data it describes.

The YAML header is made the way ``Dataset.push_to_hub`` makes it (``huggingface_hub``'s
`DatasetCardData`, ``datasets``' `MetadataConfigs` and `DatasetInfosDict`), so the Hub
and ``load_dataset`` read it as they read their own. The body is text with the numbers
of the build filled in; nothing in it varies between two builds of the same input and
options, so a rebuild changes the card only when the data changes.

What the card is made from (`CardInputs`) is the build's record (``MARKER`` in the folder):
`write_record` writes it as JSON and `read_record` reads it back, so that ``verify`` and
``push`` work from the build's data, and render the same card from it (`rendered_files`),
never from the card's text.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import datasets
from datasets.info import DatasetInfosDict
from datasets.utils.metadata import MetadataConfigs
from huggingface_hub import DatasetCard, DatasetCardData

import publish
from publish.errors import PublishError
from publish.options import BUILDER_OPTIONS
from publish.plan import MARKER
from publish.stats import ASPECTS, LabelCounts, SplitStats, kto_weights, size_category
from ultrafeedback_kto import CITATION, UPSTREAMS, UltraFeedbackKTOConfig, one_line

KTO_ARXIV = "2402.01306"
TOP_MODELS = 20
#: The dataset this project reproduces and improves on (its recipe was never published).
SEED_DATASET = "argilla/ultrafeedback-binarized-preferences-cleaned-kto"


@dataclasses.dataclass
class Provenance:
    """Where a build came from, for the card's "reproduce" section."""

    tool_version: str
    source: str  # "hub", "sample" or "files"
    upstream_commit: str | None
    source_files: list[str]
    options: dict  # as given on the command line
    command: str


@dataclasses.dataclass
class CardInputs:
    """Everything the card (and ``dataset_info.json``) is made from: the build's record."""

    infos: dict[str, datasets.DatasetInfo]  # config name -> info with splits and sizes
    data_dirs: dict[str, str]  # config name -> folder of its shards
    stats: list[SplitStats]  # per split, in split order
    provenance: Provenance
    repo_id: str  # what the card's code snippets load: the Hub repo id, or the folder name
    config: UltraFeedbackKTOConfig  # every option as the builder applied it

    def to_record(self) -> dict:
        """These inputs as JSON data, which `from_record` reads back into inputs that render the
        same card. Each config's info is kept as the card's YAML holds it; the options are the
        builder's, as applied, but ``shuffle_dir``: where rows waited is no part of the data (as
        ``--out`` is not), and a folder gone since would make the config refuse itself."""
        applied = {name: getattr(self.config, name) for name in BUILDER_OPTIONS}
        return {
            "repo_id": self.repo_id,
            "provenance": dataclasses.asdict(self.provenance),
            "options": {**applied, "shuffle_dir": None},
            "data_dirs": self.data_dirs,
            "infos": {name: info._to_yaml_dict() for name, info in self.infos.items()},
            "stats": [split.to_record() for split in self.stats],
        }

    @classmethod
    def from_record(cls, record: dict) -> CardInputs:
        """The inputs `to_record` wrote (JSON gives lists where the options had tuples)."""
        recorded = record["options"]
        options = {name: tuple(value) if isinstance(value, list) else value for name, value in recorded.items()}
        return cls(
            infos={name: datasets.DatasetInfo._from_yaml_dict(info) for name, info in record["infos"].items()},
            data_dirs=record["data_dirs"],
            stats=[SplitStats.from_record(split) for split in record["stats"]],
            provenance=Provenance(**record["provenance"]),
            repo_id=record["repo_id"],
            config=UltraFeedbackKTOConfig(**options),
        )


def write_record(folder: Path, inputs: CardInputs) -> dict:
    """Write the build's record of ``inputs`` into ``folder`` (``MARKER``); return it."""
    record = {"tool": "ufkto", "version": publish.__version__, "configs": list(inputs.infos), **inputs.to_record()}
    (folder / MARKER).write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")
    return record


def read_record(folder: Path) -> CardInputs:
    """The card's inputs as the build of ``folder`` recorded them; a missing or unreadable
    record is a `PublishError` of one line."""
    path = folder / MARKER
    if not path.is_file():
        what = "the build's record, which verify checks the folder against: give a folder `ufkto build` wrote"
        raise PublishError(f"{path}: missing ({what})")
    try:
        return CardInputs.from_record(json.loads(path.read_text(encoding="utf-8")))
    except KeyError as error:
        reason = f"no {error.args[0]!r}, as in an earlier version's record"
    except (OSError, ValueError, TypeError, AttributeError) as error:
        reason = one_line(error)
    raise PublishError(f"{path}: unreadable ({reason}); rebuild the folder")


def rendered_files(inputs: CardInputs) -> dict[str, str]:
    """The folder's text files, made from ``inputs``: the card and, with the ``default`` config
    (the one LLaMA-Factory reads), ``dataset_info.json``. ``build`` writes them; ``push`` to
    another repo id makes them again from the record with that id; ``verify`` compares them
    with the folder's."""
    files = {"README.md": render_card(inputs)}
    if "default" in inputs.infos:
        files[DATASET_INFO] = dataset_info(inputs.repo_id)
    return files


def card_data(inputs: CardInputs) -> DatasetCardData:
    default_info = inputs.infos.get("default") or next(iter(inputs.infos.values()))
    rows = sum(split.num_examples for split in default_info.splits.values())
    data = DatasetCardData(
        pretty_name="UltraFeedback KTO",
        license="mit",
        language=["en"],
        task_categories=["text-generation"],
        tags=["kto", "preference", "ultrafeedback", "trl", f"arxiv:{KTO_ARXIV}"],
        size_categories=[size_category(rows)],
        source_datasets=[UPSTREAMS[inputs.config.upstream].repo],
    )
    configs = {}
    for name, info in inputs.infos.items():
        shards = [{"split": split, "path": f"{inputs.data_dirs[name]}/{split}-*"} for split in info.splits]
        configs[name] = {"data_files": shards, **({"default": True} if name == "default" else {})}
    MetadataConfigs(configs).to_dataset_card_data(data)
    DatasetInfosDict(inputs.infos).to_dataset_card_data(data)
    return data


def render_card(inputs: CardInputs) -> str:
    sections = [
        _summary(inputs),
        _schema(inputs),
        _statistics(inputs.stats),
        _loading(inputs),
        _training(inputs),
        _reproduce(inputs),
        _citations(),
    ]
    body = "\n".join(sections)
    return str(DatasetCard(f"---\n{card_data(inputs).to_yaml()}\n---\n\n{body}"))


def _n(value: int) -> str:
    return f"{value:,}"


def counted(count: int, unit: str) -> str:
    """A count of a unit in words: "1 prompt", "1,079 prompts"."""
    return f"{count:,} {unit}{'' if count == 1 else 's'}"


def _table(header: list[str], rows: list[list]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    return "\n".join(lines)


def _link(repo: str) -> str:
    return f"[`{repo}`](https://huggingface.co/datasets/{repo})"


#: What the label rule makes of the upstream's ratings, in the card's words.
_LABELS = {
    "pairwise": (
        "each pair gives its chosen completion as a desirable example (`label=True`) and its rejected completion "
        "as an undesirable one (`label=False`)"
    ),
    "absolute": (
        "each completion is desirable (`label=True`) when its own rating ({scale}) is at least {threshold}, "
        "whatever it was compared with"
    ),
    "best-vs-rest": (
        "the completions with the best rating of their prompt are desirable (`label=True`), the others "
        "undesirable; a prompt whose completions all tie is left out"
    ),
}
#: What the dataset is, per upstream ({repo} and {labels} filled in).
_WHAT = {
    "argilla-cleaned": "UltraFeedback preference pairs, from {repo}, unpaired for KTO: {labels}.",
    "h4-binarized": (
        "UltraFeedback preference pairs as binarized for Zephyr, from {repo}, unpaired for KTO: {labels}. `train` "
        "comes from its `train_prefs` and `test` from its `test_prefs`, the split published results are measured on."
    ),
    "openbmb": (
        "UltraFeedback, from {repo}, with every rated completion of its prompts as an example: {labels}. A "
        "completion's rating is the mean of its numeric aspect ratings (helpfulness, honesty, instruction "
        "following, truthfulness); its `annotations` are kept."
    ),
}
_LAST_TURN = "the prompt is the conversation before the final assistant turn, the completion that final turn"
_MALFORMED_PAIRS = (
    "malformed pairs are left out and counted below (empty texts, conversations not ending with an assistant turn, "
    "chosen and rejected differing before the last turn or identical, a prompt differing from the first user turn, "
    "rejected rated above chosen)"
)
_HASH_SPLIT = (
    "the split is decided by a stable hash of the prompt, so every row of a prompt is in the same split, and a "
    "refreshed upstream never moves a prompt across splits"
)
#: How the rows are made from each upstream's, as the card's first list begins.
_MADE = {
    "argilla-cleaned": [_LAST_TURN, _MALFORMED_PAIRS, _HASH_SPLIT],
    "h4-binarized": [
        _LAST_TURN,
        _MALFORMED_PAIRS,
        "a prompt of `test_prefs` that also appears in `train_prefs` is left out of `train`, so that no prompt is "
        "in both splits",
    ],
    "openbmb": [
        "the prompt is the `instruction`, the completion a completion's `response`",
        "completions with an empty response or no numeric rating, and rows with no completions, are left out and "
        "counted below",
        _HASH_SPLIT,
    ],
}
_REPEATS = (
    "each split holds one row per (prompt, completion, label): exact duplicates are kept once, and a completion "
    "found for the same prompt with both labels, which would cancel out in KTO, is left out altogether; both are "
    "counted below"
)
_SEED_DIFFERENCE = (
    "\n**How it differs from {seed}**, the dataset this reproduces (230,720 rows, every rated completion of "
    "UltraFeedback with its annotations, built into LLaMA-Factory and ms-swift): its label rule and filters were "
    "never published, so its rows cannot be remade exactly. Here they are stated above, the rows are ordered for "
    "KTO, repeats and contradictions are removed, and the split follows the prompt.\n"
)


def _summary(inputs: CardInputs) -> str:
    config, total = inputs.config, sum(s.rows for s in inputs.stats)
    upstream = UPSTREAMS[config.upstream]
    scale = "{:g} to {:g}".format(*upstream.ratings)
    labels = _LABELS[config.label_rule].format(scale=scale, threshold=config.desirable_threshold)
    what = _WHAT[config.upstream].format(repo=_link(upstream.repo), labels=labels)
    made = list(_MADE[config.upstream])
    if config.exclude_sources:
        sources = ", ".join(f"`{source}`" for source in config.exclude_sources)
        excluded = "(`truthful_qa` is an evaluation set, which Argilla's cleaning removed too)"
        made.append(f"rows of the sources {sources} are left out {excluded}")
    distance = _n(config.min_prompt_distance)
    order = (
        f"rows are shuffled, then arranged so that two rows of one prompt are at least {distance} rows apart where "
        f"the split is large enough (no batch of up to {distance} rows, wherever it starts, holds one prompt twice) "
        "and every 8 consecutive rows hold both labels ([why](#keep-the-row-order))"
    )
    made += [_REPEATS, order]
    steps = "".join(f"- {line};\n" for line in made[:-1]) + f"- {made[-1]}.\n"
    seed = _SEED_DIFFERENCE.format(seed=_link(SEED_DATASET)) if config.upstream == "openbmb" else ""
    kto = f"KTO ([arXiv:{KTO_ARXIV}](https://arxiv.org/abs/{KTO_ARXIV}))"
    single = (
        f"learns from such single examples `(prompt, completion, label)` instead of pairs ({_n(total)} rows in all)"
    )
    return (
        f"# UltraFeedback KTO\n\n{what} {kto} {single}.\n\n"
        f"How it is made, by [ufkto](#reproduce), from the upstream rows:\n{steps}{seed}"
    )


#: What ``average_rating`` holds, per upstream.
_RATING = {
    "argilla-cleaned": "the completion's upstream rating, the mean of its four aspect ratings, 1 to 5",
    "h4-binarized": "the completion's score in the upstream (UltraFeedback's overall score), 1 to 10",
    "openbmb": "the mean of the completion's numeric aspect ratings, 1 to 5",
}
_PROMPT_MEANING = (
    "the turns before the final assistant turn; in `default` a single user turn is its text, several turns are "
    "joined as `role: content` blocks separated by a blank line"
)


def _schema(inputs: CardInputs) -> str:
    config = inputs.config
    rows = [
        ["`prompt`", "string", "list of `{content, role}`", _PROMPT_MEANING],
        ["`completion`", "string", "list of one `{content, role}`", "the final assistant turn"],
        ["`label`", "bool", "bool", "`True`: a desirable completion"],
        ["`prompt_id`", "string", "string", "sha256 (hex) of the prompt text"],
        ["`source`", "string", "string", "the upstream `source` (the UltraFeedback subset; null where it has none)"],
        ["`model`", "string", "string", "the model that wrote the completion (null where the upstream has none)"],
        ["`average_rating`", "float64", "float64", f"{_RATING[config.upstream]} (null when missing)"],
    ]
    if config.upstream == "openbmb":
        annotations = f"the completion's ratings and rationales per aspect, as {_link(SEED_DATASET)} declares them"
        rows.append(["`annotations`", "struct", "struct", annotations])
    configs = ", ".join(f"`{name}` (in `{folder}/`)" for name, folder in inputs.data_dirs.items())
    same_rows = (
        "They hold the same rows in the same order; only the shape of `prompt` and `completion` differs, matching "
        "TRL's two formats."
    )
    table = _table(["column", "`default`", "`conversational`", "meaning"], rows)
    return f"## Configs and schema\n\nConfigs: {configs}. {same_rows}\n\n{table}\n"


def _counts_table(title: str, groups: list[LabelCounts]) -> str:
    rows = [[group.name, _n(group.rows), _n(group.desirable), _n(group.undesirable)] for group in groups]
    return _table([title, "rows", "desirable", "undesirable"], rows)


def _split_row(s: SplitStats) -> list[str]:
    """A split's row of the statistics table."""
    read = "" if s.pairs_read is None else _n(s.pairs_read)
    left_out = "; ".join(counted(count, unit) for unit, count in _by_unit(s).items()) or "nothing"
    return [s.name, _n(s.rows), _n(s.desirable), _n(s.undesirable), read, left_out]


#: How the card names each kind of reason (``ultrafeedback_kto.Reason.kind``).
_KINDS = {"malformed": "malformed", "option": "by option", "rule": "by rule"}


def _statistics(stats: list[SplitStats]) -> str:
    header = ["split", "rows", "desirable", "undesirable", "upstream rows read", "left out"]
    parts = ["## Statistics\n", _table(header, [_split_row(s) for s in stats])]
    for s in stats:
        parts.append(f"\n### Split `{s.name}`\n")
        parts.append(_counts_table("source", s.by_source))
        models, rest = s.by_model[:TOP_MODELS], s.by_model[TOP_MODELS:]
        if rest:
            desirable, undesirable = sum(g.desirable for g in rest), sum(g.undesirable for g in rest)
            models.append(LabelCounts(f"{len(rest)} other models", desirable, undesirable))
        parts.append("\n" + _counts_table("model", models))
        parts.append("\n" + _counts_table("average_rating", s.by_rating))
        for aspect in ASPECTS if s.by_aspect else ():
            parts.append("\n" + _counts_table(f"{aspect} rating", s.by_aspect[aspect]))
        left_out = [[item.reason, _n(item.count), f"{item.unit}s", _KINDS[item.kind]] for item in s.left_out]
        reasons = "\n\n" + _table(["reason", "count", "of", "kind"], left_out) if left_out else "nothing."
        parts.append("\nLeft out: " + reasons)
    return "\n".join(parts) + "\n"


def _by_unit(stats: SplitStats) -> dict[str, int]:
    totals: dict[str, int] = {}
    for item in stats.left_out:
        totals[item.unit] = totals.get(item.unit, 0) + item.count
    return totals


def _loading(inputs: CardInputs) -> str:
    return f"""## Loading

```python
from datasets import load_dataset

dataset = load_dataset("{inputs.repo_id}")  # default config: strings
conversational = load_dataset("{inputs.repo_id}", "conversational")  # message lists
stream = load_dataset("{inputs.repo_id}", split="train", streaming=True)  # same rows, same order
```
"""


def _training(inputs: CardInputs) -> str:
    stats, repo_id = inputs.stats, inputs.repo_id
    train = next((s for s in stats if s.name == "train"), stats[0])
    desirable_weight, undesirable_weight = kto_weights(train.desirable, train.undesirable)
    ratio = (desirable_weight * train.desirable) / max(undesirable_weight * train.undesirable, 1)
    distances, batch = _distances(stats, inputs.config)
    return f"""## Train with

With {_n(train.desirable)} desirable and {_n(train.undesirable)} undesirable rows in `train`, the KTO paper's rule
(Eq. 8: `desirable_weight * desirable / (undesirable_weight * undesirable)` between 1 and 4/3) gives
`desirable_weight={desirable_weight}` and `undesirable_weight={undesirable_weight}` ({ratio:.2f}).

**TRL**, either config (`conversational` for chat models' templates):

```python
from datasets import load_dataset
from trl import KTOConfig, KTOTrainer

dataset = load_dataset("{repo_id}")  # or load_dataset("{repo_id}", "conversational")
args = KTOConfig(output_dir="kto-model", desirable_weight={desirable_weight}, undesirable_weight={undesirable_weight})
trainer = KTOTrainer(model=model, args=args, processing_class=tokenizer,
                     train_dataset=dataset["train"], eval_dataset=dataset.get("test"))
trainer.train()
```

**LLaMA-Factory** reads the `default` config through the `dataset_info.json` beside this card:

```yaml
stage: kto
dataset_dir: REMOTE:{repo_id}
dataset: {DATASET_INFO_ENTRY}
kto_chosen_weight: {desirable_weight}
kto_rejected_weight: {undesirable_weight}
```

**ms-swift** takes the `default` config as it is (`prompt` and `completion` become its messages, `label` the
KTO label); `hf::` reads it from the Hugging Face Hub, without it from ModelScope:

```bash
swift rlhf --rlhf_type kto --dataset hf::{repo_id} --desirable_weight {desirable_weight} --undesirable_weight {undesirable_weight} ...
```

**axolotl** (`rl: kto`) reads the `default` config; its `ultra` KTO type was written for the same columns:

```yaml
rl: kto
kto_desirable_weight: {desirable_weight}
kto_undesirable_weight: {undesirable_weight}
shuffle_merged_datasets: false  # keep the row order (axolotl shuffles by default)
datasets:
  - path: {repo_id}
    split: train
    type: chatml.ultra  # or llama3.ultra, or user_defined fields prompt, completion, label
```

### Keep the row order

TRL's KTO trainer reads rows in file order (a sequential sampler) and estimates its KL term by giving each row
the completion of the row before it within its block of `per_device_train_batch_size` rows, the first row the
last row's; a row given a completion of its own prompt spoils that estimate. {distances}
So no batch or chunk of up to {_n(batch)} rows of `train`, wherever it starts, holds one prompt
twice: with any `dataset_num_proc` (each shard starts its own blocks), and after TRL
drops the rows whose prompt fills `max_length` (two rows of a prompt come closer only by the rows dropped between
them). LLaMA-Factory pairs rows the same way within its 1,000-row preprocessing batches, with any number of
workers, before it samples them at random; axolotl hands them to TRL as they are with
`shuffle_merged_datasets: false`. ms-swift shuffles the rows (with its `data_seed`) before it pairs them, so the
order is moot there, and harmless. Every 8 consecutive rows hold both labels, so no batch is all desirable or all
undesirable. Re-sorting or grouping the rows undoes all this; shuffling them again is harmless but no longer
guarantees it.
"""


def _distances(stats: list[SplitStats], config: UltraFeedbackKTOConfig) -> tuple[str, int]:
    """What the order promises and reached in each split, and the largest batch of ``train`` that
    cannot hold one prompt twice."""
    apart = {s.name: s.closest_rows[1] - s.closest_rows[0] for s in stats if s.closest_rows}
    reached = ", ".join(f"{_n(rows)} rows apart in `{split}`" for split, rows in apart.items())
    text = (
        f"Here two rows of one prompt are at least {_n(config.min_prompt_distance)} rows apart, or as far apart as a "
        f"smaller split allows" + (f" (the closest two: {reached})." if reached else ".")
    )
    return text, min(config.min_prompt_distance, apart.get("train", config.min_prompt_distance))


#: The name LLaMA-Factory knows the dataset by, in ``dataset_info.json``.
DATASET_INFO_ENTRY = "ufkto"
#: LLaMA-Factory's file of dataset entries, read from the repo root with ``dataset_dir: REMOTE:<repo id>``;
#: ``datasets`` never takes it for data (it is in datasets.data_files.FILES_TO_IGNORE).
DATASET_INFO = "dataset_info.json"


def dataset_info(repo_id: str) -> str:
    """LLaMA-Factory's ``dataset_info.json`` for the repo: the ``default`` config's train split as
    a KTO dataset (text ``prompt`` and ``completion``, bool ``label``), on both hubs."""
    columns = {"prompt": "prompt", "response": "completion", "kto_tag": "label"}
    entry = {"hf_hub_url": repo_id, "ms_hub_url": repo_id, "subset": "default", "split": "train", "columns": columns}
    return json.dumps({DATASET_INFO_ENTRY: entry}, indent=2) + "\n"


def _reproduce(inputs: CardInputs) -> str:
    provenance, config = inputs.provenance, inputs.config
    repo = UPSTREAMS[config.upstream].repo
    if provenance.source == "hub":
        source = f"{_link(repo)} at commit `{provenance.upstream_commit}`"
    elif provenance.source == "sample":
        source = f"ufkto's generated sample of `{repo}` (`{'`, `'.join(provenance.source_files)}`): not real data"
    else:
        remote = any("://" in name for name in provenance.source_files)  # http(s) sources are no local files
        source = f"{'files' if remote else 'local files'} of `{repo}`: " + ", ".join(
            f"`{name}`" for name in provenance.source_files
        )
    # What decides the rows: every option as applied but the format (the config's), where
    # files wait (shuffle_dir) and the upstream revision (the commit named above).
    deciding = [name for name in BUILDER_OPTIONS if name not in ("format", "shuffle_dir", "upstream_revision")]
    options = {name: getattr(config, name) for name in deciding}
    options = {name: list(value) if isinstance(value, tuple) else value for name, value in options.items()}
    return f"""## Reproduce

- Tool: ufkto {provenance.tool_version} (`ultrafeedback_kto.py` and `publish/`)
- Upstream: {source}
- Options: `{json.dumps(options, sort_keys=True)}`
- Command: `{provenance.command}`

The same tool version, upstream commit and options give the same rows in the same order.
"""


def _citations() -> str:
    return f"## Citations\n\n```bibtex\n{CITATION}```\n"
