from __future__ import annotations

import pytest

from engine import InvalidOptionsError, Options
from engine.model import structure_members


def test_defaults_cover_every_option_of_the_model() -> None:
    opts = Options.create()
    assert set(opts) == set(structure_members("Options"))
    assert opts["VerifyMode"] == "POINT_IN_TIME_CONSISTENT"
    assert opts["BytesPerSecond"] == -1
    assert opts["TransferMode"] == "CHANGED"
    assert Options.create(task_mode="ENHANCED")["VerifyMode"] == "ONLY_FILES_TRANSFERRED"


def test_merge_is_field_by_field_and_revalidated() -> None:
    task = Options.create({"VerifyMode": "NONE", "BytesPerSecond": 1000})
    effective = task.merged({"BytesPerSecond": 2000})
    assert effective["VerifyMode"] == "NONE"
    assert effective.bytes_per_second == 2000
    assert task.bytes_per_second == 1000  # immutable


@pytest.mark.parametrize(
    ("raw", "field"),
    [
        ({"VerifyMode": "SOMETIMES"}, "Options.VerifyMode"),
        ({"Unknown": "X"}, "Options.Unknown"),
        ({"BytesPerSecond": -2}, "Options.BytesPerSecond"),
        ({"BytesPerSecond": 0}, "Options.BytesPerSecond"),
        ({"BytesPerSecond": "fast"}, "Options.BytesPerSecond"),
        ({"BytesPerSecond": True}, "Options.BytesPerSecond"),
        ({"Atime": "NONE"}, "Options.Atime"),  # Mtime stays PRESERVE: must be paired
        ({"Mtime": "NONE"}, "Options.Atime"),
        ({"PreserveDeletedFiles": "REMOVE", "TransferMode": "ALL"}, "Options.PreserveDeletedFiles"),
    ],
)
def test_invalid_options_name_the_field(raw: dict[str, object], field: str) -> None:
    with pytest.raises(InvalidOptionsError) as info:
        Options.create(raw)
    assert info.value.field == field
    assert field.split(".")[-1] in str(info.value)


def test_paired_times_and_enhanced_rules() -> None:
    assert Options.create({"Atime": "NONE", "Mtime": "NONE"})["Mtime"] == "NONE"
    with pytest.raises(InvalidOptionsError):
        Options.create({"VerifyMode": "POINT_IN_TIME_CONSISTENT"}, task_mode="ENHANCED")
    with pytest.raises(InvalidOptionsError):
        Options.create(task_mode="TURBO")
