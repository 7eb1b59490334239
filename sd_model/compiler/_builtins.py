"""Elementwise builtin functions: one row per function, for the compiler and both emitters.

A new elementwise Vensim/XMILE function is one more :class:`Builtin` in
:data:`FUNCTIONS`: its PySD name (as in ``pysd/builders/python/python_functions.py``),
its number of arguments, the NumPy callable the NumPy emitter writes (over arrays with
a leading batch axis; ``_rt`` is :mod:`sd_model.compiler._runtime`), and the scalar
callable the numba kernel writes (``_k_*`` helpers are defined in
:mod:`sd_model.compiler._kernel`; None: the kernel writes it inline).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Builtin:
    """An elementwise function: arity and the call each emitter writes."""

    arity: int
    numpy: str
    numba: str | None


FUNCTIONS: dict[str, Builtin] = {
    "abs": Builtin(1, "np.abs", "np.abs"),
    "exp": Builtin(1, "np.exp", "np.exp"),
    "sin": Builtin(1, "np.sin", "np.sin"),
    "cos": Builtin(1, "np.cos", "np.cos"),
    "tan": Builtin(1, "np.tan", "np.tan"),
    "arcsin": Builtin(1, "np.arcsin", "np.arcsin"),
    "arccos": Builtin(1, "np.arccos", "np.arccos"),
    "arctan": Builtin(1, "np.arctan", "np.arctan"),
    "sinh": Builtin(1, "np.sinh", "np.sinh"),
    "cosh": Builtin(1, "np.cosh", "np.cosh"),
    "tanh": Builtin(1, "np.tanh", "np.tanh"),
    "sqrt": Builtin(1, "np.sqrt", "np.sqrt"),
    "ln": Builtin(1, "np.log", "np.log"),
    "log": Builtin(2, "_rt.log", "_k_log"),
    "power": Builtin(2, "np.power", "np.power"),
    "min": Builtin(2, "np.minimum", "np.minimum"),
    "max": Builtin(2, "np.maximum", "np.maximum"),
    "integer": Builtin(1, "_rt.integer", "np.trunc"),
    "quantum": Builtin(2, "_rt.quantum", "_k_quantum"),
    "modulo": Builtin(2, "_rt.modulo", "_k_modulo"),
    "xidz": Builtin(3, "_rt.xidz", "_k_xidz"),
    "zidz": Builtin(2, "_rt.zidz", "_k_zidz"),
    "if_then_else": Builtin(3, "_rt.where", None),
}

# Reductions over subscripts (SUM(x[dim!])): NumPy ufunc; numba start value and step.
REDUCERS: dict[str, tuple[str, str, str]] = {
    "sum": ("np.add", "0.0", "{acc} + {x}"),
    "prod": ("np.multiply", "1.0", "{acc} * {x}"),
    "vmin": ("np.minimum", "np.inf", "np.minimum({acc}, {x})"),
    "vmax": ("np.maximum", "-np.inf", "np.maximum({acc}, {x})"),
    "vmin_xmile": ("np.minimum", "np.inf", "np.minimum({acc}, {x})"),
    "vmax_xmile": ("np.maximum", "-np.inf", "np.maximum({acc}, {x})"),
}

# STEP, PULSE, PULSE TRAIN, RAMP and their XMILE forms: they switch at times the
# integrators treat as breakpoints.
TIME_FUNCTIONS = ("step", "pulse", "Xpulse", "pulse_train", "Xpulse_train", "ramp", "Xramp")
