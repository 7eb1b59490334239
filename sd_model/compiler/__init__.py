"""Compile PySD's abstract model into a batched, pure-NumPy system (and a numba kernel).

Pipeline
--------
::

    AbstractModel (PySD)
        │  _build.build_program      resolve names, macros, subscripts, external data
        ▼
    _lowered.Program                 typed, frozen: elements, components (Expr trees),
        │                            stateful objects, constants, breakpoints
        ├─► _emit_numpy.generate     NumPy source: _init, _rhs, _obs  ──► _system.CompiledSystem
        └─► _kernel.generate_kernel  one numba function for a whole Euler run (optional)

Both emitters read the lowered program and nothing else; neither imports the compiler.

Where things go
---------------
* **A new stateful construct** (a SMOOTH-like function with state): one
  :class:`~sd_model.compiler._statefuls.StatefulKind` row in ``_statefuls.KINDS``
  (PySD structure, argument roles, dependency roles per phase, state layout, NumPy and
  numba emission). The compiler, both emitters and the system read that row.
* **A new builtin function**: elementwise ones are one row in ``_builtins.FUNCTIONS``
  (arity, NumPy callable, numba callable; runtime helpers in ``_runtime`` and the
  ``_k_*`` helpers of ``_kernel``). Functions with their own structure (reductions,
  STEP/PULSE-like time functions, vector functions) get a lowering case in
  ``_build._Compiler._x_CallStructure``, a node in ``_lowered`` if none fits
  (``NumpyOnly`` when only the NumPy path supports it) and a case in each emitter.
  Random functions are one row in ``_builtins.RANDOM_FUNCTIONS`` (argument roles and
  distribution), lowered to ``_lowered.Random`` nodes; a new distribution is one
  inverse-distribution function in ``_random.DRAWS``.
* **A new emitter** (C, JAX, ...): a module that walks ``_lowered.Program`` like
  ``_emit_numpy`` and ``_kernel`` do, writing stateful objects through new fields of
  ``StatefulKind`` and builtins through a new column of ``_builtins.FUNCTIONS``.

How it runs
-----------
``CompiledModel.system(overrides, grid)`` (``_system``) binds the generated code to one
overrides mapping per scenario and a time grid and returns a :class:`CompiledSystem`
(the :class:`sd_model.integrate.System` protocol). Every array has a leading batch axis
(scenarios); the other axes follow the component's subscripts, and references to other
variables are re-indexed into them with precomputed index arrays. Only generated
identifiers and numeric literals appear in generated source, never text from the model
file. ``CompiledModel.source`` shows it.

* ``_init`` evaluates every variable at the initial time in initialisation order
  (``INITIAL``, ``ACTIVE INITIAL``, stocks whose initial values depend on others);
  constants are computed once there and read as globals afterwards;
* ``_rhs`` computes only what the derivatives need, or one Euler step (DELAY FIXED,
  SAMPLE IF TRUE, DELAY N's delay-time memory and non-negative stocks update there);
* ``_obs`` computes every time-dependent variable at a saved time.

State layout: ``y`` is scenario-major (``y.reshape(B, n_state)[b]`` is scenario
``b``); within a scenario, one block per stateful object in model order, laid out by
its kind (``StatefulKind.layout``): a stock, the ``n`` stages of a SMOOTH (stage
contents), of a DELAY (stage contents times the delay time, as PySD) followed for DELAY
N by the ``n`` remembered stage delay times, the pipe of a DELAY FIXED, the averaged
input of TREND and FORECAST, the sample of SAMPLE IF TRUE. ``state_labels`` names every
entry (``"Stock[elem]"``, ``"SMOOTH(name)[elem]#stage"``; ``"b:"`` prefixes for
batches).

Optional numba kernel: :meth:`CompiledSystem.run_euler` runs a whole fixed-step Euler
integration (and the observations at saved times) in one ``numba.njit`` function. Its
source is generated once per compiled model; the compiled function is cached on disk.
It returns None (and says why in ``CompiledSystem.kernel_note``) when numba is missing
or the model uses a construct the kernel does not cover; when numba cannot compile the
kernel (very large models) it also warns, and the failure is cached on disk so later
processes do not try again. Callers then fall back to ``sd_model.integrate.integrate``.

Semantics are copied from PySD's builder and runtime (``pysd/builders/python`` and
``pysd/py_backend``), including where PySD differs from Vensim (DELAY order reduction
when ``order * TIME STEP`` exceeds the delay time, STEP switching at ``t + dt/2``).
Constructs not covered raise :class:`sd_model.UnsupportedFeatureError` naming the
construct and the element: DATA read from other runs' files, GET TIME
VALUE of the computer clock, functions PySD does not implement either (SINTEG, DELAY
MATERIAL, RANDOM BETA, GAMMA, WEIBULL and the other random functions without a row in
``_builtins.RANDOM_FUNCTIONS``), and control variables that change during a run.

RANDOM functions draw one value per subscript cell per time step from a stream of
their own per scenario, seeded by ``(seed, scenario id)`` (``_random``); they update
once per step like DELAY FIXED, so they run with Euler only (NumPy path; the numba
kernel does not cover them).

Examples
--------
>>> from pysd.translators.vensim.vensim_file import VensimFile  # doctest: +SKIP
>>> vf = VensimFile("teacup.mdl"); vf.parse()                   # doctest: +SKIP
>>> cm = compile_model(vf.get_abstract_model(), model_dir=Path("."))  # doctest: +SKIP
>>> system = cm.system([{}, {"room_temperature": 20}], cm.default_grid())  # doctest: +SKIP
"""

