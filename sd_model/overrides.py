"""Parameter overrides: resolve names, check shapes, convert values.

Users write overrides the way they think of them: the model's own names
(``"equalization transfer intensity"``) or PySD's (``equalization_transfer_intensity``),
one element at a time (``"loan discount[Turkistan]"``), mappings of elements,
pandas/xarray objects, and time series (a mapping or Series keyed by time). Here they
become what both backends accept: a float, an ``xr.DataArray`` over the variable's
full dims, or a ``pd.Series`` indexed by time (a time series replacing a constant, or
a new table for a lookup).
"""

from __future__ import annotations

import difflib
import math
import numbers
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import xarray as xr

from sd_model._errors import ParameterError

_ELEMENT_KEY = re.compile(r"^\s*(?P<name>[^\[\]]+?)\s*\[(?P<subs>[^\[\]]*)\]\s*$")


def normalize_name(name: str) -> str:
    """Case- and whitespace-insensitive form of a model name (Vensim's own rule)."""
    return " ".join(name.replace("_", " ").split()).lower()


@dataclass(frozen=True)
class ParameterInfo:
    """A settable model element (constant or lookup)."""

    py_name: str
    name: str
    kind: str  # "constant" or "lookup"
    dims: tuple[str, ...]
    units: str
    description: str
    default: Any  # float, xr.DataArray, or None for lookups


