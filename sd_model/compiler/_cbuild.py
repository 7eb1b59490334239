"""Build, cache and load the C tier's shared libraries, and decide when to use them.

:mod:`sd_model.compiler._emit_c` writes a model's whole fixed-step run as C; here it is
compiled with the system C compiler (``$SD_MODEL_CC``, else ``cc``, ``gcc`` or ``clang``
on the PATH) into a shared library, loaded with :mod:`ctypes` and called with NumPy
arrays by pointer.

Libraries are cached under ``<cache dir>/c`` (:func:`sd_model.translate.default_cache_dir`),
named by a hash of the source, the compiler's path and version and the flags; a library
is compiled under a temporary name and renamed into place, so concurrent processes never
load a half-written file. Loading a library runs its code, so the folder is private to the
user (:func:`sd_model.translate.code_cache_folder`) and a library must be the user's own;
otherwise libraries are built per process in a private temporary folder. Temporary files
older than an hour (a compile killed midway) are removed by the next compile. A compiler
error is remembered in ``sdc_<hash>.failed`` beside it: later processes read the note
instead of compiling again. Without a writable cache folder libraries are built in a
temporary folder, once per process.

Tiering (:func:`library`): a cached library is used at once. Otherwise the run waits
for the compiler only when the estimated time of the default path (plain Python for one
scenario, NumPy for a batch) exceeds the estimated compile time. A shorter run returns to
the default path; once the runs of the same model in the process (an explorer, a
calibration, a sweep in chunks) have together cost as much as compiling would, the
compiler is started in a background thread, and a later run (or any later process) finds
the library. ``SD_MODEL_TIER=c`` always compiles synchronously (tests, benchmarks);
``SD_MODEL_TIER=python`` or ``numpy`` turns the tier off (see
:func:`sd_model.integrate.fixed_step_tiers`).

Flags: ``-O1``. Measured with GCC 12 (CPU seconds of the compiler; the C loop of one
scenario): on the 300-variable ``world3_like`` stand-in ``-O0`` 0.6 s / 0.41 ms, ``-O1``
1.3 s / 0.15 ms, ``-O2`` 3.2 s / 0.26 ms; on the 20-region model 0.12 s / 1.9 ms, 0.17 s /
0.90 ms, 0.25 s / 0.74 ms (a shared 2-core machine: run times vary by 2x). ``-O2`` costs
2.5x the compile time for no clear gain. ``-ffp-contract=off`` and no ``-ffast-math``:
every operation rounds as NumPy's does (the SDXorg corpus gives bit-identical results).
"""

from __future__ import annotations

import ctypes
import hashlib
import os
import pathlib
import shutil
import subprocess
import tempfile
import threading
import weakref
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from sd_model.compiler._emit_c import SD_ABI, CArg, CSource, CUnsupported, generate_c
from sd_model.compiler._lowered import Program

FLAGS = ("-std=c99", "-O1", "-fPIC", "-shared", "-ffp-contract=off", "-fno-math-errno")

# Compile time, seconds = a + b * source bytes (gcc -O1 on one idle core: 0.15 s for the
# 20-region benchmark model's 15 kB, 0.7-1.1 s for the 100-115 kB of the 250-300-variable
# stand-ins; see benchmarks/results/fast_tier.md). The default path it is weighed against
# costs, per step, about _PY_CELL_S per cell for one scenario (the plain-Python tier:
# 0.2-0.9 us measured) and _NP_ELEMENT_S per element plus _NP_CELL_S per cell and
# scenario for a batch (NumPy: 2-6 ms per step of the 300-variable model at 100
# scenarios).
_COMPILE_BASE_S = 0.1
_COMPILE_PER_BYTE_S = 8e-6
_PY_CELL_S = 5e-7
_NP_ELEMENT_S = 1e-5
_NP_CELL_S = 5e-8

