"""Frozen option objects accepted by ``Model.run``, sweeps and scenarios.

``SolverOptions`` (method and tolerances) and ``TimeGrid`` (a complete time axis) live in
:mod:`sd_model.integrate`, next to the method table; :class:`TimeSettings` is what a user
gives: any of the four Vensim control values, the others coming from the model file.

One vocabulary everywhere: ``method``, ``rtol``, ``atol``, ``max_step`` for the solver and
Vensim's ``initial_time``, ``final_time``, ``time_step``, ``saveper`` for time. Functions
that take the objects (``solver=``, ``time=``) also take these keywords as shorthand;
:func:`resolve_solver` and :func:`resolve_time` turn either into the objects, and refuse
both at once.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

from sd_model._errors import SettingsError
from sd_model.integrate import Method, SolverOptions, TimeGrid

if TYPE_CHECKING:
    from sd_model.model import Model

__all__ = ["SolverOptions", "TimeGrid", "TimeSettings", "resolve_solver", "resolve_time"]


@dataclass(frozen=True)
class TimeSettings:
    """Time settings replacing the model file's (``None`` keeps the file's value).

    Parameters
    ----------
    initial_time, final_time : float, optional
        Start and end of the simulation (Vensim's INITIAL TIME and FINAL TIME).
    time_step : float, optional
        Step of the fixed-step methods (TIME STEP).
    saveper : float, optional
        Interval between saved times (SAVEPER); when only ``time_step`` is given, the
        file's SAVEPER is kept while it is a multiple of the new step.

    Examples
    --------
    >>> TimeSettings(final_time=2050, time_step=0.25)
    TimeSettings(initial_time=None, final_time=2050, time_step=0.25, saveper=None)
    """

    initial_time: float | None = None
    final_time: float | None = None
    time_step: float | None = None
    saveper: float | None = None

    def __post_init__(self) -> None:
        for name, value in self.as_kwargs().items():
            if value is None:
                continue
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise SettingsError(f"{name} must be a number, got {value!r}.")
            if not math.isfinite(value):
                raise SettingsError(f"{name} must be finite, got {value!r}.")
        for name in ("time_step", "saveper"):
            value = getattr(self, name)
            if value is not None and not value > 0:
                raise SettingsError(f"{name} must be positive, got {value!r}.")

    def as_kwargs(self) -> dict[str, float | None]:
        """The settings as ``Model.time_grid`` keywords."""
        return {
            "initial_time": self.initial_time,
            "final_time": self.final_time,
            "time_step": self.time_step,
            "saveper": self.saveper,
        }


def resolve_solver(
    model: Model,
    solver: SolverOptions | None = None,
    *,
    method: Method | str | None = None,
    rtol: float | None = None,
    atol: float | None = None,
    max_step: float | None = None,
    jit: bool = False,
) -> SolverOptions:
    """The solver options of a run: ``solver``, or one built from the shorthand keywords.

    Parameters
    ----------
    model : Model
        Gives the default method (the one its file declares; see
        :meth:`Model.resolve_method`).
    solver : SolverOptions, optional
    method, rtol, atol, max_step : optional
        Shorthand for ``SolverOptions(method, rtol, atol, max_step)``; unset ones take
        the defaults (``rtol=atol=1e-6``).
    jit : bool
        Shorthand for ``method="euler-numba"`` when the method is ``"euler"``.

    Returns
    -------
    SolverOptions

    Raises
    ------
    SettingsError
        When ``solver`` and a shorthand keyword are both given, or a value is invalid.

    Examples
    --------
    >>> resolve_solver(model, method="RK45", rtol=1e-8)  # doctest: +SKIP
    SolverOptions(method='RK45', rtol=1e-08, atol=1e-06, max_step=None, first_step=None)
    """
    given = {
        k: v for k, v in {"rtol": rtol, "atol": atol, "max_step": max_step}.items() if v is not None
    }
    if solver is not None:
        if method is not None or given:
            raise SettingsError(
                "Give either solver=SolverOptions(...) or method=/rtol=/atol=/max_step=, not both."
            )
        options = solver
    else:
        options = SolverOptions(method=model.resolve_method(method), **given)
    if jit and options.method == "euler":
        options = dataclasses.replace(options, method="euler-numba")
    return options


def resolve_time(
    time: TimeSettings | None = None,
    *,
    initial_time: float | None = None,
    final_time: float | None = None,
    time_step: float | None = None,
    saveper: float | None = None,
) -> TimeSettings:
    """The time settings of a run: ``time``, or one built from the shorthand keywords.

    Parameters
    ----------
    time : TimeSettings, optional
    initial_time, final_time, time_step, saveper : float, optional
        Shorthand for ``TimeSettings(...)``.

    Returns
    -------
    TimeSettings

    Raises
    ------
    SettingsError
        When ``time`` and a shorthand keyword are both given.

    Examples
    --------
    >>> resolve_time(final_time=2050)
    TimeSettings(initial_time=None, final_time=2050, time_step=None, saveper=None)
    """
    keywords = TimeSettings(initial_time, final_time, time_step, saveper)
    if time is None:
        return keywords
    if keywords != TimeSettings():
        raise SettingsError(
            "Give either time=TimeSettings(...) or initial_time=/final_time=/time_step=/"
            "saveper=, not both."
        )
    return time
