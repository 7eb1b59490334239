"""The ``sd-model`` command.

User errors (bad files, unknown parameters, failed integrations) print one line and
exit with status 2; tracebacks are for bugs only.

Only the standard library and :mod:`sd_model._errors` are imported up front, so
``sd-model --help`` and mistyped arguments answer in a fraction of a second; the numerical
stack (NumPy, SciPy, xarray, PySD, matplotlib) is imported by the command that needs it.
"""

from __future__ import annotations

import argparse
import importlib
import sys
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sd_model._errors import SDModelError, SDModelWarning

SCENARIO_SUFFIXES = {".yaml", ".yml"}

# Copies of sd_model.integrate.METHODS and sd_model.backends.BACKENDS: importing those
# modules loads SciPy and xarray. tests/test_cli_robustness.py keeps the copies equal.
_METHODS = ("euler", "euler-numba", "rk4", "RK45", "DOP853", "LSODA", "BDF", "Radau", "RK23")
_BACKENDS = ("auto", "compiled", "pysd")
# Copy of sd_model.sweeps.ON_ERROR (kept equal by the same test).
_ON_ERROR = ("raise", "record")


@dataclass(frozen=True)
class _Command:
    """A sub-command whose parser is defined next to its code, in ``module``."""

    module: str
    add_parser: str
    run: str
    # Repeated here so that `sd-model --help` lists the command without importing its
    # module; tests/test_cli_robustness.py checks it against the module's parser.
    help: str


_LAZY_COMMANDS = {
    "compare": _Command(
        "sd_model.compare",
        "add_compare_parser",
        "cmd_compare",
        "disparity indices across regions for one or more runs",
    ),
    "plot": _Command(
        "sd_model.plots",
        "add_plot_parser",
        "cmd_plot",
        "draw a variable by region, or several runs side by side, to an image file",
    ),
    "explore": _Command(
        "sd_model.explore.cli",
        "add_explore_parser",
        "cmd_explore",
        "serve the policy explorer: a local web page of levers and graphs that re-runs the model",
    ),
    "sensitivity": _Command(
        "sd_model.sensitivity_io",
        "add_sensitivity_parser",
        "cmd_sensitivity",
        "global sensitivity indices (Sobol', Morris, FAST) of outputs to parameter ranges",
    ),
    "calibrate": _Command(
        "sd_model.calibrate.config",
        "add_calibrate_parser",
        "cmd_calibrate",
        "fit a model to data from a calibration file; write parameters, report, best run",
    ),
}


def _command(argv: Sequence[str]) -> str | None:
    """The sub-command named in ``argv`` (the top-level parser has no option but -h)."""
    return next((a for a in argv if not a.startswith("-")), None)


def _parser(command: str | None = None) -> argparse.ArgumentParser:
    """The ``sd-model`` parser; only ``command``'s module is imported to build it."""
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
    run.add_argument("--method", choices=_METHODS, help="integration method")
    run.add_argument("--backend", choices=_BACKENDS, help="auto (default), compiled or pysd")
    run.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="override a parameter (repeatable, each parameter once); NAME[Element]=VALUE "
        "sets one element; VALUE may be YAML, e.g. '{North: 1, South: 2}'",
    )
    run.add_argument(
        "--jit",
        action="store_true",
        help="shorthand for --method euler-numba: Euler in a numba kernel on the compiled "
        "backend (first compilation takes seconds to a minute, then cached)",
    )
    for flag in ("initial-time", "final-time", "saveper", "time-step", "rtol", "atol", "max-step"):
        run.add_argument(f"--{flag}", type=float)
    run.add_argument(
        "--no-bands",
        action="store_true",
        help="run only the central scenario, without the bands its 'uncertainty:' section declares",
    )
    run.add_argument(
        "--check-units",
        action="store_true",
        help="check the model's units first and refuse to run when they do not balance",
    )
    run.set_defaults(func=_cmd_run)

    info = sub.add_parser("info", help="print a model's parameters, stocks and dims")
    info.add_argument("model")
    info.set_defaults(func=_cmd_info)

    check = sub.add_parser(
        "check",
        help="run a check file's tests over scenarios (exit status 1 when one fails)",
    )
    check.add_argument("checks", help="check file (.yaml); see sd_model.checks for the schema")
    check.add_argument("--method", choices=_METHODS, help="replace the file's solver method")
    check.add_argument("--backend", choices=_BACKENDS, help="replace the file's backend")
    check.add_argument(
        "--failures", action="store_true", help="print only the results that did not pass"
    )
    check.add_argument("-o", "--output", help="also write the results table (.csv) to this file")
    check.set_defaults(func=_cmd_check)

    units = sub.add_parser(
        "units",
        help="check that every equation's units balance (exit status 1 when not)",
    )
    units.add_argument("model", help="model file (.mdl, .xmile, .stmx)")
    units.add_argument(
        "-o", "--output", help="also write the problems as a table (.csv) to this file"
    )
    units.set_defaults(func=_cmd_units)

    add_sweep_parser(sub).set_defaults(func=cmd_sweep)

    for name, cmd in _LAZY_COMMANDS.items():
        if name == command:
            module = importlib.import_module(cmd.module)
            getattr(module, cmd.add_parser)(sub).set_defaults(func=getattr(module, cmd.run))
        else:
            sub.add_parser(name, help=cmd.help)
    return p


