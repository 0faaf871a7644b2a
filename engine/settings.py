"""Typed settings: a run's DataSync `Options` read once, into the fields the stages act on.

`Options` is the API's form: a mapping of DataSync option names to their strings, validated as a
whole. A stage does not want that form: comparing `options["PreserveDeletedFiles"] == "REMOVE"`
in the planner, the verifier and the transfer spells the same rule three times, and a typo in a
string is found by no checker. So `Settings.from_options` reads every option the engine uses
once, here, into booleans and small enums; the stages read `Settings` and compare no option
strings (tests/engine/test_layout.py holds them to that).

The enums are built from the model's values (`engine.options.option_enum`), never retyped, so
they cannot drift from botocore's model. Their members are not visible to a type checker, so the
few members a stage acts on are named below as constants, each looked up by its value: a value
the model lacks fails at import instead of silently never matching.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final

from engine.options import Options, option_enum
from engine.throttle import UNLIMITED

__all__ = [
    "ID_BOTH",
    "ID_INT_VALUE",
    "ID_NAME",
    "ID_NONE",
    "ONLY_FILES_TRANSFERRED",
    "POINT_IN_TIME_CONSISTENT",
    "VERIFY_NONE",
    "IdMode",
    "Settings",
    "VerifyMode",
    "remove_deleted_in",
]


def _values(option: str) -> dict[str, str]:
    """An enum's members from the model: each named and valued by its DataSync string."""
    return {value: value for value in option_enum(option)}


# mypy cannot see the members of an enum made from data (hence the ignores); it still knows the
# classes, so `verify: VerifyMode` is checked, and the members the engine uses are named below.
VerifyMode = enum.Enum("VerifyMode", _values("VerifyMode"), module=__name__)  # type: ignore[misc]
# Uid and Gid share their values (a test checks it): one enum for both
IdMode = enum.Enum("IdMode", _values("Uid"), module=__name__)  # type: ignore[misc]

POINT_IN_TIME_CONSISTENT: Final = VerifyMode("POINT_IN_TIME_CONSISTENT")
ONLY_FILES_TRANSFERRED: Final = VerifyMode("ONLY_FILES_TRANSFERRED")
VERIFY_NONE: Final = VerifyMode("NONE")

ID_NONE: Final = IdMode("NONE")  # ownership is not changed (nor compared)
ID_INT_VALUE: Final = IdMode("INT_VALUE")  # the numeric id is kept
ID_NAME: Final = IdMode("NAME")  # mapped by user or group name; left unchanged if unknown here
ID_BOTH: Final = IdMode("BOTH")  # mapped by name where it is known here, else the numeric id


def remove_deleted_in(options: Mapping[str, object]) -> bool:
    """PreserveDeletedFiles=REMOVE in an options mapping that may be partial (a task report's
    summary holds what the task document had, not a validated `Options`)."""
    return options.get("PreserveDeletedFiles") == "REMOVE"


@dataclass(frozen=True, slots=True)
class Settings:
    """What a run's stages act on, read once from its `Options` (`from_options`).

    Field names follow the DataSync options they come from; a boolean is True when the option
    asks for the thing the name says."""

    verify: VerifyMode  # VerifyMode
    changed_only: bool  # TransferMode=CHANGED: only what differs is copied (ALL: everything)
    overwrite: bool  # OverwriteMode=ALWAYS (NEVER: an existing destination item is left alone)
    remove_deleted: bool  # PreserveDeletedFiles=REMOVE: destination items absent at the source go
    preserve_devices: bool  # PreserveDevices=PRESERVE: character and block devices are copied
    permissions: bool  # PosixPermissions=PRESERVE (with them extended attributes and ACLs)
    mtime: bool  # Mtime=PRESERVE
    atime: bool  # Atime=BEST_EFFORT
    uid: IdMode  # Uid
    gid: IdMode  # Gid
    bytes_per_second: int | None  # BytesPerSecond; None: unlimited (-1)

    @classmethod
    def from_options(cls, options: Options) -> Settings:
        rate = options.bytes_per_second
        return cls(
            verify=VerifyMode(options["VerifyMode"]),
            changed_only=options["TransferMode"] == "CHANGED",
            overwrite=options["OverwriteMode"] == "ALWAYS",
            remove_deleted=remove_deleted_in(options),
            preserve_devices=options["PreserveDevices"] == "PRESERVE",
            permissions=options["PosixPermissions"] == "PRESERVE",
            mtime=options["Mtime"] == "PRESERVE",
            atime=options["Atime"] == "BEST_EFFORT",
            uid=IdMode(options["Uid"]),
            gid=IdMode(options["Gid"]),
            bytes_per_second=None if rate == UNLIMITED else rate,
        )
