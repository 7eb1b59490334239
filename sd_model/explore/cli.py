"""``sd-model explore``: parser and command (Panel is imported only when serving)."""

from __future__ import annotations

import argparse
from typing import Any

HELP = "serve the policy explorer: a local web page of levers and graphs that re-runs the model"


def add_explore_parser(sub: Any) -> argparse.ArgumentParser:
    """Add the ``explore`` sub-command to ``sub`` (argparse sub-parsers)."""
    from sd_model.integrate import METHODS  # the command runs models: SciPy is needed anyway

    p = sub.add_parser(
        "explore",
        help=HELP,
        description="Serve a local web page with sliders for a scenario's levers (its "
        "'levers:' section, or the model's constants with a [min, max, step] units range) "
        "and graphs that re-run the model on every move, beside the baseline.",
    )
    p.add_argument("target", help="scenario file (.yaml) or model file (.mdl, .xmile, .stmx)")
    p.add_argument(
        "--port", type=int, default=5006, help="port to serve on (default 5006; 0 picks a free one)"
    )
    p.add_argument(
        "--address",
        default="127.0.0.1",
        help="address to listen on (default 127.0.0.1: this machine only)",
    )
    p.add_argument("--no-browser", action="store_true", help="do not open a browser tab")
    p.add_argument(
        "--draws",
        metavar="FILE",
        help="calibration draws (.csv: one row per draw, one column per parameter; or .nc "
        "with a 'draw' dim): the page draws a 90%% band from them",
    )
    p.add_argument(
        "--method",
        choices=METHODS,
        help="replace the scenario's integration method (saved scenarios record it)",
    )
    p.add_argument("--time-step", type=float, help="replace the scenario's time step")
    p.add_argument(
        "--jit",
        action="store_true",
        help="with --method euler, run the numba kernel: about 10x faster runs (the first "
        "start on a machine compiles it, up to a minute or two)",
    )
    p.add_argument(
        "--save-dir",
        metavar="DIR",
        help="folder 'Save scenario' writes to (default: the scenario's folder)",
    )
    return p


def cmd_explore(args: argparse.Namespace) -> int:
    """Run ``sd-model explore``."""
    from sd_model._errors import SDModelError, import_optional
    from sd_model.explore.session import load_setup

    if not 0 <= args.port <= 65535:
        raise SDModelError(f"--port {args.port}: give a port from 1 to 65535 (or 0 for any).")
    if args.jit and args.method != "euler":
        raise SDModelError("--jit runs the numba Euler kernel: give it with --method euler.")
    setup = load_setup(
        args.target,
        draws=args.draws,
        method=args.method,
        time_step=args.time_step,
        jit=args.jit,
    )
    import_optional("panel", "explore", "sd-model explore")
    from sd_model.explore.app import serve

    try:
        serve(
            setup,
            port=args.port,
            address=args.address,
            open_browser=not args.no_browser,
            save_dir=args.save_dir,
            announce=lambda line: print(line, flush=True),
        )
    except OSError as exc:
        raise SDModelError(
            f"cannot serve on {args.address}:{args.port}: {exc.strerror or exc}; choose "
            "another --port (0 picks a free one)."
        ) from exc
    return 0
