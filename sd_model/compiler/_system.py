"""Bind a lowered :class:`Program` to overrides and a time grid: a runnable System.

The NumPy emitter (:mod:`sd_model.compiler._emit_numpy`) turns the program into three
generated functions: ``_init`` (values at the initial time, in initialisation order),
``_rhs`` (derivative or Euler step) and ``_obs`` (every variable at a saved time).
Here they are executed with the overrides and the time grid: constants are computed
once by ``_init`` and read by the other two as module globals; the state vector is
laid out by each stateful object's kind (:data:`sd_model.compiler._statefuls.KINDS`).

Arithmetic follows NumPy everywhere, as in the numba kernel: time and the control
variables are NumPy floats, so an expression of time alone (``1 / (5 - Time)``)
gives ``inf`` at time 5 instead of raising Python's ``ZeroDivisionError``. What is
still computed on Python floats (numeric literals only, ``1 / 0``) and raises is
reported as an :class:`~sd_model.IntegrationError` naming the variable.
"""

from __future__ import annotations

import contextlib
import math
import warnings
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
import xarray as xr

from sd_model._errors import ParameterError, SDModelWarning, UnsupportedFeatureError
from sd_model.compiler import _kernel, _random, _runtime
from sd_model.compiler._emit_numpy import Code
from sd_model.compiler._lowered import CONTROL_NAMES, Program, Stateful
from sd_model.compiler._statefuls import KINDS
from sd_model.integrate import TimeGrid, arithmetic_error, fixed_step_saves


def _order(x: Any) -> int:
    arr = np.asarray(x, dtype=float)
    first = float(arr.flat[0])
    if not np.all(arr == first):
        raise UnsupportedFeatureError(
            "The compiled backend needs the order of a SMOOTH N / DELAY N to be the same "
            "in every scenario and subscript."
        )
    return int(first)