_LOCK = threading.Lock()
_LIBS: dict[str, Any] = {}  # key -> the loaded sd_run function
_HANDLES: dict[str, ctypes.CDLL] = {}  # key -> its library (kept loaded)
_FAILED: dict[str, str] = {}  # key -> why it could not be built (also on disk)
_PENDING: dict[str, threading.Thread] = {}  # key -> background compile
_SPENT: dict[str, float] = {}  # key -> estimated seconds its runs spent on the default path
_BUILT: dict[str, pathlib.Path] = {}  # key -> library built outside the cache folder
_VERSIONS: dict[str, str] = {}  # compiler path -> first line of --version
_SOURCES: dict[tuple[int, frozenset[int]], tuple[Any, CSource | CUnsupported]] = {}


class NoCompiler(Exception):
    """No usable C compiler (the message says which was looked for)."""


def c_source(
    prog: Program, dynamic: frozenset[int], obs: tuple[int, ...]
) -> CSource | CUnsupported:
    """The C source of a program (or why there is none), generated once per program."""
    key = (id(prog), dynamic)
    with _LOCK:
        hit = _SOURCES.get(key)
        if hit is not None and hit[0]() is prog:
            return hit[1]
    try:
        out: CSource | CUnsupported = generate_c(prog, dynamic, obs)
    except CUnsupported as exc:
        out = exc.with_traceback(None)  # its frames would keep the program alive

    def forget(_ref: Any, k: tuple[int, frozenset[int]] = key) -> None:
        _SOURCES.pop(k, None)

    with _LOCK:
        _SOURCES[key] = (weakref.ref(prog, forget), out)
    return out


def find_compiler() -> tuple[str, str]:
    """Path and version line of the C compiler to use.

    ``$SD_MODEL_CC`` names it (a command or a path; empty or ``none`` turns the tier
    off); otherwise the first of ``cc``, ``gcc``, ``clang`` on the PATH.

    Raises
    ------
    NoCompiler
        When there is none; the message says what was looked for.
    """
    env = os.environ.get("SD_MODEL_CC")
    if env is not None:
        if env.strip().lower() in ("", "none", "off"):
            raise NoCompiler("the C compiler is turned off (SD_MODEL_CC is empty)")
        path = shutil.which(env)
        if path is None:
            raise NoCompiler(f"the C compiler {env!r} named by SD_MODEL_CC was not found")
    else:
        path = next((p for p in map(shutil.which, ("cc", "gcc", "clang")) if p), None)
        if path is None:
            raise NoCompiler("no C compiler (cc, gcc or clang) on the PATH; set SD_MODEL_CC")
    if path not in _VERSIONS:
        try:
            proc = subprocess.run(
                [path, "--version"], capture_output=True, text=True, timeout=30, check=False
            )
        except (OSError, subprocess.SubprocessError) as exc:
            raise NoCompiler(f"the C compiler {path} does not run ({exc})") from None
        if proc.returncode != 0:
            raise NoCompiler(f"the C compiler {path} does not run ('--version' failed)")
        _VERSIONS[path] = (proc.stdout.strip().splitlines() or [""])[0]
    return path, _VERSIONS[path]


def _cache_folder() -> pathlib.Path | None:
    from sd_model.translate import code_cache_folder

    return code_cache_folder("c")


# A compile in progress keeps its temporary files at most the compiler's time limit
# (10 minutes); older ones were left by a process that was killed while compiling.
_STALE_S = 3600.0


def _sweep_stale(folder: pathlib.Path) -> None:
    """Remove the temporary files of compiles killed before they could clean up."""
    import time

    cutoff = time.time() - _STALE_S
    for pattern in ("sdc_*.c", "sdc_*.tmp"):
        for path in folder.glob(pattern):
            try:
                if path.stat().st_mtime < cutoff:
                    path.unlink()
            except OSError:
                pass  # another process removed or renamed it first


