"""Optional numba kernel: a whole fixed-step Euler run in compiled scalar loops.

The NumPy right-hand side pays ~1 us of interpreter overhead per array operation,
which caps single-scenario runs. When numba is installed and a model only uses the
constructs below, :meth:`CompiledSystem.run_euler` runs every Euler step (and the
observations at the saved times) inside one ``numba.njit`` function generated from the
same lowered program (:mod:`sd_model.compiler._lowered`) as the NumPy code, as scalar
loops over subscripts. Stateful objects are written by their row of
:data:`sd_model.compiler._statefuls.KINDS`, elementwise functions by
:data:`sd_model.compiler._builtins.FUNCTIONS`.

Covered: arithmetic, logic, IF THEN ELSE, the elementwise functions, XIDZ/ZIDZ,
INTEGER, QUANTUM, MODULO, STEP/PULSE/PULSE TRAIN/RAMP, lookups (tables, WITH LOOKUP,
GET LOOKUPS, GET DATA), SUM/PROD/VMIN/VMAX, INTEG (also non-negative), the SMOOTH and
DELAY families (DELAY N with PySD's delay-time memory), DELAY FIXED, SAMPLE IF TRUE,
TREND, FORECAST, INITIAL, ACTIVE INITIAL, GET TIME VALUE(0, x, 0), macros. Anything
else (vector functions, allocation: ``NumpyOnly`` nodes; RANDOM functions: ``Random``) raises
:class:`KernelUnsupported` and the caller uses the NumPy path, as for time-series
overrides. On the shared test
models the kernel runs 170 of 174 models and matches the NumPy path to rounding.

As in the NumPy code generator, only generated identifiers and numeric literals reach
the source.
"""

from __future__ import annotations

import hashlib
import math
import os
import pathlib
from dataclasses import dataclass
from typing import Any

import numpy as np

from sd_model.compiler import _lowered as lw
from sd_model.compiler._builtins import FUNCTIONS, REDUCERS
from sd_model.compiler._lowered import BINARY, COMPARISONS, CONTROL_NAMES, Ctx, Expr, Program, num
from sd_model.compiler._statefuls import KINDS, KernelSlot

# Per process: kernel source -> compiled function (None: it failed, reason in _FAILURES)
_KERNEL_CACHE: dict[str, Any] = {}
_FAILURES: dict[str, str] = {}
_HELPER_NS: dict[str, Any] = {}
_MODES = {"interpolate": 0, "extrapolate": 1, "hold_backward": 2, "look_forward": 3, "raw": 4}


class KernelUnsupported(Exception):
    """The model uses something the numba kernel does not cover."""


def numba_available() -> bool:
    """True when numba can be imported."""
    try:
        import numba  # noqa: F401
    except ImportError:
        return False
    return True


@dataclass
class KernelSource:
    """Generated kernel source and the names of its array arguments."""

    src: str
    args: list[str]  # namespace names passed after the fixed arguments
    observed: list[int]  # element indices stored at saved times
    extra: dict[str, Any]  # index maps created for the kernel


