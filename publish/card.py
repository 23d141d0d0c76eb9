"""The dataset card (README.md of the built folder), generated from the data it describes.

The YAML header is made the way ``Dataset.push_to_hub`` makes it (``huggingface_hub``'s
`DatasetCardData`, ``datasets``' `MetadataConfigs` and `DatasetInfosDict`), so the Hub
and ``load_dataset`` read it as they read their own. The body is text with the numbers
of the build filled in; nothing in it varies between two builds of the same input and
options, so a rebuild changes the card only when the data changes.
"""

from __future__ import annotations

import dataclasses
import json
import re

import datasets
from datasets.info import DatasetInfosDict
from datasets.utils.metadata import MetadataConfigs
from huggingface_hub import DatasetCard, DatasetCardData

from publish.options import BUILDER_OPTIONS, defaults
from publish.stats import LabelCounts, SplitStats, kto_weights, size_category
from ultrafeedback_kto import CITATION, LLAMA_FACTORY_CHUNK, TRL_BATCH_SIZES, UPSTREAM_REPO

KTO_ARXIV = "2402.01306"
TOP_MODELS = 20


@dataclasses.dataclass
class Provenance:
    """Where a build came from, for the card's "reproduce" section."""

    tool_version: str
    source: str  # "hub", "sample" or "files"
    upstream_commit: str | None
    source_files: list[str]
    options: dict
    command: str


@dataclasses.dataclass
class CardInputs:
    infos: dict[str, datasets.DatasetInfo]  # config name -> info with splits and sizes
    data_dirs: dict[str, str]  # config name -> folder of its shards
    stats: list[SplitStats]  # per split, in split order
    provenance: Provenance
    repo_id: str  # what the card's code snippets load: the Hub repo id, or the folder name


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
        source_datasets=[UPSTREAM_REPO],
    )
    MetadataConfigs(
        {
            name: {
                "data_files": [
                    {"split": split, "path": f"{inputs.data_dirs[name]}/{split}-*"} for split in info.splits
                ],
                **({"default": True} if name == "default" else {}),
            }
            for name, info in inputs.infos.items()
        }
    ).to_dataset_card_data(data)
    DatasetInfosDict(inputs.infos).to_dataset_card_data(data)
    return data


def render_card(inputs: CardInputs) -> str:
    body = "\n".join(
        [
            _summary(inputs),
            _schema(inputs),
            _statistics(inputs.stats),
            _loading(inputs),
            _training(inputs.stats, inputs.repo_id),
            _reproduce(inputs.provenance),
            _citations(),
        ]
    )
    return str(DatasetCard(f"---\n{card_data(inputs).to_yaml()}\n---\n\n{body}"))


def _n(value: int) -> str:
    return f"{value:,}"


