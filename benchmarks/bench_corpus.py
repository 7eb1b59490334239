"""Benchmark sd_model against PySD's own ``run()`` over a corpus of models.

Run from the repository root::

    .venv/bin/python benchmarks/bench_corpus.py --quick   # a subset, a few minutes
    .venv/bin/python benchmarks/bench_corpus.py           # the whole corpus

The corpus: the SDXorg sample models in ``../shared/test-models/samples`` (skipped when
that folder is absent), ``models/kazakhstan_regions.mdl``, and generated stand-ins
(``benchmarks/models/generate.py``): scalar models of 50, 100, 250 and 500 variables, a
World3-shaped one (300 scalar variables) and a COVID-model-shaped one (250 variables,
a macro, subscripts), written into a temporary folder at run time.

Each model is measured in a process of its own (so that a first numba compilation is a
first one, and a crash or a hang costs one row), every figure against PySD in that same
process:

* PySD: ``pysd.read_vensim(copy).run()`` (``read_xmile`` for XMILE), the model file's
  folder copied to a temporary folder; the best of up to 3 runs; a model whose
  ``run()`` takes over ``--pysd-limit`` (default 60 s; its read, twice that) is skipped
  with a note;
* single run: ``sd_model.load(path).run()`` as users call it: default settings on the
  compiled backend, ``SD_MODEL_TIER`` unset, ``SD_MODEL_CACHE`` an empty folder; after
  one run that compiles the model, the best of repeated runs. Fixed-step runs go
  through the tiers of :func:`sd_model.integrate.fixed_step_tiers` (C when its library
  is built, compiled at once only when the run would take longer than compiling it and
  otherwise in the background once enough runs have added up; else plain Python for
  one scenario; else NumPy), so the tier can change between the repeated runs: the
  table gives the tier of the fastest run (the Dataset's ``solver_tier`` attribute)
  and, when it changed, the tiers of all runs in order; the notes list why the fastest
  run did not use C (``solver_tier_note``). Background compiles are waited for before
  the next measurement;
* jit: ``Model.run(jit=True)`` with ``SD_MODEL_CACHE`` pointing at an empty folder:
  the first call (numba compilation included, in seconds and as a ratio) and warm
  calls; "no kernel" when the kernel does not cover the model (the run then took the
  next tier, named in the table), "n/a" for a model whose method is not Euler; a first
  call over ``--jit-limit`` seconds is reported as such;
* batch: :func:`sd_model.evaluate.evaluate` of 100 scenarios in one call (up to three
  scalar constants scaled by factors in [0.9, 1.1]), default settings (the tier that
  ran is given); PySD's single run time divided by the time per scenario;
* C tier: ``Model.run()`` with ``SD_MODEL_TIER=c`` (compile before the first run) and
  ``SD_MODEL_CACHE`` pointing at an empty folder, the process's loaded C libraries
  forgotten first: the first call (generating the C source, the C compiler, loading
  the library and the run, in seconds and as a ratio; over ``--c-limit`` seconds is
  reported as such) and the best of up to 10 warm calls; when the C tier does not
  cover the model the table says why (``solver_tier_note``).

Ratios are PySD's time divided by sd_model's: above 1 sd_model is faster. The table,
with the median and the worst ratio over the models, goes to
``benchmarks/results/corpus.md`` (written atomically) and to standard output.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import json
import os
import pathlib
import platform
import shlex
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import warnings
from collections.abc import Callable, Iterator
from typing import Any

HERE = pathlib.Path(__file__).resolve().parent
ROOT = HERE.parent
SAMPLES = ROOT.parent / "shared" / "test-models" / "samples"
KAZAKHSTAN = ROOT / "models" / "kazakhstan_regions.mdl"
RESULTS = HERE / "results" / "corpus.md"
MODEL_SUFFIXES = (".mdl", ".xmile", ".stmx")
QUICK_SAMPLES = ("teacup.mdl", "SIR.xmile", "Lotka_Volterra.mdl")
QUICK_GENERATED = ("scalar50", "plain100", "world3_like")
BATCH = 100

sys.path.insert(0, str(HERE / "models"))
from generate import CORPUS, write_corpus  # noqa: E402


class Timeout(Exception):
    """A measurement ran past its time limit."""


@contextlib.contextmanager
def time_limit(seconds: float) -> Iterator[None]:
    """Raise :class:`Timeout` in the main thread after ``seconds`` (SIGALRM)."""

    def handler(signum: int, frame: Any) -> None:
        raise Timeout(f"over {seconds:g} s")

    old = signal.signal(signal.SIGALRM, handler)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)


def best_of(fn: Callable[[], Any], *, budget: float, max_runs: int, first: float) -> float:
    """The least time of repeated calls of ``fn``, ``first`` being one already timed."""
    times = [first]
    spent = first
    while len(times) < max_runs and spent + min(times) < budget:
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
        spent += times[-1]
    return min(times)


def copy_for_pysd(path: pathlib.Path, work: pathlib.Path) -> pathlib.Path:
    """The model copied to ``work/pysd`` with what it reads (PySD's read_vensim writes
    its translation next to the model: never beside the shared corpus)."""
    copy_dir = work / "pysd"
    if path.parent == KAZAKHSTAN.parent:
        copy_dir.mkdir()
        shutil.copytree(path.parent / "data", copy_dir / "data")
        shutil.copy(path, copy_dir / path.name)
    else:
        shutil.copytree(path.parent, copy_dir)
    return copy_dir / path.name


def _timed(fn: Callable[[], Any]) -> tuple[float, Any]:
    t0 = time.perf_counter()
    out = fn()
    return time.perf_counter() - t0, out


def timed_runs(
    fn: Callable[[], Any], *, budget: float, max_runs: int, first: tuple[float, Any]
) -> list[tuple[float, Any]]:
    """(time, result) of repeated calls of ``fn`` (the rule of :func:`best_of`)."""
    runs = [first]
    spent = first[0]
    while len(runs) < max_runs and spent + min(t for t, _ in runs) < budget:
        runs.append(_timed(fn))
        spent += runs[-1][0]
    return runs


def tier_sequence(tiers: list[str]) -> str:
    """The tiers of consecutive runs, repeats counted: ``"3 python, then 17 c"``."""
    groups: list[list[Any]] = []
    for tier in tiers:
        if groups and groups[-1][0] == tier:
            groups[-1][1] += 1
        else:
            groups.append([tier, 1])
    return ", then ".join(f"{n} {tier}" for tier, n in groups)


def forget_c_libraries() -> None:
    """Make the process's next C-tier run a first one (as in a new process).

    Waits for background compiles, then empties the C tier's in-process caches
    (generated sources, loaded libraries, recorded failures, the runs' cost so far); with
    ``SD_MODEL_CACHE`` pointing at an empty folder the next run generates and compiles.
    """
    from sd_model.compiler import _cbuild

    _cbuild.wait_for_background()
    with _cbuild._LOCK:
        for cache in (
            _cbuild._LIBS,
            _cbuild._FAILED,
            _cbuild._PENDING,
            _cbuild._SPENT,
            _cbuild._BUILT,
            _cbuild._SOURCES,
        ):
            cache.clear()


# --------------------------------------------------------------------------- one model
def measure(
    path: pathlib.Path, *, pysd_limit: float, jit_limit: float, c_limit: float
) -> dict[str, Any]:
    """Every measurement of one model, in this process (see the module docstring)."""
    import numpy as np
    import pysd

    import sd_model
    from sd_model.evaluate import evaluate
    from sd_model.options import resolve_solver

    warnings.simplefilter("ignore")
    row: dict[str, Any] = {"model": path.name, "notes": []}
    work = pathlib.Path(tempfile.mkdtemp(prefix="bench-corpus-"))
    try:
        os.environ.pop("SD_MODEL_TIER", None)  # the single run as users call it
        os.environ["SD_MODEL_CACHE"] = str(work / "cache")
        # sd_model first: a model the compiled backend does not run is skipped quickly.
        t_load, model = _timed(lambda: sd_model.load(path))
        am = model.abstract_model
        row["variables"] = sum(
            1
            for el in am.sections[0].elements
            if " ".join(el.name.lower().split())
            not in {"initial time", "final time", "time step", "saveper"}
        )
        grid = model.time_grid()
        row["steps"] = round((grid.final_time - grid.initial_time) / grid.time_step)
        try:
            t_compile, _ = _timed(model.compiled)
        except sd_model.UnsupportedFeatureError as exc:
            row["skip"] = f"compiled backend: {' '.join(str(exc).split())[:160]}"
            return row
        row["load_s"] = t_load
        row["compile_s"] = t_compile
        t_first, ds = _timed(lambda: model.run(backend="compiled"))
        row["first_run_s"] = t_first
        first_ds = ds

        copy = copy_for_pysd(path, work)
        reader = pysd.read_vensim if path.suffix == ".mdl" else pysd.read_xmile
        try:
            with time_limit(2 * pysd_limit):
                pm = reader(str(copy))
        except Timeout:
            row["skip"] = f"PySD's read_vensim/read_xmile took over {2 * pysd_limit:g} s"
            return row
        except Exception as exc:  # PySD cannot read every sample
            row["skip"] = f"PySD: {type(exc).__name__}: {' '.join(str(exc).split())[:160]}"
            return row
        try:
            with time_limit(pysd_limit):
                t_pysd, df = _timed(pm.run)
        except Timeout:
            row["skip"] = f"PySD's run() took over {pysd_limit:g} s"
            return row
        except Exception as exc:  # PySD cannot run every sample
            row["skip"] = f"PySD: {type(exc).__name__}: {' '.join(str(exc).split())[:160]}"
            return row
        try:
            with time_limit(max(pysd_limit - t_pysd, 0.01)):
                t_pysd = best_of(pm.run, budget=min(pysd_limit, 6.0), max_runs=3, first=t_pysd)
        except Timeout:
            pass
        row["pysd_s"] = t_pysd

        # Agreement of the single run with PySD (time-dependent scalar variables).
        worst = 0.0
        for name in ds.data_vars:
            da = ds[name]
            long = da.attrs.get("long_name")
            if da.dims != ("time",) or long not in df.columns:
                continue
            ours = np.asarray(da.values, dtype=float)
            theirs = df[long].to_numpy(dtype=float)
            if ours.shape == theirs.shape:
                scale = np.maximum(np.abs(theirs), 1e-9)
                worst = max(worst, float(np.nanmax(np.abs(ours - theirs) / scale)))
        row["max_rel_diff"] = worst

        runs = timed_runs(
            lambda: model.run(backend="compiled"),
            budget=2.0,
            max_runs=20,
            first=(t_first, first_ds),
        )
        # the first run compiled; one more so that the best is a warm one
        runs.append(_timed(lambda: model.run(backend="compiled")))
        t_run, best_ds = min(runs, key=lambda r: r[0])
        row["run_s"] = t_run
        row["run_tier"] = str(best_ds.attrs.get("solver_tier", "")) or "adaptive"
        row["run_tier_note"] = str(best_ds.attrs.get("solver_tier_note", ""))
        row["run_tiers"] = tier_sequence(
            [str(d.attrs.get("solver_tier", "")) or "adaptive" for _, d in runs]
        )
        from sd_model.compiler import _cbuild

        _cbuild.wait_for_background()  # a compile started by those runs: not in later times

        # jit: fresh kernel cache, first call then warm calls.
        solver = resolve_solver(model, None)
        if solver.method != "euler":
            row["jit"] = f"n/a ({solver.method})"
        else:
            os.environ["SD_MODEL_CACHE"] = str(work / "jit-cache")
            try:
                with time_limit(jit_limit):
                    t_jit_first, jit_ds = _timed(lambda: model.run(backend="compiled", jit=True))
            except Timeout:
                row["jit"] = f"first compile over {jit_limit:g} s"
            else:
                row["jit_tier"] = str(jit_ds.attrs.get("solver_tier", ""))
                system = model.compiled().system([{}], grid)
                if system.run_euler() is None:
                    why = " ".join(str(system.kernel_note).split())[:120]
                    row["jit"] = f"no kernel ({why})" if why else "no kernel"
                    row["jit"] += f"; ran on the {row['jit_tier'] or 'numpy'} tier"
                    row["jit_first_s"] = t_jit_first
                else:
                    row["jit_first_s"] = t_jit_first
                    row["jit_s"] = best_of(
                        lambda: model.run(backend="compiled", jit=True),
                        budget=2.0,
                        max_runs=20,
                        first=_timed(lambda: model.run(backend="compiled", jit=True))[0],
                    )

        # batch of 100 scenarios through the batched evaluation entry point
        params = model.parameters
        scalars = [
            str(name)
            for name, r in params.iterrows()
            if r["kind"] == "constant"
            and r["dims"] == ""
            and isinstance(r["default"], int | float)
            and not isinstance(r["default"], bool)
            and r["default"] != 0
            and r["py_name"] not in {"initial_time", "final_time", "time_step", "saveper"}
        ][:3]
        rng = np.random.default_rng(0)
        sets = [
            {
                name: float(params.loc[name, "default"]) * float(rng.uniform(0.9, 1.1))
                for name in scalars
            }
            for _ in range(BATCH)
        ]
        row["batch_params"] = scalars

        def batch() -> Any:
            return evaluate(model, sets, solver=solver, grid=grid, backend="compiled", warn=False)

        batches = timed_runs(batch, budget=5.0, max_runs=3, first=_timed(batch))
        t_batch, best_batch = min(batches, key=lambda r: r[0])
        row["batch_s"] = t_batch
        row["batch_tier"] = best_batch.tier or "adaptive"

        # C tier: an empty cache, the process's libraries forgotten, compile at once.
        forget_c_libraries()
        c_cache = work / "c-cache"
        os.environ["SD_MODEL_CACHE"] = str(c_cache)
        os.environ["SD_MODEL_TIER"] = "c"
        try:
            with time_limit(c_limit):
                t_c_first, c_ds = _timed(lambda: model.run(backend="compiled"))
        except Timeout:
            row["c"] = f"first call over {c_limit:g} s"
        else:
            tier = str(c_ds.attrs.get("solver_tier", ""))
            if tier != "c":
                why = " ".join(str(c_ds.attrs.get("solver_tier_note", "")).split())[:160]
                row["c"] = f"not used ({why or solver.method}); ran on {tier or 'adaptive'}"
            else:
                row["c_compiled"] = any((c_cache / "c").glob("sdc_*.so"))
                row["c_first_s"] = t_c_first
                row["c_s"] = best_of(
                    lambda: model.run(backend="compiled"),
                    budget=2.0,
                    max_runs=10,
                    first=_timed(lambda: model.run(backend="compiled"))[0],
                )
        finally:
            os.environ.pop("SD_MODEL_TIER", None)
        return row
    finally:
        shutil.rmtree(work, ignore_errors=True)


# --------------------------------------------------------------------------- the corpus
def corpus(quick: bool, gen_dir: pathlib.Path) -> list[tuple[str, pathlib.Path]]:
    """(source label, model path) of every model to measure."""
    # the generated models first: the speed issue's targets are measured on them
    items: list[tuple[str, pathlib.Path]] = []
    names = list(QUICK_GENERATED) if quick else list(CORPUS)
    for p in write_corpus(gen_dir, names):
        kind, size = CORPUS[p.stem]
        items.append((f"generated ({kind}, {size} variables)", p))
    if not quick:
        items.append(("this repository", KAZAKHSTAN))
    if SAMPLES.is_dir():
        for p in sorted(SAMPLES.rglob("*")):
            if p.suffix in MODEL_SUFFIXES and (not quick or p.name in QUICK_SAMPLES):
                items.append(("SDXorg sample", p))
    else:
        print(f"note: {SAMPLES} is absent; the SDXorg samples are skipped")
    return items


def run_child(path: pathlib.Path, args: argparse.Namespace) -> dict[str, Any]:
    """Measure one model in a fresh process; a crash or a hang becomes a skip note."""
    with tempfile.NamedTemporaryFile(suffix=".json", delete=False) as fh:
        out = pathlib.Path(fh.name)
    cmd = [
        sys.executable,
        __file__,
        "--child",
        str(path),
        "--json-out",
        str(out),
        "--pysd-limit",
        str(args.pysd_limit),
        "--jit-limit",
        str(args.jit_limit),
        "--c-limit",
        str(args.c_limit),
    ]
    # PySD twice (read + run, repeats), sd_model, jit compile, batch, C compile
    limit = 3 * args.pysd_limit + args.jit_limit + args.c_limit + 300
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=limit, check=False)
        if proc.returncode != 0:
            tail = " ".join(proc.stderr.strip().splitlines()[-1:])[:200]
            return {"model": path.name, "skip": f"benchmark process failed: {tail}"}
        return dict(json.loads(out.read_text()))
    except subprocess.TimeoutExpired:
        return {"model": path.name, "skip": f"benchmark process over {limit:g} s"}
    finally:
        out.unlink(missing_ok=True)


# --------------------------------------------------------------------------- the table
def _ratio(num: float | None, den: float | None) -> float | None:
    if num is None or den is None or den <= 0:
        return None
    return num / den


def _fmt_ratio(r: float | None) -> str:
    if r is None:
        return "-"
    if r >= 100:
        return f"{r:,.0f}x"
    return f"**{r:.2f}x**" if r < 1 else f"{r:.1f}x"


def ratios(row: dict[str, Any]) -> dict[str, float | None]:
    """The ratios of a measured row (PySD time / sd_model time), one per column."""
    pysd_s = row.get("pysd_s")
    batch = row.get("batch_s")
    return {
        "single": _ratio(pysd_s, row.get("run_s")),
        "jit_first": _ratio(pysd_s, row.get("jit_first_s")),
        "jit_warm": _ratio(pysd_s, row.get("jit_s")),
        "c_first": _ratio(pysd_s, row.get("c_first_s")),
        "c_warm": _ratio(pysd_s, row.get("c_s")),
        "batch": _ratio(pysd_s, batch / BATCH if batch else None),
    }


COLUMNS = ("single", "jit_first", "jit_warm", "c_first", "c_warm", "batch")

#: What the columns mean and what holds for every run (the "Reading the tables" notes).
READING = (
    "Timings are from a 2-core machine shared with other jobs: absolute times vary by "
    "2-4x between runs, ratios much less, as both sides of each ratio ran in the same "
    "process minutes apart.",
    "*single run*: `Model.run()` with default settings and an empty cache, the best of "
    "repeated runs; *tier* is the tier of that fastest run (`solver_tier`), with the tiers "
    "of all runs in order when they changed: under the default policy a short model runs "
    "on plain Python (`python`) until its runs have cost as much as compiling C would, "
    "then C is compiled in the background and later runs use it (`c`); a run estimated "
    "to take longer than the compiler compiles C at once.",
    "*jit first call*: `Model.run(jit=True)` with an empty kernel cache in a new process "
    "(numba's compilation included). Where the warm column says *no kernel*, numba did "
    "not build a kernel (e.g. a RecursionError on a large one) and the figure is the time "
    "the failed attempt cost before the run fell back to the tier named there.",
    "*C first call*: `Model.run()` with `SD_MODEL_TIER=c` and an empty cache, the "
    "process's loaded C libraries forgotten: generating the C source, the C compiler "
    "(`cc -O1`), loading the library and the run. *C warm*: the best of up to 10 later "
    "calls, the library loaded. These are what a user gets from the second process on "
    "(the library is cached on disk) or once the background compile has finished.",
    "*batch of 100*: one `evaluate` call of 100 scenarios with default settings, after "
    "the runs above (the tier that ran in brackets); PySD's single-run time divided by "
    "the time per scenario.",
    "The generated `scalar*`, `world3_like` and `covid_like` models call a graphical "
    "lookup in every sector. PySD evaluates a lookup between its points with "
    "`xarray.DataArray.interp` (5 ms a call and about 90 % of PySD's `run()` on "
    "`scalar50` in a profile of 2026-12-01; 31 ms a call under heavier load earlier that "
    "day), which dominates PySD's time on them; hence their large ratios. The `plain*` "
    "models (the same structure with MIN/MAX in place of lookups) measure PySD's fast "
    "case, plain Python floats.",
    "*max rel. diff to PySD*: the largest |sd_model - PySD| / max(|PySD|, 1e-9) over the "
    "time-dependent scalar variables and saved times of the first single run. On "
    "`kazakhstan_regions.mdl` it is `Net Migration Sum`, a sum that is zero up to rounding "
    "(2026-12-01: sd_model -1.4e-10, PySD 8.2e-12 at 2047; every other variable agrees to "
    "5e-15). On "
    "`Query_file.mdl` it is the random draw itself (RANDOM UNIFORM: sd_model's streams are "
    "not NumPy's global generator, which PySD's `run()` draws from) and the 3 of its 143 "
    "variables it feeds; the other 140 match Vensim's output (`tests/test_random.py`).",
)


def _tier_cell(row: dict[str, Any]) -> str:
    tier = str(row.get("run_tier", "-"))
    seq = str(row.get("run_tiers", ""))
    return f"{tier} ({seq})" if seq and ", then " in seq else tier


def table(rows: list[tuple[str, dict[str, Any]]], header: str) -> str:
    """The markdown report: one row per measured model, summary rows, skipped models."""
    lines = [
        header,
        "",
        "| model | source | variables | steps | PySD run() | single run vs PySD | single run tier "
        "| jit first call (s) vs PySD | jit warm vs PySD | C first call (s) vs PySD "
        "| C warm vs PySD | batch of 100, per scenario, vs PySD (tier) | max rel. diff to PySD |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    columns: dict[str, list[tuple[float, str]]] = {k: [] for k in COLUMNS}
    skipped = []
    not_c: dict[str, list[str]] = {}
    for source, row in rows:
        if "skip" in row:
            skipped.append(f"- {row['model']} ({source}): {row['skip']}")
            continue
        r = ratios(row)
        for key, value in r.items():
            if value is not None:
                columns[key].append((value, row["model"]))
        jit_first = (
            f"{row['jit_first_s']:.1f} s ({_fmt_ratio(r['jit_first'])})"
            if row.get("jit_first_s") is not None
            else "-"
        )
        jit_warm = _fmt_ratio(r["jit_warm"]) if row.get("jit_s") else row.get("jit", "-")
        if row.get("c_first_s") is not None:
            c_first = f"{row['c_first_s']:.2f} s ({_fmt_ratio(r['c_first'])})"
            if not row.get("c_compiled", True):
                c_first += " (no library was compiled)"
            c_warm = _fmt_ratio(r["c_warm"])
        else:
            c_first, c_warm = row.get("c", "-"), "-"
        batch_tier = f" ({row['batch_tier']})" if row.get("batch_tier") else ""
        lines.append(
            f"| {row['model']} | {source} | {row['variables']} | {row['steps']} "
            f"| {row['pysd_s'] * 1e3:,.0f} ms | {_fmt_ratio(r['single'])} "
            f"({row['run_s'] * 1e3:,.1f} ms) | {_tier_cell(row)} | {jit_first} | {jit_warm} "
            f"| {c_first} | {c_warm} | {_fmt_ratio(r['batch'])}{batch_tier} "
            f"| {row['max_rel_diff']:.1e} |"
        )
        if row.get("run_tier") != "c":
            note = " ".join(str(row.get("run_tier_note", "")).split()) or "(no note)"
            not_c.setdefault(note, []).append(row["model"])
    for label in ("median", "worst"):
        cells = []
        for key in COLUMNS:
            values = columns[key]
            if not values:
                cells.append("-")
            elif label == "median":
                cells.append(_fmt_ratio(statistics.median(v for v, _ in values)))
            else:
                v, name = min(values)
                cells.append(f"{_fmt_ratio(v)} ({name})")
        single, jit_first, jit_warm, c_first, c_warm, batch = cells
        lines.append(
            f"| **{label}** | | | | | {single} | | {jit_first} | {jit_warm} | {c_first} "
            f"| {c_warm} | {batch} | |"
        )
    tiers = {row["model"]: _tier_cell(row) for _, row in rows if "skip" not in row}
    slower = [f"{name} ({tiers[name]})" for v, name in sorted(columns["single"]) if v < 1]
    lines += [
        "",
        "Single runs slower than PySD's run(): " + (", ".join(slower) if slower else "none") + ".",
    ]
    if not_c:
        lines += ["", "Why the fastest single run did not use C (`solver_tier_note`):", ""]
        lines += [f"- {', '.join(names)}: {note}" for note, names in not_c.items()]
    if skipped:
        lines += ["", "Not measured:", "", *skipped]
    lines += ["", "## Reading the tables", "", *(f"- {note}" for note in READING)]
    return "\n".join(lines) + "\n"


def write_atomic(path: pathlib.Path, text: str) -> None:
    """Write ``text`` to ``path`` through a temporary file and a rename."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=path.name + ".", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
        os.replace(tmp, path)
    except BaseException:
        pathlib.Path(tmp).unlink(missing_ok=True)
        raise


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a subset of the corpus")
    parser.add_argument("--pysd-limit", type=float, default=60.0, help="seconds (default 60)")
    parser.add_argument("--jit-limit", type=float, default=300.0, help="seconds (default 300)")
    parser.add_argument(
        "--c-limit", type=float, default=120.0, help="C tier first call, seconds (default 120)"
    )
    parser.add_argument("--out", type=pathlib.Path, default=RESULTS)
    parser.add_argument("--only", nargs="*", help="measure only models with these file names")
    parser.add_argument("--child", type=pathlib.Path, help=argparse.SUPPRESS)
    parser.add_argument("--json-out", type=pathlib.Path, help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.child is not None:
        row = measure(
            args.child, pysd_limit=args.pysd_limit, jit_limit=args.jit_limit, c_limit=args.c_limit
        )
        args.json_out.write_text(json.dumps(row))
        return

    import pysd

    import sd_model

    started = datetime.datetime.now(datetime.UTC)
    rows: list[tuple[str, dict[str, Any]]] = []
    with tempfile.TemporaryDirectory(prefix="bench-corpus-models-") as gen:
        for source, path in corpus(args.quick, pathlib.Path(gen)):
            if args.only and path.name not in args.only:
                continue
            t0 = time.perf_counter()
            row = run_child(path, args)
            r = ratios(row)
            shown = ", ".join(f"{k} {_fmt_ratio(v)}" for k, v in r.items())
            note = row.get("skip") or shown
            print(f"{path.name}: {note} [{time.perf_counter() - t0:.0f} s]", flush=True)
            rows.append((source, row))
            # rewritten after every model: a long run interrupted still leaves its rows
            write_atomic(args.out, table(rows, _header(args, started, pysd, sd_model)))
    text = table(rows, _header(args, started, pysd, sd_model))
    write_atomic(args.out, text)
    print()
    print(text)


def _header(args: argparse.Namespace, started: datetime.datetime, pysd: Any, sd_model: Any) -> str:
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    return (
        f"# Corpus benchmark: sd_model against PySD's run()\n\n"
        f"{'Quick subset' if args.quick else 'Full corpus'}, {started:%Y-%m-%d %H:%M} UTC, "
        f"sd_model {sd_model.__version__}, PySD {pysd.__version__}, Python "
        f"{platform.python_version()}, {os.cpu_count()} cores (load average {load:.1f} when "
        "written). Each model measured in a process of its own; every ratio is PySD's time "
        "/ sd_model's time in that process (above 1: sd_model is faster). Command: "
        f"`{shlex.join(['.venv/bin/python', 'benchmarks/bench_corpus.py', *sys.argv[1:]])}`; "
        "method in the docstring of `benchmarks/bench_corpus.py`."
    )


if __name__ == "__main__":
    main()
