"""The engine's errors, in one place.

    DataSyncLocalError
    ├── InvalidOptionsError      bad Options, filters or option combinations (-> InvalidRequestException)
    ├── LocationError            a location cannot be used at all: missing, not a directory, unwritable
    └── TransferError            the transfer ran and ended in error; carries ErrorCode / ErrorDetail
        └── TransferCancelled    the transfer was cancelled

Per-file problems are not exceptions at this level: they are counted (FilesFailed.*) and
reported as `FileFailure` records, and the transfer goes on with the other files.
"""

from __future__ import annotations

__all__ = [
    "DataSyncLocalError",
    "InvalidOptionsError",
    "LocationError",
    "TransferCancelled",
    "TransferError",
]


class DataSyncLocalError(Exception):
    """Base of every error this project raises on purpose."""


class InvalidOptionsError(DataSyncLocalError):
    """A request's options, filters or their combination are invalid.

    `field` names the offending member (DataSync spelling, e.g. ``Options.Atime``) so the API can
    answer InvalidRequestException with a message that names it.
    """

    def __init__(self, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field


class LocationError(DataSyncLocalError):
    """A source or destination directory cannot be used."""

    def __init__(self, message: str, path: str | None = None) -> None:
        super().__init__(message)
        self.path = path


class TransferError(DataSyncLocalError):
    """The transfer ended in ERROR. `error_code` / `error_detail` fill Result.ErrorCode/ErrorDetail."""

    def __init__(self, error_code: str, error_detail: str) -> None:
        super().__init__(f"{error_code}: {error_detail}")
        self.error_code = error_code
        self.error_detail = error_detail


class TransferCancelled(TransferError):
    def __init__(self, detail: str = "The task execution was cancelled.") -> None:
        super().__init__("Cancelled", detail)