class _Emitter:
    """Scalar source of lowered expressions at one cell (``kv``: its context indices)."""

    def __init__(self, prog: Program, dynamic: frozenset[int]) -> None:
        self.prog = prog
        self.dynamic = dynamic
        self.args: dict[str, None] = {}
        self.maps: dict[tuple[int, ...], str] = {}
        self.extra: dict[str, Any] = {}
        self._n = 0

    # --------------------------------------------------------------- helpers
    def fresh(self, prefix: str) -> str:
        self._n += 1
        return f"{prefix}{self._n}"

    def arg(self, name: str) -> str:
        self.args[name] = None
        return name

    def index_map(self, positions: tuple[int, ...]) -> str:
        if positions not in self.maps:
            name = f"MAP{len(self.maps)}"
            self.maps[positions] = name
            self.extra[name] = np.asarray(positions, dtype=np.int64)
            self.args[name] = None
        return self.maps[positions]

    def const_at(self, name: str, kv: list[str]) -> str:
        arr = self.prog.consts[name]
        parts = ["0"]
        for q, size in enumerate(np.shape(arr)[1:]):
            parts.append("0" if size == 1 else kv[q])
        return f"{self.arg(name)}[{', '.join(parts)}]"

    @staticmethod
    def cell(ctx: Ctx, kv: list[str]) -> str:
        """Flat (row-major) cell index within a context."""
        if not ctx.names:
            return "0"
        expr = kv[0]
        for q in range(1, len(ctx.names)):
            expr = f"({expr}) * {len(ctx.coords[q])} + {kv[q]}"
        return expr

    def var(self, i: int) -> str:
        """Element ``i``: a local array when it changes during the run, else an argument."""
        return f"v{i}" if i in self.dynamic else self.arg(f"v{i}")

    def index(self, entries: lw.Entries, kv: list[str]) -> list[str]:
        parts = []
        for ax, pos in entries:
            if ax is None:
                parts.append(str(pos[0]))
            elif pos == tuple(range(len(pos))):
                parts.append(kv[ax])
            else:
                parts.append(f"{self.index_map(pos)}[{kv[ax]}]")
        return parts

    # --------------------------------------------------------------- expressions
    def x(self, e: Expr, ctx: Ctx, kv: list[str], pre: list[str]) -> str:
        """Scalar source of ``e`` at cell ``kv`` of ``ctx``; loops it needs go to ``pre``."""
        if isinstance(e, lw.Num):
            return num(e.value)
        if isinstance(e, lw.Const):
            return self.const_at(e.name, kv)
        if isinstance(e, lw.Ref):
            return f"{self.var(e.element)}[{', '.join(['b', *self.index(e.entries, kv)])}]"
        if isinstance(e, lw.StatefulValue):
            return self._stateful_value(e.index, ctx, kv, pre)
        if isinstance(e, lw.Time):
            return "t"
        if isinstance(e, lw.Control):
            return "dt" if e.py_name == "time_step" else self.arg(CONTROL_NAMES[e.py_name])
        if isinstance(e, lw.Arith):
            return self._arith(e, ctx, kv, pre)
        if isinstance(e, lw.Logic):
            return self._logic(e, ctx, kv, pre)
        if isinstance(e, lw.Call):
            return self._call(e, ctx, kv, pre)
        if isinstance(e, lw.Lookup):
            i = e.element
            idx = ", ".join([f"b % LX{i}.shape[0]", *self.index(e.entries, kv)])
            xq = self.x(e.x, ctx, kv, pre)
            self.arg(f"LX{i}")
            self.arg(f"LY{i}")
            return f"_k_interp({xq}, LX{i}[{idx}], LY{i}[{idx}], {_MODES[e.mode]})"
        if isinstance(e, lw.InlineLookup):
            xq = self.x(e.x, ctx, kv, pre)
            return f"_k_interp({xq}, {self.arg(e.xs)}, {self.arg(e.ys)}, 0)"
        if isinstance(e, lw.DataSeries):
            idx = ", ".join(["0", *kv[: len(ctx.names)]])
            mode = _MODES.get(e.mode, 0)
            return f"_k_interp(t, {self.arg(e.xs)}[{idx}], {self.arg(e.ys)}[{idx}], {mode})"
        if isinstance(e, lw.Reduce):
            return self._reduce(e, ctx, kv, pre)
        if isinstance(e, lw.TimeFunction):
            return self._time_function(e, ctx, kv, pre)
        if isinstance(e, lw.NumpyOnly):
            raise KernelUnsupported(e.what)
        if isinstance(e, lw.Random):
            # The draws come from NumPy generators per scenario (sd_model.compiler._random);
            # the NumPy Euler path gives the same numbers.
            raise KernelUnsupported(e.fn.upper().replace("_", " "))
        raise AssertionError(e)

    def _arith(self, e: lw.Arith, ctx: Ctx, kv: list[str], pre: list[str]) -> str:
        ops = e.ops
        first = e.args[0]
        if len(e.args) == 1:
            return f"(-({self.x(first, ctx, kv, pre)}))"  # the compiler keeps only negation
        neg = ops[0] == "^" and isinstance(first, lw.Num) and first.value < 0
        head = (
            num(-first.value) if isinstance(first, lw.Num) and neg else self.x(first, ctx, kv, pre)
        )
        args = [head] + [self.x(a, ctx, kv, pre) for a in e.args[1:]]
        parts = [f"({args[0]})"]
        for op, a in zip(ops, args[1:], strict=True):
            parts += [BINARY[op], f"({a})"]
        src = " ".join(parts)
        if neg:
            src = f"-({src})"
        if any(BINARY[o] in COMPARISONS for o in ops):
            src = f"(1.0 if ({src}) else 0.0)"
        return f"({src})"

    def _logic(self, e: lw.Logic, ctx: Ctx, kv: list[str], pre: list[str]) -> str:
        args = [self.x(a, ctx, kv, pre) for a in e.args]
        if len(args) == 1:  # :NOT:
            return f"(1.0 if ({args[0]}) == 0 else 0.0)"
        right = args[-1]
        for op, left in zip(reversed(e.ops), reversed(args[:-1]), strict=True):
            if op == ":AND:":
                right = f"(1.0 if (({left}) != 0 and ({right}) != 0) else 0.0)"
            elif op == ":OR:":
                right = f"(1.0 if (({left}) != 0 or ({right}) != 0) else 0.0)"
            else:
                right = f"(1.0 if (({left}) {BINARY[op]} ({right})) else 0.0)"
        return right

    def _call(self, e: lw.Call, ctx: Ctx, kv: list[str], pre: list[str]) -> str:
        if e.fn == "pi":
            return "np.pi"
        srcs = [self.x(a, ctx, kv, pre) for a in e.args]
        if e.fn == "if_then_else":
            c, a, b = srcs
            return f"(({a}) if ({c}) != 0 else ({b}))"
        fn = FUNCTIONS[e.fn].numba
        if fn is None:
            raise KernelUnsupported(e.fn)
        return f"{fn}({', '.join(srcs)})"

    def _time_function(self, e: lw.TimeFunction, ctx: Ctx, kv: list[str], pre: list[str]) -> str:
        s = [self.x(a, ctx, kv, pre) for a in e.args]
        nan = "np.nan"
        if e.fn == "step":
            return f"_k_step(t, dt, {s[0]}, {s[1]})"
        if e.fn == "pulse":
            return f"_k_pulse(t, dt, {s[0]}, 0.0, {s[1]}, {nan}, {nan})"
        if e.fn == "Xpulse":
            return f"_k_pulse(t, dt, {s[0]}, 0.0, {nan}, {s[1]}, {nan})"
        if e.fn == "pulse_train":
            return f"_k_pulse(t, dt, {s[0]}, {s[1]}, {s[2]}, {nan}, {s[3]})"
        if e.fn == "Xpulse_train":
            return f"_k_pulse(t, dt, {s[0]}, {s[1]}, {nan}, {s[2]}, {nan})"
        if e.fn == "ramp":
            return f"_k_ramp(t, {s[0]}, {s[1]}, {s[2]})"
        return f"_k_ramp(t, {s[0]}, {s[1]}, np.inf)"

    def _reduce(self, e: lw.Reduce, ctx: Ctx, kv: list[str], pre: list[str]) -> str:
        inner = e.inner
        _, init, step = REDUCERS[e.fn]
        acc = self.fresh("acc")
        pre.append(f"{acc} = {init}")
        ikv = list(kv)
        body: list[str] = []
        indent = ""
        for q in range(len(ctx.names), len(inner.names)):
            var = self.fresh("r")
            ikv.append(var)
            body.append(f"{indent}for {var} in range({len(inner.coords[q])}):")
            indent += "    "
        inner_pre: list[str] = []
        val = self.x(e.arg, inner, ikv, inner_pre)
        body += [indent + line for line in inner_pre]
        body.append(indent + f"{acc} = " + step.format(acc=acc, x=val))
        pre += body
        return acc

    # --------------------------------------------------------------- statefuls
    def slot(self, j: int, ctx: Ctx, kv: list[str], pre: list[str]) -> KernelSlot:
        """Cell ``kv`` of stateful object ``j``; arguments emit their lines into ``pre``."""
        sf = self.prog.statefuls[j]
        parts = ", ".join(["b", *kv[: len(sf.ctx.names)]])
        return KernelSlot(
            j=j,
            base=f"b * NS + OFFS[{j}] + {self.cell(sf.ctx, kv)}",
            size=int(np.prod(sf.ctx.shape, dtype=int)),
            arg=lambda role: self.x(sf.args[role], ctx, kv, pre),
            saved=lambda: f"{self.arg(f'O{j}')}[{parts}]",
        )

    def _stateful_value(self, j: int, ctx: Ctx, kv: list[str], pre: list[str]) -> str:
        return KINDS[self.prog.statefuls[j].kind].kernel_value(self.slot(j, ctx, kv, pre))


