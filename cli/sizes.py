"""Human sizes for the command line: `4M`, `1.5GiB`, `512k` in, `4.0 MiB` out.

The convention is rsync's (`--bwlimit`, `--max-size`), which rclone shares for its suffixes:
a bare `K`/`M`/`G`/`T`/`P` or `KiB`/`MiB`/... is a power of 1024, and only the explicit decimal
spelling `KB`/`MB`/... is a power of 1000. Unlike rsync's and rclone's `--bwlimit`, a bare number
is bytes, not KiB, because the flag is DataSync's `BytesPerSecond`.
"""

from __future__ import annotations

import re

__all__ = ["format_size", "parse_size"]

_POWERS = {"": 0, "K": 1, "M": 2, "G": 3, "T": 4, "P": 5}
_SIZE = re.compile(r"(?P<number>\d+(?:\.\d*)?|\.\d+)\s*(?P<unit>[KMGTP]?)(?P<suffix>I?B?)", re.I)
_UNLIMITED = {"-1", "off", "unlimited"}


def parse_size(text: str, *, allow_unlimited: bool = False) -> int:
    """Bytes in `text` (`4M` = 4 MiB, `4MB` = 4,000,000, `1.5GiB`); `-1`/`off`/`unlimited`
    give -1 when `allow_unlimited`. Raises ValueError with a message fit for a usage error."""
    cleaned = text.strip()
    if allow_unlimited and cleaned.lower() in _UNLIMITED:
        return -1
    match = _SIZE.fullmatch(cleaned)
    if match is None:
        hint = ", or -1 for unlimited" if allow_unlimited else ""
        raise ValueError(f"not a size: {text!r} (e.g. 1048576, 512K, 4M, 1.5GiB, 10MB{hint})")
    unit, suffix = match["unit"].upper(), match["suffix"].upper()
    if suffix == "IB" and not unit:
        raise ValueError(f"not a size: {text!r} (iB needs a unit letter: KiB, MiB, ...)")
    base = 1000 if suffix == "B" and unit else 1024
    value: float = float(match["number"]) * base ** _POWERS[unit]
    if value != int(value) and not unit:
        raise ValueError(f"not a whole number of bytes: {text!r}")
    return round(value)


def format_size(n: float) -> str:
    """`n` bytes as rsync's -h and rclone print them, in powers of 1024 (`4.0 MiB`)."""
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(n) < 1024 or unit == "TiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    raise AssertionError("unreachable")  # pragma: no cover