def library_key(src: CSource, cc: tuple[str, str]) -> str:
    """The cache key of a library: its source, compiler (path and version) and flags."""
    text = "\0".join([src.digest, cc[0], cc[1], *FLAGS, str(SD_ABI)])
    return hashlib.sha256(text.encode()).hexdigest()[:24]


def compile_seconds(src: CSource) -> float:
    """Estimated compile time of a source (see the constants above)."""
    return _COMPILE_BASE_S + _COMPILE_PER_BYTE_S * len(src.src)


def default_path_seconds(elements: int, cells: int, steps: int, batch: int, rk4: bool) -> float:
    """Rough time of the same run without the C tier (what compiling now would save).

    Parameters
    ----------
    elements, cells : int
        Time-dependent elements computed at each step, and their cells (one scenario).
    steps : int
        Fixed steps of the run.
    batch : int
        Scenarios.
    rk4 : bool
        Four evaluations per step instead of one.
    """
    if batch == 1:
        per_step = cells * _PY_CELL_S
    else:
        per_step = elements * _NP_ELEMENT_S + cells * batch * _NP_CELL_S
    return per_step * steps * (4 if rk4 else 1)


@dataclass(frozen=True)
class Tier:
    """What :func:`library` decided: the loaded library, or None and why not."""

    lib: Any
    note: str
    failed: bool = False  # the compiler rejected the source (cached; the caller warns)


def library(src: CSource, *, run_seconds: float) -> Tier:
    """The loaded library for ``src``, following the tier policy of the module.

    Parameters
    ----------
    src : CSource
        The generated source.
    run_seconds : float
        The caller's estimate of this run's time on the default path
        (:func:`default_path_seconds`).

    Returns
    -------
    Tier
        ``lib`` is None when the C tier is not used for this run; ``note`` says why.
    """
    mode = os.environ.get("SD_MODEL_TIER", "auto").strip().lower()
    worth_waiting = run_seconds > compile_seconds(src)
    if mode in ("python", "numpy"):
        return Tier(None, f"the C tier is turned off (SD_MODEL_TIER={mode})")
    try:
        cc = find_compiler()
    except NoCompiler as exc:
        return Tier(None, str(exc))
    key = library_key(src, cc)
    with _LOCK:
        if key in _LIBS:
            return Tier(_LIBS[key], "")
        if key in _FAILED:
            return Tier(None, _failed_note(_FAILED[key]), failed=True)
        pending = _PENDING.get(key)
        if pending is not None and not pending.is_alive() and pending.ident is not None:
            # a forked worker inherits the entry but not the thread
            _PENDING.pop(key, None)
            pending = None
    folder = _cache_folder()
    path = _BUILT.get(key) or (folder / f"sdc_{key}.so" if folder is not None else None)
    if pending is None and path is not None:
        if path.exists() and _replace_untrusted(path):
            return _load(key, path)
        failed = path.with_suffix(".failed")
        if failed.exists():
            reason = failed.read_text(errors="replace").strip() or "unknown error"
            with _LOCK:
                _FAILED[key] = reason
            return Tier(None, _failed_note(reason), failed=True)
    if pending is not None and not (mode == "c" or worth_waiting):
        return Tier(None, "the C library is being compiled in the background")
    if mode == "c" or worth_waiting:
        if pending is not None:
            pending.join()
        else:
            _build(key, src, cc, folder)
        return _after_build(key, folder)
    with _LOCK:
        _SPENT[key] = spent = _SPENT.get(key, 0.0) + run_seconds
    if spent < compile_seconds(src):
        # As in the ski-rental problem: compile once the default path has cost this
        # process as much as compiling would (never more than twice the best choice
        # made in hindsight); a model run a few times in a script never pays for it.
        return Tier(
            None,
            "the runs so far were too short to pay for the C compiler; it starts in the "
            "background once they add up to its estimated compile time",
        )
    thread = threading.Thread(
        target=_build, args=(key, src, cc, folder), name=f"sd_model-cc-{key[:8]}", daemon=True
    )
    with _LOCK:
        if key in _PENDING:
            return Tier(None, "the C library is being compiled in the background")
        _PENDING[key] = thread
    thread.start()
    return Tier(
        None,
        "the C library is being compiled in the background (this run is too short to "
        "wait for it; later runs use it)",
    )