class CompiledSystem:
    """A compiled model bound to a batch of overrides and a time grid.

    Implements :class:`sd_model.integrate.System`. The state vector is
    scenario-major: ``y.reshape(B, n_state)[b]`` is scenario ``b``.
    """

    def __init__(
        self,
        prog: Program,
        code_for: Any,
        overrides: Sequence[Mapping[str, object]],
        grid: TimeGrid,
        *,
        continuous: bool = False,
        kernel_for: Callable[[frozenset[int]], Any] | None = None,
        python_for: Callable[[Any], Any] | None = None,
        seed: int | None = None,
        stream_ids: Sequence[int] | None = None,
    ) -> None:
        if len(overrides) < 1:
            raise ParameterError("system() needs at least one overrides mapping (one scenario).")
        self._prog = prog
        self._kernel_for = kernel_for
        self._python_for = python_for
        #: Why :meth:`run_python` last returned None ("" when it did not).
        self.python_note = ""
        #: Why :meth:`run_euler` last returned None ("" when it did not).
        self.kernel_note = ""
        self.grid = grid
        self.batch = B = len(overrides)
        els = prog.elements
        consts, series, tables = self._parse_overrides(overrides)
        base_dynamic = code_for(frozenset()).dynamic
        for i in [*consts, *series]:
            if i in base_dynamic and els[i].kind != "data":
                el = els[i]
                raise ParameterError(
                    f"'{el.py_name}' ({el.name}) depends on time or on stocks; only constants "
                    "and lookups can be overridden."
                )
        forced = frozenset(i for i, per in series.items() if per)
        self._forced = forced
        code: Code = code_for(forced)
        self.code = code
        ns: dict[str, Any] = {
            "np": np,
            "_rt": _runtime,
            "_NAN": math.nan,
            "_INF": math.inf,
            "_B": B,
            "_order": _order,
            "TI": np.float64(grid.initial_time),
            "TF": np.float64(grid.final_time),
            "DT": np.float64(grid.time_step),
            # Adaptive methods integrate the continuous STEP/PULSE/DELAY N (see _runtime).
            "CONT": continuous,
            "HS": 0.0 if continuous else float(grid.time_step) / 2,
            "EPS": 0.0 if continuous else _runtime.SMALL_VENSIM,
            "SP": np.float64(grid.saveper),
        }
        ns.update(prog.consts)
        for e in els:
            ns[f"E{e.index}"] = (B, *e.shape)
            for k, comp in enumerate(e.components):
                if not comp.direct and comp.cells is not None:
                    ns[f"PE{e.index}_{k}"] = (slice(None), *comp.cells[0])
                    ns[f"PC{e.index}_{k}"] = (slice(None), *comp.cells[1])
                    ns[f"CS{e.index}_{k}"] = comp.ctx.shape
            if e.kind == "lookup":
                assert e.lookup_tables is not None
                lx, ly = tables.get(e.index, e.lookup_tables)
                ns[f"LX{e.index}"], ns[f"LY{e.index}"] = _compress(lx), _compress(ly)
        for sf in prog.statefuls:
            ns[f"Q{sf.index}"] = (B, *sf.ctx.shape)

        def ov(i: int, default: np.ndarray) -> np.ndarray:
            full = (B, *els[i].shape)
            if i not in consts and i not in series and _is_full(default, full):
                return default  # not overridden: no copy (the explorer moves one lever)
            out = np.array(np.broadcast_to(default, full), dtype=float)
            for b, val in consts.get(i, {}).items():
                out[b] = val
            for b, s in series.get(i, {}).items():
                out[b] = _interp_series(s, grid.initial_time)
            return out

        ns["_OV"] = ov
        #: The seed the RANDOM functions drew from (None: the model has none).
        self.seed = self._bind_random(ns, seed, stream_ids)
        exec(code.code, ns)  # generated only from the AST (see _build); no model text
        try:
            with np.errstate(all="ignore"):
                init = ns["_init"](np.float64(grid.initial_time))
        except ArithmeticError as exc:
            raise arithmetic_error(code.culprit(prog, exc), grid.initial_time, exc) from exc
        # constants become module globals of the dynamic functions
        for e in els:
            if e.kind != "lookup" and e.index not in code.dynamic:
                ns[f"v{e.index}"] = init[f"v{e.index}"]
        ts_base = {i: init[f"v{i}"] for i in forced}

        def ts(i: int, t: float) -> np.ndarray:
            out = ts_base[i].copy()
            for b, s in series[i].items():
                out[b] = _interp_series(s, t)
            return out

        ns["_TS"] = ts

        def ts_merge(i: int, t: float, default: np.ndarray) -> np.ndarray:
            out = np.array(np.broadcast_to(default, (B, *els[i].shape)), dtype=float)
            for b, s in series[i].items():
                out[b] = _interp_series(s, t)
            return out

        ns["_TSM"] = ts_merge
        # state layout
        offset = 0
        self._label_shapes: list[tuple[Stateful, tuple[int, ...]]] = []
        self._labels_cache: list[str] | None = None
        self._discrete: list[str] = []
        blocks = []
        for sf in prog.statefuls:
            j = sf.index
            spec = KINDS[sf.kind]
            if spec.layout is None:
                if not spec.time_dependent:
                    ns[f"o{j}"] = init[f"o{j}"]
                continue
            lay = spec.layout(init, j, sf.label, grid.time_step)
            z = lay.z
            if lay.order is not None:
                ns[f"N{j}"] = lay.order
            stages = () if lay.stages is None else (lay.stages,)
            ns[f"QS{j}"] = (B, *stages, *sf.ctx.shape)
            if spec.discrete:
                self._discrete.append(f"{spec.label} in '{sf.label}'")
            size = int(np.prod(ns[f"QS{j}"][1:], dtype=int))
            ns[f"SL{j}"] = slice(offset, offset + size)
            blocks.append((sf, offset, size, np.asarray(z, dtype=float).reshape(B, size)))
            self._label_shapes.append((sf, ns[f"QS{j}"][1:]))
            offset += size
        ns["NS"] = offset
        # RANDOM functions draw once per time step, like DELAY FIXED's updates
        self._discrete.extend(prog.randoms)
        self._ns = ns
        self.n_state = offset
        y0 = np.empty((B, offset))
        for _sf, off, size, z in blocks:
            y0[:, off : off + size] = z
        self._y0 = y0.reshape(-1)
        #: True inside :meth:`stepping`: the step methods skip their own ``np.errstate``.
        self._quiet = False
        self._rhs = ns["_rhs"]
        self._obs = ns["_obs"]
        self._init_values = init
        self._breakpoints = self._compute_breakpoints(init, code.dynamic)
        self._prepare_observe()

    def _bind_random(
        self, ns: dict[str, Any], seed: int | None, stream_ids: Sequence[int] | None
    ) -> int | None:
        """Give the generated code this batch's uniforms (one stream per scenario)."""
        prog = self._prog
        if not prog.random_cells:
            return None
        ids = list(range(self.batch)) if stream_ids is None else [int(i) for i in stream_ids]
        if len(ids) != self.batch:
            raise ParameterError(
                f"stream_ids has {len(ids)} entries for {self.batch} scenarios; give one "
                "stream identity per scenario."
            )
        if seed is None:
            seed = _random.fresh_seed()
        if int(seed) < 0 or min(ids) < 0:
            raise ParameterError(f"seed and stream ids must be non-negative, got {seed}, {ids}.")
        grid = self.grid
        uniforms = _random.Uniforms(
            int(seed), ids, prog.random_cells, grid.initial_time, grid.time_step
        )
        ns["_U"] = uniforms.at
        ns["_RND"] = _random
        return int(seed)

    # ------------------------------------------------------------------ overrides
    def _parse_overrides(
        self, overrides: Sequence[Mapping[str, object]]
    ) -> tuple[
        dict[int, dict[int, np.ndarray]],
        dict[int, dict[int, pd.Series]],
        dict[int, tuple[np.ndarray, np.ndarray]],
    ]:
        prog = self._prog
        consts: dict[int, dict[int, np.ndarray]] = {}
        series: dict[int, dict[int, pd.Series]] = {}
        lk: dict[int, dict[int, tuple[np.ndarray, np.ndarray]]] = {}
        for b, mapping in enumerate(overrides):
            for key, value in mapping.items():
                if key not in prog.by_py_name:
                    if key in CONTROL_NAMES:
                        raise ParameterError(
                            f"'{key}' is a control variable; set it through the time grid."
                        )
                    raise ParameterError(
                        f"Unknown parameter '{key}': the model has no constant or lookup with "
                        "that Python name."
                    )
                el = prog.elements[prog.by_py_name[key]]
                if el.kind == "lookup":
                    lk.setdefault(el.index, {})[b] = _lookup_override(el, value)
                    continue
                if el.kind == "data":
                    # data variables are time series already: any override replaces one
                    if not isinstance(value, pd.Series):
                        value = pd.Series([_const_override(el, value)], index=[0.0])
                    series.setdefault(el.index, {})[b] = value.sort_index()
                    continue
                if el.kind == "stock" or el.statefuls or el.uses_time:
                    raise ParameterError(
                        f"'{key}' ({el.name}) is not a constant and cannot be overridden."
                    )
                if isinstance(value, pd.Series):
                    series.setdefault(el.index, {})[b] = value.sort_index()
                else:
                    consts.setdefault(el.index, {})[b] = _const_override(el, value)
        # a constant that depends on something dynamic cannot be overridden either
        tables: dict[int, tuple[np.ndarray, np.ndarray]] = {}
        B = len(overrides)
        for i, per in lk.items():
            el = prog.elements[i]
            assert el.lookup_tables is not None
            dx, dy = el.lookup_tables
            cand = [per.get(b, (dx[0], dy[0])) for b in range(B)]
            n = max(c[0].shape[-1] for c in cand)
            xs = np.empty((B, *el.shape, n))
            ys = np.empty((B, *el.shape, n))
            for b, (x, y) in enumerate(cand):
                x = np.broadcast_to(x, (*el.shape, x.shape[-1]))
                y = np.broadcast_to(y, (*el.shape, y.shape[-1]))
                pad = n - x.shape[-1]
                xs[b] = np.concatenate([x, np.repeat(x[..., -1:], pad, axis=-1)], axis=-1)
                ys[b] = np.concatenate([y, np.repeat(y[..., -1:], pad, axis=-1)], axis=-1)
            tables[i] = (xs, ys)
        return consts, series, tables

    # ------------------------------------------------------------------ protocol
    @property
    def state_labels(self) -> Sequence[str]:
        """One label per entry of ``y``.

        Built on first use: only error messages need them, and on a subscripted model
        naming every cell costs more than a short run.
        """
        if self._labels_cache is None:
            labels = [lab for sf, shape in self._label_shapes for lab in _labels(sf, shape)]
            if self.batch > 1:
                labels = [f"{b}:{lab}" for b in range(self.batch) for lab in labels]
            self._labels_cache = labels
        return self._labels_cache

    @contextlib.contextmanager
    def stepping(self) -> Iterator[None]:
        """Enter ``np.errstate`` once around a whole fixed-step loop.

        Entering it costs about as much as a scalar model's step; inside this context
        :meth:`euler_step`, :meth:`derivative` and :meth:`observe` skip their own.
        """
        if self._quiet:
            yield
            return
        with np.errstate(all="ignore"):
            self._quiet = True
            try:
                yield
            finally:
                self._quiet = False

    @property
    def breakpoints(self) -> Sequence[float]:
        """Times of STEP/PULSE/RAMP edges (union over the batch)."""
        return self._breakpoints

    @property
    def discrete_elements(self) -> Sequence[str]:
        """DELAY FIXED / SAMPLE IF TRUE elements (fixed-step Euler only)."""
        return self._discrete

    def initial_state(self) -> np.ndarray:
        """The state at the initial time, scenario-major."""
        return self._y0.copy()

    @property
    def observed_size(self) -> int:
        """Number of values :meth:`observe` returns at each saved time (all scenarios)."""
        return self.batch * sum(math.prod(e.shape) for e in self._observed)

    def derivative(self, t: float, y: np.ndarray) -> np.ndarray:
        """``dy/dt`` at ``(t, y)``."""
        try:
            if self._quiet:
                return np.asarray(self._rhs(np.float64(t), y, None))
            with np.errstate(all="ignore"):
                return np.asarray(self._rhs(np.float64(t), y, None))
        except ArithmeticError as exc:
            raise arithmetic_error(self.code.culprit(self._prog, exc), t, exc) from exc

    def euler_step(self, t: float, y: np.ndarray, dt: float) -> np.ndarray:
        """One Euler step, updating discrete elements as PySD does."""
        try:
            if self._quiet:
                return np.asarray(self._rhs(np.float64(t), y, float(dt)))
            with np.errstate(all="ignore"):
                return np.asarray(self._rhs(np.float64(t), y, float(dt)))
        except ArithmeticError as exc:
            raise arithmetic_error(self.code.culprit(self._prog, exc), t, exc) from exc

    def observe(self, t: float, y: np.ndarray) -> dict[str, np.ndarray]:
        """Every variable at ``(t, y)``, each shaped ``(B, *dims)``."""
        try:
            if self._quiet:
                dyn = self._obs(np.float64(t), y)
            else:
                with np.errstate(all="ignore"):
                    dyn = self._obs(np.float64(t), y)
        except ArithmeticError as exc:
            raise arithmetic_error(self.code.culprit(self._prog, exc), t, exc) from exc
        out = self._constant_outputs.copy()
        if self._all_scalar:
            # Every observed variable is (B,): one stacking copies them all (values may
            # view y); a constant-valued one comes back as a scalar and fails the shape
            # check, so it takes the general path.
            try:
                stacked = np.array(dyn, dtype=float)
            except ValueError:
                stacked = None
            if stacked is not None and stacked.shape == self._scalar_shape:
                out.update(zip(self._observed_names, stacked, strict=True))
                return out
        for e, val in zip(self._observed, dyn, strict=True):
            full = (self.batch, *e.shape)
            if np.shape(val) == full:
                out[e.py_name] = np.array(val, dtype=float)  # a copy: values may view y
            else:
                out[e.py_name] = np.array(np.broadcast_to(val, full), dtype=float)
        return out

    def _prepare_observe(self) -> None:
        """Constants are observed once; their arrays are shared (read-only)."""
        prog = self._prog
        B = self.batch
        dynamic = set(self.code.obs_names)
        self._observed = [prog.elements[i] for i in self.code.obs_names]
        self._observed_names = [e.py_name for e in self._observed]
        self._all_scalar = bool(self._observed) and all(e.shape == () for e in self._observed)
        self._scalar_shape = (len(self._observed), B)
        consts: dict[str, np.ndarray] = {}
        for e in prog.elements:
            if e.kind == "lookup" or e.hidden or e.index in dynamic:
                continue
            value = self._ns[f"v{e.index}"]
            full = (B, *e.shape)
            if _is_full(value, full) and not value.flags.writeable:
                arr = value  # already read-only and shaped like the output
            else:
                arr = np.array(np.broadcast_to(value, full), dtype=float)
                arr.flags.writeable = False
            consts[e.py_name] = arr
        for py_name, short in CONTROL_NAMES.items():
            arr = np.full(B, float(self._ns[short]))
            arr.flags.writeable = False
            consts[py_name] = arr
        self._constant_outputs = consts

    # ------------------------------------------------------------------ numba kernel
    def run_euler(self) -> Any:
        """The whole Euler run in one numba-compiled kernel, or None when not possible.

        Gives the same result as ``integrate(system, grid, SolverOptions("euler"))``
        (an :class:`sd_model.integrate.IntegrationResult`) without a Python call per
        step. Returns None when numba is not installed, the model uses something the
        kernel does not cover (see :mod:`sd_model.compiler._kernel`) or numba cannot
        compile the kernel; :attr:`kernel_note` then says why. A compilation failure
        also warns (:class:`sd_model.SDModelWarning`) and is cached on disk.

        Raises
        ------
        sd_model.IntegrationError
            When the state becomes NaN or infinite.
        sd_model.SettingsError
            When the run is too large (see :func:`sd_model.integrate.check_run_size`).
        """
        from sd_model.integrate import (
            ColumnObservations,
            IntegrationResult,
            SolverOptions,
            check_run_size,
            nonfinite_error,
        )

        self.kernel_note = ""
        if self._forced:
            self.kernel_note = "constants replaced by time series are not covered by the kernel"
            return None
        if not _kernel.numba_available():
            self.kernel_note = "numba is not installed"
            return None
        # Before compiling (which can take minutes); the kernel takes a save flag per
        # step (one byte each).
        check_run_size(
            self.grid,
            SolverOptions(method="euler"),
            values_per_save=self.n_state + self.observed_size,
            bytes_per_step=1,
            system=self,
        )
        if self._kernel_for is not None:
            ks = self._kernel_for(self._forced)  # generated once per compiled model
        else:
            try:
                ks = _kernel.generate_kernel(self._prog, self.code.dynamic, self.code.obs_names)
            except _kernel.KernelUnsupported as exc:
                ks = exc
        if isinstance(ks, _kernel.KernelUnsupported):
            self.kernel_note = f"the numba kernel does not cover {ks}"
            return None
        fn = _kernel.compile_kernel(ks)
        if fn is None:
            return self._kernel_failed(_kernel.kernel_failure(ks))
        ns = self._ns
        g = self.grid
        B = self.batch
        n_steps = g.n_steps()
        dt = g.time_step
        fs = fixed_step_saves(g)  # the one save-time rule of every fixed-step path
        save = np.zeros(n_steps + 1, dtype=np.bool_)
        save[fs.steps] = True
        saved: list[float] = fs.times.tolist()
        n_save = int(save.sum())
        offs = np.zeros(len(self._prog.statefuls), dtype=np.int64)
        nord = np.ones(len(self._prog.statefuls), dtype=np.int64)
        for sf in self._prog.statefuls:
            if f"SL{sf.index}" in ns:
                offs[sf.index] = ns[f"SL{sf.index}"].start
            if f"N{sf.index}" in ns:
                nord[sf.index] = ns[f"N{sf.index}"]
        args = []
        for name in ks.args:
            value = ks.extra[name] if name in ks.extra else ns[name]
            if isinstance(value, np.ndarray):
                value = np.ascontiguousarray(value, dtype=value.dtype)
                if name[0] == "v" and not value.flags.writeable:
                    # constants not overridden are shared read-only views; the compiled
                    # kernel's signature (and its on-disk cache) is for writable arrays
                    value = value.copy()
            elif isinstance(value, int | float):
                value = float(value)
            args.append(value)
        out = np.empty((n_save, B * self.n_state))
        els = self._prog.elements
        obs = tuple(np.empty((n_save, B, *els[i].shape)) for i in ks.observed)
        y0 = self._y0.copy()
        with np.errstate(all="ignore"):
            result = _kernel.call_kernel(
                ks,
                fn,
                y0,
                float(g.initial_time),
                float(dt),
                n_steps,
                save,
                out,
                obs,
                B,
                self.n_state,
                offs,
                nord,
                *args,
            )
        if result is None:
            return self._kernel_failed(_kernel.kernel_failure(ks))
        status, where = result
        if status >= 0:
            t_bad = g.initial_time + status * dt
            labels = self.state_labels
            label = labels[where] if where < len(labels) else f"state[{where}]"
            raise nonfinite_error(label, t_bad, float(y0[where]))
        # column-wise: the kernel's output arrays are the columns (no per-time dicts)
        columns = {
            name: np.broadcast_to(arr, (n_save, *arr.shape))
            for name, arr in self._constant_outputs.items()
        }
        for m, i in enumerate(ks.observed):
            columns[els[i].py_name] = obs[m]
        return IntegrationResult(
            times=np.asarray(saved),
            states=out,
            observations=ColumnObservations(columns, n_save),
            nfev=n_steps,
            method="euler",
            columns=columns,
        )

    def _kernel_failed(self, reason: str | None) -> None:
        self.kernel_note = f"numba could not compile the kernel ({reason or 'unknown error'})"
        warnings.warn(
            f"{self.kernel_note}; running fixed-step Euler in NumPy instead (same results, "
            "slower). The failure is cached for this model and numba version (delete "
            "sdk_*.failed in the kernels folder of the sd_model cache to retry).",
            SDModelWarning,
            stacklevel=3,
        )
        return None

    # ------------------------------------------------------------------ Python tier
    def run_python(self, scheme: str = "euler") -> Any:
        """The whole fixed-step run of one scenario as generated plain-Python code, or None.

        Gives the result of ``integrate(system, grid, SolverOptions(scheme))`` on the
        NumPy path (an :class:`sd_model.integrate.IntegrationResult` with column-wise
        observations) without NumPy's per-operation cost, which dominates small models
        (see :mod:`sd_model.compiler._emit_python`). The source is generated once per
        compiled model and state layout. Returns None, with the reason in
        :attr:`python_note`, for a batch of more than one scenario, constants replaced
        by time series, an adaptive (continuous) system, a model larger than
        :data:`~sd_model.compiler._emit_python.CELL_LIMIT` cells (or subscripted
        enough for NumPy to be as fast), a construct the
        emitter does not write, or when Python raised where NumPy gives inf or NaN.

        Parameters
        ----------
        scheme : {"euler", "rk4"}
            The fixed-step scheme.

        Raises
        ------
        sd_model.IntegrationError
            When the state becomes NaN or infinite.
        """
        from sd_model.compiler import _emit_python, _run_python

        self.python_note = ""
        if self.batch != 1:
            self.python_note = "the Python tier runs one scenario at a time"
        elif self._forced:
            self.python_note = "constants replaced by time series are not covered"
        elif self._ns["CONT"]:
            self.python_note = "the system is bound for an adaptive method"
        elif scheme == "rk4" and self._discrete:
            self.python_note = "elements updated once per time step need method='euler'"
        if self.python_note:
            return None
        blocks = _emit_python.blocks_of(self._prog, self._ns)
        key = (scheme, tuple(sorted(blocks.items())))
        if self._python_for is not None:
            ps = self._python_for(key)  # generated once per compiled model and layout
        else:
            ps = _emit_python.source_or_reason(self._prog, self.code, blocks, self.n_state, scheme)
        if isinstance(ps, _emit_python.PythonUnsupported):
            self.python_note = f"the Python tier does not cover {ps}"
            return None
        result = _run_python.run_system(
            ps,
            prog=self._prog,
            ns=self._ns,
            y0=self._y0,
            grid=self.grid,
            labels=lambda: self.state_labels,
            constants=self._constant_outputs,
        )
        if result is None:
            self.python_note = "Python raised an arithmetic error where NumPy gives inf or NaN"
        return result

    # ------------------------------------------------------------------ C tier
    #: Why :meth:`run_c` last returned None ("" when it did not).
    c_note: str = ""

    def prepare_c(self, scheme: str = "euler") -> str:
        """Build (or load) this model's C library now, for a caller that will run often.

        The tier policy of :meth:`run_c` compiles only once a run, or the runs so far,
        would have cost as much as compiling; a caller that knows many runs will follow
        (the policy explorer: a run per lever move) pays the compile once up front instead.

        Parameters
        ----------
        scheme : {"euler", "rk4"}
            The fixed-step scheme the runs will use.

        Returns
        -------
        str
            '' when the library is ready; otherwise why the C tier will not run.
        """
        from sd_model.compiler import _cbuild

        if scheme not in ("euler", "rk4"):
            return f"the C tier runs the fixed-step schemes euler and rk4, not {scheme!r}"
        if self._forced or self._ns["CONT"]:
            return "the system is bound for time series or an adaptive method"
        src = _cbuild.c_source(self._prog, self.code.dynamic, self.code.obs_names)
        if isinstance(src, _cbuild.CUnsupported):
            return f"the C tier does not cover {src}"
        return _cbuild.library(src, run_seconds=math.inf).note

    def run_c(self, scheme: str = "euler") -> Any:
        """The whole fixed-step run in a C library built from the model, or None.

        Gives the result of ``integrate(system, grid, SolverOptions(scheme))`` (an
        :class:`sd_model.integrate.IntegrationResult`, equal to the NumPy path's within
        rounding) for every scenario of the batch at once. The library is generated by
        :mod:`sd_model.compiler._emit_c` and built and cached by
        :mod:`sd_model.compiler._cbuild`, whose tier policy decides whether this run
        waits for the compiler, starts it in the background, or returns None at once;
        :attr:`c_note` then says why (no compiler, a construct the C emitter does not
        cover, a compile failure, the tier turned off by ``SD_MODEL_TIER=python`` or ``numpy``).

        Parameters
        ----------
        scheme : {"euler", "rk4"}
            The fixed-step scheme.

        Raises
        ------
        sd_model.IntegrationError
            When the state becomes NaN or infinite.
        sd_model.SettingsError
            When the run is too large (see :func:`sd_model.integrate.check_run_size`).
        """
        from sd_model.compiler import _cbuild
        from sd_model.integrate import (
            ColumnObservations,
            IntegrationResult,
            SolverOptions,
            _skipped_message,
            check_run_size,
            nonfinite_error,
        )

        self.c_note = ""
        if scheme not in ("euler", "rk4"):
            self.c_note = f"the C tier runs the fixed-step schemes euler and rk4, not {scheme!r}"
            return None
        if self._forced:
            self.c_note = "constants replaced by time series are not covered by the C tier"
            return None
        if self._ns["CONT"]:
            self.c_note = "the system is bound for an adaptive method"
            return None
        if scheme == "rk4" and self._discrete:
            self.c_note = "elements updated once per time step need method='euler'"
            return None
        options = SolverOptions(method=scheme)  # type: ignore[arg-type]
        check_run_size(
            self.grid,
            options,
            values_per_save=self.n_state + self.observed_size,
            bytes_per_step=1,
            system=self,
        )
        src = _cbuild.c_source(self._prog, self.code.dynamic, self.code.obs_names)
        if isinstance(src, _cbuild.CUnsupported):
            self.c_note = f"the C tier does not cover {src}"
            return None
        g = self.grid
        B = self.batch
        n_steps = g.n_steps()
        cost = _cbuild.default_path_seconds(
            len(self.code.dynamic), src.work_cells, n_steps, B, scheme == "rk4"
        )
        tier = _cbuild.library(src, run_seconds=cost)
        if tier.lib is None:
            self.c_note = tier.note
            if tier.failed:
                warnings.warn(
                    f"{tier.note}; running on the next tier instead (same results, "
                    "slower). The failure is cached (delete sdc_*.failed in the c folder of "
                    "the sd_model cache to retry).",
                    SDModelWarning,
                    stacklevel=2,
                )
            return None
        ns = self._ns
        names = {"v": "v", "o": "o", "lx": "LX", "ly": "LY", "const": ""}
        arrays = []
        shared = []  # the table test of _runtime.lookup, before the copies below
        for a in src.args:
            arr = ns[f"{names[a.kind]}{a.key}"]
            shared.append(isinstance(arr, np.ndarray) and not any(arr.strides[:-1]))
            shape = _cbuild.arg_shapes(a, self._prog, B)
            if not (
                isinstance(arr, np.ndarray)
                and arr.dtype == np.float64
                and arr.flags.c_contiguous
                and (shape is None or arr.shape == shape)
            ):
                arr = np.asarray(arr, dtype=np.float64)
                if shape is not None and arr.shape != shape:
                    arr = np.broadcast_to(arr, shape)
                arr = np.ascontiguousarray(arr)
            arrays.append(arr)
        fs = fixed_step_saves(g)  # the one save-time rule of every fixed-step path
        save = np.zeros(n_steps + 1, dtype=np.uint8)
        save[fs.steps] = 1
        n_save = int(fs.steps.size)
        offs = np.zeros(max(len(self._prog.statefuls), 1), dtype=np.int64)
        nord = np.ones(max(len(self._prog.statefuls), 1), dtype=np.int64)
        for sf in self._prog.statefuls:
            if f"SL{sf.index}" in ns:
                offs[sf.index] = ns[f"SL{sf.index}"].start
            if f"N{sf.index}" in ns:
                nord[sf.index] = ns[f"N{sf.index}"]
        els = self._prog.elements
        out = np.empty((n_save, B * self.n_state))
        obs = [np.empty((n_save, B, *els[i].shape)) for i in src.observed]
        y = self._y0.copy()
        where, t_bad, value = _cbuild.call(
            tier.lib,
            scheme=0 if scheme == "euler" else 1,
            batch=B,
            n_state=self.n_state,
            n_steps=n_steps,
            t0=float(g.initial_time),
            dt=float(g.time_step),
            control=(float(ns["TI"]), float(ns["TF"]), float(ns["SP"])),
            offs=offs,
            nord=nord,
            arrays=arrays,
            shared=shared,
            work=np.full(src.work_size(B, self.n_state), np.nan),
            save=save,
            y=y,
            out=out,
            obs=obs,
        )
        if where >= 0:
            labels = self.state_labels
            label = labels[where] if where < len(labels) else f"state[{where}]"
            raise nonfinite_error(label, t_bad, value)
        columns: dict[str, np.ndarray] = {
            name: _cbuild.constant_column(arr, n_save)
            for name, arr in self._constant_outputs.items()
        }
        for m, i in enumerate(src.observed):
            columns[els[i].py_name] = obs[m]
        return IntegrationResult(
            times=fs.times,
            states=out,
            observations=ColumnObservations(columns, n_save),
            columns=columns,
            nfev=n_steps * (1 if scheme == "euler" else 4),
            method=scheme,
            messages=[_skipped_message(fs.skipped, g.time_step)] if fs.skipped.size else [],
        )

    # ------------------------------------------------------------------ breakpoints
    def _compute_breakpoints(self, init: Mapping[str, Any], dynamic: frozenset[int]) -> list[float]:
        g = self.grid
        out: set[float] = set()
        if not self._prog.breakpoints:
            return []
        env = dict(self._ns)
        env.update(init)
        env["_T"] = g.initial_time
        for bp, compiled in zip(self._prog.breakpoints, self.code.breakpoint_args, strict=True):
            if bp.dynamic or bp.refs & dynamic:
                continue
            try:
                with np.errstate(all="ignore"):
                    args = [
                        np.atleast_1d(np.asarray(eval(c, env), dtype=float)).ravel()
                        for c in compiled
                    ]
            except Exception:
                continue
            times: list[float] = []
            if bp.kind == "step":
                times += [*args[1], *(args[1] - g.time_step / 2)]
            elif bp.kind == "pulse":
                for s in args[0]:
                    times += [s, *(s + args[1])]
            elif bp.kind == "Xpulse":
                times += [*args[0], *(args[0] + g.time_step / 2)]
            elif bp.kind in ("pulse_train", "Xpulse_train"):
                widths = args[2] if bp.kind == "pulse_train" else np.array([g.time_step / 2])
                end = args[3] if bp.kind == "pulse_train" else np.array([g.final_time])
                for s in args[0]:
                    for r in args[1]:
                        if r <= 0:
                            times += [s, *(s + widths)]
                            continue
                        k = np.arange(0, min(10_000, int((g.final_time - s) / r) + 2))
                        starts = s + k * r
                        starts = starts[starts < min(float(np.max(end)), g.final_time) + r]
                        times += list(starts)
                        for w in widths:
                            times += list(starts + w)
            elif bp.kind == "ramp":
                times += [*args[1], *args[2]]
            elif bp.kind == "Xramp":
                times += list(args[1])
            out.update(float(x) for x in times if np.isfinite(x))
        return sorted(x for x in out if g.initial_time < x < g.final_time)


