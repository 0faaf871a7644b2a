"""Shapes and enums read from botocore's own DataSync model.

The model file is the single authority for member names, enums, lengths and patterns: nothing in
this project retypes them. The file is read directly (8 ms) instead of through a botocore session
so that the engine and the `sync` command start fast.
"""

from __future__ import annotations

import gzip
import importlib.util
import json
import os
from functools import cache
from typing import Any

__all__ = ["enum_values", "load_service_model", "shape", "structure_members"]

Shape = dict[str, Any]


def _botocore_data_dir() -> str:
    spec = importlib.util.find_spec("botocore")
    if spec is None or spec.origin is None:  # pragma: no cover - botocore is a dependency
        raise RuntimeError("botocore is not installed; it carries the DataSync model")
    return os.path.join(os.path.dirname(spec.origin), "data")


@cache
def load_service_model(service: str = "datasync") -> dict[str, Any]:
    """Return the newest `service-2.json` of `service` shipped with the installed botocore."""
    service_dir = os.path.join(_botocore_data_dir(), service)
    version = max(os.listdir(service_dir))
    base = os.path.join(service_dir, version, "service-2.json")
    if os.path.exists(base + ".gz"):
        with gzip.open(base + ".gz", "rt", encoding="utf-8") as fh:
            model: dict[str, Any] = json.load(fh)
    else:
        with open(base, encoding="utf-8") as fh:
            model = json.load(fh)
    return model


def shape(name: str, service: str = "datasync") -> Shape:
    shapes: dict[str, Shape] = load_service_model(service)["shapes"]
    return shapes[name]


def structure_members(name: str, service: str = "datasync") -> dict[str, Shape]:
    """Map member name -> the member's own shape (resolved), for a structure shape."""
    members: dict[str, Shape] = shape(name, service)["members"]
    return {member: shape(ref["shape"], service) for member, ref in members.items()}


def enum_values(name: str, service: str = "datasync") -> tuple[str, ...]:
    return tuple(shape(name, service)["enum"])
