"""Elementwise builtin functions: one row per function, for the compiler and both emitters.

A new elementwise Vensim/XMILE function is one more :class:`Builtin` in
:data:`FUNCTIONS`: its PySD name (as in ``pysd/builders/python/python_functions.py``),
its number of arguments, the NumPy callable the NumPy emitter writes (over arrays with
a leading batch axis; ``_rt`` is :mod:`sd_model.compiler._runtime`), and the scalar
callable the numba kernel writes (``_k_*`` helpers are defined in
:mod:`sd_model.compiler._kernel`; None: the kernel writes it inline).
"""

from __future__ import annotations

import math
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


@dataclass(frozen=True)
class RandomBuiltin:
    """A random-number function: its distribution and how its arguments map onto it.

    ``roles`` names the model's arguments in order; ``"seed"`` is ignored (one stream per
    scenario replaces Vensim's per-call streams, as PySD ignores it too) and may be
    left out when it is the last argument.
    The distribution's parameters, in the order the runtime helper takes them, are
    ``RANDOM_PARAMS[dist]``; a role missing from ``roles`` takes its value from ``defaults``.
    """

    label: str
    dist: str
    roles: tuple[str, ...]
    defaults: tuple[tuple[str, float], ...] = ()


# Vensim's random functions (Vensim reference manual, "RANDOM ..."): every one draws
# from a distribution, shifted and stretched where it has those arguments, truncated
# to [min, max]. PySD implements the first four (python_functions.functionspace); POISSON and
# TRIANGULAR follow Vensim's definitions.
RANDOM_FUNCTIONS: dict[str, RandomBuiltin] = {
    "random_0_1": RandomBuiltin("RANDOM 0 1", "uniform", (), (("min", 0.0), ("max", 1.0))),
    "random_uniform": RandomBuiltin("RANDOM UNIFORM", "uniform", ("min", "max", "seed")),
    "random_normal": RandomBuiltin("RANDOM NORMAL", "normal", ("min", "max", "mean", "sd", "seed")),
    "random_exponential": RandomBuiltin(
        "RANDOM EXPONENTIAL", "exponential", ("min", "max", "shift", "stretch", "seed")
    ),
    "random_poisson": RandomBuiltin(
        "RANDOM POISSON",
        "poisson",
        ("min", "max", "mean", "shift", "stretch", "seed"),
    ),
    "random_triangular": RandomBuiltin(
        "RANDOM TRIANGULAR",
        "triangular",
        ("min", "max", "start", "peak", "end", "seed"),
    ),
    # XMILE 1.0's statistical functions (OASIS XMILE v1.0, 3.5.4), untruncated; PySD's
    # XMILE translator parses them as calls but implements none. LOGNORMAL is not here.
    "normal": RandomBuiltin(
        "NORMAL", "normal", ("mean", "sd", "seed"), (("min", -math.inf), ("max", math.inf))
    ),
    "exprnd": RandomBuiltin(
        "EXPRND",
        "exponential",
        ("stretch", "seed"),  # the mean
        (("min", 0.0), ("max", math.inf), ("shift", 0.0)),
    ),
    "poisson": RandomBuiltin(
        "POISSON",
        "poisson",
        ("mean", "seed"),
        (("min", 0.0), ("max", math.inf), ("shift", 0.0), ("stretch", 1.0)),
    ),
    "random": RandomBuiltin("RANDOM", "uniform", ("min", "max", "seed")),
}

#: Parameters of each distribution, in the order ``_runtime.RANDOM_DRAWS[dist]`` takes them.
RANDOM_PARAMS: dict[str, tuple[str, ...]] = {
    "uniform": ("min", "max"),
    "normal": ("min", "max", "mean", "sd"),
    "exponential": ("min", "max", "shift", "stretch"),
    "poisson": ("min", "max", "mean", "shift", "stretch"),
    "triangular": ("min", "max", "start", "peak", "end"),
}