def _table(header: list[str], rows: list[list]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    return "\n".join(lines)


def _summary(inputs: CardInputs) -> str:
    options = inputs.provenance.options
    total = sum(s.rows for s in inputs.stats)
    labels = (
        "each pair gives its chosen completion as a desirable example (`label=True`) and its rejected "
        "completion as an undesirable one (`label=False`)"
        if options.get("label_rule", "pairwise") == "pairwise"
        else f"each completion is desirable (`label=True`) when its own rating is at least "
        f"{options.get('desirable_threshold', 4.0)}, whichever side of the pair it was on"
    )
    return f"""# UltraFeedback KTO

UltraFeedback preference pairs, from [`{UPSTREAM_REPO}`](https://huggingface.co/datasets/{UPSTREAM_REPO}),
unpaired for [KTO](https://arxiv.org/abs/{KTO_ARXIV}): {labels}. KTO learns from such single examples
`(prompt, completion, label)` instead of pairs, so every upstream pair becomes two rows
({_n(total)} rows in all).

How it is made, by [ufkto](#reproduce) from the upstream rows:
- the prompt is the conversation before the final assistant turn, the completion that final turn;
- malformed pairs are left out and counted below (empty texts, conversations not ending with an
  assistant turn, chosen and rejected differing before the last turn or identical, a prompt differing
  from the first user turn, rejected rated above chosen);
- each split holds one row per (prompt, completion, label): exact duplicates are kept once, and a
  completion found for the same prompt with both labels, which would cancel out in KTO, is left out
  altogether; both are counted below;
- a pair's split is decided by a stable hash of its prompt, so both rows of a pair, and every pair
  sharing a prompt, are in the same split, and a refreshed upstream never moves a prompt across splits;
- rows are shuffled, then arranged so that no row shares its prompt with its neighbours or with its KL
  partner in a training batch of {", ".join(map(str, TRL_BATCH_SIZES))} rows, and every 8 consecutive
  rows hold both labels ([why](#training-with-trl)).
"""


def _schema(inputs: CardInputs) -> str:
    rows = [
        ["`label`", "bool", "bool", "`True`: a desirable completion"],
        ["`prompt_id`", "string", "string", "sha256 (hex) of the prompt text"],
        ["`source`", "string", "string", "the upstream `source` (the UltraFeedback subset)"],
        ["`model`", "string", "string", "the model that wrote the completion"],
        ["`average_rating`", "float64", "float64", "the completion's upstream rating, 1 to 5 (null when missing)"],
    ]
    configs = ", ".join(f"`{name}` (in `{folder}/`)" for name, folder in inputs.data_dirs.items())
    return f"""## Configs and schema

Configs: {configs}. Both hold the same rows in the same order; only the shape of `prompt` and
`completion` differs, matching TRL's two formats.

{
        _table(
            ["column", "`default`", "`conversational`", "meaning"],
            [
                [
                    "`prompt`",
                    "string",
                    "list of `{content, role}`",
                    "the turns before the final assistant turn; in `default` a single user turn is its text, "
                    "several turns are joined as `role: content` blocks separated by a blank line",
                ],
                ["`completion`", "string", "list of one `{content, role}`", "the final assistant turn"],
                *rows,
            ],
        )
    }
"""


def _counts_table(title: str, groups: list[LabelCounts]) -> str:
    return _table(
        [title, "rows", "desirable", "undesirable"],
        [[group.name, _n(group.rows), _n(group.desirable), _n(group.undesirable)] for group in groups],
    )


def _statistics(stats: list[SplitStats]) -> str:
    parts = [
        "## Statistics\n",
        _table(
            ["split", "rows", "desirable", "undesirable", "upstream pairs read", "pairs left out"],
            [
                [
                    s.name,
                    _n(s.rows),
                    _n(s.desirable),
                    _n(s.undesirable),
                    "" if s.pairs_read is None else _n(s.pairs_read),
                    _n(sum(item.count for item in s.left_out if item.unit == "pair")),
                ]
                for s in stats
            ],
        ),
    ]
    for s in stats:
        parts.append(f"\n### Split `{s.name}`\n")
        parts.append(_counts_table("source", s.by_source))
        models = s.by_model[:TOP_MODELS]
        rest = s.by_model[TOP_MODELS:]
        if rest:
            models = models + [
                LabelCounts(
                    f"{len(rest)} other models", sum(g.desirable for g in rest), sum(g.undesirable for g in rest)
                )
            ]
        parts.append("\n" + _counts_table("model", models))
        parts.append("\n" + _counts_table("average_rating", s.by_rating))
        kinds = {"malformed": "malformed", "option": "by option", "rule": "by rule"}
        left_out = [[item.reason, _n(item.count), f"{item.unit}s", kinds[item.kind]] for item in s.left_out]
        parts.append(
            "\nLeft out: " + ("nothing." if not left_out else "\n\n" + _table(["reason", "count", "of", "kind"], left_out))
        )
    return "\n".join(parts) + "\n"


def left_out_in(card: str) -> dict[str, list[str]]:
    """What a card says each split left out, as ``"reason: count unit"`` (for `verify`)."""
    found = {}
    for section in re.finditer(r"^### Split `([^`]+)`\n(.*?)(?=^#|\Z)", card, flags=re.M | re.S):
        table = re.search(r"Left out: \n\n((?:\|.*\n?)+)", section[2])
        rows = [line.strip("| ").split(" | ") for line in table[1].splitlines()[2:]] if table else []
        found[section[1]] = [f"{reason}: {count} {unit}" for reason, count, unit, _ in rows]
    return found


def _loading(inputs: CardInputs) -> str:
    return f"""## Loading

```python
from datasets import load_dataset

dataset = load_dataset("{inputs.repo_id}")  # default config: strings
conversational = load_dataset("{inputs.repo_id}", "conversational")  # message lists
stream = load_dataset("{inputs.repo_id}", split="train", streaming=True)  # same rows, same order
```
"""


def _training(stats: list[SplitStats], repo_id: str) -> str:
    train = next((s for s in stats if s.name == "train"), stats[0])
    desirable_weight, undesirable_weight = kto_weights(train.desirable, train.undesirable)
    ratio = (desirable_weight * train.desirable) / max(undesirable_weight * train.undesirable, 1)
    return f"""## Training with TRL

```python
from datasets import load_dataset
from trl import KTOConfig, KTOTrainer

dataset = load_dataset("{repo_id}")
args = KTOConfig(
    output_dir="kto-model",
    desirable_weight={desirable_weight},
    undesirable_weight={undesirable_weight},
)
trainer = KTOTrainer(model=model, args=args, processing_class=tokenizer,
                     train_dataset=dataset["train"], eval_dataset=dataset.get("test"))
trainer.train()
```

The weights follow the KTO paper's rule (Eq. 8): `desirable_weight * desirable / (undesirable_weight *
undesirable)` should lie between 1 and 4/3. With {_n(train.desirable)} desirable and
{_n(train.undesirable)} undesirable rows in `train` these weights give {ratio:.2f}.

**Keep the row order.** TRL's KTO trainer reads rows in file order (a sequential sampler) and estimates
its KL term by pairing each row with the completion of the row before it in its batch of
`per_device_train_batch_size` rows, the first row with the last. The rows here are already shuffled and
arranged for that: for batches of {", ".join(map(str, TRL_BATCH_SIZES))} rows no row is paired with a
completion of its own prompt (a matched pair, which spoils the KL estimate), nor is it in LLaMA-Factory's
{LLAMA_FACTORY_CHUNK}-row preprocessing chunks, which pair rows the same way; and there is no long run of one label
(which would make batches all-desirable or all-undesirable). Re-sorting or grouping the rows undoes this;
shuffling them again is harmless but no longer guarantees it.
"""


def _reproduce(provenance: Provenance) -> str:
    if provenance.source == "hub":
        source = f"[`{UPSTREAM_REPO}`](https://huggingface.co/datasets/{UPSTREAM_REPO}) at commit `{provenance.upstream_commit}`"
    elif provenance.source == "sample":
        source = "ufkto's generated sample upstream (`sample/ultrafeedback-sample.parquet`): not real data"
    else:
        source = "local upstream files: " + ", ".join(f"`{name}`" for name in provenance.source_files)
    # What decides the rows: every option but the format (the config's) and where the files
    # wait (shuffle_dir); the upstream revision is the commit named above.
    recorded = {**defaults(), **provenance.options}
    options = {name: recorded[name] for name in BUILDER_OPTIONS if name not in ("format", "shuffle_dir", "upstream_revision")}
    return f"""## Reproduce

- Tool: ufkto {provenance.tool_version} (`ultrafeedback_kto.py` and `publish/`)
- Upstream: {source}
- Options: `{json.dumps(options, sort_keys=True)}`
- Command: `{provenance.command}`

The same tool version, upstream commit and options give the same rows in the same order.
"""


def _citations() -> str:
    return f"## Citations\n\n```bibtex\n{CITATION}```\n"
