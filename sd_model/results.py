"""Arrays to labelled xarray Datasets, and Datasets to files.

Only this module builds Datasets (xarray at the edges, NumPy inside).
"""

from __future__ import annotations

import itertools
import json
import os
import re
import tempfile
import warnings
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import xarray as xr

from sd_model._errors import SDModelError, SDModelWarning, import_optional
from sd_model._meta import VariableInfo

OUTPUT_FORMATS = {".nc": "netcdf", ".nc4": "netcdf", ".csv": "csv", ".tab": "tab", ".tsv": "tab"}


def _attr_value(value: Any) -> str | float | int:
    """netCDF-storable attribute (no None, dict, bool)."""
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, int | float | str) and not isinstance(value, bool):
        return value
    if value is None:
        return ""
    return json.dumps(value, default=str, sort_keys=True)


def build_dataset(
    times: np.ndarray,
    values: Mapping[str, np.ndarray],
    variables: Sequence[VariableInfo],
    coords: Mapping[str, Sequence[str]],
    *,
    time_units: str,
    attrs: Mapping[str, Any],
    lead_dims: Sequence[tuple[str, Sequence[Any] | np.ndarray]] = (),
    diagnostics: Mapping[str, np.ndarray] | None = None,
) -> xr.Dataset:
    """Assemble a run (or a batch of runs) into a Dataset following our conventions.

    Parameters
    ----------
    times : numpy.ndarray
        Saved times.
    values : mapping
        py_name -> array shaped ``(*lead, n_times, *dims)`` for time-dependent variables
        or ``(*lead, *dims)`` for those with ``time_dependent=False``.
    variables : sequence of VariableInfo
        Metadata; the order of the Dataset's variables.
    coords : mapping
        Subscript range -> element names.
    time_units : str
        Units of the time axis.
    attrs : mapping
        Global attributes (converted to netCDF-storable values).
    lead_dims : sequence of (name, coordinate values)
        Leading dimensions of a batch (``scenario`` or grid parameters). NumPy arrays
        are kept as they are (a list of a large sweep's values would take gigabytes).
    diagnostics : mapping, optional
        Solver diagnostics stored as data variables (``solver_nfev`` ...), shaped like
        the lead dims.

    Returns
    -------
    xarray.Dataset
    """
    lead_names = [name for name, _ in lead_dims]
    ds_coords: dict[str, Any] = {
        name: vals if isinstance(vals, np.ndarray) else list(vals) for name, vals in lead_dims
    }
    ds_coords["time"] = ("time", np.asarray(times, dtype=float), {"units": time_units or ""})
    data_vars: dict[str, Any] = {}
    for var in variables:
        if var.py_name not in values:
            continue
        arr = np.asarray(values[var.py_name], dtype=float)
        dims = [*lead_names, *(["time"] if var.time_dependent else []), *var.dims]
        if arr.ndim != len(dims):
            raise SDModelError(
                f"Internal error: {var.name!r} has shape {arr.shape}, expected dims {dims}."
            )
        for d in var.dims:
            if d not in ds_coords:
                ds_coords[d] = list(coords[d])
        data_vars[var.py_name] = (
            dims,
            arr,
            {
                "long_name": var.name,
                "units": var.units or "",
                "description": var.description or "",
                "sd_kind": var.sd_kind,
            },
        )
    for name, arr in (diagnostics or {}).items():
        data_vars[name] = (lead_names, np.asarray(arr))
    ds = _assemble(data_vars, ds_coords)
    ds.attrs = {k: _attr_value(v) for k, v in attrs.items()}
    ds.attrs.setdefault("created", datetime.now(UTC).isoformat(timespec="seconds"))
    return ds


