"""sd_model: system-dynamics forecasting with PySD, SciPy and xarray.

>>> import sd_model
>>> model = sd_model.load("models/example_regions.mdl")  # doctest: +SKIP
>>> ds = model.run(method="RK45")  # doctest: +SKIP
"""

from __future__ import annotations

from sd_model._errors import (
    IntegrationError,
    ModelLoadError,
    ParameterError,
    ScenarioError,
    SDModelError,
    SDModelWarning,
    SettingsError,
    UnsupportedFeatureError,
)
from sd_model.compare import compare, disparity_table, fit_table
from sd_model.ema import to_ema
from sd_model.integrate import SolverOptions, TimeGrid
from sd_model.model import Model, load
from sd_model.results import open_results, to_table, write_results
from sd_model.runner import sweep, sweep_scenario
from sd_model.sampling import SampleSpec
from sd_model.scenarios import Scenario

__version__ = "0.1.0"

__all__ = [
    "IntegrationError",
    "Model",
    "ModelLoadError",
    "ParameterError",
    "SDModelError",
    "SDModelWarning",
    "SampleSpec",
    "Scenario",
    "ScenarioError",
    "SettingsError",
    "SolverOptions",
    "TimeGrid",
    "UnsupportedFeatureError",
    "__version__",
    "compare",
    "disparity_table",
    "fit_table",
    "load",
    "open_results",
    "sweep",
    "sweep_scenario",
    "to_ema",
    "to_table",
    "write_results",
]
