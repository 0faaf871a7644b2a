"""Shapes and operations read from botocore's own service models, for `api` and `agents`.

The model files are the single authority for member names, enums, lengths and patterns. The
loader is the engine's (`engine.model`, which reads a model file directly in a few ms instead of
through a botocore session): the contract sits above the engine and may import it, so both
layers read the models through one piece of code.
"""

from __future__ import annotations

from engine.model import Shape, enum_values, load_service_model, shape

__all__ = ["Shape", "enum_values", "load_service_model", "shape"]