def wait_for_background() -> None:
    """Wait until every background compile of this process has finished (tests, scripts)."""
    while True:
        with _LOCK:
            threads = list(_PENDING.values())
        if not threads:
            return
        for t in threads:
            t.join()


def _failed_note(reason: str) -> str:
    return f"the C compiler could not build the model ({reason})"


def _after_build(key: str, folder: pathlib.Path | None) -> Tier:
    with _LOCK:
        if key in _FAILED:
            return Tier(None, _failed_note(_FAILED[key]), failed=True)
    path = _BUILT.get(key) or (folder / f"sdc_{key}.so" if folder is not None else None)
    if path is None or not path.exists():
        return Tier(None, "the C library could not be written")
    return _load(key, path)


def _build(key: str, src: CSource, cc: tuple[str, str], folder: pathlib.Path | None) -> None:
    """Compile ``src`` to ``<folder>/sdc_<key>.so`` (atomically), or record why not."""
    try:
        persist = folder is not None
        where = (
            folder if folder is not None else pathlib.Path(tempfile.mkdtemp(prefix="sd_model_c_"))
        )
        if persist:
            _sweep_stale(where)
        stem = f"sdc_{key}.{os.getpid()}.{threading.get_ident()}"
        c_file = where / f"{stem}.c"
        tmp_lib = where / f"{stem}.so.tmp"
        c_file.write_text(src.src)
        try:
            proc = subprocess.run(
                [cc[0], *FLAGS, "-o", str(tmp_lib), str(c_file), "-lm"],
                capture_output=True,
                text=True,
                timeout=600,
                check=False,
            )
            ok = proc.returncode == 0 and tmp_lib.exists()
            reason = "" if ok else _first_error(proc.stderr) or f"exit status {proc.returncode}"
        except subprocess.TimeoutExpired:
            ok, reason = False, "the compiler took more than 10 minutes"
        except OSError as exc:
            # the compiler vanished or cannot run: a fact of this machine, not of the model
            with _LOCK:
                _FAILED[key] = f"{cc[0]} could not be run ({exc})"
            return
        finally:
            c_file.unlink(missing_ok=True)
        final = where / f"sdc_{key}.so"
        if ok:
            tmp_lib.replace(final)
            if not persist:
                _BUILT[key] = final
            return
        tmp_lib.unlink(missing_ok=True)
        with _LOCK:
            _FAILED[key] = reason
        if persist:
            note = where / f"{stem}.failed.tmp"
            note.write_text(reason + "\n")
            note.replace(final.with_suffix(".failed"))
    except OSError as exc:
        with _LOCK:
            _FAILED.setdefault(key, f"the C library could not be written ({exc})")
    finally:
        with _LOCK:
            _PENDING.pop(key, None)


def _first_error(stderr: str) -> str:
    lines = [ln.strip() for ln in stderr.splitlines() if "error" in ln.lower()]
    return (lines[0] if lines else stderr.strip().splitlines()[0] if stderr.strip() else "")[:300]


def _replace_untrusted(path: pathlib.Path) -> bool:
    """False when ``path`` was removed because another user wrote it.

    The folder is the user's own and private (:func:`_cache_folder`): such a file was put
    there by root (or by a mistake); it is removed and compiled again.
    """
    from sd_model.translate import written_by_someone_else

    if not written_by_someone_else(path):
        return True
    try:
        path.unlink()
    except OSError:
        return True  # still there: _load refuses it, naming why
    return False