def generate_kernel(prog: Program, dynamic: frozenset[int], obs: tuple[int, ...]) -> KernelSource:
    """Source of the fused Euler kernel for a program (raises KernelUnsupported)."""
    em = _Emitter(prog, dynamic)
    els = prog.elements
    order = lw.toposort([e.index for e in els if e.index in dynamic], lw.dynamic_deps(prog))
    body: list[str] = []
    ind = "        "
    for i in order:
        for k, comp in enumerate(els[i].components):
            ctx = comp.ctx
            pre: list[str] = []
            if comp.direct:
                kv = [f"k{q}" for q in range(len(ctx.names))]
                loops = [f"for k{q} in range({len(c)}):" for q, c in enumerate(ctx.coords)]
                target = ", ".join(["b", *kv])
            else:
                assert comp.cells is not None
                eidx, cidx = comp.cells
                cname = [em.arg(f"KC{i}_{k}_{q}") for q in range(len(cidx))]
                ename = [em.arg(f"KE{i}_{k}_{q}") for q in range(len(eidx))]
                for q in range(len(cidx)):
                    em.extra[cname[q]] = np.asarray(cidx[q], dtype=np.int64)
                    em.extra[ename[q]] = np.asarray(eidx[q], dtype=np.int64)
                kv = [f"{cname[q]}[c]" for q in range(len(cidx))]
                loops = [f"for c in range({len(cidx[0]) if cidx else 1}):"]
                target = ", ".join(["b", *[f"{ename[q]}[c]" for q in range(len(eidx))]])
            val = em.x(comp.expr, ctx, kv, pre)
            lines = [*pre, f"v{i}[{target}] = {val}"]
            depth = ind
            body.append(f"{depth}for b in range(B):")
            depth += "    "
            for loop in loops:
                body.append(depth + loop)
                depth += "    "
            body += [depth + line for line in lines]
    # derivatives
    ddt: list[str] = []
    state = [sf for sf in prog.statefuls if KINDS[sf.kind].has_state]
    discrete: list[str] = []
    for sf in state:
        spec = KINDS[sf.kind]
        ctx = sf.ctx
        kv = [f"k{q}" for q in range(len(ctx.names))]
        if spec.kernel_ddt is not None:
            ddt_pre: list[str] = []
            lines = spec.kernel_ddt(em.slot(sf.index, ctx, kv, ddt_pre))
            ddt += _loops(ind, ctx, [*ddt_pre, *lines])
        if spec.kernel_step is not None:
            step_pre: list[str] = []
            lines = spec.kernel_step(em.slot(sf.index, ctx, kv, step_pre))
            discrete += _loops(ind, ctx, [*step_pre, *lines])
    nonneg = []
    for sf in state:
        if sf.non_negative:
            size = int(np.prod(sf.ctx.shape, dtype=int))
            nonneg += [
                f"{ind}for b in range(B):",
                f"{ind}    for q in range({size}):",
                f"{ind}        p = b * NS + OFFS[{sf.index}] + q",
                f"{ind}        if ynew[p] < 0:",
                f"{ind}            ynew[p] = 0.0",
            ]
    args = list(em.args)
    head = [
        "def _kernel(y0, t0, dt, nsteps, save, out, obs, B, NS, OFFS, NORD, "
        + "".join(f"{a}, " for a in args)
        + "):",
        "    y = y0.copy()",
    ]
    for i in order:
        shape = ", ".join(["B", *[str(n) for n in els[i].shape]])
        head.append(f"    v{i} = np.full(({shape},), np.nan)")
    head += [
        "    isave = 0",
        "    for step in range(nsteps + 1):",
        "        t = t0 + step * dt",
    ]
    save = ["        if save[step]:", "            out[isave, :] = y"]
    for m, i in enumerate(obs):
        save.append(f"            obs[{m}][isave] = v{i}")
    save += [
        "            isave += 1",
        "        if step == nsteps:",
        "            break",
        "        D = np.zeros(B * NS)",
    ]
    tail = [
        "        ynew = y + dt * D",
        *nonneg,
        *discrete,
        "        for p in range(B * NS):",
        "            if not np.isfinite(ynew[p]):",
        "                y0[p] = ynew[p]",  # the caller's copy: reports the value
        "                return step + 1, p",
        "        y = ynew",
        "    return -1, -1",
    ]
    src = "\n".join(head + body + save + ddt + tail) + "\n"
    return KernelSource(src, args, list(obs), em.extra)


