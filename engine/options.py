"""DataSync `Options`: every member, DataSync's defaults, and its cross-field rules.

Member names and enum values are read from botocore's model; only the defaults are ours,
because the model does not carry them (they are documented in its prose; see
shared/spec/datasync-behaviour.md §5.1). A test checks that the defaults cover exactly the
model's members, so a new botocore option cannot slip through undefaulted.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from functools import cache
from typing import Any

from engine.errors import InvalidOptionsError
from engine.model import shape, structure_members

__all__ = ["TASK_MODES", "Options", "option_enum"]

OptionValue = str | int

# DataSync's documented defaults for a BASIC task. VerifyMode depends on the task mode.
_DEFAULTS: dict[str, OptionValue] = {
    "VerifyMode": "POINT_IN_TIME_CONSISTENT",
    "OverwriteMode": "ALWAYS",
    "Atime": "BEST_EFFORT",
    "Mtime": "PRESERVE",
    "Uid": "INT_VALUE",
    "Gid": "INT_VALUE",
    "PreserveDeletedFiles": "PRESERVE",
    "PreserveDevices": "NONE",
    "PosixPermissions": "PRESERVE",
    "BytesPerSecond": -1,
    "TaskQueueing": "ENABLED",
    "LogLevel": "OFF",
    "TransferMode": "CHANGED",
    "SecurityDescriptorCopyFlags": "OWNER_DACL",
    "ObjectTags": "PRESERVE",
    "ObjectMetadata": "PRESERVE",  # newer models only
}
_ENHANCED_DEFAULTS: dict[str, OptionValue] = {"VerifyMode": "ONLY_FILES_TRANSFERRED"}

TASK_MODES: tuple[str, ...] = tuple(shape("TaskMode")["enum"])


@cache
def _members() -> dict[str, dict[str, Any]]:
    return structure_members("Options")


def option_enum(name: str) -> tuple[str, ...]:
    """The allowed values of an enum-typed option, from the model."""
    return tuple(_members()[name]["enum"])


def _check_member(name: str, value: Any) -> OptionValue:
    member = _members().get(name)
    if member is None:
        raise InvalidOptionsError(f"Options.{name} is not a DataSync option.", f"Options.{name}")
    if "enum" in member:
        if not isinstance(value, str) or value not in member["enum"]:
            allowed = ", ".join(member["enum"])
            raise InvalidOptionsError(
                f"Options.{name} must be one of {allowed}; got {value!r}.", f"Options.{name}"
            )
        return value
    if member.get("type") in ("long", "integer"):
        if isinstance(value, bool) or not isinstance(value, int):
            raise InvalidOptionsError(
                f"Options.{name} must be an integer; got {value!r}.", f"Options.{name}"
            )
        low = member.get("min")
        if low is not None and value < low:
            raise InvalidOptionsError(
                f"Options.{name} must be at least {low}; got {value}.", f"Options.{name}"
            )
        return value
    raise InvalidOptionsError(  # pragma: no cover - every Options member is an enum or a long
        f"Options.{name} has an unsupported type.", f"Options.{name}"
    )


class Options(Mapping[str, OptionValue]):
    """An immutable, complete, validated set of DataSync Options.

    Build one with `Options.create(raw)` (a task's options over the defaults) and derive an
    execution's effective options with `options.merged(overrides)`: absent members keep their
    value, present ones replace it, and the result is re-checked as a whole.
    """

    __slots__ = ("_task_mode", "_values")

    def __init__(self, values: Mapping[str, OptionValue], task_mode: str = "BASIC") -> None:
        self._values = dict(values)
        self._task_mode = task_mode

    @classmethod
    def defaults(cls, task_mode: str = "BASIC") -> Options:
        if task_mode not in TASK_MODES:
            raise InvalidOptionsError(
                f"TaskMode must be one of {', '.join(TASK_MODES)}; got {task_mode!r}.", "TaskMode"
            )
        # A member a newer botocore added and we have no default for is left unset (and so
        # ignored by the engine) rather than failing every CreateTask; a test flags it.
        values = {name: _DEFAULTS[name] for name in _members() if name in _DEFAULTS}
        if task_mode == "ENHANCED":
            values.update(_ENHANCED_DEFAULTS)
        return cls(values, task_mode)

    @classmethod
    def create(cls, raw: Mapping[str, Any] | None = None, task_mode: str = "BASIC") -> Options:
        return cls.defaults(task_mode).merged(raw)

    def merged(self, overrides: Mapping[str, Any] | None) -> Options:
        if overrides is not None and not isinstance(overrides, Mapping):
            raise InvalidOptionsError("Options must be an object.", "Options")
        values = dict(self._values)
        for name, value in (overrides or {}).items():
            values[name] = _check_member(name, value)
        result = Options(values, self._task_mode)
        result.validate()
        return result

    def validate(self) -> None:
        """DataSync's cross-field rules (spec §5.2)."""
        atime, mtime = self["Atime"], self["Mtime"]
        if (atime, mtime) not in (("BEST_EFFORT", "PRESERVE"), ("NONE", "NONE")):
            raise InvalidOptionsError(
                "Options.Atime and Options.Mtime must be set together: Atime=BEST_EFFORT needs "
                f"Mtime=PRESERVE and Atime=NONE needs Mtime=NONE (got Atime={atime}, Mtime={mtime}).",
                "Options.Atime",
            )
        if self["PreserveDeletedFiles"] == "REMOVE" and self["TransferMode"] == "ALL":
            raise InvalidOptionsError(
                "Options.PreserveDeletedFiles=REMOVE cannot be used with Options.TransferMode=ALL: "
                "ALL does not scan the destination, so it cannot know what to remove.",
                "Options.PreserveDeletedFiles",
            )
        if self._task_mode == "ENHANCED" and self["VerifyMode"] == "POINT_IN_TIME_CONSISTENT":
            raise InvalidOptionsError(
                "Options.VerifyMode=POINT_IN_TIME_CONSISTENT is not supported by ENHANCED tasks.",
                "Options.VerifyMode",
            )
        if self.bytes_per_second == 0:
            raise InvalidOptionsError(
                "Options.BytesPerSecond must be -1 (unlimited) or a positive number of bytes per "
                "second; got 0.",
                "Options.BytesPerSecond",
            )

    # Mapping protocol -------------------------------------------------------------------------
    def __getitem__(self, name: str) -> OptionValue:
        return self._values[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._values)

    def __len__(self) -> int:
        return len(self._values)

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Options):
            return self._values == other._values and self._task_mode == other._task_mode
        return NotImplemented

    def __hash__(self) -> int:
        return hash((self._task_mode, tuple(sorted(self._values.items()))))

    def __repr__(self) -> str:
        return f"Options({self._values!r}, task_mode={self._task_mode!r})"

    # Typed views the engine reads ------------------------------------------------------------
    @property
    def task_mode(self) -> str:
        return self._task_mode

    def enum(self, name: str) -> str:
        value = self._values[name]
        assert isinstance(value, str)
        return value

    @property
    def bytes_per_second(self) -> int:
        value = self._values["BytesPerSecond"]
        assert isinstance(value, int)
        return value

    def to_dict(self) -> dict[str, OptionValue]:
        return dict(self._values)