def _load(key: str, path: pathlib.Path) -> Tier:
    from sd_model.translate import written_by_someone_else

    why = written_by_someone_else(path)
    if why:
        # loading runs the library's code: never one that someone else could have written
        return Tier(None, f"the C library {path.name} is not loaded: {why}")
    try:
        lib = ctypes.CDLL(str(path))
        abi = lib.sd_abi
        abi.restype = ctypes.c_int64
        abi.argtypes = []
        if abi() != SD_ABI:
            return Tier(None, f"the cached C library {path.name} has another ABI version")
        fn = lib.sd_run
    except (OSError, AttributeError) as exc:
        return Tier(None, f"the C library {path.name} could not be loaded ({exc})")
    i64, f64, ptr = ctypes.c_int64, ctypes.c_double, ctypes.c_void_p
    fn.restype = i64
    fn.argtypes = [i64, i64, i64, i64, f64, f64, *([ptr] * 11)]
    with _LOCK:
        _LIBS[key] = fn
        _HANDLES[key] = lib
    return Tier(fn, "")


def _ptr(a: np.ndarray) -> int:
    # the array interface is ~10x cheaper than ``a.ctypes.data`` (hundreds of arguments)
    return int(a.__array_interface__["data"][0])


def call(
    fn: Callable[..., int],
    *,
    scheme: int,
    batch: int,
    n_state: int,
    n_steps: int,
    t0: float,
    dt: float,
    control: tuple[float, float, float],
    offs: np.ndarray,
    nord: np.ndarray,
    arrays: list[np.ndarray],
    shared: list[bool],
    work: np.ndarray,
    save: np.ndarray,
    y: np.ndarray,
    out: np.ndarray,
    obs: list[np.ndarray],
) -> tuple[int, float, float]:
    """Run ``sd_run``; returns (first bad state index or -1, its time, its value).

    Every array must be C-contiguous with the dtype the ABI names (float64, int64 for
    ``offs``/``nord``, uint8 for ``save``); ``y`` is overwritten. ``shared[k]`` says
    whether ``arrays[k]`` was, as bound, one row broadcast over its leading axes.
    """
    dims = np.asarray(
        [
            d
            for a, one in zip(arrays, shared, strict=True)
            for d in (a.shape[0] if a.ndim else 1, a.shape[-1] if a.ndim else 1, int(one))
        ],
        dtype=np.int64,
    )
    dims = dims if dims.size else np.zeros(3, np.int64)
    ctl = np.asarray(control, dtype=np.float64)
    argv = (ctypes.c_void_p * max(len(arrays), 1))(*[_ptr(a) for a in arrays])
    obsv = (ctypes.c_void_p * max(len(obs), 1))(*[_ptr(o) for o in obs])
    bad = np.zeros(2)
    status = fn(
        scheme,
        batch,
        n_state,
        n_steps,
        t0,
        dt,
        _ptr(ctl),
        _ptr(offs),
        _ptr(nord),
        _ptr(dims),
        ctypes.addressof(argv),
        _ptr(work),
        _ptr(save),
        _ptr(y),
        _ptr(out),
        ctypes.addressof(obsv),
        _ptr(bad),
    )
    return int(status), float(bad[0]), float(bad[1])


def arg_shapes(a: CArg, prog: Program, batch: int) -> tuple[int, ...] | None:
    """The shape argument ``a`` is passed with (None: as bound, leading and last axes free)."""
    if a.kind == "v":
        return (batch, *prog.elements[int(a.key)].shape)
    if a.kind == "o":
        return (batch, *prog.statefuls[int(a.key)].ctx.shape)
    return None


def constant_column(value: np.ndarray, n_times: int) -> np.ndarray:
    """``value`` repeated ``n_times`` along a new first axis, as a read-only view.

    What ``np.broadcast_to`` gives, at a quarter of its cost (a model has hundreds of
    constants, each a column of every result).
    """
    if value.flags.c_contiguous and not value.flags.writeable:
        return np.ndarray((n_times, *value.shape), value.dtype, value, 0, (0, *value.strides))
    return np.broadcast_to(value, (n_times, *value.shape))
