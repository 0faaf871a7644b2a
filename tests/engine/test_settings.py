"""Settings (engine/settings.py): a run's Options read once into typed fields."""

from __future__ import annotations

import dataclasses
import itertools
import pickle
from typing import Any

import pytest

from engine import InvalidOptionsError, Options
from engine.options import option_enum
from engine.settings import (
    ID_BOTH,
    ID_INT_VALUE,
    ID_NAME,
    ID_NONE,
    ONLY_FILES_TRANSFERRED,
    POINT_IN_TIME_CONSISTENT,
    VERIFY_NONE,
    IdMode,
    Settings,
    VerifyMode,
    remove_deleted_in,
)


def test_enums_are_the_models() -> None:
    assert [m.value for m in VerifyMode] == list(option_enum("VerifyMode"))
    assert [m.value for m in IdMode] == list(option_enum("Uid")) == list(option_enum("Gid"))
    for enum in (VerifyMode, IdMode):
        assert all(m.name == m.value for m in enum)


def test_named_members() -> None:
    assert {POINT_IN_TIME_CONSISTENT, ONLY_FILES_TRANSFERRED, VERIFY_NONE} == set(VerifyMode)
    assert {ID_NONE, ID_INT_VALUE, ID_NAME, ID_BOTH} == set(IdMode)
    assert [m.value for m in (ID_NONE, ID_INT_VALUE, ID_NAME, ID_BOTH)] == [
        "NONE", "INT_VALUE", "NAME", "BOTH",
    ]  # fmt: skip
    assert pickle.loads(pickle.dumps(ID_NAME)) is ID_NAME


def test_defaults() -> None:
    basic = Settings.from_options(Options.create())
    assert basic == Settings(
        verify=POINT_IN_TIME_CONSISTENT,
        changed_only=True,
        overwrite=True,
        remove_deleted=False,
        preserve_devices=False,
        permissions=True,
        mtime=True,
        atime=True,
        uid=ID_INT_VALUE,
        gid=ID_INT_VALUE,
        bytes_per_second=None,
    )
    enhanced = Settings.from_options(Options.create(task_mode="ENHANCED"))
    assert enhanced == dataclasses.replace(basic, verify=ONLY_FILES_TRANSFERRED)


# Every option the engine reads, each with all of its model's values.
_READ = ("VerifyMode", "TransferMode", "OverwriteMode", "PreserveDeletedFiles",
         "PreserveDevices", "PosixPermissions", "Mtime", "Atime", "Uid", "Gid")  # fmt: skip


def _expected(raw: dict[str, Any]) -> dict[str, object]:
    return {
        "verify": raw["VerifyMode"],
        "changed_only": raw["TransferMode"] == "CHANGED",
        "overwrite": raw["OverwriteMode"] == "ALWAYS",
        "remove_deleted": raw["PreserveDeletedFiles"] == "REMOVE",
        "preserve_devices": raw["PreserveDevices"] == "PRESERVE",
        "permissions": raw["PosixPermissions"] == "PRESERVE",
        "mtime": raw["Mtime"] == "PRESERVE",
        "atime": raw["Atime"] == "BEST_EFFORT",
        "uid": raw["Uid"],
        "gid": raw["Gid"],
    }


@pytest.mark.parametrize("task_mode", ["BASIC", "ENHANCED"])
def test_every_valid_combination(task_mode: str) -> None:
    valid = 0
    for values in itertools.product(*(option_enum(name) for name in _READ)):
        raw = dict(zip(_READ, values, strict=True))
        try:
            options = Options.create(raw, task_mode)
        except InvalidOptionsError:
            continue  # a combination DataSync refuses (Atime without Mtime, REMOVE with ALL, ...)
        valid += 1
        settings = dataclasses.asdict(Settings.from_options(options))
        got = {name: getattr(value, "value", value) for name, value in settings.items()}
        assert got.pop("bytes_per_second") is None
        assert got == _expected(raw), raw
    assert valid > 100


@pytest.mark.parametrize(("raw", "want"), [(-1, None), (1, 1), (1 << 30, 1 << 30)])
def test_bytes_per_second(raw: int, want: int | None) -> None:
    assert Settings.from_options(Options.create({"BytesPerSecond": raw})).bytes_per_second == want


def test_frozen_and_hashable() -> None:
    one = Settings.from_options(Options.create({"Uid": "NAME"}))
    with pytest.raises(dataclasses.FrozenInstanceError):
        one.mtime = False  # type: ignore[misc]
    assert {one, Settings.from_options(Options.create({"Uid": "NAME"}))} == {one}


def test_remove_deleted_in_a_partial_mapping() -> None:
    assert remove_deleted_in({"PreserveDeletedFiles": "REMOVE"})
    assert not remove_deleted_in({"PreserveDeletedFiles": "PRESERVE"})
    assert not remove_deleted_in({})