def _loops(ind: str, ctx: Ctx, lines: list[str]) -> list[str]:
    """``lines`` inside loops over the batch and the cells of ``ctx``."""
    out = [f"{ind}for b in range(B):"]
    depth = ind + "    "
    for q, c in enumerate(ctx.coords):
        out.append(f"{depth}for k{q} in range({len(c)}):")
        depth += "    "
    return out + [depth + line for line in lines]


_HELPERS = """
@nb.njit(cache=False, error_model="numpy")
def _k_xidz(a, b, x):
    if abs(b) < 1e-6:
        return x
    return a / b

@nb.njit(cache=False, error_model="numpy")
def _k_zidz(a, b):
    if abs(b) < 1e-6:
        return 0.0
    return a / b

@nb.njit(cache=False, error_model="numpy")
def _k_quantum(a, b):
    if b < 1e-6:
        return a
    return b * np.trunc(a / b)

@nb.njit(cache=False, error_model="numpy")
def _k_modulo(x, m):
    return x - _k_quantum(x, m)

@nb.njit(cache=False, error_model="numpy")
def _k_log(x, base):
    return np.log(x) / np.log(base)

@nb.njit(cache=False, error_model="numpy")
def _k_step(t, dt, value, tstep):
    return value if t + dt / 2 > tstep else 0.0

@nb.njit(cache=False, error_model="numpy")
def _k_ramp(t, slope, start, finish):
    final = t if finish == np.inf else min(finish, t)
    return slope * (final - start) if t + 1e-6 > start else 0.0

@nb.njit(cache=False, error_model="numpy")
def _k_pulse(t, dt, start, repeat, width, magnitude, end):
    w = 0.5 * dt if np.isnan(width) else width
    out = 1.0 if np.isnan(magnitude) else magnitude / dt
    if repeat == 0:
        return out if (start - 1e-6 <= t and t < start + w) else 0.0
    if start <= t and (np.isnan(end) or t < end):
        return out if (t - start + 1e-6) % repeat < w else 0.0
    return 0.0

@nb.njit(cache=False, error_model="numpy")
def _k_interp(x, xs, ys, mode):
    n = xs.shape[0]
    if x <= xs[0]:
        if mode == 1 and n > 1 and x < xs[0]:
            return ys[0] + (ys[1] - ys[0]) / (xs[1] - xs[0]) * (x - xs[0])
        if mode == 4 and x < xs[0]:
            return np.nan
        return ys[0]
    if x >= xs[n - 1]:
        if mode == 1 and n > 1 and x > xs[n - 1]:
            return ys[n - 1] + (ys[n - 1] - ys[n - 2]) / (xs[n - 1] - xs[n - 2]) * (x - xs[n - 1])
        if mode == 4 and x > xs[n - 1]:
            return np.nan
        return ys[n - 1]
    k = np.searchsorted(xs, x, side="right")
    x0 = xs[k - 1]
    x1 = xs[k]
    if mode == 2:
        return ys[k - 1]
    if mode == 3 or mode == 4:
        if x == x0:
            return ys[k - 1]
        return ys[k] if mode == 3 else np.nan
    if x1 <= x0:
        return ys[k - 1]
    return ys[k - 1] + (x - x0) / (x1 - x0) * (ys[k] - ys[k - 1])
"""