def _assemble(data_vars: dict[str, Any], coords: dict[str, Any]) -> xr.Dataset:
    """``xr.Dataset(data_vars, coords=coords)``, without its merge of every variable.

    The public constructor aligns and merges each variable with the others (about
    0.1 ms each: most of a small model's Dataset assembly); here every variable is
    on the given coords by construction, so only the coords go through it and the
    data variables are checked against their sizes and attached directly. Falls back
    to the public constructor where xarray's internals differ.
    """
    base = _coords_dataset(coords)
    known = base.sizes
    # Dims in order of first appearance, data variables first, as xarray orders them.
    sizes: dict[Any, int] = {}
    variables: dict[Any, xr.Variable] = {}
    for name, (dims, arr, *attrs) in data_vars.items():
        # Plain float/int arrays need none of xarray's conversions (~30 us a variable,
        # hundreds of variables a run); anything else goes the public way.
        plain = type(arr) is np.ndarray and arr.dtype.kind in "fiub"
        var = xr.Variable(dims, arr, attrs[0] if attrs else None, fastpath=plain)
        for d, n in zip(var.dims, var.shape, strict=True):
            if sizes.setdefault(d, n) != n or known.get(d, n) != n:
                # a size conflict: let xarray say which
                return xr.Dataset(data_vars, coords=coords)
        variables[name] = var
    for d, n in known.items():
        sizes.setdefault(d, n)
    try:
        # shallow copies: a user editing a coordinate's attrs must not edit the cache
        variables.update({k: v.copy(deep=False) for k, v in base._variables.items()})
        return xr.Dataset._construct_direct(
            variables,
            set(base._coord_names),
            dims=sizes,
            indexes=dict(base._indexes),
        )
    except (AttributeError, TypeError):  # pragma: no cover - another xarray
        return xr.Dataset(data_vars, coords=coords)


# Coordinates of recent results: a Dataset of coordinates costs ~0.2 ms to build (pandas
# indexes), a fifth of a small model's run, and repeated runs of a model share them.
_COORDS_CACHE: dict[Any, xr.Dataset] = {}
_COORDS_CACHE_SIZE = 16


def _coords_dataset(coords: dict[str, Any]) -> xr.Dataset:
    """``xr.Dataset(coords=coords)``, reused for coordinates equal to recent ones."""
    try:
        key = tuple(
            (
                name,
                (
                    value[0],
                    value[1].dtype.str,
                    value[1].tobytes(),
                    tuple(sorted(value[2].items())),
                )
                if isinstance(value, tuple)
                else (value.dtype.str, value.tobytes())
                if isinstance(value, np.ndarray)
                else tuple(value),
            )
            for name, value in coords.items()
        )
        hash(key)
        if any(
            np.asarray(v[1] if isinstance(v, tuple) else v).dtype.kind == "O"
            for v in coords.values()
        ):
            raise TypeError  # object arrays: their bytes are pointers, not values
    except (AttributeError, TypeError, IndexError, ValueError):  # unusual coordinates
        return xr.Dataset(coords=coords)
    base = _COORDS_CACHE.get(key)
    if base is None:
        base = xr.Dataset(coords=coords)
        if len(_COORDS_CACHE) >= _COORDS_CACHE_SIZE:
            _COORDS_CACHE.pop(next(iter(_COORDS_CACHE)))
        _COORDS_CACHE[key] = base
    return base


def to_table(ds: xr.Dataset) -> pd.DataFrame:
    """A Vensim-style wide table, like PySD's ``run()`` output.

    The first column is ``Time``; then one column per variable element, named
    ``Name[sub1,sub2]`` with the model's original names. Constants are repeated on
    every row.

    Parameters
    ----------
    ds : xarray.Dataset
        A single run (no batch dims besides ``time``).

    Returns
    -------
    pandas.DataFrame
    """
    times = ds["time"].values
    columns: dict[str, np.ndarray] = {"Time": times}
    for name, da in ds.data_vars.items():
        if "sd_kind" not in da.attrs:
            continue  # diagnostics
        extra = [d for d in da.dims if d != "time" and d not in da.coords]
        if extra:
            continue
        long_name = str(da.attrs.get("long_name") or name)
        if "time" not in da.dims:
            da = da.expand_dims(time=times)
        sub_dims = [d for d in da.dims if d != "time"]
        da = da.transpose("time", *sub_dims)
        if not sub_dims:
            columns[long_name] = da.values
            continue
        labels = [[str(v) for v in da.coords[d].values] for d in sub_dims]
        vals = da.values.reshape(len(times), -1)
        for i, combo in enumerate(itertools.product(*labels)):
            columns[f"{long_name}[{','.join(combo)}]"] = vals[:, i]
    return pd.DataFrame(columns)