def _is_full(value: Any, shape: tuple[int, ...]) -> bool:
    """``value`` is a float array of exactly ``shape``."""
    return isinstance(value, np.ndarray) and value.dtype == np.float64 and value.shape == shape


def _compress(arr: np.ndarray) -> np.ndarray:
    """A table whose rows are all equal becomes a broadcast view of one row.

    The lookup helper recognises the zero strides and interpolates once.
    """
    flat = arr.reshape(-1, arr.shape[-1])
    if np.array_equal(flat, np.broadcast_to(flat[0], flat.shape), equal_nan=True):
        return np.broadcast_to(flat[0], arr.shape)
    return arr


def _labels(sf: Stateful, shape: tuple[int, ...]) -> list[str]:
    ctx = sf.ctx
    cells = [""]
    if ctx.coords:
        grids = np.meshgrid(*[np.arange(len(c)) for c in ctx.coords], indexing="ij")
        idx = [g.ravel() for g in grids]
        cells = [
            "[" + ",".join(ctx.coords[k][idx[k][m]] for k in range(len(ctx.coords))) + "]"
            for m in range(idx[0].size)
        ]
    if KINDS[sf.kind].stock:  # a stock: its own name
        return [f"{sf.label}{c}" for c in cells]
    kind = sf.kind.upper()
    if len(shape) > len(ctx.coords):
        return [f"{kind}({sf.label}){c}#{stage}" for stage in range(shape[0]) for c in cells]
    return [f"{kind}({sf.label}){c}" for c in cells]


