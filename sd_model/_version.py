"""The installed sd_model version, read once from the package metadata."""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError
from importlib.metadata import version as _distribution_version

try:
    __version__ = _distribution_version("sd_model")
except PackageNotFoundError:  # a source tree on sys.path that was never installed
    __version__ = "0+unknown"


def version() -> str:
    """sd_model's version string (``"0+unknown"`` when the package is not installed).

    Examples
    --------
    >>> version() == __version__
    True
    """
    return __version__