def write_atomic(path: Path, writer: Any, *, binary: bool = True) -> None:
    """Write through ``writer(tmp_path)`` then rename: never leave a truncated file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        writer(tmp)
        # mkstemp creates 0600 files; give the result the mode a plain open() would
        # (or keep the mode of the file it replaces).
        mode = path.stat().st_mode & 0o777 if path.is_file() else 0o666 & ~_umask()
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def write_results(ds: xr.Dataset, path: str | os.PathLike[str]) -> Path:
    """Write a Dataset; the extension picks the format.

    Parameters
    ----------
    ds : xarray.Dataset
        Results of a run.
    path : path-like
        ``.nc`` (netCDF, all attrs kept) or ``.csv`` / ``.tab`` (Vensim-style table).

    Returns
    -------
    pathlib.Path
        The written file.

    Raises
    ------
    SDModelError
        For an unknown extension.
    """
    out = Path(path)
    fmt = OUTPUT_FORMATS.get(out.suffix.lower())
    if fmt is None:
        raise SDModelError(
            f"Cannot write {out}: unknown extension {out.suffix!r}; "
            f"use one of {', '.join(sorted(OUTPUT_FORMATS))}."
        )
    if fmt == "netcdf":
        write_atomic(out, lambda tmp: ds.to_netcdf(tmp, engine="netcdf4"))
    else:
        table = to_table(ds)
        sep = "," if fmt == "csv" else "\t"
        write_atomic(out, lambda tmp: table.to_csv(tmp, sep=sep, index=False))
    return out


def open_results(path: str | os.PathLike[str], *, allow_partial: bool = False) -> xr.Dataset:
    """Open results written by sd_model (netCDF file or zarr store).

    Parameters
    ----------
    path : path-like
        A ``.nc`` file or a ``.zarr`` directory.
    allow_partial : bool
        Open a sweep that has not finished (attr ``sweep_complete`` 0: interrupted, or
        still running), with a warning. Its scenarios not run yet have ``status`` -1
        and NaN outputs.

    Returns
    -------
    xarray.Dataset
        Loaded lazily where the format allows.

    Raises
    ------
    SDModelError
        No results at ``path``, an unknown format, or a sweep not finished (without
        ``allow_partial``): the message says how many scenarios are missing and how to
        resume.

    Warns
    -----
    SDModelWarning
        With ``allow_partial=True``, when the sweep is not finished; it names the number
        of scenarios missing.

    Examples
    --------
    >>> ds = open_results("results/baseline.nc")  # doctest: +SKIP
    >>> ds["population"].sel(Region="Astana").plot()  # doctest: +SKIP
    >>> partial = open_results("results/sweep.zarr", allow_partial=True)  # doctest: +SKIP
    """
    p = Path(path)
    if not p.exists():
        raise SDModelError(f"No results at {p}.")
    if p.is_dir() or p.suffix == ".zarr":
        import_optional("zarr", "sweep", f"Opening {p}")
        ds = xr.open_zarr(p)
    elif p.suffix.lower() in {".nc", ".nc4"}:
        ds = xr.open_dataset(p)
    else:
        raise SDModelError(f"Cannot open {p}: expected a .nc file or a .zarr store.")
    if "sweep_complete" not in ds.attrs or int(ds.attrs["sweep_complete"]) != 0:
        return ds
    total = int(ds.attrs.get("sweep_n_scenarios", 0)) or None
    if "status" in ds:
        # The runner writes a chunk's status last: -1 means its outputs are not there.
        missing = str(int((ds["status"] < 0).sum()))
        total = int(ds["status"].size)
    else:
        missing = "an unknown number"
    of = f" of {total}" if total else ""
    if allow_partial:
        warnings.warn(
            f"{p} is an unfinished sweep: {missing}{of} scenarios have not run (status "
            "-1, NaN outputs).",
            SDModelWarning,
            stacklevel=2,
        )
        return ds
    ds.close()
    # A sweep into NAME.nc runs in a hidden .NAME.nc.sweep.zarr: resuming names NAME.nc.
    hidden = re.fullmatch(r"\.(.+\.nc4?)\.sweep\.zarr", p.name, flags=re.IGNORECASE)
    output = p.with_name(hidden.group(1)) if hidden else p
    raise SDModelError(
        f"{p} is an unfinished sweep: {missing}{of} scenarios have not run. Resume it by "
        "running the same sweep into the same output again (sd-model sweep SCENARIO.yaml "
        f"-o {output}), or open it as it is with open_results(..., allow_partial=True)."
    )
