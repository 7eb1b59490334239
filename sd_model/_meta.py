"""Metadata shared by the backends and the results layer."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

SDKind = Literal["stock", "flow", "auxiliary", "constant", "lookup", "data"]


@dataclass(frozen=True)
class VariableInfo:
    """One model variable as results present it.

    Attributes
    ----------
    py_name : str
        PySD's Python-safe name (the Dataset variable name), e.g. ``net_migration``.
    name : str
        The model's own name, e.g. ``Net Migration`` (the ``long_name`` attr).
    dims : tuple of str
        Subscript ranges, in order, as PySD names them (e.g. ``("Region",)``).
    units : str
        Units as written in the model file ('' when absent).
    description : str
        The model's comment ('' when absent).
    sd_kind : {"stock", "flow", "auxiliary", "constant", "lookup", "data"}
        What kind of element it is.
    """

    py_name: str
    name: str
    dims: tuple[str, ...] = ()
    units: str = ""
    description: str = ""
    sd_kind: SDKind = "auxiliary"
    time_dependent: bool = True
    limits: tuple[float | None, float | None] = field(default=(None, None))
