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
import threading
import time
from typing import Any

from engine import FilterRules, InvalidOptionsError, LocationError, Options
from engine.model import structure_members
from engine.transfer import Transfer

__all__ = ["add_arguments", "run"]

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2
# Options that mean nothing to a local engine run are still accepted, for symmetry with the API.


def _flag(member: str) -> str:
    return "--" + re.sub(r"(?<!^)(?=[A-Z])", "-", member).lower()


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("source", metavar="SRC", help="source directory (its contents are synced)")
    parser.add_argument("destination", metavar="DST", help="destination directory")
    group = parser.add_argument_group("DataSync Options (defaults as in DataSync)")
    for member, member_shape in structure_members("Options").items():
        if "enum" in member_shape:
            group.add_argument(
                _flag(member), dest=member, choices=member_shape["enum"], metavar=member.upper(),
                help=f"{member}: {' | '.join(member_shape['enum'])}",
            )  # fmt: skip
        else:
            group.add_argument(
                _flag(member), dest=member, type=int, metavar="N", help=f"{member} (-1 = unlimited)"
            )
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
    parser.add_argument("--json", action="store_true", help="print the final summary as JSON")
    parser.add_argument(
        "--no-progress", action="store_true", help="no live progress line, even on a terminal"
    )
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


def _size(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(n) < 1024 or unit == "TiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} TiB"  # pragma: no cover


def _progress_line(snap: dict[str, Any], rate: float) -> str:
    status = snap["Status"]
    if status in ("LAUNCHING", "PREPARING"):
        return f"{status:<12} {snap['FilesListed']['AtSource']:,} items listed"
    done_b, total_b = snap["BytesWritten"], snap["EstimatedBytesToTransfer"]
    line = (
        f"{status:<12} {snap['FilesTransferred']:,}/{snap['EstimatedFilesToTransfer']:,} items  "
        f"{_size(done_b)}/{_size(total_b)}  {_size(rate)}/s"
    )
    if status == "TRANSFERRING" and rate > 0 and total_b > done_b:
        eta = int((total_b - done_b) / rate)
        line += f"  ETA {eta // 3600}:{eta // 60 % 60:02d}:{eta % 60:02d}"
    if status == "VERIFYING":
        line += f"  verified {snap['FilesVerified']:,}"
    return line


def _watch(transfer: Transfer, stop: threading.Event, interval: float = 0.2) -> None:
    """Redraw the progress line until `stop` is set (on its own thread)."""
    last_bytes, last_t, rate = 0, time.monotonic(), 0.0
    width = 0
    while not stop.wait(interval):
        snap = transfer.snapshot()
        now = time.monotonic()
        instant = (snap["BytesWritten"] - last_bytes) / max(now - last_t, 1e-6)
        rate = instant if rate == 0 else 0.7 * rate + 0.3 * instant
        last_bytes, last_t = snap["BytesWritten"], now
        line = _progress_line(snap, rate)
        sys.stderr.write("\r" + line.ljust(width))
        sys.stderr.flush()
        width = len(line)


def _run_with_progress(transfer: Transfer, show: bool) -> dict[str, Any]:
    """Run on this thread: a one-off sync needs no event loop (and skips its ~70 ms start-up)."""
    if not show:
        return transfer.run_blocking()
    stop = threading.Event()
    watcher = threading.Thread(target=_watch, args=(transfer, stop), name="dsl-progress")
    watcher.start()
    try:
        return transfer.run_blocking()
    finally:
        stop.set()
        watcher.join()
        sys.stderr.write("\r\033[K")


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
        items: list[str] = []  # dry-run lines, for --json
        transfer = Transfer(
            args.source, args.destination, _options(args), _filters(args),
            hash_cache_dir=_hash_cache_dir(args), **_safety(args, items),
        )  # fmt: skip
        transfer.check_locations()
    except (InvalidOptionsError, LocationError) as exc:
        print(f"datasync-local sync: error: {exc}", file=sys.stderr)
        return EXIT_USAGE

    def on_signal(signum: int, _frame: object) -> None:
        transfer.cancel()

    previous = {s: signal.signal(s, on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        show = sys.stderr.isatty() and not args.no_progress and not args.json
        result = _run_with_progress(transfer, show)
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
    return EXIT_OK if result["Status"] == "SUCCESS" else EXIT_FAILED
