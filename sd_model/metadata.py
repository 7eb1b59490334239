"""Variable metadata read from PySD's abstract model, without building or importing Python.

PySD's runtime model offers the same table (``model.doc``), but only after PySD has
written and imported a Python module made from the model file's text, which a hostile
file can turn into code (see :mod:`sd_model._untrusted`). This module asks PySD's
builder only for what it decides without writing files (Python names, merged
subscripts, component types) and takes names, units and comments from the abstract
model itself.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Any

import pandas as pd


@dataclass(frozen=True)
class ElementDoc:
    """One model element as PySD's ``doc`` table describes it.

    Attributes
    ----------
    name : str
        The model's own name (``Net Migration``).
    py_name : str
        PySD's Python-safe name (``net_migration``).
    dims : tuple of str
        Subscript ranges of the whole element.
    units : str
        Units as written in the model file ('' when absent).
    limits : tuple
        ``(min, max)`` from the units field; ``None`` where absent.
    type : str
        PySD's component type: ``Constant``, ``Auxiliary``, ``Stateful``, ``Lookup``,
        ``Data``.
    subtype : str
        PySD's subtype (``Normal``, ``Integ``, ``Smooth``, ``External``...).
    description : str
        The model's comment.
    has_args : bool
        True for elements PySD calls with an argument (lookup tables).
    control : bool
        True for INITIAL TIME, FINAL TIME, TIME STEP and SAVEPER.
    """

    name: str
    py_name: str
    dims: tuple[str, ...]
    units: str
    limits: tuple[float | None, float | None]
    type: str
    subtype: str
    description: str
    has_args: bool
    control: bool


@dataclass(frozen=True)
class ModelMetadata:
    """Everything sd_model reports about a model's variables before running it.

    Attributes
    ----------
    elements : tuple of ElementDoc
        In PySD's ``doc`` order (sorted by the model's names).
    coords : dict
        Subscript range name -> element names.
    time_units : str
        Units of TIME STEP (or FINAL TIME): the model's time unit.
    """

    elements: tuple[ElementDoc, ...]
    coords: dict[str, list[str]]
    time_units: str

    def doc(self) -> pd.DataFrame:
        """The table PySD's ``model.doc`` gives, with the same columns."""
        return pd.DataFrame(
            [
                {
                    "Real Name": e.name,
                    "Py Name": e.py_name,
                    "Subscripts": list(e.dims) if e.dims else None,
                    "Units": e.units or None,
                    "Limits": e.limits,
                    "Type": e.type,
                    "Subtype": e.subtype,
                    "Comment": e.description or None,
                }
                for e in self.elements
            ],
            columns=[
                "Real Name",
                "Py Name",
                "Subscripts",
                "Units",
                "Limits",
                "Type",
                "Subtype",
                "Comment",
            ],
        )


def _limits(value: Any) -> tuple[float | None, float | None]:
    out: list[float | None] = []
    for v in tuple(value or ())[:2]:
        try:
            f = float(v)
        except (TypeError, ValueError):
            out.append(None)
            continue
        out.append(None if f != f else f)
    while len(out) < 2:
        out.append(None)
    return (out[0], out[1])


def _description(text: str) -> str:
    # PySD turns Vensim's line-continuation backslashes into line breaks.
    lines = [line.strip() for line in (text or "").replace("\\", "\n").splitlines()]
    return "\n".join(lines).strip()


def read_metadata(am: Any) -> ModelMetadata:
    """Read a model's metadata from its abstract model.

    Parameters
    ----------
    am : pysd.translators.structures.abstract_model.AbstractModel
        From :func:`sd_model.translate.parse_abstract_model`.

    Returns
    -------
    ModelMetadata
    """
    from pysd.builders.python.python_model_builder import ModelBuilder
    from pysd.translators.structures.abstract_model import AbstractControlElement

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        builder = ModelBuilder(am)
        main = builder.sections[0]
        main.macrospace = builder.macrospace
        for eb in main.elements:
            main.namespace.add_to_namespace(eb.name)
            eb.identifier = main.namespace.namespace[eb.name]
            main.subscripts.elements[eb.identifier] = eb.subscripts
        for eb in main.elements:
            # Builds expression strings only; types are decided here, nothing is written.
            eb.build_element()
    originals = {el.name: el for el in am.sections[0].elements}
    docs: list[ElementDoc] = []
    time_units = ""
    for eb in main.elements:
        src = originals[eb.name]
        is_control = isinstance(src, AbstractControlElement) or bool(
            getattr(eb, "control_var", False)
        )
        units = (src.units or "").strip()
        if is_control and eb.identifier in ("time_step", "final_time"):
            time_units = time_units or units.split(",")[0].strip()
        docs.append(
            ElementDoc(
                name=str(src.name),
                py_name=str(eb.identifier),
                dims=tuple(str(d) for d in eb.subscripts),
                units=units,
                limits=_limits(src.limits),
                type=str(eb.type),
                subtype=str(eb.subtype),
                description=_description(src.documentation),
                has_args=bool(eb.arguments),
                control=is_control,
            )
        )
    docs.sort(key=lambda d: d.name)
    coords = {str(k): [str(e) for e in v] for k, v in main.subscripts.subscripts.items()}
    return ModelMetadata(elements=tuple(docs), coords=coords, time_units=time_units)


def model_metadata(am: Any, path: Any) -> ModelMetadata:
    """:func:`read_metadata`, with PySD's errors turned into one line naming the file.

    Raises
    ------
    ModelLoadError
        When an equation refers to a variable the file does not define, or PySD's
        builder rejects the model; the message names the variable and its file line.
    """
    from sd_model._errors import ModelLoadError
    from sd_model.translate import describe_build_error

    try:
        return read_metadata(am)
    except RecursionError as exc:
        raise ModelLoadError(f"{path}: the model's equations nest too deeply to read.") from exc
    except Exception as exc:
        raise ModelLoadError(describe_build_error(exc, am, path)) from exc
