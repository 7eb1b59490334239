"""Exceptions and warnings raised by sd_model.

Every user-facing error derives from :class:`SDModelError`, so the CLI can print
one clear line for it instead of a traceback.
"""

from __future__ import annotations

import importlib
from types import ModuleType


class SDModelError(Exception):
    """Base class of errors caused by user input (model files, parameters, scenarios)."""


class ModelLoadError(SDModelError):
    """A model file could not be read or translated."""


class ParameterError(SDModelError, KeyError):
    """An override names an unknown parameter or has the wrong shape or type."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else ""


class ScenarioError(SDModelError):
    """A scenario file is malformed."""


class SettingsError(SDModelError, ValueError):
    """Invalid time or solver settings (negative step, final time before initial time...)."""


class IntegrationError(SDModelError):
    """The integration failed (NaN/inf, step-size collapse, solver failure)."""


class UnsupportedFeatureError(SDModelError):
    """A model uses a construct that a backend or method cannot run."""


class CompareError(SDModelError):
    """Runs cannot be compared, or a table cannot be made from them."""


class PlotError(SDModelError):
    """A figure cannot be drawn from the given results or options."""


class CalibrationError(SDModelError):
    """Calibration input is invalid (data, parameters, error models, options)."""


class CheckFileError(SDModelError):
    """A check file is malformed; the message names the file, the line and the fix."""


class MissingDependencyError(SDModelError, ImportError):
    """An optional dependency is not installed; the message names the extra to install."""


def import_optional(module: str, extra: str, purpose: str) -> ModuleType:
    """Import an optional dependency, or say which extra installs it.

    Parameters
    ----------
    module : str
        The module to import, e.g. ``"seaborn"`` or ``"matplotlib.pyplot"``.
    extra : str
        The extra of ``pyproject.toml`` that installs it, e.g. ``"plot"``.
    purpose : str
        What needs it, for the message (``"sd_model.plots"``).

    Returns
    -------
    types.ModuleType
        The imported module.

    Raises
    ------
    MissingDependencyError
        When ``module`` (or one of its own imports) is not installed.

    Examples
    --------
    >>> import_optional("json", "plot", "the example").__name__
    'json'
    """
    try:
        return importlib.import_module(module)
    except ModuleNotFoundError as exc:
        missing = exc.name or module
        raise MissingDependencyError(
            f"{purpose} needs {missing!r}, which is not installed; install the extra: "
            f"pip install 'sd_model[{extra}]' (or pip install -e '.[{extra}]' in a checkout)."
        ) from exc


class SDModelWarning(UserWarning):
    """Base class of sd_model's own warnings (errors in our test suite)."""
