"""Shared fixtures: upstream-schema files made by the project's sample generator, and a
one-call build through the builder with a private cache."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

# No test may reach a hub: every load here is from local files, whatever the environment
# says (tests that talk to the local Hub server give their subprocesses their own settings).
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["HF_DATASETS_OFFLINE"] = "1"

import datasets  # noqa: E402

from tools.sample import write_upstream  # noqa: E402
from ultrafeedback_kto import UltraFeedbackKTO  # noqa: E402

datasets.disable_progress_bars()

PROJECT = Path(__file__).resolve().parents[1]
REAL_DATA = Path(os.environ.get("UFKTO_REAL_DATA", PROJECT.parent / "shared" / "data" / "real"))


def real_file(name: str) -> Path:
    """A file of real rows from ../shared/data/real, or a skip saying why there is none."""
    path = REAL_DATA / name
    if not path.is_file():
        pytest.skip(f"real rows not available: {path} is absent (they live beside the checkout, in shared/)")
    return path


@pytest.fixture(scope="session")
def upstream_2k(tmp_path_factory) -> Path:
    """2,000 generated upstream pairs as parquet."""
    return write_upstream(tmp_path_factory.mktemp("upstream") / "train-2k.parquet", 2_000, seed=1)


@pytest.fixture(scope="session")
def upstream_10k(tmp_path_factory) -> Path:
    """10,000 generated upstream pairs as parquet, for the order properties."""
    return write_upstream(tmp_path_factory.mktemp("upstream") / "train-10k.parquet", 10_000, seed=2)


def files_of(folder: Path, hidden: bool = True) -> dict[str, bytes]:
    """Every file under ``folder`` by POSIX path (without hidden ones when ``hidden`` is False)."""
    return {
        path.relative_to(folder).as_posix(): path.read_bytes()
        for path in sorted(folder.rglob("*"))
        if path.is_file() and (hidden or not any(part.startswith(".") for part in path.relative_to(folder).parts))
    }


def published(folder: Path, repo_id: str | None = None) -> dict[str, bytes]:
    """What a push (to ``repo_id``) publishes: every non-hidden file, by POSIX path, the card
    and LLaMA-Factory's dataset_info.json made again from the build's record, naming the repo
    pushed to (as push makes them)."""
    import dataclasses

    from publish.card import read_record, rendered_files

    files = files_of(folder, hidden=False)
    if repo_id:
        inputs = dataclasses.replace(read_record(folder), repo_id=repo_id)
        files.update({name: text.encode() for name, text in rendered_files(inputs).items()})
    return files


def make_builder(cache_dir: Path, data_files, config_name: str = "default", **options) -> UltraFeedbackKTO:
    return UltraFeedbackKTO(
        config_name=config_name,
        data_files=str(data_files) if isinstance(data_files, Path) else data_files,
        cache_dir=str(cache_dir),
        **options,
    )


def build(cache_dir: Path, data_files, config_name: str = "default", num_proc=None, **options) -> datasets.DatasetDict:
    builder = make_builder(cache_dir, data_files, config_name, **options)
    builder.download_and_prepare(num_proc=num_proc)
    return builder.as_dataset()


def stream(cache_dir: Path, data_files, split: str, config_name: str = "default", **options) -> list[dict]:
    return list(make_builder(cache_dir, data_files, config_name, **options).as_streaming_dataset(split=split))