class ParameterSpace:
    """The settable elements of a model and the rules to override them.

    Parameters
    ----------
    parameters : sequence of ParameterInfo
        The settable elements.
    coords : mapping
        Subscript range name -> element names.
    other_names : mapping
        Normalized names of elements that exist but cannot be set (stocks, auxiliaries),
        to give a precise error instead of "unknown".
    source : str
        Where overrides come from, for error messages (a file name, "params").
    """

    def __init__(
        self,
        parameters: list[ParameterInfo],
        coords: Mapping[str, list[str]],
        other_names: Mapping[str, str] | None = None,
    ) -> None:
        self.parameters = {p.py_name: p for p in parameters}
        self.coords = {k: list(v) for k, v in coords.items()}
        self._by_norm: dict[str, str] = {}
        for p in parameters:
            self._by_norm[normalize_name(p.name)] = p.py_name
            self._by_norm[normalize_name(p.py_name)] = p.py_name
        self._other = dict(other_names or {})

    # --- names -------------------------------------------------------------
    def resolve(self, key: str, where: str = "params") -> ParameterInfo:
        """Find the parameter a user's name refers to, or raise with suggestions."""
        norm = normalize_name(key)
        py = self._by_norm.get(norm)
        if py is not None:
            return self.parameters[py]
        if norm in self._other:
            raise ParameterError(
                f"{where}: {key!r} is a {self._other[norm]}, not a constant or lookup; it is "
                "computed by the model and cannot be overridden. Override the constants it "
                "depends on instead."
            )
        candidates = sorted({p.name for p in self.parameters.values()})
        close = difflib.get_close_matches(key, candidates, n=3, cutoff=0.5)
        if not close:
            lowered = {c.lower(): c for c in candidates}
            close = [
                lowered[c]
                for c in difflib.get_close_matches(key.lower(), list(lowered), n=3, cutoff=0.5)
            ]
        hint = f" Did you mean {', '.join(repr(c) for c in close)}?" if close else ""
        raise ParameterError(
            f"{where}: unknown parameter {key!r}.{hint} (sd-model info MODEL lists the parameters.)"
        )

    # --- values ------------------------------------------------------------
    def normalize(self, params: Mapping[str, Any] | None, where: str = "params") -> dict[str, Any]:
        """Turn user overrides into backend-ready values keyed by py_name.

        Parameters
        ----------
        params : mapping or None
            Name (or ``name[element,...]``) -> value.
        where : str
            Origin of the overrides, used in error messages.

        Returns
        -------
        dict
            py_name -> float, xr.DataArray (full dims) or pd.Series (time-indexed).
        """
        out: dict[str, Any] = {}
        if not params:
            return out
        if not isinstance(params, Mapping):
            raise ParameterError(
                f"{where}: overrides must be a mapping of parameter names to values, "
                f"got {type(params).__name__}."
            )
        # Whole-variable values first, then element edits on top of them.
        element_edits: list[tuple[ParameterInfo, list[str], Any, str]] = []
        whole: dict[str, str] = {}
        for key, value in params.items():
            if not isinstance(key, str):
                raise ParameterError(f"{where}: parameter names must be text, got {key!r}.")
            m = _ELEMENT_KEY.match(key)
            if m:
                info = self.resolve(m.group("name"), where)
                subs = [s.strip() for s in m.group("subs").split(",")]
                element_edits.append((info, subs, value, key))
                continue
            info = self.resolve(key, where)
            if info.py_name in whole:
                # Names are case- and space-insensitive: two keys may be one parameter.
                raise ParameterError(
                    f"{where}: {whole[info.py_name]!r} and {key!r} name the same parameter "
                    f"{info.name!r}; give it once."
                )
            whole[info.py_name] = key
            out[info.py_name] = self._convert(info, value, f"{where}: {key!r}")
        edited: dict[tuple[str, tuple[str, ...]], str] = {}
        for info, subs, value, key in element_edits:
            label = f"{where}: {key!r}"
            if info.kind == "lookup":
                raise ParameterError(
                    f"{label}: set a lookup whole (a table keyed by x), not one element."
                )
            if len(subs) != len(info.dims):
                raise ParameterError(
                    f"{label}: {info.name!r} has dims {list(info.dims) or 'none'}; "
                    f"give {len(info.dims)} element(s) in brackets."
                )
            number = _as_number(value, label)
            base = out.get(info.py_name)
            if isinstance(base, pd.Series):
                raise ParameterError(f"{label}: cannot edit one element of a time series.")
            arr = self._full(info, base)
            sel = self._selection(info, subs, label)
            # Names are case-insensitive, so two spellings may name one element: refuse
            # rather than let the later one win silently.
            spot = (info.py_name, tuple(sel.values()))
            if spot in edited:
                raise ParameterError(
                    f"{label}: the same element as {edited[spot]!r}; give each element once."
                )
            edited[spot] = key
            arr.loc[sel] = number
            out[info.py_name] = arr
        return out

    def _selection(self, info: ParameterInfo, subs: list[str], label: str) -> dict[str, str]:
        """``{dim: element}`` for one element of ``info``, checking every element name."""
        return {
            dim: self._element(dim, sub, label) for dim, sub in zip(info.dims, subs, strict=True)
        }

    def _element(self, dim: str, sub: str, label: str) -> str:
        """The model's spelling of element ``sub`` of ``dim``: Vensim names are case- and
        space-insensitive, so ``almaty CITY`` finds ``Almaty city``."""
        elements = self.coords[dim]
        if sub in elements:
            return sub
        wanted = normalize_name(sub)
        for e in elements:
            if normalize_name(e) == wanted:
                return e
        close = difflib.get_close_matches(sub, list(elements), n=3, cutoff=0.6)
        hint = f" Did you mean {', '.join(map(repr, close))}?" if close else ""
        raise ParameterError(
            f"{label}: {sub!r} is not an element of {dim!r}; elements: {', '.join(elements)}.{hint}"
        )

    def _full(self, info: ParameterInfo, base: Any) -> xr.DataArray:
        if isinstance(base, xr.DataArray):
            return base.copy()
        template = self.template(info)
        if base is not None:
            return xr.full_like(template, float(base))
        if isinstance(info.default, xr.DataArray):
            return info.default.astype(float).transpose(*info.dims).copy()
        if info.default is not None:
            return xr.full_like(template, float(info.default))
        return template

    def template(self, info: ParameterInfo) -> xr.DataArray:
        """A NaN DataArray with the parameter's dims and coords."""
        shape = [len(self.coords[d]) for d in info.dims]
        return xr.DataArray(
            np.full(shape, np.nan),
            dims=list(info.dims),
            coords={d: list(self.coords[d]) for d in info.dims},
        )

    def _convert(self, info: ParameterInfo, value: Any, label: str) -> Any:
        if info.kind == "lookup":
            return _as_table(value, label, info)
        if isinstance(value, pd.Series) and _numeric_index(value.index):
            return _as_time_series(value, label)
        if isinstance(value, Mapping) and value and all(_is_number(k) for k in value):
            return _as_time_series(pd.Series(dict(value)), label)
        if isinstance(value, xr.DataArray):
            return self._from_dataarray(info, value, label)
        if isinstance(value, pd.Series):
            if len(info.dims) != 1:
                raise ParameterError(
                    f"{label}: a Series keyed by elements fits a 1-D parameter; "
                    f"{info.name!r} has dims {list(info.dims) or 'none'}."
                )
            value = {str(k): v for k, v in value.items()}
        if isinstance(value, Mapping):
            if not info.dims:
                raise ParameterError(
                    f"{label}: {info.name!r} is not subscripted; give a number "
                    "(or a mapping of time -> value for a time series)."
                )
            arr = self._full(info, None)
            seen: dict[tuple[str, ...], Any] = {}
            for k, v in value.items():
                subs = [s.strip() for s in (k if isinstance(k, tuple) else str(k).split(","))]
                if len(subs) != len(info.dims):
                    raise ParameterError(
                        f"{label}: key {k!r} names {len(subs)} element(s); {info.name!r} has "
                        f"dims {list(info.dims)}."
                    )
                sel = self._selection(info, subs, label)
                spot = tuple(sel.values())
                if spot in seen:
                    raise ParameterError(
                        f"{label}: keys {seen[spot]!r} and {k!r} name the same element; give "
                        "each element once."
                    )
                seen[spot] = k
                arr.loc[sel] = _as_number(v, label)
            return arr
        if isinstance(value, list | tuple | np.ndarray) and np.ndim(value) > 0:
            try:
                arr_in = np.asarray(value, dtype=float)
            except (TypeError, ValueError) as exc:
                raise ParameterError(f"{label}: expected numbers, got {value!r}.") from exc
            shape = tuple(len(self.coords[d]) for d in info.dims)
            if arr_in.shape != shape:
                raise ParameterError(
                    f"{label}: {info.name!r} has dims {list(info.dims) or 'none'} "
                    f"(shape {shape}); got an array of shape {arr_in.shape}."
                )
            return xr.DataArray(
                arr_in, dims=list(info.dims), coords={d: self.coords[d] for d in info.dims}
            )
        number = _as_number(value, label)
        if info.dims:
            return xr.full_like(self.template(info), number)
        return number

    def _from_dataarray(self, info: ParameterInfo, value: xr.DataArray, label: str) -> Any:
        extra = [d for d in value.dims if d not in info.dims]
        if extra:
            raise ParameterError(
                f"{label}: dims {list(value.dims)} do not fit {info.name!r}, whose dims are "
                f"{list(info.dims) or 'none'}."
            )
        for d in map(str, value.dims):
            if d in value.coords:
                labels = [str(c) for c in value.coords[d].values]
                # _element names an unknown label, with the range and close matches.
                canonical = [self._element(d, c, label) for c in labels]
                if len(set(canonical)) < len(canonical):
                    raise ParameterError(
                        f"{label}: labels {labels} of {d!r} name an element more than once."
                    )
                value = value.assign_coords({d: canonical})
        if not info.dims:
            return float(value.values)
        for d in map(str, value.dims):
            if d not in value.coords:
                # No labels: accept it only when it spans the whole range, in model order.
                if value.sizes[d] != len(self.coords[d]):
                    raise ParameterError(
                        f"{label}: dim {d!r} has {value.sizes[d]} values without element "
                        f"labels; give coords or all {len(self.coords[d])} elements of {d!r}."
                    )
                value = value.assign_coords({d: self.coords[d]})
        arr = self._full(info, None)
        value = value.astype(float)
        if all(d in value.coords for d in value.dims) and all(
            value.sizes[d] == len(self.coords[str(d)]) for d in value.dims
        ):
            arr[:] = value.broadcast_like(arr).transpose(*info.dims).values
        else:
            arr.loc[{d: [str(c) for c in value.coords[d].values] for d in value.dims}] = (
                value.transpose(*[d for d in info.dims if d in value.dims]).values
            )
        return arr


