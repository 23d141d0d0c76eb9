"""``ufkto build | verify | push`` (or ``python -m publish ...``): build the dataset folder, check it, publish it.

A thin layer: each command parses its arguments into the dataclass of the module that does
the work, and turns a `PublishError` (or a failure of the builder) into one line on stderr
and a non-zero exit, never a traceback.
"""

from __future__ import annotations

import argparse
import shlex
import sys
from pathlib import Path

from publish import options
from publish.build import SHARD_SIZE
from publish.errors import PublishError, without_url_queries


def _prog() -> str:
    """How the command was called: the installed ``ufkto`` script, or the module."""
    return "ufkto" if Path(sys.argv[0]).name == "ufkto" else "python -m publish"


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=_prog(), description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True, metavar="{build,verify,push}")

    build = commands.add_parser("build", help="build the dataset folder: parquet shards and the card")
    source = build.add_mutually_exclusive_group()
    source.add_argument("--source", nargs="+", metavar="PATH_OR_URL",
                        help="upstream parquet or JSON Lines files (SPLIT=PATH for h4-binarized's train_prefs, test_prefs)")
    source.add_argument("--sample", action="store_true", help="the small generated upstream sample shipped here")
    build.add_argument("--out", default="ufkto", help="the folder to write (default: %(default)s)")
    build.add_argument("--configs", default="default,conversational", help="comma-separated (default: %(default)s)")
    build.add_argument("--repo-id", help="the id the card's examples load (default: the folder name)")
    build.add_argument("--max-shard-size", default=SHARD_SIZE, help="Arrow bytes per parquet shard (default: %(default)s)")
    options.add_arguments(build)

    verify = commands.add_parser("verify", help="check a built folder: shards, counts, features, order, card")
    verify.add_argument("folder", help="the built folder")

    push = commands.add_parser("push", help="verify, then publish a built folder to the Hugging Face Hub or ModelScope")
    push.add_argument("folder", help="the built folder")
    push.add_argument("--repo-id", required=True, help="NAMESPACE/NAME")
    push.add_argument("--to", choices=["hf", "modelscope"], default="hf", help="where (default: %(default)s)")
    push.add_argument("--private", action="store_true", help="create the repo private")
    push.add_argument("--branch", help="commit to this branch (created when missing)")
    push.add_argument("--create-pr", action="store_true", help="open a pull request instead of committing (hf only)")
    push.add_argument("--tag", help="tag the pushed commit")
    push.add_argument("--message", help="commit message")
    push.add_argument("--dry-run", action="store_true", help="print what would be added, changed and deleted")
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = _parser().parse_args(argv)
    args.command_line = shlex.join([*_prog().split(), *argv])
    try:
        if args.command == "build":
            from publish.build import BuildArguments, build_folder

            build_folder(BuildArguments.from_namespace(args))
        elif args.command == "verify":
            from publish.verify import verify_or_fail

            verify_or_fail(args.folder)
        else:
            from publish.plan import PushArguments
            from publish.push import push_folder

            push_folder(PushArguments.from_namespace(args))
    except PublishError as error:
        print(f"error: {without_url_queries(str(error))}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("error: interrupted; nothing was replaced", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
