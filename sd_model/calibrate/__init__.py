"""Fit models to data and forecast with uncertainty.

:func:`calibrate` fits constants to observed data (differential evolution and a
least-squares polish, both on the batched backend) and returns a :class:`Fit`;
:func:`sample_posterior` samples the posterior by ensemble MCMC (or bootstrap refits);
:func:`forecast_bands` runs the model over the draws and returns quantile bands;
:func:`backtest` scores rolling-origin forecasts against naive benchmarks.
"""

from __future__ import annotations

from sd_model.calibrate.bands import forecast_bands
from sd_model.calibrate.bootstrap import bootstrap
from sd_model.calibrate.errors import CalibrationError, ErrorModel
from sd_model.calibrate.fit import Fit, calibrate
from sd_model.calibrate.posterior import sample_posterior
from sd_model.calibrate.rolling_origin import Backtest, backtest

__all__ = [
    "Backtest",
    "CalibrationError",
    "ErrorModel",
    "Fit",
    "backtest",
    "bootstrap",
    "calibrate",
    "forecast_bands",
    "sample_posterior",
]
