"""Sensitivity-analysis files and the ``sd-model sensitivity`` command.

An analysis file is YAML with the keywords of :func:`sd_model.sensitivity.sensitivity`;
results are written as netCDF (every attr kept) or CSV (one row per index value):

.. code-block:: yaml

    model: ../tests/models/ishigami.mdl      # relative to this file
    method: sobol                            # or morris, fast
    n: 1024
    seed: 1
    parameters: {x1: [-3.14159, 3.14159], x2: [-3.14159, 3.14159], x3: [-3.14159, 3.14159]}
    outputs: [y]

>>> spec = read_sensitivity_file("analysis.yaml")  # doctest: +SKIP
>>> si = sensitivity(spec.pop("model"), spec.pop("params"), **spec)  # doctest: +SKIP
>>> write_sensitivity(si, "indices.nc")  # doctest: +SKIP
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import xarray as xr

from sd_model._errors import ScenarioError, SDModelError, import_optional
from sd_model.backends import BACKENDS
from sd_model.integrate import SolverOptions
from sd_model.options import TimeSettings
from sd_model.sensitivity import SENSITIVITY_METHODS, STATISTICS, sensitivity

__all__ = [
    "add_sensitivity_parser",
    "cmd_sensitivity",
    "read_sensitivity_file",
    "write_sensitivity",
]


_FILE_KEYS = {
    "model",
    "parameters",
    "outputs",
    "method",
    "n",
    "seed",
    "times",
    "set",
    "time",
    "solver",
    "backend",
    "levels",
    "harmonics",
    "conf_level",
    "num_resamples",
    "chunk_size",
}


def read_sensitivity_file(path: str | Path) -> dict[str, Any]:
    """Read a sensitivity-analysis file (YAML) as keywords of ``sensitivity``.

    Parameters
    ----------
    path : path-like
        A YAML mapping with ``model`` (relative to the file), ``parameters``
        (name -> ``[lower, upper]``), ``outputs`` and optionally ``method``, ``n``,
        ``seed``, ``times``, ``set`` (base overrides), ``time`` (``initial_time``,
        ``final_time``, ``time_step``, ``saveper``), ``solver`` (``method``, ``rtol``,
        ``atol``, ``max_step``), ``backend``, ``levels``, ``harmonics``, ``conf_level``,
        ``num_resamples``, ``chunk_size``.

    Returns
    -------
    dict
        ``model`` (a path), ``params``, and the other keywords of
        :func:`~sd_model.sensitivity.sensitivity`.

    Raises
    ------
    ScenarioError
        When the file is missing, not YAML, or has unknown or malformed keys.

    Examples
    --------
    >>> spec = read_sensitivity_file("scenarios/ishigami_sobol.yaml")  # doctest: +SKIP
    >>> sensitivity(spec.pop("model"), spec.pop("params"), **spec)  # doctest: +SKIP
    """
    import yaml

    p = Path(path)
    try:
        raw = yaml.safe_load(p.read_text())
    except OSError as exc:
        raise ScenarioError(f"Cannot read {p}: {exc.strerror or exc}.") from exc
    except yaml.YAMLError as exc:
        raise ScenarioError(f"{p} is not valid YAML: {exc}") from exc
    if not isinstance(raw, Mapping):
        raise ScenarioError(f"{p}: expected a mapping with model, parameters and outputs.")
    unknown = sorted(set(map(str, raw)) - _FILE_KEYS)
    if unknown:
        raise ScenarioError(
            f"{p}: unknown key(s) {', '.join(unknown)}; allowed: {', '.join(sorted(_FILE_KEYS))}."
        )
    missing = [k for k in ("model", "parameters", "outputs") if k not in raw]
    if missing:
        raise ScenarioError(f"{p}: missing {', '.join(missing)}.")
    out: dict[str, Any] = {"model": (p.parent / str(raw["model"])).resolve()}
    out["params"] = raw["parameters"]
    out["outputs"] = raw["outputs"]
    for key in ("method", "n", "seed", "times", "backend", "levels", "harmonics"):
        if key in raw:
            out[key] = raw[key]
    for key in ("conf_level", "num_resamples", "chunk_size"):
        if key in raw:
            out[key] = raw[key]
    if "set" in raw:
        if not isinstance(raw["set"], Mapping):
            raise ScenarioError(f"{p}: 'set' must be a mapping of parameter -> value.")
        out["base"] = dict(raw["set"])
    for key, cls in (("time", TimeSettings), ("solver", SolverOptions)):
        if key in raw:
            if not isinstance(raw[key], Mapping):
                raise ScenarioError(f"{p}: '{key}' must be a mapping.")
            try:
                out[key] = cls(**raw[key])
            except TypeError as exc:
                raise ScenarioError(f"{p}: '{key}': {exc}") from exc
    return out


def write_sensitivity(ds: xr.Dataset, path: str | Path) -> Path:
    """Write indices: ``.nc`` (netCDF) or ``.csv`` (one row per value).

    Parameters
    ----------
    ds : xarray.Dataset
        A result of :func:`~sd_model.sensitivity.sensitivity`.
    path : path-like
        The file; the extension picks the format.

    Returns
    -------
    pathlib.Path

    Raises
    ------
    SDModelError
        For another extension.

    Examples
    --------
    >>> write_sensitivity(si, "indices.csv")  # doctest: +SKIP
    PosixPath('indices.csv')
    """
    from sd_model.results import write_atomic

    out = Path(path)
    fmt = out.suffix.lower()
    if fmt in (".nc", ".nc4"):
        write_atomic(out, lambda tmp: ds.to_netcdf(tmp, engine="netcdf4"))
    elif fmt == ".csv":
        table = ds.to_dataframe().reset_index()
        write_atomic(out, lambda tmp: table.to_csv(tmp, index=False))
    else:
        raise SDModelError(
            f"Cannot write {out}: unknown extension {out.suffix!r}; use .nc or .csv."
        )
    return out


# --------------------------------------------------------------------------- CLI
def add_sensitivity_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Add the ``sensitivity`` command to the ``sd-model`` parser's subparsers.

    Parameters
    ----------
    subparsers : argparse._SubParsersAction
        From ``parser.add_subparsers()``.

    Returns
    -------
    argparse.ArgumentParser
        The ``sensitivity`` subparser; its ``func`` default is :func:`cmd_sensitivity`.

    Examples
    --------
    >>> p = argparse.ArgumentParser(); sub = p.add_subparsers(dest="command")
    >>> _ = add_sensitivity_parser(sub)
    >>> p.parse_args(["sensitivity", "m.mdl", "--param", "a=0,1", "--var", "y"]).param
    ['a=0,1']
    """
    p = subparsers.add_parser(
        "sensitivity",
        help="global sensitivity indices (Sobol', Morris, FAST) of outputs to parameter ranges",
        description="Vary parameters uniformly within bounds, run the model in batches and "
        "compute sensitivity indices with SALib at every saved time. TARGET is a model "
        "file (give --param and --var) or a YAML file with model, parameters and outputs "
        "(flags override its entries).",
    )
    p.add_argument("target", help="model file (.mdl, .xmile, .stmx) or analysis file (.yaml)")
    p.add_argument(
        "--param",
        action="append",
        default=[],
        metavar="NAME=LOWER,UPPER",
        help="a parameter and its bounds (repeatable); NAME[Element] varies one element",
    )
    p.add_argument(
        "--var", action="append", default=[], metavar="NAME", help="output variable (repeatable)"
    )
    p.add_argument("--method", choices=SENSITIVITY_METHODS, help="default: sobol")
    p.add_argument(
        "-n",
        type=int,
        help="sobol: base samples, a power of two (1024); morris: trajectories (64); "
        "fast: runs per parameter (1024)",
    )
    p.add_argument("--seed", type=int, help="seed of the sample (default: a fresh one)")
    p.add_argument(
        "--time", action="append", type=float, default=[], help="saved time to analyse (repeatable)"
    )
    p.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="override a parameter in every run (repeatable)",
    )
    p.add_argument("--backend", choices=BACKENDS, help="default: auto")
    p.add_argument("--levels", type=int, help="morris: grid levels (even, default 4)")
    p.add_argument("--harmonics", type=int, help="fast: interference factor M (default 4)")
    p.add_argument("--chunk-size", type=int, help="parameter sets per batched evaluation")
    p.add_argument("-o", "--output", help="write the indices: .nc (netCDF) or .csv")
    p.add_argument(
        "--plot", metavar="IMAGE", help="draw the indices at the last time to IMAGE (.png, .pdf...)"
    )
    p.add_argument(
        "--plot-select",
        action="append",
        default=[],
        metavar="DIM=ELEMENT",
        help="with --plot: the element of a subscript dim to draw (repeatable)",
    )
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.set_defaults(func=cmd_sensitivity)
    return p


