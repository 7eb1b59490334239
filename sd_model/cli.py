"""The ``sd-model`` command.

User errors (bad files, unknown parameters, failed integrations) print one line and
exit with status 2; tracebacks are for bugs only.
"""

from __future__ import annotations

import argparse
import sys
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml

from sd_model._errors import SDModelError, SDModelWarning
from sd_model.backends import BACKENDS
from sd_model.integrate import METHODS

SCENARIO_SUFFIXES = {".yaml", ".yml"}


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="sd-model",
        description="Run system-dynamics models (Vensim .mdl, XMILE .xmile/.stmx) and scenarios.",
    )
    sub = p.add_subparsers(dest="command", required=True)

    run = sub.add_parser("run", help="run a model or a scenario file")
    run.add_argument("target", help="model file (.mdl, .xmile, .stmx) or scenario (.yaml)")
    run.add_argument(
        "-o",
        "--output",
        help="output file; the extension picks the format: .nc (netCDF), .csv or .tab "
        "(Vensim-style table). Without it a summary is printed.",
    )
    run.add_argument("--method", choices=METHODS, help="integration method")
    run.add_argument("--backend", choices=BACKENDS, help="auto (default), compiled or pysd")
    run.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="override a parameter (repeatable); NAME[Element]=VALUE sets one element; "
        "VALUE may be YAML, e.g. '{North: 1, South: 2}'",
    )
    run.add_argument(
        "--jit",
        action="store_true",
        help="with --method euler on the compiled backend, run in a numba kernel "
        "(first compilation takes seconds to a minute, then cached)",
    )
    for flag in ("initial-time", "final-time", "saveper", "time-step", "rtol", "atol", "max-step"):
        run.add_argument(f"--{flag}", type=float)

    info = sub.add_parser("info", help="print a model's parameters, stocks and dims")
    info.add_argument("model")

    from sd_model.compare import add_compare_parser
    from sd_model.plots import add_plot_parser
    from sd_model.runner import add_sweep_parser

    add_sweep_parser(sub)
    add_compare_parser(sub)
    add_plot_parser(sub)
    return p


def _parse_set(items: Sequence[str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for item in items:
        if "=" not in item:
            raise SDModelError(f"--set {item!r}: expected NAME=VALUE.")
        name, _, raw = item.partition("=")
        name = name.strip()
        if not name:
            raise SDModelError(f"--set {item!r}: missing parameter name.")
        try:
            value = yaml.safe_load(raw)
        except yaml.YAMLError as exc:
            raise SDModelError(f"--set {item!r}: cannot read the value: {exc}") from exc
        out[name] = value
    return out


def _summary(ds: Any) -> str:
    lines = [
        f"{ds.attrs.get('model_file', '')}: {ds.sizes['time']} saved times, "
        f"{float(ds.time[0]):g} to {float(ds.time[-1]):g} {ds.time.attrs.get('units', '')}"
    ]
    lines.append("Stocks at the final time:")
    for da in ds.data_vars.values():
        if da.attrs.get("sd_kind") != "stock":
            continue
        last = da.isel(time=-1)
        if last.ndim == 0:
            lines.append(
                f"  {da.attrs['long_name']}: {float(last):.6g} {da.attrs.get('units', '')}"
            )
        else:
            lines.append(f"  {da.attrs['long_name']}:")
            flat = last.stack(_e=list(last.dims)) if last.ndim > 1 else last
            dim = flat.dims[0]
            for label, value in zip(flat[dim].values, flat.values, strict=True):
                lab = ",".join(map(str, label)) if isinstance(label, tuple) else str(label)
                lines.append(f"    [{lab}] {float(value):.6g}")
    return "\n".join(lines)


def _cmd_run(args: argparse.Namespace) -> int:
    from sd_model.model import load
    from sd_model.results import OUTPUT_FORMATS, write_results
    from sd_model.scenarios import Scenario

    if args.output and Path(args.output).suffix.lower() not in OUTPUT_FORMATS:
        raise SDModelError(
            f"Cannot write {args.output}: unknown extension; use one of "
            f"{', '.join(sorted(OUTPUT_FORMATS))}."
        )
    kwargs: dict[str, Any] = {}
    for attr, key in (
        ("method", "method"),
        ("backend", "backend"),
        ("initial_time", "initial_time"),
        ("final_time", "final_time"),
        ("saveper", "saveper"),
        ("time_step", "time_step"),
        ("rtol", "rtol"),
        ("atol", "atol"),
        ("max_step", "max_step"),
    ):
        value = getattr(args, attr)
        if value is not None:
            kwargs[key] = value
    if args.jit:
        kwargs["jit"] = True
    params = _parse_set(args.set)
    target = Path(args.target)
    if target.suffix.lower() in SCENARIO_SUFFIXES:
        ds = Scenario.from_yaml(target).run(params=params, **kwargs)
    else:
        ds = load(target).run(params, **kwargs)
    if args.output:
        out = write_results(ds, args.output)
        print(f"wrote {out} ({ds.attrs.get('backend')} backend, {ds.attrs.get('solver_method')})")
    else:
        print(_summary(ds))
    return 0


def _cmd_info(args: argparse.Namespace) -> int:
    from sd_model.model import load

    print(load(args.model).info())
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``sd-model`` command; returns the exit status."""
    args = _parser().parse_args(argv)

    def show(message: Any, category: Any, filename: str, lineno: int, *a: Any, **k: Any) -> None:
        if issubclass(category, SDModelWarning):
            print(f"warning: {message}", file=sys.stderr)

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        warnings.simplefilter("always", SDModelWarning)
        warnings.showwarning = show
        try:
            if args.command == "run":
                return _cmd_run(args)
            if args.command == "sweep":
                from sd_model.runner import cmd_sweep

                return cmd_sweep(args)
            if args.command == "info":
                return _cmd_info(args)
            return int(args.func(args))  # compare, plot
        except SDModelError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
        except OSError as exc:  # unwritable output, a folder named like the output file...
            print(f"error: {exc}", file=sys.stderr)
            return 2
        except KeyboardInterrupt:
            print("interrupted", file=sys.stderr)
            return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
