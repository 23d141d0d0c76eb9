"""The builder's options as the publish commands see them, all derived from
`UltraFeedbackKTOConfig`: its fields are the options, their types the flags' types and
choices, their ``help`` metadata the flags' help. A new option is written there, once.
"""

from __future__ import annotations

import argparse
import dataclasses
import typing

import datasets

from ultrafeedback_kto import UltraFeedbackKTOConfig, option_choices

#: Options a published folder never takes from the command line: its configs set ``format``,
#: and it keeps the shuffled order TRL's KTO trainer needs.
NOT_FLAGS = frozenset({"format", "order"})
_BASE = {field.name for field in dataclasses.fields(datasets.BuilderConfig)}
#: Every option of the builder, in its declared order (what the card records).
BUILDER_OPTIONS = tuple(field.name for field in dataclasses.fields(UltraFeedbackKTOConfig) if field.name not in _BASE)


def described() -> dict[str, str]:
    """Each option's help, as its field declares it, and its default where it has one."""
    fields = {field.name: field for field in dataclasses.fields(UltraFeedbackKTOConfig)}
    return {
        name: fields[name].metadata["help"]
        + ("" if fields[name].default is None else f" (default: {fields[name].default})")
        for name in BUILDER_OPTIONS
    }


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """A flag for every builder option but `NOT_FLAGS`: ``--test-size``, ``--label-rule``, ..."""
    group = parser.add_argument_group("builder options (see UltraFeedbackKTOConfig)")
    hints, choices, help_texts = typing.get_type_hints(UltraFeedbackKTOConfig), option_choices(), described()
    for name in BUILDER_OPTIONS:
        if name in NOT_FLAGS:
            continue
        kind = next(arg for arg in typing.get_args(hints[name]) or [hints[name]] if arg is not type(None))
        listed = typing.get_origin(kind) is tuple  # e.g. --exclude-sources truthful_qa false_qa
        group.add_argument(
            f"--{name.replace('_', '-')}",
            type=str if name in choices or listed else kind,
            nargs="*" if listed else None,
            choices=[choice for choice in choices[name] if choice is not None] if name in choices else None,
            help=help_texts[name],
        )


def given_options(args: argparse.Namespace) -> dict:
    """The builder options given on the command line."""
    given = {name: getattr(args, name) for name in BUILDER_OPTIONS if getattr(args, name, None) is not None}
    return {name: tuple(value) if isinstance(value, list) else value for name, value in given.items()}