def _parse_bounds(items: Sequence[str]) -> dict[str, list[float]]:
    out: dict[str, list[float]] = {}
    for item in items:
        name, eq, raw = item.rpartition("=")
        parts = raw.split(",")
        try:
            if not eq or not name.strip() or len(parts) != 2:
                raise ValueError
            bounds = [float(parts[0]), float(parts[1])]
        except ValueError:
            raise SDModelError(
                f"--param {item!r}: expected NAME=LOWER,UPPER (e.g. 'growth rate=0,0.1')."
            ) from None
        if name.strip() in out:
            raise SDModelError(f"--param {name.strip()!r} is given twice; give it once.")
        out[name.strip()] = bounds
    return out


def cmd_sensitivity(args: argparse.Namespace) -> int:
    """Run ``sd-model sensitivity``; returns the exit status.

    Parameters
    ----------
    args : argparse.Namespace
        Parsed by the parser of :func:`add_sensitivity_parser`.

    Returns
    -------
    int
        0 on success.

    Raises
    ------
    SDModelError
        Bad arguments or files, unknown parameters or outputs (printed as one line by
        :func:`sd_model.cli.main`).

    Examples
    --------
    >>> args = parser.parse_args(["sensitivity", "a.yaml", "-o", "si.nc"])  # doctest: +SKIP
    >>> cmd_sensitivity(args)  # doctest: +SKIP
    0
    """
    from sd_model.cli import _parse_set

    # Refuse unwritable requests before the runs, not after them.
    if args.output and Path(args.output).suffix.lower() not in (".nc", ".nc4", ".csv"):
        raise SDModelError(f"Cannot write {args.output}: use a .nc or .csv file.")
    select = _parse_select(args.plot_select)
    if args.plot:
        _image_format(Path(args.plot))
    target = Path(args.target)
    if target.suffix.lower() in (".yaml", ".yml"):
        spec = read_sensitivity_file(target)
    else:
        spec = {"model": target}
    params = _parse_bounds(args.param)
    if params:
        spec["params"] = params
    if args.var:
        spec["outputs"] = list(args.var)
    for flag, key in (("params", "--param NAME=LOWER,UPPER"), ("outputs", "--var NAME")):
        if flag not in spec:
            raise SDModelError(f"sd-model sensitivity {target}: give {key} (or a YAML file).")
    for attr, key in (
        ("method", "method"),
        ("n", "n"),
        ("seed", "seed"),
        ("backend", "backend"),
        ("levels", "levels"),
        ("harmonics", "harmonics"),
        ("chunk_size", "chunk_size"),
    ):
        value = getattr(args, attr)
        if value is not None:
            spec[key] = value
    if args.time:
        spec["times"] = list(args.time)
    if args.set:
        spec["base"] = {**spec.get("base", {}), **_parse_set(args.set)}
    model = spec.pop("model")
    params = spec.pop("params")
    ds = sensitivity(model, params, progress=False if args.quiet else None, **spec)
    print(_summary(ds))
    if args.output:
        out = write_sensitivity(ds, args.output)
        print(f"wrote {out}")
    if args.plot:
        _plot(ds, Path(args.plot), select)
    return 0


