"""The engine's safety and durability switches, the same on `serve` (its embedded agent) and `agent`.

`sync` has its own spelling of these in cli/sync.py because it runs the engine directly; here
they become one `EngineSettings` that the agent hands to every transfer it runs.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Callable
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # the agent (and the engine behind it) loads only when a command runs
    from agents.agent import EngineSettings

__all__ = ["add_engine_flags", "engine_settings"]


def _truthy(value: str | None) -> bool:
    return (value or "").lower() in ("1", "true", "yes")


def add_engine_flags(parser: argparse.ArgumentParser, env: Callable[[str], str | None]) -> None:
    group = parser.add_argument_group("engine safety and durability")
    group.add_argument(
        "--allow-empty-source",
        action="store_true",
        default=_truthy(env("ALLOW_EMPTY_SOURCE")),
        help="let PreserveDeletedFiles=REMOVE empty a destination when the source root is empty "
        "(off: such a run ends ERROR/SourceLocationEmpty, as an unmounted NAS looks exactly so)",
    )
    group.add_argument(
        "--fsync",
        action="store_true",
        default=_truthy(env("FSYNC")),
        help="flush each file's data and its directory entry before and after placing it "
        "(power-loss safety; several times slower on many small files)",
    )
    group.add_argument(
        "--no-hash-cache",
        action="store_true",
        default=_truthy(env("NO_HASH_CACHE")),
        help="re-read every file in POINT_IN_TIME_CONSISTENT verification instead of trusting "
        "digests cached by (device, inode, size, mtime, ctime) under the state directory",
    )


def engine_settings(args: argparse.Namespace, state_dir: str) -> EngineSettings:
    """What the flags ask for; the hash cache lives in `state_dir`/hash-cache."""
    from agents.agent import EngineSettings

    return EngineSettings(
        allow_empty_source=args.allow_empty_source,
        fsync=args.fsync,
        hash_cache_dir=None if args.no_hash_cache else os.path.join(state_dir, "hash-cache"),
    )