def _parse_set(items: Sequence[str]) -> dict[str, Any]:
    """``--set NAME=VALUE`` flags as overrides; each parameter (or element) once.

    Names are case-, space- and underscore-insensitive (Vensim's rule), so
    ``transfer_intensity`` and ``Transfer Intensity`` are one parameter: giving both, or
    one twice, is refused rather than letting the later flag win unnoticed.
    """
    import yaml

    from sd_model.overrides import normalize_name

    out: dict[str, Any] = {}
    given: dict[tuple[str, tuple[str, ...] | None], tuple[str, str]] = {}
    for item in items:
        if "=" not in item:
            raise SDModelError(f"--set {item!r}: expected NAME=VALUE.")
        name, _, raw = item.partition("=")
        name = name.strip()
        if not name:
            raise SDModelError(f"--set {item!r}: missing parameter name.")
        base, bracket, subs = name.partition("[")
        spot = (
            normalize_name(base),
            tuple(normalize_name(s) for s in subs.rstrip().removesuffix("]").split(","))
            if bracket
            else None,
        )
        if spot in given:
            first_name, first_item = given[spot]
            if first_name == name:
                raise SDModelError(
                    f"--set {name!r} is given twice ({first_item!r}, {item!r}); give it once."
                )
            what = "one element" if bracket else "one parameter"
            raise SDModelError(
                f"--set {first_name!r} and --set {name!r} are two spellings of {what} "
                f"({first_item!r}, {item!r}); give it once."
            )
        given[spot] = (name, item)
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
    for attr in (
        "method",
        "backend",
        "initial_time",
        "final_time",
        "saveper",
        "time_step",
        "rtol",
        "atol",
        "max_step",
    ):
        value = getattr(args, attr)
        if value is not None:
            kwargs[attr] = value
    if args.jit:
        kwargs["jit"] = True
    params = _parse_set(args.set)
    target = Path(args.target)
    if target.suffix.lower() in SCENARIO_SUFFIXES:
        scenario = Scenario.from_yaml(target)
        if scenario.sweep:
            # Running only the base scenario would write one run where the file asks for
            # many; say which command runs the file instead.
            raise SDModelError(
                f"{target} has a 'sweep:' section; 'sd-model run' runs one scenario. Run the "
                f"sweep with: sd-model sweep {target} -o OUT.zarr (or OUT.nc)."
            )
        model = scenario.load_model()
        if args.check_units:
            _require_balanced_units(model)
        if scenario.uncertainty and not args.no_bands:
            # The central run plus <name>_band variables (dims quantile, time, ...).
            ds = scenario.run_with_bands(model, params=params, **kwargs)
        else:
            ds = scenario.run(model, params=params, **kwargs)
    else:
        model = load(target)
        if args.check_units:
            _require_balanced_units(model)
        ds = model.run(params, **kwargs)
    if args.output:
        out = write_results(ds, args.output)
        bands = (
            f"; bands over {ds.attrs['bands_n_draws']} parameter draws"
            if "bands_n_draws" in ds.attrs
            else ""
        )
        print(
            f"wrote {out} ({ds.attrs.get('backend')} backend, "
            f"{ds.attrs.get('solver_method')}{bands})"
        )
    else:
        print(_summary(ds))
    return 0


def _require_balanced_units(model: Any) -> None:
    """``run --check-units``: print the problems and refuse a model whose units do not balance."""
    from sd_model.units import check_units

    report = check_units(model)
    if report.ok:
        return
    print(report, file=sys.stderr)
    n = len(report.errors)
    raise SDModelError(
        f"{model.path.name}: {n} equation{'s' * (n != 1)} with units that do not balance "
        "(listed above); fix them, or run without --check-units."
    )


def _cmd_units(args: argparse.Namespace) -> int:
    from sd_model.units import check_units

    if args.output and Path(args.output).suffix.lower() != ".csv":
        raise SDModelError(f"Cannot write {args.output}: the units table is written as .csv.")
    report = check_units(args.model)
    print(report)
    if args.output:
        report.table.to_csv(args.output, index=False)
        print(f"wrote {args.output}")
    return 0 if report.ok else 1


def _cmd_check(args: argparse.Namespace) -> int:
    from sd_model.checks import check_model

    if args.output and Path(args.output).suffix.lower() != ".csv":
        raise SDModelError(f"Cannot write {args.output}: the check results are written as .csv.")
    report = check_model(args.checks, backend=args.backend, method=args.method)
    print(report.to_text(failures_only=args.failures))
    if args.output:
        report.table.to_csv(args.output, index=False)
        print(f"wrote {args.output}")
    return 0 if report.ok else 1


