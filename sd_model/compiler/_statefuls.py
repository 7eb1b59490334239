"""The stateful constructs: one frozen description per kind, in one table.

Everything the compiler, the NumPy emitter, the numba kernel and the bound system need
to know about INTEG, SMOOTH, DELAY, DELAY N, DELAY FIXED, TREND, FORECAST, SAMPLE IF
TRUE, INITIAL and ACTIVE INITIAL is written here once (as scipy's ``_ivp`` keeps one
``METHODS`` table): which PySD structures lower to the kind and which of their fields
become its arguments (roles), which roles each phase reads, whether the kind carries
state (and whether that state moves in Euler steps only), how its state block is laid
out, and the source each emitter writes for it.

A new stateful construct is one more :class:`StatefulKind` in :data:`KINDS`.

Emission templates receive the already emitted sources of the arguments:

* NumPy (:mod:`sd_model.compiler._emit_numpy`): ``a[role]`` is an expression over the
  batch; the generated names are ``z<j>`` (initial state), ``o<j>`` (the value read
  by the model), ``s<j>`` (the state block shaped ``QS<j>``), ``n<j>``/``N<j>`` (order
  at init / bound), ``d<j>``/``w<j>`` (delay times), ``_D``/``_N`` (derivative, next
  Euler state) and ``SL<j>`` (the block's slice).
* numba (:mod:`sd_model.compiler._kernel`): a :class:`KernelSlot` gives the flat
  position of the current cell (``base``), the cells per stage (``size``) and a callback
  emitting one argument's scalar source for that cell.

Semantics are PySD's (``pysd/py_backend/statefuls.py``), including the DELAY order
reduction when ``order * TIME STEP`` exceeds the delay time.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from sd_model._errors import UnsupportedFeatureError
from sd_model.compiler import _runtime

Args = Mapping[str, str]


@dataclass(frozen=True)
class KernelSlot:
    """One cell of a stateful object inside the numba kernel.

    Attributes
    ----------
    j : int
        Index of the stateful object.
    base : str
        Source of the flat index of the cell's first stage in ``y``.
    size : int
        Cells per stage (the state block is stage-major).
    arg : callable
        ``arg(role)`` emits the scalar source of an argument for this cell.
    saved : callable
        ``saved()`` is the source of the value fixed at initialisation (INITIAL).
    """

    j: int
    base: str
    size: int
    arg: Callable[[str], str]
    saved: Callable[[], str]


@dataclass(frozen=True)
class Layout:
    """A state block at the initial time: ``z`` shaped ``(B, [stages,] *cells)``."""

    z: np.ndarray
    order: int | None = None  # N<j>: stages of a SMOOTH/DELAY, length of a DELAY FIXED pipe
    stages: int | None = None  # leading axis of the block (None: one value per cell)


LayoutFn = Callable[[Mapping[str, Any], int, str, float], Layout]


@dataclass(frozen=True)
class StatefulKind:
    """What one stateful construct means, for every stage of the pipeline.

    Attributes
    ----------
    name : str
        The kind (``"smooth"``); ``label`` is how state labels and messages show it.
    structures : tuple of str
        PySD abstract-syntax classes lowered to this kind (ACTIVE INITIAL is a call).
    fields : tuple of str
        The structure's fields that become arguments (roles), in order.
    init_roles, dyn_roles, ddt_roles : tuple of str
        Roles read at initialisation, when the value is read during the run, and by the
        derivative (or Euler step): the dependency edges of the three phases.
    time_dependent : bool
        False when the value is fixed at initialisation (INITIAL).
    full_value : bool
        The value ``o<j>`` already has the element's full shape (no broadcast needed).
    discrete : bool
        The state moves only in Euler steps (DELAY FIXED, SAMPLE IF TRUE): fixed-step
        methods only.
    stock : bool
        A stock (INTEG): its state is labelled by the element's own name, and what its
        derivative reads (``ddt_roles``) are the model's flows.
    layout : callable or None
        ``layout(init_values, j, label, time_step)`` -> :class:`Layout`; None for kinds
        without state.
    np_init, np_value, np_ddt, np_step : callable
        NumPy source lines: initial state and value; value during the run; derivative;
        the discrete part of an Euler step.
    kernel_value, kernel_ddt, kernel_step : callable or None
        numba source: the value (an expression); derivative lines; Euler-step lines.
    """

    name: str
    label: str
    structures: tuple[str, ...]
    fields: tuple[str, ...]
    init_roles: tuple[str, ...]
    dyn_roles: tuple[str, ...]
    ddt_roles: tuple[str, ...]
    np_init: Callable[[int, Args], list[str]]
    np_value: Callable[[int, Args], list[str]]
    kernel_value: Callable[[KernelSlot], str]
    layout: LayoutFn | None = None
    np_ddt: Callable[[int, Args], list[str]] | None = None
    np_step: Callable[[int, Args], list[str]] | None = None
    kernel_ddt: Callable[[KernelSlot], list[str]] | None = None
    kernel_step: Callable[[KernelSlot], list[str]] | None = None
    time_dependent: bool = True
    full_value: bool = False
    discrete: bool = False
    stock: bool = False

    @property
    def has_state(self) -> bool:
        """True when the kind owns a block of the state vector."""
        return self.layout is not None


# ---------------------------------------------------------------------------- layouts
def _plain_layout(init: Mapping[str, Any], j: int, label: str, time_step: float) -> Layout:
    return Layout(init[f"z{j}"])


def _smooth_layout(init: Mapping[str, Any], j: int, label: str, time_step: float) -> Layout:
    n = int(init[f"n{j}"])
    return Layout(init[f"z{j}"], n, n)


def _delay_layout(init: Mapping[str, Any], j: int, label: str, time_step: float) -> Layout:
    n = int(init[f"n{j}"])
    # PySD reduces the order until order * TIME STEP fits in the delay time
    dmin = float(np.min(init[f"d{j}"]))
    while n > 1 and n * time_step > dmin:
        n -= 1
    return Layout(init[f"z{j}"][:, :n], n, n)


def _delayn_layout(init: Mapping[str, Any], j: int, label: str, time_step: float) -> Layout:
    first = _delay_layout(init, j, label, time_step)
    n = first.order
    assert n is not None
    # stage contents, then the remembered stage delay times
    z = np.concatenate([first.z, init[f"w{j}"][:, :n]], axis=1)
    return Layout(z, n, 2 * n)


def _delayfixed_layout(init: Mapping[str, Any], j: int, label: str, time_step: float) -> Layout:
    d = np.asarray(init[f"d{j}"])
    first = float(d.flat[0])
    if not np.all(d == first):
        raise UnsupportedFeatureError(
            f"DELAY FIXED in element '{label}' needs the same delay time in "
            "every scenario and subscript in the compiled backend."
        )
    n = round(max(first / time_step, 1) + _runtime.SMALL_VENSIM)
    z = np.repeat(np.asarray(init[f"z{j}"])[:, None], n, axis=1)
    return Layout(z, n, n)


# ---------------------------------------------------------------------------- NumPy
def _np_integ_init(j: int, a: Args) -> list[str]:
    return [f"z{j} = _rt.bc({a['initial']}, Q{j}).copy()", f"o{j} = z{j}"]


def _np_smooth_init(j: int, a: Args) -> list[str]:
    return [
        f"n{j} = _order({a['order']})",
        f"o{j} = _rt.bc({a['initial']}, Q{j})",
        f"z{j} = _rt.stack(o{j}, n{j}, Q{j})",
    ]


def _np_delay_init(j: int, a: Args) -> list[str]:
    return [
        f"n{j} = _order({a['order']})",
        f"d{j} = _rt.bc({a['delay_time']}, Q{j})",
        f"o{j} = _rt.bc({a['initial']}, Q{j})",
        f"z{j} = _rt.stack(o{j} * d{j}, n{j}, Q{j})",
    ]


def _np_delayn_init(j: int, a: Args) -> list[str]:
    return [*_np_delay_init(j, a), f"w{j} = _rt.stack(d{j}, n{j}, Q{j})"]


def _np_delayfixed_init(j: int, a: Args) -> list[str]:
    return [
        f"d{j} = _rt.bc({a['delay_time']}, Q{j})",
        f"o{j} = _rt.bc({a['initial']}, Q{j})",
        f"z{j} = o{j}",
    ]


def _np_trend_init(j: int, a: Args) -> list[str]:
    return [
        f"z{j} = _rt.bc(({a['input']}) / (1 + ({a['initial_trend']}) * "
        f"({a['average_time']})), Q{j})",
        f"o{j} = _rt.zidz(({a['input']}) - z{j}, ({a['average_time']}) * np.abs(z{j}))",
    ]


def _np_forecast_init(j: int, a: Args) -> list[str]:
    return [
        f"z{j} = _rt.bc(({a['input']}) / (1 + ({a['initial_trend']})), Q{j})",
        f"o{j} = ({a['input']}) * (1 + _rt.zidz(({a['input']}) - z{j}, "
        f"({a['average_time']}) * z{j}) * ({a['horizon']}))",
    ]


def _np_initial_init(j: int, a: Args) -> list[str]:
    return [f"o{j} = _rt.bc({a['initial']}, Q{j})"]


def _np_trend_value(j: int, a: Args) -> list[str]:
    return [f"o{j} = _rt.zidz(({a['input']}) - s{j}, ({a['average_time']}) * np.abs(s{j}))"]


def _np_forecast_value(j: int, a: Args) -> list[str]:
    return [
        f"o{j} = ({a['input']}) * (1 + _rt.zidz(({a['input']}) - s{j}, "
        f"({a['average_time']}) * s{j}) * ({a['horizon']}))"
    ]


def _np_block_ddt(role: str) -> Callable[[int, Args], list[str]]:
    # a view of the block (splitting the contiguous last axis never copies)
    return lambda j, a: [f"_D[:, SL{j}].reshape(Q{j})[...] = {a[role]}"]


def _np_smooth_ddt(j: int, a: Args) -> list[str]:
    if a["order"] == "1.0":
        # first order: no stage shifting needed
        return [
            f"_D[:, SL{j}].reshape(QS{j})[:, 0] = (({a['input']}) - s{j}[:, 0]) / "
            f"({a['smooth_time']})"
        ]
    return [
        f"_D[:, SL{j}] = _rt.smooth_ddt(s{j}, {a['input']}, {a['smooth_time']}, N{j})"
        ".reshape(_B, -1)"
    ]


def _np_average_ddt(j: int, a: Args) -> list[str]:
    return [f"_D[:, SL{j}].reshape(Q{j})[...] = (({a['input']}) - s{j}) / ({a['average_time']})"]


# ---------------------------------------------------------------------------- numba
def _k_stage(s: KernelSlot, stage: str) -> str:
    return f"y[{s.base} + ({stage}) * {s.size}]"


def _k_last(s: KernelSlot) -> str:
    return f"y[{s.base} + (NORD[{s.j}] - 1) * {s.size}]"


def _k_trend_value(s: KernelSlot) -> str:
    inp, at = s.arg("input"), s.arg("average_time")
    return f"_k_zidz(({inp}) - y[{s.base}], ({at}) * abs(y[{s.base}]))"


def _k_forecast_value(s: KernelSlot) -> str:
    inp, at, hz = s.arg("input"), s.arg("average_time"), s.arg("horizon")
    return f"(({inp}) * (1 + _k_zidz(({inp}) - y[{s.base}], ({at}) * y[{s.base}]) * ({hz})))"


def _k_sample_value(s: KernelSlot) -> str:
    cond, inp = s.arg("condition"), s.arg("input")
    return f"(({inp}) if ({cond}) != 0 else y[{s.base}])"


def _k_staged_ddt(kind: str) -> Callable[[KernelSlot], list[str]]:
    def emit(s: KernelSlot) -> list[str]:
        inp = s.arg("input")
        tm = s.arg("smooth_time" if kind == "smooth" else "delay_time")
        size = s.size
        lines = [f"inp = {inp}", f"tm = {tm}", f"p0 = {s.base}", f"n = NORD[{s.j}]"]
        lines.append("for s in range(n):")
        if kind == "smooth":
            return [
                *lines,
                f"    tgt = inp if s == 0 else y[p0 + (s - 1) * {size}]",
                f"    D[p0 + s * {size}] = (tgt - y[p0 + s * {size}]) * n / tm",
            ]
        return [
            *lines,
            f"    inflow = inp if s == 0 else y[p0 + (s - 1) * {size}] / tm",
            f"    D[p0 + s * {size}] = (inflow - y[p0 + s * {size}] / tm) * n",
        ]

    return emit


def _k_delayn_ddt(s: KernelSlot) -> list[str]:
    # PySD's DELAY N: stage contents, then the remembered stage delay times
    inp, tm = s.arg("input"), s.arg("delay_time")
    size = s.size
    return [
        f"inp = {inp}",
        f"tm = {tm}",
        f"p0 = {s.base}",
        f"n = NORD[{s.j}]",
        "prev_out = 0.0",
        "for s in range(n):",
        f"    ts = tm if s == 0 else y[p0 + (n + s - 1) * {size}]",
        f"    out_s = y[p0 + s * {size}] / ts",
        "    inflow = inp if s == 0 else prev_out",
        f"    D[p0 + s * {size}] = (inflow - out_s) * n",
        "    prev_out = out_s",
    ]


def _k_delayn_step(s: KernelSlot) -> list[str]:
    size = s.size
    return [
        f"tm = {s.arg('delay_time')}",
        f"p0 = {s.base}",
        f"n = NORD[{s.j}]",
        "for s in range(n - 1, 0, -1):",
        f"    ynew[p0 + (n + s) * {size}] = y[p0 + (n + s - 1) * {size}]",
        f"ynew[p0 + n * {size}] = tm",
    ]


def _k_delayfixed_step(s: KernelSlot) -> list[str]:
    size = s.size
    return [
        f"inp = {s.arg('input')}",
        f"p0 = {s.base}",
        f"n = NORD[{s.j}]",
        "for s in range(n - 1):",
        f"    ynew[p0 + s * {size}] = y[p0 + (s + 1) * {size}]",
        f"ynew[p0 + (n - 1) * {size}] = inp",
    ]


def _k_sample_step(s: KernelSlot) -> list[str]:
    cond, inp = s.arg("condition"), s.arg("input")
    return [f"p0 = {s.base}", f"ynew[p0] = ({inp}) if ({cond}) != 0 else y[p0]"]


def _k_average_ddt(s: KernelSlot) -> list[str]:
    inp, at = s.arg("input"), s.arg("average_time")
    return [f"D[{s.base}] = (({inp}) - y[{s.base}]) / ({at})"]


# ---------------------------------------------------------------------------- the table
_STAGED = ("input", "delay_time", "initial", "order")

KINDS: dict[str, StatefulKind] = {
    k.name: k
    for k in (
        StatefulKind(
            name="integ",
            label="INTEG",
            structures=("IntegStructure",),
            fields=("flow", "initial"),
            init_roles=("initial",),
            dyn_roles=(),
            ddt_roles=("flow",),
            layout=_plain_layout,
            np_init=_np_integ_init,
            np_value=lambda j, a: [f"o{j} = s{j}"],
            np_ddt=_np_block_ddt("flow"),
            kernel_value=lambda s: f"y[{s.base}]",
            kernel_ddt=lambda s: [f"D[{s.base}] = {s.arg('flow')}"],
            full_value=True,
            stock=True,
        ),
        StatefulKind(
            name="smooth",
            label="SMOOTH",
            structures=("SmoothStructure", "SmoothNStructure"),
            fields=("input", "smooth_time", "initial", "order"),
            init_roles=("initial", "order"),
            dyn_roles=(),
            ddt_roles=("input", "smooth_time"),
            layout=_smooth_layout,
            np_init=_np_smooth_init,
            np_value=lambda j, a: [f"o{j} = s{j}[:, -1]"],
            np_ddt=_np_smooth_ddt,
            kernel_value=_k_last,
            kernel_ddt=_k_staged_ddt("smooth"),
        ),
        StatefulKind(
            name="delay",
            label="DELAY",
            structures=("DelayStructure",),
            fields=_STAGED,
            init_roles=("initial", "delay_time", "order"),
            dyn_roles=("delay_time",),
            ddt_roles=("input", "delay_time"),
            layout=_delay_layout,
            np_init=_np_delay_init,
            np_value=lambda j, a: [f"o{j} = s{j}[:, -1] / ({a['delay_time']})"],
            np_ddt=lambda j, a: [
                f"_D[:, SL{j}] = _rt.delay_ddt(s{j}, {a['input']}, {a['delay_time']}, N{j})"
                ".reshape(_B, -1)"
            ],
            kernel_value=lambda s: f"({_k_last(s)} / ({s.arg('delay_time')}))",
            kernel_ddt=_k_staged_ddt("delay"),
        ),
        StatefulKind(
            name="delayn",
            label="DELAYN",
            structures=("DelayNStructure",),
            fields=_STAGED,
            init_roles=("initial", "delay_time", "order"),
            dyn_roles=("delay_time",),
            ddt_roles=("input", "delay_time"),
            layout=_delayn_layout,
            np_init=_np_delayn_init,
            np_value=lambda j, a: [
                f"o{j} = s{j}[:, N{j} - 1] / (({a['delay_time']}) if CONT else s{j}[:, N{j}])"
            ],
            np_ddt=lambda j, a: [
                f"_D[:, SL{j}] = _rt.delayn_ddt(s{j}, {a['input']}, {a['delay_time']}, N{j}, "
                "CONT).reshape(_B, -1)"
            ],
            np_step=lambda j, a: [
                f"_N[:, SL{j}] = _rt.delayn_times(_N[:, SL{j}].reshape(QS{j}), s{j}, "
                f"{a['delay_time']}, N{j}).reshape(_B, -1)"
            ],
            kernel_value=lambda s: f"({_k_last(s)} / {_k_stage(s, f'NORD[{s.j}]')})",
            kernel_ddt=_k_delayn_ddt,
            kernel_step=_k_delayn_step,
        ),
        StatefulKind(
            name="delayfixed",
            label="DELAY FIXED",
            structures=("DelayFixedStructure",),
            fields=("input", "delay_time", "initial"),
            init_roles=("initial", "delay_time"),
            dyn_roles=(),
            ddt_roles=("input",),
            layout=_delayfixed_layout,
            np_init=_np_delayfixed_init,
            np_value=lambda j, a: [f"o{j} = s{j}[:, 0]"],
            np_step=lambda j, a: [f"_N[:, SL{j}] = _rt.shift(s{j}, {a['input']}).reshape(_B, -1)"],
            # the oldest value of the pipe
            kernel_value=lambda s: f"y[{s.base}]",
            kernel_step=_k_delayfixed_step,
            full_value=True,
            discrete=True,
        ),
        StatefulKind(
            name="trend",
            label="TREND",
            structures=("TrendStructure",),
            fields=("input", "average_time", "initial_trend"),
            init_roles=("input", "average_time", "initial_trend"),
            dyn_roles=("input", "average_time"),
            ddt_roles=("input", "average_time"),
            layout=_plain_layout,
            np_init=_np_trend_init,
            np_value=_np_trend_value,
            np_ddt=_np_average_ddt,
            kernel_value=_k_trend_value,
            kernel_ddt=_k_average_ddt,
        ),
        StatefulKind(
            name="forecast",
            label="FORECAST",
            structures=("ForecastStructure",),
            fields=("input", "average_time", "horizon", "initial_trend"),
            init_roles=("input", "average_time", "horizon", "initial_trend"),
            dyn_roles=("input", "average_time", "horizon"),
            ddt_roles=("input", "average_time"),
            layout=_plain_layout,
            np_init=_np_forecast_init,
            np_value=_np_forecast_value,
            np_ddt=_np_average_ddt,
            kernel_value=_k_forecast_value,
            kernel_ddt=_k_average_ddt,
        ),
        StatefulKind(
            name="sampleiftrue",
            label="SAMPLE IF TRUE",
            structures=("SampleIfTrueStructure",),
            fields=("condition", "input", "initial"),
            init_roles=("initial",),
            dyn_roles=("condition", "input"),
            ddt_roles=("condition", "input"),
            layout=_plain_layout,
            np_init=_np_integ_init,
            np_value=lambda j, a: [f"o{j} = _rt.where({a['condition']}, {a['input']}, s{j})"],
            np_step=lambda j, a: [
                f"_N[:, SL{j}] = _rt.bc(_rt.where({a['condition']}, {a['input']}, s{j}), Q{j})"
                ".reshape(_B, -1)"
            ],
            kernel_value=_k_sample_value,
            kernel_step=_k_sample_step,
            full_value=True,
            discrete=True,
        ),
        StatefulKind(
            name="initial",
            label="INITIAL",
            structures=("InitialStructure",),
            fields=("initial",),
            init_roles=("initial",),
            dyn_roles=(),
            ddt_roles=(),
            np_init=_np_initial_init,
            np_value=lambda j, a: [],
            kernel_value=lambda s: s.saved(),
            time_dependent=False,
            full_value=True,
        ),
        StatefulKind(
            name="active_initial",
            label="ACTIVE INITIAL",
            structures=(),  # a call: ACTIVE INITIAL(active, initial)
            fields=("active", "initial"),
            init_roles=("initial",),
            dyn_roles=("active",),
            ddt_roles=(),
            np_init=_np_initial_init,
            np_value=lambda j, a: [f"o{j} = {a['active']}"],
            kernel_value=lambda s: s.arg("active"),
            full_value=True,
        ),
    )
}

# PySD structure class name -> the kind it lowers to
BY_STRUCTURE: dict[str, StatefulKind] = {s: k for k in KINDS.values() for s in k.structures}
