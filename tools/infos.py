"""Write ``dataset_infos.json`` from the builder's own info, for both configs.

The file is generated, never edited by hand: ``python -m tools.infos``, run from the checkout,
rewrites the checkout's file (beside its ``ultrafeedback_kto.py``, where ``datasets`` reads it
when the builder runs as a loading script) from the checkout's builder, and ``python -m
tools.infos --check`` fails when it is stale (a test runs the check).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import tempfile
from pathlib import Path

import datasets

import ultrafeedback_kto
from ultrafeedback_kto import UltraFeedbackKTO

#: The checkout this tool is part of (``tools/`` is never installed).
CHECKOUT = Path(__file__).resolve().parents[1]
PROJECT_INFOS = CHECKOUT / "dataset_infos.json"


def _portable(features: dict) -> dict:
    """Spell list features as JSON lists, which every ``datasets`` release reads.

    ``datasets`` 4+ writes ``{"_type": "List", ...}``, which 3.6 (the last release that
    runs loading scripts, and reads this file beside the script) does not know.
    """

    def portable(value):
        if isinstance(value, dict):
            if value.get("_type") == "List" and value.get("length", -1) == -1:
                return [portable(value["feature"])]
            return {key: portable(item) for key, item in value.items()}
        return value

    return portable(features)


def info_to_json(info: datasets.DatasetInfo) -> dict:
    """A DatasetInfo as ``dataset_infos.json`` holds it, readable by every datasets release."""
    data = dataclasses.asdict(info)
    data["features"] = _portable(data["features"])
    return data


def render_infos(infos: dict[str, datasets.DatasetInfo]) -> str:
    """The text of a ``dataset_infos.json`` for {config name: info}."""
    return json.dumps({name: info_to_json(info) for name, info in infos.items()}, indent=4, ensure_ascii=False) + "\n"


def render() -> str:
    """The project's ``dataset_infos.json``: the builder's info for every config."""
    with tempfile.TemporaryDirectory() as cache_dir:
        return render_infos(
            {
                config.name: UltraFeedbackKTO(config_name=config.name, cache_dir=cache_dir).info
                for config in UltraFeedbackKTO.BUILDER_CONFIGS
            }
        )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tools.infos", description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="fail when the file differs from the builder's info")
    parser.add_argument("--path", type=Path, default=PROJECT_INFOS, help="default: %(default)s")
    args = parser.parse_args(argv)
    builder = Path(ultrafeedback_kto.__file__).resolve()
    if builder.parent != CHECKOUT:
        parser.error(f"the builder imported is {builder}, not the checkout's: run this from {CHECKOUT}")
    text = render()
    if args.check:
        if not args.path.is_file() or args.path.read_text(encoding="utf-8") != text:
            print(f"{args.path} is stale: run `python -m tools.infos` and commit the result", file=sys.stderr)
            return 1
        print(f"{args.path} is up to date")
        return 0
    args.path.write_text(text, encoding="utf-8")
    print(f"wrote {args.path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
