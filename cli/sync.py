"""`datasync-local sync SRC DST`: the engine alone, for one-off syncs and benchmarks.

Option flags are generated from the model's `Options` shape (`VerifyMode` -> `--verify-mode`,
choices from its enum), so they mirror DataSync's names and can never drift from them.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import signal
import sys
from typing import Any

from cli.progress import PLAIN_INTERVAL, Watcher, summary_line
from cli.sizes import parse_size
from engine import FilterRules, InvalidOptionsError, LocationError, Options
from engine.model import structure_members
from engine.transfer import Transfer

__all__ = ["add_arguments", "run"]

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130

# Options that mean nothing to a local sync (queueing of an agent's executions, CloudWatch logs,
# SMB security descriptors, S3 object tags and metadata): still accepted, for symmetry with the
# API, but left out of `sync --help`.
_HIDDEN_OPTIONS = frozenset(
    {"TaskQueueing", "LogLevel", "SecurityDescriptorCopyFlags", "ObjectTags", "ObjectMetadata"}
)

EXAMPLES = """\
examples:
  datasync-local sync ~/photos /mnt/backup/photos
  datasync-local sync src dst --verify-mode none --bytes-per-second 4M
  datasync-local sync src dst --preserve-deleted-files remove --exclude '*.tmp|*/.cache'
  datasync-local sync src dst --json > summary.json

sizes: 4M = 4 MiB, 1.5GiB, 512K (powers of 1024, as rsync's and rclone's --bwlimit; 4MB = 4,000,000);
a bare number is bytes, -1 is unlimited. Enum values are case-insensitive.
exit codes: 0 success, 1 the transfer ended in error, 2 bad usage, 130 interrupted (Ctrl-C).
"""


def _flag(member: str) -> str:
    return "--" + re.sub(r"(?<!^)(?=[A-Z])", "-", member).lower()


def _bytes_per_second(text: str) -> int:
    try:
        return parse_size(text, allow_unlimited=True)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Each block below adds one group of flags; a new flag is a new small block."""
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.epilog = EXAMPLES
    parser.add_argument("source", metavar="SRC", help="source directory (its contents are synced)")
    parser.add_argument("destination", metavar="DST", help="destination directory")
    _add_option_flags(parser)
    _add_filter_flags(parser)
    _add_output_flags(parser)


def _add_option_flags(parser: argparse.ArgumentParser) -> None:
    """One flag per member of the model's `Options`, with DataSync's default shown."""
    group = parser.add_argument_group("DataSync Options (defaults as in DataSync)")
    defaults = Options.defaults()
    for member, member_shape in structure_members("Options").items():
        default = defaults.get(member)
        hidden = member in _HIDDEN_OPTIONS
        if "enum" in member_shape:
            text = f"{' | '.join(member_shape['enum'])} (default {default})"
            group.add_argument(
                _flag(member), dest=member, type=str.upper, choices=member_shape["enum"],
                metavar=member.upper(), help=argparse.SUPPRESS if hidden else text,
            )  # fmt: skip
        elif member == "BytesPerSecond":
            group.add_argument(
                _flag(member), dest=member, type=_bytes_per_second, metavar="SIZE",
                help="bandwidth limit: 1048576, 512K, 4M, 1.5GiB; -1 = unlimited (default -1)",
            )  # fmt: skip
        else:
            group.add_argument(
                _flag(member), dest=member, type=int, metavar="N",
                help=argparse.SUPPRESS if hidden else f"{member} (default {default})",
            )  # fmt: skip


def _add_filter_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--include", action="append", metavar="PATTERN",
        help="SIMPLE_PATTERN include filter, e.g. '/photos|/docs' (repeatable; joined with '|')",
    )  # fmt: skip
    parser.add_argument(
        "--exclude", action="append", metavar="PATTERN",
        help="SIMPLE_PATTERN exclude filter, e.g. '*.tmp|*/.snapshot' (repeatable)",
    )  # fmt: skip
    # -- verification cache (engine/hashcache.py) --
    parser.add_argument(
        "--hash-cache-dir", metavar="DIR", default=None,
        help="where POINT_IN_TIME_CONSISTENT keeps the digests of unchanged files "
        "(default: $XDG_CACHE_HOME/datasync-local, else ~/.cache/datasync-local)",
    )  # fmt: skip
    parser.add_argument(
        "--no-hash-cache", action="store_true",
        help="verify by reading every file on both sides, without the verification cache",
    )  # fmt: skip
    _add_safety_arguments(parser)


