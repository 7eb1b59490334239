"""What the page draws, computed from runs: trajectories, indices, values at a year.

Every function takes :class:`~sd_model.explore.session.Run` objects and returns NumPy
arrays or plain rows, so the numbers a page shows can be checked without a browser.
Disparity indices are :func:`sd_model.metrics.williamson_index` and
:func:`sd_model.metrics.theil_index`, population-weighted (Williamson 1965; Theil 1967).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from sd_model._errors import ParameterError
from sd_model.explore.session import BAND_QUANTILES, Run, ViewSpec
from sd_model.metrics import theil_index, williamson_index

__all__ = [
    "INDICES",
    "Row",
    "ViewChoice",
    "disparity",
    "disparity_band",
    "summary_rows",
    "time_index",
]

# Index key -> label; the order of the lines and of the summary table.
INDICES = {"williamson": "Williamson index", "theil": "Theil index"}


@dataclass(frozen=True)
class ViewChoice:
    """What the analyst picked to look at (kept in the page address with the levers).

    Attributes
    ----------
    regional : str
        py_name of the regional variable (trajectories and per-region comparison).
    national : str
        py_name of the national variable.
    disparity : str
        py_name of the per-capita variable whose disparity is measured.
    year : float
        The year of the per-region comparison and the summary table.
    """

    regional: str
    national: str
    disparity: str
    year: float


def time_index(run: Run, year: float) -> int:
    """Position of ``year`` among the run's saved times.

    Raises
    ------
    ParameterError
        When ``year`` is not a saved time.
    """
    i = int(np.argmin(np.abs(run.times - year)))
    if abs(run.times[i] - year) > 1e-6 * max(1.0, abs(year)):
        raise ParameterError(
            f"year {year:g} is not a saved time of the run ({run.times[0]:g} to "
            f"{run.times[-1]:g}, every {np.diff(run.times[:2])[0] if len(run.times) > 1 else 0:g})."
        )
    return i


def _weights(data: dict[str, np.ndarray], spec: ViewSpec, like: np.ndarray) -> np.ndarray:
    if spec.population is None:
        return np.ones_like(like)
    return data[spec.population]


def disparity(run: Run, spec: ViewSpec, variable: str) -> dict[str, np.ndarray]:
    """Williamson and Theil indices of ``variable`` across regions, over time.

    Parameters
    ----------
    run : Run
    spec : ViewSpec
        Gives the population weights (unweighted when the model has no population).
    variable : str
        py_name of a regional per-capita variable.

    Returns
    -------
    dict
        ``{"williamson": (T,), "theil": (T,)}``; the arrays are kept with the run and
        shared by later calls (do not change them).
    """
    # The graphs and the table both show them: computed once per run (kept in
    # ``run.derived``; a run is never changed after it is made).
    key = ("disparity", variable, spec.population)
    cached = run.derived.get(key)
    if cached is not None:
        return dict(cached)
    y = run.data[variable]
    w = _weights(run.data, spec, y)
    out = {
        "williamson": np.asarray(williamson_index(y, w, axis=-1)),
        "theil": np.asarray(theil_index(y, w, axis=-1)),
    }
    run.derived[key] = out
    return dict(out)


def disparity_band(run: Run, spec: ViewSpec, variable: str) -> dict[str, np.ndarray]:
    """The :data:`BAND_QUANTILES` of each index over the calibration draws: ``(2, T)``.

    Empty when the run has no draws. The indices are computed per draw, then their
    quantiles taken (the quantiles of a ratio are not the ratio of quantiles).
    """
    if not run.band_data or variable not in run.band_data:
        return {}
    key = ("disparity_band", variable, spec.population)
    cached = run.derived.get(key)
    if cached is not None:
        return dict(cached)
    y = run.band_data[variable]
    w = run.band_data[spec.population] if spec.population else np.ones_like(y)
    out = {
        "williamson": np.quantile(williamson_index(y, w, axis=-1), BAND_QUANTILES, axis=0),
        "theil": np.quantile(theil_index(y, w, axis=-1), BAND_QUANTILES, axis=0),
    }
    run.derived[key] = out
    return dict(out)


@dataclass(frozen=True)
class Row:
    """One line of the page's table of numbers.

    Attributes
    ----------
    key : str
        Stable identifier (``national``, ``williamson``, ``theil``, ``region:Astana``).
    label : str
        What it is, for a reader.
    units : str
    baseline, current : float
    """

    key: str
    label: str
    units: str
    baseline: float
    current: float

    @property
    def change(self) -> float:
        """Relative change from the baseline (NaN when the baseline is 0)."""
        if self.baseline == 0:
            return float("nan")
        return (self.current - self.baseline) / abs(self.baseline)


def summary_rows(baseline: Run, current: Run, spec: ViewSpec, choice: ViewChoice) -> list[Row]:
    """The headline numbers at ``choice.year``: national variable, indices, regions.

    Returns
    -------
    list of Row
        The national variable, the Williamson and Theil indices of ``choice.disparity``,
        then ``choice.regional`` in each region; an empty choice ('' for a model without
        national or regional variables) leaves its rows out.
    """
    i = time_index(current, choice.year)
    j = time_index(baseline, choice.year)
    rows = []
    if choice.national:
        rows.append(
            Row(
                "national",
                spec.names[choice.national],
                spec.units.get(choice.national, ""),
                float(baseline.data[choice.national][j]),
                float(current.data[choice.national][i]),
            )
        )
    if not choice.regional:
        return rows
    base_idx = disparity(baseline, spec, choice.disparity)
    cur_idx = disparity(current, spec, choice.disparity)
    for key, label in INDICES.items():
        rows.append(
            Row(
                key,
                f"{label} of {spec.names[choice.disparity]}",
                "Dmnl",
                float(base_idx[key][j]),
                float(cur_idx[key][i]),
            )
        )
    b = baseline.data[choice.regional][j]
    c = current.data[choice.regional][i]
    units = spec.units.get(choice.regional, "")
    for k, region in enumerate(spec.regions):
        rows.append(
            Row(
                f"region:{region}",
                f"{spec.names[choice.regional]}, {region}",
                units,
                float(b[k]),
                float(c[k]),
            )
        )
    return rows