from __future__ import annotations

import math
import pathlib
import re
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from sd_model._errors import UnsupportedFeatureError
from sd_model._meta import SDKind, VariableInfo
from sd_model.compiler import _emit_python, _runtime
from sd_model.compiler._build import build_program
from sd_model.compiler._emit_numpy import Code, expr_src, generate
from sd_model.compiler._kernel import KernelSource, KernelUnsupported, generate_kernel
from sd_model.compiler._lowered import CONTROL_NAMES, Program
from sd_model.compiler._statefuls import KINDS
from sd_model.compiler._system import CompiledSystem
from sd_model.integrate import TimeGrid

__all__ = ["CompiledModel", "CompiledSystem", "compile_model"]


class CompiledModel:
    """A model compiled to NumPy; :meth:`system` binds it to scenarios and a time grid.

    Attributes
    ----------
    variables : list of VariableInfo
        Every variable :meth:`CompiledSystem.observe` returns, with PySD's names.
    lookups : list of VariableInfo
        Lookup tables (overridable, not observed).
    coords : dict
        Subscript range name -> element names.
    control : dict
        Default ``initial_time``, ``final_time``, ``time_step``, ``saveper``.
    time_units : str
        The model's time unit.
    """

    def __init__(self, program: Program) -> None:
        self._program = program
        self._code: dict[frozenset[int], Code] = {}
        self._kernels: dict[frozenset[int], KernelSource | KernelUnsupported] = {}
        self._python: dict[Any, _emit_python.PythonSource | _emit_python.PythonUnsupported] = {}
        self.coords: dict[str, list[str]] = {k: list(v) for k, v in program.subscripts.items()}
        self.time_units: str = program.time_units
        # generate once now: reports circular definitions at compile time
        code = self._code_for(frozenset())
        self.variables: list[VariableInfo] = []
        self.lookups: list[VariableInfo] = []
        flows: set[int] = set()
        for sf in program.statefuls:
            if KINDS[sf.kind].stock:
                flows |= sf.ddt_refs
        for e in program.elements:
            if e.hidden:
                continue
            kind: SDKind
            if e.kind == "lookup":
                kind = "lookup"
            elif e.kind == "stock":
                kind = "stock"
            elif e.index not in code.dynamic:
                kind = "constant"
            elif e.index in flows:
                kind = "flow"
            else:
                kind = "auxiliary"
            info = VariableInfo(
                py_name=e.py_name,
                name=e.name,
                dims=tuple(e.dims),
                units=e.units,
                description=e.doc,
                sd_kind=kind,
                time_dependent=e.index in code.dynamic,
                limits=_limits(e.limits),
            )
            (self.lookups if kind == "lookup" else self.variables).append(info)
        for py_name in CONTROL_NAMES:
            self.variables.append(
                VariableInfo(
                    py_name=py_name,
                    name=py_name.upper().replace("_", " "),
                    sd_kind="constant",
                    time_dependent=False,
                    units=self.time_units,
                )
            )
        self.control: dict[str, float] = self._eval_control()

    def _code_for(self, forced: frozenset[int]) -> Code:
        if forced not in self._code:
            self._code[forced] = generate(self._program, forced)
        return self._code[forced]

    def _kernel_for(self, forced: frozenset[int]) -> KernelSource | KernelUnsupported:
        """The numba kernel's source (or why there is none), generated once."""
        if forced not in self._kernels:
            code = self._code_for(forced)
            try:
                ks: KernelSource | KernelUnsupported = generate_kernel(
                    self._program, code.dynamic, code.obs_names
                )
            except KernelUnsupported as exc:
                ks = exc
            self._kernels[forced] = ks
        return self._kernels[forced]

    def _python_for(self, key: Any) -> _emit_python.PythonSource | _emit_python.PythonUnsupported:
        """The Python tier's source for a scheme and state layout (or why none), once."""
        if key not in self._python:
            scheme, blocks = key
            n_state = sum(
                b.stages * math.prod(self._program.statefuls[j].ctx.shape) for j, b in blocks
            )
            self._python[key] = _emit_python.source_or_reason(
                self._program, self._code_for(frozenset()), dict(blocks), n_state, scheme
            )
        return self._python[key]

    @property
    def source(self) -> str:
        """The generated Python source (for inspection and debugging)."""
        code = self._code_for(frozenset())
        return code.init_src + "\n" + code.rhs_src + "\n" + code.obs_src

    def _eval_control(self) -> dict[str, float]:
        prog = self._program
        # The time grid is fixed when a run starts; a control variable that depends on
        # TIME or on the state would silently be frozen at its initial value.
        dynamic = self._code_for(frozenset()).dynamic
        control = {name: expr_src(e) for name, e in prog.control.items()}
        changing = [
            name
            for name, src in control.items()
            if re.search(r"\b_T\b", src) or prog.control_refs.get(name, set()) & dynamic
        ]
        if changing:
            listed = ", ".join(n.upper().replace("_", " ") for n in sorted(changing))
            raise UnsupportedFeatureError(
                f"The control variable(s) {listed} change during the run; sd_model fixes "
                "the time grid when the run starts. Make them constants (or pass "
                "final_time=/time_step=/saveper= to run)."
            )
        values = {"initial_time": 0.0, "final_time": 1.0, "time_step": 1.0, "saveper": 1.0}
        needs_model = any(prog.control_refs.values())
        env: dict[str, Any] = {
            "np": np,
            "_rt": _runtime,
            "_NAN": math.nan,
            "_INF": math.inf,
            "_B": 1,
        }
        env.update(prog.consts)
        if needs_model:
            grid = TimeGrid(0.0, 1.0, 1.0, 1.0)
            system = CompiledSystem(prog, self._code_for, [{}], grid)
            env.update(system._init_values)
        for _ in range(4):  # control vars may reference each other (SAVEPER = TIME STEP)
            for py_name, short in CONTROL_NAMES.items():
                env[short] = values[py_name]
            env["_T"] = values["initial_time"]
            for py_name, src in control.items():
                try:
                    with np.errstate(all="ignore"):
                        values[py_name] = float(np.asarray(eval(src, env)).ravel()[0])
                except Exception as exc:
                    raise UnsupportedFeatureError(
                        f"The control variable '{py_name}' could not be evaluated: {exc}"
                    ) from exc
        return values

    def coords_for(self, info: VariableInfo, elems: Sequence[str]) -> tuple[int, ...]:
        """Integer position of subscript elements ``elems`` along ``info.dims``."""
        return tuple(self.coords[d].index(e) for d, e in zip(info.dims, elems, strict=True))

    def default_grid(self) -> TimeGrid:
        """The model's own time grid (INITIAL TIME, FINAL TIME, TIME STEP, SAVEPER)."""
        c = self.control
        return TimeGrid(c["initial_time"], c["final_time"], c["time_step"], c["saveper"])

    def system(
        self,
        overrides: Sequence[Mapping[str, object]],
        grid: TimeGrid,
        *,
        continuous: bool = False,
        seed: int | None = None,
        stream_ids: Sequence[int] | None = None,
    ) -> CompiledSystem:
        """Bind the model to one overrides mapping per scenario and a time grid.

        Parameters
        ----------
        overrides : sequence of mapping
            One mapping per scenario (``B = len(overrides)``), from py_names of
            constants or lookups to a number, an array shaped like the variable,
            an ``xarray.DataArray`` (broadcast by dims), or a ``pandas.Series``
            indexed by time (a constant becomes a time series; a lookup gets a new
            table indexed by x).
        grid : TimeGrid
            Initial and final time, time step and saving interval.
        continuous : bool
            True for adaptive methods: STEP and PULSE switch exactly at their times
            and DELAY N uses the current delay time in every stage; False (fixed-step
            methods) reproduces PySD's and Vensim's grid devices.
        seed : int, optional
            Seed of the RANDOM functions' streams (see :mod:`sd_model.compiler._random`);
            None draws fresh entropy (recorded as ``system.seed``).
        stream_ids : sequence of int, optional
            One stream identity per scenario (default ``0 .. B-1``): a scenario draws
            the same numbers whatever batch it is run in when it keeps its identity.

        Returns
        -------
        CompiledSystem
            A :class:`sd_model.integrate.System` with ``B`` scenarios.

        Raises
        ------
        sd_model.ParameterError
            For unknown names, non-constant targets or badly shaped values.
        """
        return CompiledSystem(
            self._program,
            self._code_for,
            overrides,
            grid,
            continuous=continuous,
            kernel_for=self._kernel_for,
            python_for=self._python_for,
            seed=seed,
            stream_ids=stream_ids,
        )


def _limits(limits: Any) -> tuple[float | None, float | None]:
    out: list[float | None] = []
    for v in tuple(limits)[:2]:
        out.append(None if v is None or (isinstance(v, float) and math.isnan(v)) else float(v))
    while len(out) < 2:
        out.append(None)
    return (out[0], out[1])


def compile_model(abstract_model: Any, *, model_dir: pathlib.Path) -> CompiledModel:
    """Compile a PySD AbstractModel into a :class:`CompiledModel`.

    Parameters
    ----------
    abstract_model : pysd.translators.structures.abstract_model.AbstractModel
        The translated model (``VensimFile(...).get_abstract_model()``).
    model_dir : pathlib.Path
        Folder against which GET DIRECT / GET XLS data files are resolved.

    Returns
    -------
    CompiledModel

    Raises
    ------
    sd_model.UnsupportedFeatureError
        Naming the construct and the element the compiler does not cover.
    """
    return CompiledModel(build_program(abstract_model, pathlib.Path(model_dir)))
