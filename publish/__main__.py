"""``ufkto build | verify | push`` (or ``python -m publish ...``): build the dataset folder, check it, publish it.

A thin layer: each command parses its arguments into the dataclass of the module that does
the work, and turns a `PublishError` (or a failure of the builder) into one line on stderr
and a non-zero exit, never a traceback. Ctrl-C and SIGTERM (``timeout``, a scheduler,
``docker stop``) stop it the same way, through the same cleanup.
"""

from __future__ import annotations

import argparse
import shlex
import signal
import sys
from pathlib import Path

from publish.errors import PublishError

#: The signals that stop a command, and how its last line names them.
STOPPED_BY = {signal.SIGINT: "interrupted", signal.SIGTERM: "interrupted (SIGTERM)"}


def _prog() -> str:
    """How the command was called: the installed ``ufkto`` script, or the module."""
    return "ufkto" if Path(sys.argv[0]).name == "ufkto" else "python -m publish"


def _parser() -> argparse.ArgumentParser:
    from publish import options
    from publish.build import SHARD_SIZE

    parser = argparse.ArgumentParser(prog=_prog(), description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True, metavar="{build,verify,push}")

    build = commands.add_parser(
        "build",
        help="build the dataset folder: parquet shards and the card",
        description="Build the dataset folder: parquet shards, the card and LLaMA-Factory's dataset_info.json. "
        "Refused in one line before any work: an --out holding files no build wrote, an invalid --repo-id or "
        "--max-shard-size, a source that is missing, a folder or no split of the upstream, an option out of "
        "range (a --desirable-threshold outside the upstream's rating scale); and before anything is written, "
        "a split left with a single label (KTO needs both). Malformed rows (a rating outside the upstream's "
        "scale, a lone surrogate in JSON Lines, bytes that are not UTF-8 in parquet, ...) follow --on-bad-rows.",
    )
    source = build.add_mutually_exclusive_group()
    sources = (
        "upstream parquet or JSON Lines files, globs or http(s) URLs, every one read (the flag may repeat); "
        "SPLIT=PATH for h4-binarized's train_prefs, test_prefs"
    )
    source.add_argument("--source", nargs="+", action="extend", metavar="PATH_OR_URL", help=sources)
    source.add_argument("--sample", action="store_true", help="the small generated upstream sample shipped here")
    out = "the folder to write; an earlier build's folder is replaced, unless it holds files no build wrote"
    build.add_argument("--out", default="ufkto", help=f"{out} (default: %(default)s)")
    build.add_argument("--configs", default="default,conversational", help="comma-separated (default: %(default)s)")
    repo_id = "NAME or NAMESPACE/NAME by the Hub's rules: what the card's examples load (default: the folder name)"
    build.add_argument("--repo-id", help=repo_id)
    shard_size = "Arrow bytes per parquet shard: a number, or a size like 500KB (default: %(default)s)"
    build.add_argument("--max-shard-size", default=SHARD_SIZE, help=shard_size)
    options.add_arguments(build)

    verify = commands.add_parser("verify", help="check a built folder: shards, counts, labels, features, order, card")
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
    received = []

    def stop(signum, frame):
        received.append(signum)
        for name in previous:  # a second signal would cut short the cleanup the first one started
            signal.signal(name, signal.SIG_IGN)
        raise KeyboardInterrupt

    # Set before the heavy imports (datasets, pyarrow), which a signal may interrupt too; a
    # signal ignored by whoever started us (a background job's SIGINT) stays ignored.
    previous = {
        name: handler for name in STOPPED_BY if (handler := signal.getsignal(name)) not in (signal.SIG_IGN, None)
    }
    for name in previous:
        signal.signal(name, stop)
    try:
        return _run(argv)
    except KeyboardInterrupt:
        signum = received[0] if received else signal.SIGINT
        print(f"error: {STOPPED_BY[signum]}; nothing was replaced", file=sys.stderr)
        return 128 + signum
    finally:
        if not received:  # after a signal the process is ending: its cleanup stays uninterrupted
            for name, handler in previous.items():
                signal.signal(name, handler)


def _run(argv: list[str]) -> int:
    from ultrafeedback_kto import scrub_urls  # imports datasets: only once the signal handlers are set

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
        print(f"error: {scrub_urls(str(error))}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
