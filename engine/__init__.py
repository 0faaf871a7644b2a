"""The transfer engine: a library (no HTTP, no database) that syncs one directory tree into another.

Public surface::

    opts = Options.create({"VerifyMode": "ONLY_FILES_TRANSFERRED"})   # validated, defaults filled
    rules = FilterRules.from_rules(includes=[...], excludes=[...])      # DataSync FilterRule lists
    transfer = Transfer(src_dir, dst_dir, opts, rules)
    final = await transfer.run()          # DescribeTaskExecution-shaped dict; never raises for a
                                          # failed transfer (Status ERROR + Result.ErrorCode)
    transfer.snapshot()                   # thread-safe, consistent, at any moment
    transfer.set_bytes_per_second(n)      # thread-safe, live, -1 = unlimited
    transfer.cancel()                     # thread-safe; run() ends with Status ERROR
"""

from engine.errors import (
    DataSyncLocalError,
    InvalidOptionsError,
    LocationError,
    TransferCancelled,
    TransferError,
)
from engine.filters import FilterRules
from engine.options import Options

__all__ = [
    "DataSyncLocalError",
    "FilterRules",
    "InvalidOptionsError",
    "LocationError",
    "Options",
    "Transfer",
    "TransferCancelled",
    "TransferError",
]


def __getattr__(name: str) -> object:
    # Transfer pulls in the copy machinery; the API only needs Options/FilterRules at import time.
    if name == "Transfer":
        from engine.transfer import Transfer

        return Transfer
    raise AttributeError(name)
