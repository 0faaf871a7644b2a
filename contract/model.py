"""Shapes and operations read from botocore's own service models, for `api` and `agents`.

The model files are the single authority for member names, enums, lengths and patterns. They are
read directly (a few ms) rather than through a botocore session so that servers and agents start
fast. (`engine.model` reads the DataSync model the same way for the engine's Options: the engine
imports nothing of ours, so it cannot import this.)
"""

from __future__ import annotations

import gzip
import importlib.util
import json
import os
from functools import cache
from typing import Any

__all__ = ["enum_values", "load_service_model", "shape"]

Shape = dict[str, Any]


def _botocore_data_dir() -> str:
    spec = importlib.util.find_spec("botocore")
    if spec is None or spec.origin is None:  # pragma: no cover - botocore is a dependency
        raise RuntimeError("botocore is not installed; it carries the service models")
    return os.path.join(os.path.dirname(spec.origin), "data")


@cache
def load_service_model(service: str = "datasync") -> dict[str, Any]:
    """The newest `service-2.json` of `service` shipped with the installed botocore."""
    service_dir = os.path.join(_botocore_data_dir(), service)
    version = max(os.listdir(service_dir))
    base = os.path.join(service_dir, version, "service-2.json")
    opener: Any = gzip.open if os.path.exists(base + ".gz") else open
    path = base + ".gz" if opener is gzip.open else base
    with opener(path, "rt", encoding="utf-8") as fh:
        model: dict[str, Any] = json.load(fh)
    return model


def shape(name: str, service: str = "datasync") -> Shape:
    shapes: dict[str, Shape] = load_service_model(service)["shapes"]
    return shapes[name]


def enum_values(name: str, service: str = "datasync") -> tuple[str, ...]:
    return tuple(shape(name, service)["enum"])
