"""Frozen option objects accepted by ``Model.run``, sweeps and scenarios.

``SolverOptions`` (method and tolerances) and ``TimeGrid`` (a complete time axis) live in
:mod:`sd_model.integrate`, next to the method table; :class:`TimeSettings` is what a user
gives: any of the four Vensim control values, the others coming from the model file.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from sd_model._errors import SettingsError
from sd_model.integrate import SolverOptions, TimeGrid

__all__ = ["SolverOptions", "TimeGrid", "TimeSettings"]


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