def _cmd_info(args: argparse.Namespace) -> int:
    from sd_model.model import load

    print(load(args.model).info())
    return 0


def add_sweep_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Add the ``sweep`` command to the ``sd-model`` parser's subparsers.

    Parameters
    ----------
    subparsers : argparse._SubParsersAction
        From ``parser.add_subparsers()``.

    Returns
    -------
    argparse.ArgumentParser
        The ``sweep`` subparser; dispatch it to :func:`cmd_sweep`.

    Examples
    --------
    >>> p = argparse.ArgumentParser(); sub = p.add_subparsers(dest="command")
    >>> _ = add_sweep_parser(sub)
    >>> p.parse_args(["sweep", "s.yaml", "-o", "out.zarr", "--workers", "2"]).workers
    2
    """
    p = subparsers.add_parser(
        "sweep",
        help="run a scenario file's sweep (grid and/or samples) into a zarr store or netCDF",
        description="Run the sweep of a scenario file. Results stream into OUT.zarr chunk by "
        "chunk (re-running the same command resumes an interrupted sweep), or into OUT.nc "
        "written at the end.",
    )
    p.add_argument("scenario", help="scenario file (.yaml) with a sweep: section")
    p.add_argument("-o", "--output", required=True, help="OUT.zarr or OUT.nc")
    p.add_argument("--workers", type=int, default=1, help="local Dask worker processes")
    p.add_argument("--scheduler", metavar="ADDR", help="join a running Dask scheduler")
    p.add_argument(
        "--chunk-size", type=int, help="scenarios per batch (default: up to 250, by model size)"
    )
    p.add_argument(
        "--on-error",
        choices=_ON_ERROR,
        default="raise",
        help="stop at a failed scenario (raise) or record it in 'status' (record)",
    )
    p.add_argument("--quiet", action="store_true", help="no progress output")
    p.add_argument(
        "--yes",
        action="store_true",
        help="run even if the results (scenarios x saved values x 8 bytes) would not fit "
        "the free disk space",
    )
    return p


def cmd_sweep(args: argparse.Namespace) -> int:
    """Run ``sd-model sweep``; returns the exit status.

    SDModelError and KeyboardInterrupt propagate to :func:`main`, which prints them as
    one line; on an interrupt a line before it says whether the store holds finished
    chunks to resume.
    """
    from sd_model.sweeps import sweep_scenario

    try:
        ds = sweep_scenario(
            args.scenario,
            store=args.output,
            workers=args.workers,
            scheduler=args.scheduler,
            chunk_size=args.chunk_size,
            on_error=args.on_error,
            progress=False if args.quiet else True,
            force=args.yes,
        )
    except KeyboardInterrupt:
        out = Path(args.output)
        store = out if out.suffix.lower() == ".zarr" else out.with_name(f".{out.name}.sweep.zarr")
        # One line, printed by main from the interrupt's message.
        if store.exists():
            raise KeyboardInterrupt(
                f"the chunks finished so far are kept for {args.output}; run the same "
                "command again to resume."
            ) from None
        raise KeyboardInterrupt(f"stopped before anything was written to {args.output}.") from None
    failed = int(ds.attrs.get("sweep_n_failed", 0))
    n = int(ds.attrs.get("sweep_n_scenarios", 0))
    print(
        f"wrote {args.output}: {n} scenarios ({failed} failed), "
        f"{ds.attrs.get('backend')} backend, {ds.attrs.get('solver_method')}"
    )
    ds.close()
    return 0


def _check_output(args: argparse.Namespace) -> None:
    """An empty ``-o`` is a slip (an unset shell variable), not a request for no file."""
    output = getattr(args, "output", None)
    if output is not None and not output.strip():
        raise SDModelError(
            f"sd-model {args.command}: the output path (-o/--output) is empty; give a file name."
        )


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``sd-model`` command; returns the exit status.

    Parameters
    ----------
    argv : sequence of str, optional
        The arguments after the program name (default: ``sys.argv[1:]``).

    Returns
    -------
    int
        0 on success, 2 for a user error (printed as one ``error: ...`` line), 130 when
        interrupted.

    Examples
    --------
    >>> main(["info", "models/example_regions.mdl"])  # doctest: +SKIP
    0
    """
    argv = list(sys.argv[1:] if argv is None else argv)
    args = _parser(_command(argv)).parse_args(argv)

    def show(message: Any, category: Any, filename: str, lineno: int, *a: Any, **k: Any) -> None:
        if issubclass(category, SDModelWarning):
            print(f"warning: {message}", file=sys.stderr)

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        warnings.simplefilter("always", SDModelWarning)
        warnings.showwarning = show
        try:
            _check_output(args)
            return int(args.func(args))
        except SDModelError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
        except OSError as exc:  # unwritable output, a folder named like the output file...
            print(f"error: {exc}", file=sys.stderr)
            return 2
        except KeyboardInterrupt as exc:
            print(f"interrupted: {exc}" if str(exc) else "interrupted", file=sys.stderr)
            return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