def _interp_series(s: pd.Series, t: float) -> Any:
    x = np.asarray(s.index, dtype=float)
    vals = s.values
    if len(vals) and isinstance(vals[0], np.ndarray | xr.DataArray | list):
        y = np.stack([np.asarray(v, dtype=float) for v in vals])
        out = np.empty(y.shape[1:])
        flat = y.reshape(len(x), -1)
        out.reshape(-1)[:] = [np.interp(t, x, flat[:, k]) for k in range(flat.shape[1])]
        return out
    return np.interp(t, x, np.asarray(vals, dtype=float))


def _const_override(el: Any, value: object) -> np.ndarray:
    shape = el.shape
    if isinstance(value, xr.DataArray):
        if value.dims == tuple(el.dims) and all(
            value.indexes[d].equals(pd.Index(c)) for d, c in zip(el.dims, el.coords, strict=True)
        ):
            # already in the variable's dims and element order (what normalize_params and
            # parameter files give): labelling it again costs milliseconds per run
            return np.array(value.values, dtype=float)
        missing = [d for d in value.dims if d not in el.dims]
        if missing:
            raise ParameterError(
                f"Override of '{el.py_name}' has dims {missing} that the variable "
                f"({', '.join(el.dims) or 'scalar'}) does not have."
            )
        template = xr.DataArray(
            np.zeros(shape),
            dict(zip(el.dims, [list(c) for c in el.coords], strict=True)),
            list(el.dims),
        )
        try:
            value = value.broadcast_like(template).transpose(*el.dims)
            arr = np.asarray(
                value.sel({d: list(c) for d, c in zip(el.dims, el.coords, strict=True)}).values,
                dtype=float,
            )
        except (KeyError, ValueError) as exc:
            raise ParameterError(
                f"Override of '{el.py_name}' does not match its coords: {exc}"
            ) from exc
        return arr
    try:
        arr = np.asarray(value, dtype=float)
        return np.broadcast_to(arr, shape).copy()
    except (TypeError, ValueError) as exc:
        raise ParameterError(
            f"Override of '{el.py_name}' must be a number or an array of shape {shape}, "
            f"got {type(value).__name__}."
        ) from exc


def _lookup_override(el: Any, value: object) -> tuple[np.ndarray, np.ndarray]:
    if isinstance(value, pd.Series):
        s = value.sort_index()
        x = np.asarray(s.index, dtype=float)
        y = np.asarray([np.asarray(v, dtype=float) for v in s.values])
        y = np.moveaxis(y, 0, -1) if y.ndim > 1 else y
        return np.broadcast_to(x, (*el.shape, x.size)), np.broadcast_to(y, (*el.shape, x.size))
    if isinstance(value, int | float | np.number):
        return (np.zeros((*el.shape, 1)), np.full((*el.shape, 1), float(value)))
    if isinstance(value, tuple) and len(value) == 2:
        x = np.asarray(value[0], dtype=float)
        y = np.asarray(value[1], dtype=float)
        return np.broadcast_to(x, (*el.shape, x.size)), np.broadcast_to(y, (*el.shape, x.size))
    raise ParameterError(
        f"Override of lookup '{el.py_name}' must be a number, a pandas Series indexed by x, "
        f"or an (x, y) pair; got {type(value).__name__}."
    )