def compile_kernel(ks: KernelSource) -> Any:
    """The njit-compiled kernel; None when it is known to fail (see :func:`kernel_failure`).

    The kernel is written as a module to ``<cache dir>/kernels/sdk_<hash>.py`` (the
    translation cache of :func:`sd_model.translate.default_cache_dir`) and compiled
    with numba's on-disk cache, so only the first run on a machine pays the
    compilation (tens of seconds for a large model). Without a writable cache
    directory it is compiled in memory, once per process. numba compiles on the first
    call (:func:`call_kernel`); a failure there is remembered in the process and in
    ``sdk_<hash>.failed`` next to the module, so no later run pays for it again.
    """
    if ks.src in _KERNEL_CACHE:
        return _KERNEL_CACHE[ks.src]
    import numba as nb

    reason = _failure_on_disk(ks, nb.__version__)
    if reason is not None:
        _FAILURES[ks.src] = reason
        _KERNEL_CACHE[ks.src] = None
        return None
    fn = _from_disk_cache(ks, nb.__version__)
    if fn is None:
        if not _HELPER_NS:
            # the scalar helpers are compiled once per process and shared by all kernels
            _HELPER_NS.update(
                {"np": np, "nb": nb, "math": math, "_NAN": math.nan, "_INF": math.inf}
            )
            exec(compile(_HELPERS, "<sd_model kernel helpers>", "exec"), _HELPER_NS)
        ns = dict(_HELPER_NS)
        exec(compile(ks.src, "<sd_model kernel>", "exec"), ns)
        fn = nb.njit(error_model="numpy")(ns["_kernel"])
    _KERNEL_CACHE[ks.src] = fn
    return fn