# -- safety rails (engine options beyond DataSync's; see engine/transfer.Transfer) ---------------
def _add_safety_arguments(parser: argparse.ArgumentParser) -> None:
    rails = parser.add_argument_group("safety rails")
    rails.add_argument(
        "--allow-empty-source", action="store_true",
        help="with --preserve-deleted-files REMOVE, let an empty source empty the destination",
    )  # fmt: skip
    rails.add_argument(
        "--max-delete", type=int, metavar="N",
        help="delete at most N items (as rsync/rclone); more planned: stop deleting, exit 1",
    )  # fmt: skip
    rails.add_argument(
        "-n", "--dry-run", action="store_true",
        help="print the plan itemized like rsync -i, with totals; write nothing",
    )  # fmt: skip
    rails.add_argument(
        "--fsync", action="store_true",
        help="flush each file's data before its rename and each directory entry after it",
    )  # fmt: skip


def _safety(args: argparse.Namespace, items: list[str]) -> dict[str, Any]:
    if args.max_delete is not None and args.max_delete < 0:
        raise InvalidOptionsError("--max-delete must be 0 or more.")
    return {
        "allow_empty_source": args.allow_empty_source,
        "max_delete": args.max_delete,
        "fsync": args.fsync,
        "dry_run": args.dry_run,
        "on_item": items.append if args.json else (lambda line: print(line, flush=True)),
    }


def _add_output_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="print the final summary as JSON")
    parser.add_argument(
        "--progress", action=argparse.BooleanOptionalAction, default=True,
        help="progress on stderr: redrawn in place on a terminal, a plain line every "
        f"{PLAIN_INTERVAL:.0f} s otherwise (default: on)",
    )  # fmt: skip


def _options(args: argparse.Namespace) -> Options:
    raw = {
        member: getattr(args, member)
        for member in structure_members("Options")
        if getattr(args, member, None) is not None
    }
    return Options.create(raw)


def _hash_cache_dir(args: argparse.Namespace) -> str | None:
    if args.no_hash_cache:
        return None
    if args.hash_cache_dir:
        return str(args.hash_cache_dir)
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "datasync-local")


def _filters(args: argparse.Namespace) -> FilterRules:
    def rule(values: list[str] | None) -> list[dict[str, str]] | None:
        return [{"FilterType": "SIMPLE_PATTERN", "Value": "|".join(values)}] if values else None

    return FilterRules.from_rules(rule(args.include), rule(args.exclude))


def _run_with_progress(transfer: Transfer, show: bool, verify_mode: str) -> dict[str, Any]:
    """Run on this thread: a one-off sync needs no event loop (and skips its ~70 ms start-up)."""
    if not show:
        return transfer.run_blocking()
    with Watcher(transfer, sys.stderr, verify_mode):
        return transfer.run_blocking()


def _summary(result: dict[str, Any], failures: list[str]) -> str:
    r = result["Result"]
    lines = [f"Status: {result['Status']}"]
    for name in (
        "EstimatedFilesToTransfer", "EstimatedBytesToTransfer", "FilesTransferred",
        "BytesWritten", "FilesSkipped", "FilesVerified", "FilesDeleted",
    ):  # fmt: skip
        lines.append(f"{name}: {result[name]:,}")
    failed = result["FilesFailed"]
    lines.append("FilesFailed: " + ", ".join(f"{k} {v}" for k, v in failed.items()))
    lines.append(
        f"Durations (ms): Prepare {r['PrepareDuration']:,}, Transfer {r['TransferDuration']:,}, "
        f"Verify {r['VerifyDuration']:,}, Total {r['TotalDuration']:,}"
    )
    if "ErrorCode" in r:
        lines.append(f"ErrorCode: {r['ErrorCode']}")
        lines.append(f"ErrorDetail: {r['ErrorDetail']}")
    lines.extend(f"  failed: {f}" for f in failures[:20])
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    try:
        options = _options(args)
        items: list[str] = []  # dry-run lines, for --json
        transfer = Transfer(
            args.source, args.destination, options, _filters(args),
            hash_cache_dir=_hash_cache_dir(args), **_safety(args, items),
        )  # fmt: skip
        transfer.check_locations()
    except (InvalidOptionsError, LocationError) as exc:
        print(f"datasync-local sync: error: {exc}", file=sys.stderr)
        return EXIT_USAGE

    interrupted: list[int] = []

    def on_signal(signum: int, _frame: object) -> None:
        interrupted.append(signum)  # the transfer stops cleanly: temporaries go, files stay
        transfer.cancel()

    previous = {s: signal.signal(s, on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        result = _run_with_progress(transfer, args.progress, options.enum("VerifyMode"))
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
    failures = [f"{f.phase}: {f}" for f in transfer.failures]
    if args.json:
        print(
            json.dumps(
                {**result, "Failures": failures, **({"Itemized": items} if items else {})}, indent=2
            )
        )
    else:
        print(_summary(result, failures))
        print(summary_line(result))
    if interrupted:
        return EXIT_INTERRUPTED if interrupted[0] == signal.SIGINT else 128 + interrupted[0]
    return EXIT_OK if result["Status"] == "SUCCESS" else EXIT_FAILED