def _is_number(x: Any) -> bool:
    return isinstance(x, numbers.Real) and not isinstance(x, bool)


def _numeric_index(index: pd.Index) -> bool:
    return bool(len(index)) and all(_is_number(v) for v in index)


def _as_number(value: Any, label: str) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real | np.number):
        try:
            if isinstance(value, str):
                return float(value)
        except ValueError:
            pass
        raise ParameterError(f"{label}: expected a number, got {value!r}.")
    number = float(value)
    if math.isnan(number):
        raise ParameterError(f"{label}: NaN is not a valid value.")
    return number


def _as_time_series(series: pd.Series, label: str) -> pd.Series:
    try:
        s = pd.Series(
            np.asarray(series.values, dtype=float), index=np.asarray(series.index, dtype=float)
        )
    except (TypeError, ValueError) as exc:
        raise ParameterError(f"{label}: a time series needs numeric times and values.") from exc
    s = s.sort_index()
    if s.index.has_duplicates:
        raise ParameterError(f"{label}: repeated times in the time series.")
    if s.isna().any():
        raise ParameterError(f"{label}: the time series has missing values.")
    return s


def _as_table(value: Any, label: str, info: ParameterInfo) -> pd.Series:
    if info.dims:
        raise ParameterError(
            f"{label}: overriding the subscripted lookup {info.name!r} is not supported yet; "
            "override the constants it depends on."
        )
    if isinstance(value, pd.Series):
        return _as_time_series(value, label)
    if isinstance(value, Mapping) and value and all(_is_number(k) for k in value):
        return _as_time_series(pd.Series(dict(value)), label)
    if isinstance(value, Mapping) and set(value) == {"x", "y"}:
        x, y = np.asarray(value["x"], float), np.asarray(value["y"], float)
        if x.shape != y.shape or x.ndim != 1:
            raise ParameterError(f"{label}: lookup 'x' and 'y' must be lists of equal length.")
        return _as_time_series(pd.Series(y, index=x), label)
    raise ParameterError(
        f"{label}: {info.name!r} is a lookup; give a table as a mapping x -> y, "
        "{x: [...], y: [...]}, or a pandas Series indexed by x."
    )
