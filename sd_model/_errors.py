"""Exceptions and warnings raised by sd_model.

Every user-facing error derives from :class:`SDModelError`, so the CLI can print
one clear line for it instead of a traceback.
"""

from __future__ import annotations


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


class SDModelWarning(UserWarning):
    """Base class of sd_model's own warnings (errors in our test suite)."""
