"""The installed sd_model version."""

from __future__ import annotations


def version() -> str:
    """sd_model's version string (from the installed metadata when available)."""
    try:
        from importlib.metadata import version as _v

        return _v("sd_model")
    except Exception:  # running from a source tree that is not installed
        from sd_model import __version__

        return __version__