def kernel_failure(ks: KernelSource) -> str | None:
    """Why numba could not compile this kernel (None if it has not failed)."""
    return _FAILURES.get(ks.src)


_MODULE_HEADER = """# Generated by sd_model.compiler._kernel from syntax trees; safe to delete.
import math

import numba as nb
import numpy as np

_NAN = math.nan
_INF = math.inf
"""


def _module_text(ks: KernelSource) -> str:
    return (
        _MODULE_HEADER
        + _HELPERS.replace("cache=False", "cache=True")
        + '\n\n@nb.njit(cache=True, error_model="numpy")\n'
        + ks.src
    )


def _cache_stem(ks: KernelSource, numba_version: str) -> pathlib.Path | None:
    """``<cache dir>/kernels/sdk_<hash>`` (None without a writable cache directory)."""
    from sd_model.translate import code_cache_folder

    digest = hashlib.sha256((_module_text(ks) + numba_version).encode()).hexdigest()[:20]
    # A private folder: numba loads its compiled code from __pycache__ below it with pickle.
    folder = code_cache_folder("kernels")
    if folder is None:
        return None
    return folder / f"sdk_{digest}"


def _failure_on_disk(ks: KernelSource, numba_version: str) -> str | None:
    stem = _cache_stem(ks, numba_version)
    if stem is None:
        return None
    try:
        return stem.with_suffix(".failed").read_text().strip() or "unknown error"
    except OSError:
        return None


def _record_failure(ks: KernelSource, reason: str) -> None:
    import numba

    _FAILURES[ks.src] = reason
    _KERNEL_CACHE[ks.src] = None
    stem = _cache_stem(ks, numba.__version__)
    if stem is None:
        return
    try:
        tmp = stem.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_text(reason + "\n")
        tmp.replace(stem.with_suffix(".failed"))
    except OSError:
        pass


def _from_disk_cache(ks: KernelSource, numba_version: str) -> Any:
    import importlib.util
    import sys

    stem = _cache_stem(ks, numba_version)
    if stem is None:
        return None
    try:
        path = stem.with_suffix(".py")
        text = _module_text(ks)
        # A module that is not exactly the one generated (edited, truncated) is written
        # again before it is imported: importing runs it.
        if not path.exists() or path.read_text(errors="replace") != text:
            tmp = path.with_suffix(f".{os.getpid()}.tmp")
            tmp.write_text(text)
            tmp.replace(path)
        name = f"sd_model_kernel_{stem.name[4:]}"
        spec = importlib.util.spec_from_file_location(name, path)
        if spec is None or spec.loader is None:
            return None
        module = importlib.util.module_from_spec(spec)
        # numba's cache re-imports the module by name when it loads compiled code
        sys.modules[spec.name] = module
        spec.loader.exec_module(module)
    except OSError:
        return None
    return module._kernel


def call_kernel(ks: KernelSource, fn: Any, *args: Any) -> Any:
    """Call (and on first use compile) a kernel; None when numba fails to compile it.

    The reason is then given by :func:`kernel_failure` and remembered on disk.
    """
    try:
        return fn(*args)
    except RecursionError:  # numba's compiler on huge functions
        _record_failure(ks, "RecursionError in numba's compiler (the kernel is too large)")
        return None
    except Exception as exc:
        import numba

        if isinstance(exc, numba.core.errors.NumbaError):
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
            _record_failure(ks, f"{type(exc).__name__}: {first[:200]}")
            return None
        raise
