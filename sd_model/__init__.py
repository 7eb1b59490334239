"""sd_model: system-dynamics forecasting with PySD, SciPy and xarray.

>>> import sd_model
>>> model = sd_model.load("models/example_regions.mdl")  # doctest: +SKIP
>>> ds = model.run(method="RK45")  # doctest: +SKIP

The public names and the submodules (``sd_model.plots``, ``sd_model.metrics``...) are
imported on first use: ``import sd_model`` (and the ``sd-model`` command, whose
``--help`` should answer at once) does not pay for NumPy, SciPy, xarray and PySD until
something needs them.
"""

from __future__ import annotations

import importlib
import sys
import types
from typing import TYPE_CHECKING, Any

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

if TYPE_CHECKING:
    from sd_model._version import __version__
    from sd_model.calibrate import (
        Backtest,
        ErrorModel,
        Fit,
        backtest,
        calibrate,
        forecast_bands,
        sample_posterior,
    )
    from sd_model.checks import CheckReport, check_model
    from sd_model.compare import compare, disparity_table, fit_table
    from sd_model.ema import to_ema
    from sd_model.model import Model, load
    from sd_model.options import SolverOptions, TimeGrid, TimeSettings
    from sd_model.results import open_results, to_table, write_results
    from sd_model.sampling import SampleSpec
    from sd_model.scenarios import Scenario
    from sd_model.sensitivity import sensitivity
    from sd_model.sweeps import sweep, sweep_scenario
    from sd_model.units import UnitsReport, check_units

__all__ = [
    "Backtest",
    "CheckReport",
    "ErrorModel",
    "Fit",
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
    "TimeSettings",
    "UnitsReport",
    "UnsupportedFeatureError",
    "__version__",
    "backtest",
    "calibrate",
    "check_model",
    "check_units",
    "compare",
    "disparity_table",
    "fit_table",
    "forecast_bands",
    "load",
    "open_results",
    "sample_posterior",
    "sensitivity",
    "sweep",
    "sweep_scenario",
    "to_ema",
    "to_table",
    "write_results",
]

# Public name -> the submodule that defines it, imported on first access.
_LAZY: dict[str, str] = {
    "Backtest": "sd_model.calibrate",
    "ErrorModel": "sd_model.calibrate",
    "Fit": "sd_model.calibrate",
    "backtest": "sd_model.calibrate",
    "calibrate": "sd_model.calibrate",
    "forecast_bands": "sd_model.calibrate",
    "sample_posterior": "sd_model.calibrate",
    "check_model": "sd_model.checks",
    "CheckReport": "sd_model.checks",
    "compare": "sd_model.compare",
    "disparity_table": "sd_model.compare",
    "fit_table": "sd_model.compare",
    "to_ema": "sd_model.ema",
    "SolverOptions": "sd_model.options",
    "TimeGrid": "sd_model.options",
    "TimeSettings": "sd_model.options",
    "Model": "sd_model.model",
    "load": "sd_model.model",
    "open_results": "sd_model.results",
    "to_table": "sd_model.results",
    "write_results": "sd_model.results",
    "sweep": "sd_model.sweeps",
    "sweep_scenario": "sd_model.sweeps",
    "SampleSpec": "sd_model.sampling",
    "Scenario": "sd_model.scenarios",
    "sensitivity": "sd_model.sensitivity",
    "check_units": "sd_model.units",
    "UnitsReport": "sd_model.units",
    # Read from the package metadata on first access: importlib.metadata costs tens of
    # milliseconds that `sd-model --help` would otherwise pay.
    "__version__": "sd_model._version",
}


def __getattr__(name: str) -> Any:
    """Import a public name, or a submodule such as ``plots``, on first access."""
    if name in _LAZY:
        value = getattr(importlib.import_module(_LAZY[name]), name)
    elif not name.startswith("_"):
        try:
            value = importlib.import_module(f"{__name__}.{name}")
        except ModuleNotFoundError as exc:
            if exc.name != f"{__name__}.{name}":
                raise  # the submodule exists but one of its own imports is missing
            raise AttributeError(f"module {__name__!r} has no attribute {name!r}") from None
    else:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))


class _Package(types.ModuleType):
    def __setattr__(self, name: str, value: Any) -> None:
        # Importing a submodule binds it to the package's attribute of the same name; for
        # `compare` that would hide the function `sd_model.compare` (the public API) behind
        # the module `sd_model.compare` whenever another module imported the latter first.
        if isinstance(value, types.ModuleType) and _LAZY.get(name) == value.__name__:
            value = getattr(value, name)
        super().__setattr__(name, value)


sys.modules[__name__].__class__ = _Package
