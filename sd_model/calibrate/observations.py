"""Observed data resolved against a model: one series per variable and element.

Data come as a tidy DataFrame (``time``, ``variable``, one column per subscript range
such as ``Region``, ``value``), a wide DataFrame (indexed by time, one column per
variable), an ``xarray.Dataset``, or a mapping of variable name (``"Population"`` or
``"Population[North]"``) to a ``pandas.Series`` indexed by time or an
``xarray.DataArray`` with a ``time`` dim. Names are resolved as overrides are: the
model's names or PySD's, case- and space-insensitive, with close-match suggestions.
Only times where data exist count (missing values are dropped); a variable, element or
time the run does not have is an error naming it.

Examples
--------
>>> import pandas as pd
>>> import sd_model
>>> model = sd_model.load("tests/models/logistic.mdl")  # doctest: +SKIP
>>> obs = read_observations(model, {"P": pd.Series([10.0, 16.3], index=[0, 1])})  # doctest: +SKIP
>>> obs.series[0].label  # doctest: +SKIP
'P'
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import xarray as xr

from sd_model._meta import VariableInfo
from sd_model.calibrate.errors import CalibrationError
from sd_model.integrate import TimeGrid
from sd_model.overrides import normalize_name

if TYPE_CHECKING:
    from sd_model.model import Model

_ELEMENT_KEY = re.compile(r"^\s*(?P<name>[^\[\]]+?)\s*\[(?P<subs>[^\[\]]*)\]\s*$")
# Saved times are floats (initial + k * saveper); data times within this of one match it.
_TIME_TOL = 1e-9


@dataclass(frozen=True)
class Series:
    """One observed series: a variable (and one element of it) at the times observed.

    Attributes
    ----------
    label : str
        ``"Infected"`` or ``"Population[North]"`` (the model's names).
    variable : VariableInfo
        The model variable observed.
    elements : tuple of str
        One element per dim of the variable (empty for a scalar variable).
    position : tuple of int
        Index of the element in the variable's array.
    times, values : numpy.ndarray
        Observation times (sorted) and values, NaN dropped.
    """

    label: str
    variable: VariableInfo
    elements: tuple[str, ...]
    position: tuple[int, ...]
    times: np.ndarray
    values: np.ndarray

    def subset(self, keep: np.ndarray) -> Series:
        """The same series restricted to the observations where ``keep`` is True."""
        return Series(
            self.label,
            self.variable,
            self.elements,
            self.position,
            self.times[keep],
            self.values[keep],
        )


@dataclass(frozen=True)
class Observations:
    """All observed series of a calibration."""

    series: tuple[Series, ...]

    @property
    def n(self) -> int:
        """Number of observations."""
        return int(sum(len(s.values) for s in self.series))

    @property
    def variables(self) -> list[str]:
        """py_names of the observed variables, each once, in order."""
        return list(dict.fromkeys(s.variable.py_name for s in self.series))

    def window(
        self, last_time: float | None = None, first_time: float | None = None
    ) -> Observations:
        """The observations with ``first_time < time <= last_time`` (None: unbounded)."""
        out = []
        for s in self.series:
            keep = np.ones(len(s.times), dtype=bool)
            if last_time is not None:
                keep &= s.times <= last_time + _TIME_TOL
            if first_time is not None:
                keep &= s.times > first_time + _TIME_TOL
            if keep.any():
                out.append(s.subset(keep))
        return Observations(tuple(out))

    def time_index(self, grid: TimeGrid, where: str = "data") -> list[np.ndarray]:
        """For each series, the index of each observation time among the saved times.

        Raises
        ------
        CalibrationError
            A time before the initial time, after the final time, or between saved times.
        """
        saved = grid.save_times()
        out = []
        for s in self.series:
            idx = np.searchsorted(saved, s.times - _TIME_TOL)
            for t, i in zip(s.times, idx, strict=True):
                if t < grid.initial_time - _TIME_TOL or t > grid.final_time + _TIME_TOL:
                    raise CalibrationError(
                        f"{where}: {s.label} has an observation at time {t:g}, outside the run "
                        f"({grid.initial_time:g} to {grid.final_time:g}); drop it or extend the "
                        "run with time=TimeSettings(initial_time=..., final_time=...)."
                    )
                if i >= len(saved) or abs(saved[i] - t) > _TIME_TOL * max(1.0, abs(t)):
                    raise CalibrationError(
                        f"{where}: {s.label} has an observation at time {t:g}, which is not a "
                        f"saved time of the run (every {grid.saveper:g} from "
                        f"{grid.initial_time:g}); set time=TimeSettings(saveper=...) so that "
                        "the run saves it."
                    )
            out.append(idx)
        return out


# --------------------------------------------------------------------------- reading
def read_observations(model: Model, data: Any, *, where: str = "data") -> Observations:
    """Resolve observed data against ``model`` (see the module docstring for layouts).

    Parameters
    ----------
    model : Model
    data : pandas.DataFrame, xarray.Dataset or mapping
        The observations.
    where : str
        Origin of the data, for error messages (a file name).

    Returns
    -------
    Observations

    Raises
    ------
    CalibrationError
        Unknown variables or elements (with close matches), empty data, duplicate
        observations, non-numeric times or values.
    """
    resolver = _Resolver(model, where)
    if isinstance(data, pd.DataFrame):
        pieces = _from_frame(data, resolver)
    elif isinstance(data, xr.Dataset):
        pieces = [
            p for k, v in data.data_vars.items() for p in _from_dataarray(str(k), v, resolver)
        ]
    elif isinstance(data, Mapping):
        pieces = []
        for key, value in data.items():
            pieces.extend(_from_mapping_item(str(key), value, resolver))
    else:
        raise CalibrationError(
            f"{where}: give data as a pandas DataFrame, an xarray Dataset or a mapping of "
            f"variable name to Series; got {type(data).__name__}."
        )
    series = [s for s in pieces if len(s.values)]
    if not series:
        raise CalibrationError(f"{where}: no observations (every value is missing).")
    seen: dict[str, str] = {}
    for s in series:
        key = f"{s.variable.py_name}{list(s.position)}"
        if key in seen:
            raise CalibrationError(
                f"{where}: {s.label} is given twice (as {seen[key]!r} and {s.label!r})."
            )
        seen[key] = s.label
    return Observations(tuple(series))


class _Resolver:
    """Model names -> variables, and element labels -> positions, as overrides resolve."""

    def __init__(self, model: Model, where: str) -> None:
        self.where = where
        self.coords = model.coords
        self.variables = [v for v in model.variables if v.time_dependent]
        self.by_norm: dict[str, VariableInfo] = {}
        for v in self.variables:
            self.by_norm.setdefault(normalize_name(v.name), v)
            self.by_norm.setdefault(normalize_name(v.py_name), v)
        self.constants = {
            normalize_name(n): v.name
            for v in model.variables
            if not v.time_dependent
            for n in (v.name, v.py_name)
        }

    def variable(self, name: str) -> VariableInfo:
        var = self.by_norm.get(normalize_name(name))
        if var is not None:
            return var
        if normalize_name(name) in self.constants:
            raise CalibrationError(
                f"{self.where}: {name!r} is a constant of the model; data can only be "
                "compared with variables that change in time."
            )
        names = sorted({v.name for v in self.variables})
        lowered = {n.lower(): n for n in names}
        close = [
            lowered[c]
            for c in difflib.get_close_matches(name.lower(), list(lowered), n=3, cutoff=0.5)
        ]
        hint = f" Did you mean {', '.join(map(repr, close))}?" if close else ""
        raise CalibrationError(f"{self.where}: unknown variable {name!r}.{hint}")

    def element(self, var: VariableInfo, dim: str, label: Any) -> tuple[str, int]:
        elements = self.coords[dim]
        text = str(label).strip()
        for i, e in enumerate(elements):
            if e == text or normalize_name(e) == normalize_name(text):
                return e, i
        close = difflib.get_close_matches(text, elements, n=3, cutoff=0.6)
        hint = f" Did you mean {', '.join(map(repr, close))}?" if close else ""
        raise CalibrationError(
            f"{self.where}: {text!r} is not an element of {dim!r} (variable {var.name!r}); "
            f"elements: {', '.join(elements)}.{hint}"
        )

    def series(
        self, var: VariableInfo, labels: dict[str, Any], times: Any, values: Any, what: str
    ) -> Series:
        missing = [d for d in var.dims if d not in labels]
        if missing:
            raise CalibrationError(
                f"{self.where}: {what}: {var.name!r} has dims {list(var.dims)}; give the "
                f"element of {', '.join(map(repr, missing))}."
            )
        extra = [d for d in labels if d not in var.dims]
        if extra:
            raise CalibrationError(
                f"{self.where}: {what}: {var.name!r} has no dim {extra[0]!r} (its dims: "
                f"{list(var.dims) or 'none'})."
            )
        resolved = [self.element(var, d, labels[d]) for d in var.dims]
        elements = tuple(e for e, _ in resolved)
        label = f"{var.name}[{','.join(elements)}]" if elements else var.name
        t, y = _numeric(times, values, f"{self.where}: {label}")
        return Series(label, var, elements, tuple(i for _, i in resolved), t, y)


def _numeric(times: Any, values: Any, label: str) -> tuple[np.ndarray, np.ndarray]:
    try:
        t = np.asarray(times, dtype=float)
        y = np.asarray(pd.to_numeric(pd.Series(np.asarray(values)), errors="raise"), dtype=float)
    except (TypeError, ValueError) as exc:
        raise CalibrationError(f"{label}: times and values must be numbers ({exc}).") from exc
    keep = np.isfinite(y)
    if np.any(~np.isfinite(t[keep])):
        raise CalibrationError(f"{label}: missing or non-numeric times.")
    t, y = t[keep], y[keep]
    order = np.argsort(t, kind="stable")
    t, y = t[order], y[order]
    dup = np.nonzero(np.diff(t) <= _TIME_TOL)[0]
    if len(dup):
        raise CalibrationError(f"{label}: two observations at time {t[dup[0]]:g}.")
    return t, y


def _from_frame(df: pd.DataFrame, r: _Resolver) -> list[Series]:
    cols = {str(c).strip().lower(): c for c in df.columns}
    if not ({"variable", "value"} <= set(cols)):
        # Wide: indexed by time, one column per variable (or "name[element]").
        return [s for c in df.columns for s in _from_mapping_item(str(c), df[c], r)]
    if "time" not in cols:
        raise CalibrationError(
            f"{r.where}: tidy data needs a 'time' column; it has {', '.join(map(str, df.columns))}."
        )
    dims_lower = {d.lower(): d for d in r.coords}
    dim_cols: dict[str, Any] = {}
    for low, col in cols.items():
        if low in ("time", "variable", "value"):
            continue
        if low not in dims_lower:
            close = difflib.get_close_matches(str(col), list(r.coords), n=2, cutoff=0.6)
            hint = f" Did you mean {', '.join(map(repr, close))}?" if close else ""
            raise CalibrationError(
                f"{r.where}: column {col!r} is not a subscript range of the model (ranges: "
                f"{', '.join(r.coords) or 'none'}).{hint}"
            )
        dim_cols[dims_lower[low]] = col
    out: list[Series] = []
    tidy = df.dropna(subset=[cols["value"]])
    for name, group in tidy.groupby(cols["variable"], sort=False):
        var = r.variable(str(name))
        keys = [dim_cols[d] for d in var.dims if d in dim_cols]
        other = [c for d, c in dim_cols.items() if d not in var.dims]
        for c in other:
            if group[c].notna().any():
                raise CalibrationError(
                    f"{r.where}: rows of {var.name!r} give column {c!r}, but the variable "
                    f"has dims {list(var.dims) or 'none'}."
                )
        if len(keys) < len(var.dims):
            r.series(var, {d: "" for d in var.dims if d in dim_cols}, [], [], str(name))
        parts = group.groupby(keys, sort=False, dropna=False) if keys else [((), group)]
        for labels, part in parts:
            labels = labels if isinstance(labels, tuple) else (labels,)
            lab = dict(zip([d for d in var.dims if d in dim_cols], labels, strict=True))
            out.append(r.series(var, lab, part[cols["time"]], part[cols["value"]], str(name)))
    return out


def _from_mapping_item(key: str, value: Any, r: _Resolver) -> list[Series]:
    m = _ELEMENT_KEY.match(key)
    name = m.group("name") if m else key
    var = r.variable(name)
    if isinstance(value, xr.DataArray):
        if m:
            raise CalibrationError(
                f"{r.where}: {key!r}: give a DataArray under the variable's name, with its dims."
            )
        return _from_dataarray(key, value, r)
    if not isinstance(value, pd.Series):
        raise CalibrationError(
            f"{r.where}: {key!r}: give a pandas Series indexed by time (or an xarray "
            f"DataArray with a 'time' dim); got {type(value).__name__}."
        )
    labels: dict[str, Any] = {}
    if m:
        subs = [s.strip() for s in m.group("subs").split(",")]
        if len(subs) != len(var.dims):
            raise CalibrationError(
                f"{r.where}: {key!r}: {var.name!r} has dims {list(var.dims) or 'none'}; give "
                f"{len(var.dims)} element(s) in brackets."
            )
        labels = dict(zip(var.dims, subs, strict=True))
    return [r.series(var, labels, value.index, value.values, key)]


def _from_dataarray(key: str, da: xr.DataArray, r: _Resolver) -> list[Series]:
    var = r.variable(key)
    if "time" not in da.dims:
        raise CalibrationError(f"{r.where}: {key!r} has no 'time' dim (dims: {list(da.dims)}).")
    others = [str(d) for d in da.dims if d != "time"]
    if not others:
        return [r.series(var, {}, da["time"].values, da.values, key)]
    stacked = da.transpose("time", *others).stack(_element=others)
    out = []
    for j in range(stacked.sizes["_element"]):
        col = stacked.isel(_element=j)
        labels = {d: col[d].item() for d in others}
        out.append(r.series(var, labels, da["time"].values, col.values, key))
    return out