def _image_format(path: Path) -> str:
    Figure = import_optional("matplotlib.figure", "plot", "Sensitivity plots").Figure

    formats = Figure().canvas.get_supported_filetypes()
    fmt = path.suffix.lower().lstrip(".")
    if fmt not in formats:
        raise SDModelError(
            f"Cannot write {path}: unknown image extension {path.suffix!r}; use one of "
            f"{', '.join('.' + f for f in sorted(formats))}."
        )
    return fmt


def _parse_select(items: Sequence[str]) -> dict[str, str]:
    select: dict[str, str] = {}
    for item in items:
        dim, eq, element = item.partition("=")
        if not eq or not dim.strip() or not element.strip():
            raise SDModelError(f"--plot-select {item!r}: expected DIM=ELEMENT (e.g. Region=North).")
        select[dim.strip()] = element.strip()
    return select


def _plot(ds: xr.Dataset, path: Path, select: Mapping[str, str]) -> None:
    """One panel per output, at the last analysed time, written to ``path``."""
    Figure = import_optional("matplotlib.figure", "plot", "Sensitivity plots").Figure

    from sd_model.plots import plot_sensitivity
    from sd_model.results import write_atomic

    outputs: list[str | None] = (
        [str(o) for o in ds["output"].values] if "output" in ds.dims else [None]
    )
    fmt = _image_format(path)
    fig = Figure(figsize=(8.0, 3.5 * len(outputs) + 1.0), layout="constrained")
    axes = fig.subplots(len(outputs), 1, squeeze=False)[:, 0]
    for ax, output in zip(axes, outputs, strict=True):
        plot_sensitivity(ds, output=output, select=select, ax=ax)
    write_atomic(path, lambda tmp: fig.savefig(tmp, format=fmt, dpi=150))
    print(f"wrote {path}")


def _summary(ds: xr.Dataset) -> str:
    """The indices at the last analysed time, one table per output, on its own dims."""
    last = ds.isel(time=-1) if "time" in ds.dims else ds
    names = list(STATISTICS[str(ds.attrs["sensitivity_method"])])
    lines = [
        f"{ds.attrs['sensitivity_method']} sensitivity of {ds.attrs['model_file']}: "
        f"{ds.attrs['n_runs']} runs ({ds.attrs['backend']} backend), seed {ds.attrs['seed']}"
        + (f"; indices at time {float(ds['time'][-1]):g}" if "time" in ds.dims else "")
    ]
    own = json.loads(str(ds.attrs.get("output_dims", "{}")))
    outputs = [str(o) for o in ds["output"].values] if "output" in ds.dims else [None]
    for output in outputs:
        part = last if output is None else last.sel(output=output).drop_vars("output")
        if output is not None:
            # Drop the dims this output only repeats along (those of the other outputs).
            mine = ("parameter", "time", *own.get(output, []))
            repeated = [d for d in part.dims if d not in mine]
            part = part.isel(dict.fromkeys(repeated, 0), drop=True)
            lines.append(f"{output}:")
        table = part[names].to_dataframe()[names]
        lines.append(table.round(4).to_string(max_rows=60))
    return "\n".join(lines)
