"""What the page's graphs draw, as compact arrays: one view per choice, one frame per run.

The graphs are drawn in the browser (:mod:`sd_model.explore.charts`) from two messages:

- a **view**, sent when the page opens and when the analyst picks another variable or
  year: titles, axis labels, the saved times, region names and colours, and every
  baseline series (the 20 regional trajectories, the bars at the year, the indices and the
  national variable);
- a **frame**, sent on every run: the current run's series only (and the calibration
  band when there are draws), packed into one float64 array with an index of where each
  series lies in it: one binary buffer on the websocket (each buffer is two more
  websocket frames, each a system call and a wake-up of the browser: with a buffer per
  series a move sent 13 frames instead of 5).

Axis ranges and ticks are computed by the browser from these arrays (no round trip).
Nothing here imports Panel or Bokeh: the payloads are plain dicts of lists and NumPy
arrays, tested without a browser.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from sd_model.explore.session import Run, ViewSpec
from sd_model.explore.urlstate import format_number
from sd_model.explore.views import INDICES, ViewChoice, disparity, disparity_band

__all__ = [
    "BAND_LABEL",
    "BASELINE_LABEL",
    "CURRENT_LABEL",
    "REGION_COLORS",
    "FigureData",
    "unpack",
]

# Legend names: what "baseline" and "current" are, for a reader who did not set the page up.
BASELINE_LABEL = "baseline run"
CURRENT_LABEL = "current levers"
BAND_LABEL = "90 % band (draws)"
# Bokeh's Category20 palette (D3's): 20 regions, each told apart by colour.
REGION_COLORS = (
    "#1f77b4", "#aec7e8", "#ff7f0e", "#ffbb78", "#2ca02c", "#98df8a", "#d62728", "#ff9896",
    "#9467bd", "#c5b0d5", "#8c564b", "#c49c94", "#e377c2", "#f7b6d2", "#7f7f7f", "#c7c7c7",
    "#bcbd22", "#dbdb8d", "#17becf", "#9edae5",
)  # fmt: skip


def _array(values: Any) -> np.ndarray:
    """A contiguous float64 vector: what Bokeh sends as one binary buffer."""
    return np.ascontiguousarray(np.asarray(values, dtype=float).ravel())


class FigureData:
    """Builds the view and frame messages of the page's graphs.

    Parameters
    ----------
    spec : ViewSpec
    time_units : str
        Label of the time axes.
    bands : bool
        The runs carry calibration draws: frames hold a 90 % band.

    Examples
    --------
    >>> data = FigureData(setup.view, time_units="Year", bands=False)  # doctest: +SKIP
    >>> view, frame = data.update(run, runner.baseline, choice, run_number=2)  # doctest: +SKIP
    >>> view is None  # the same choice as the last update: only the frame is new
    True
    """

    def __init__(self, spec: ViewSpec, *, time_units: str, bands: bool) -> None:
        self.spec = spec
        self.time_units = time_units or "time"
        self.bands = bands
        self._drawn: tuple[int, ViewChoice] | None = None
        self._views = 0

    def update(
        self, run: Run, base: Run, choice: ViewChoice, *, run_number: int
    ) -> tuple[dict[str, Any] | None, dict[str, Any]]:
        """The messages that redraw the graphs for ``run`` beside ``base``.

        Parameters
        ----------
        run, base : Run
            The run drawn and the baseline drawn beside it.
        choice : ViewChoice
        run_number : int
            Carried by the frame, so the browser can say which run it has drawn.

        Returns
        -------
        view : dict or None
            ``None`` when base and choice are those of the previous update (the browser
            keeps the last view), else the new view.
        frame : dict
            The current run's series.
        """
        key = (id(base), choice)
        view = None
        if self._drawn != key:
            self._drawn = key
            self._views += 1
            view = self.view(base, choice)
        return view, self.frame(run, choice, run_number=run_number)

    def view(self, base: Run, choice: ViewChoice) -> dict[str, Any]:
        """Titles, labels, times, regions and the baseline's series for ``choice``."""
        spec = self.spec
        names, units = spec.names, spec.units
        out: dict[str, Any] = {
            "key": self._views,
            "times": _array(base.times),
            "time_label": self.time_units,
            "baseline_label": BASELINE_LABEL,
            "current_label": CURRENT_LABEL,
            "band_label": BAND_LABEL if self.bands else "",
            "regions": list(spec.regions),
            "colors": [REGION_COLORS[i % len(REGION_COLORS)] for i in range(len(spec.regions))],
            "regional": None,
            "bars": None,
            "lines": [],
        }
        if choice.regional:
            name = names[choice.regional]
            j = _at(base, choice.year)
            out["regional"] = {
                "title": f"{name} by region (solid: current levers, dashed: baseline run)",
                "y_label": units.get(choice.regional) or name,
                "baseline": _array(base.data[choice.regional]),
            }
            out["bars"] = {
                "title": f"{name} in {format_number(choice.year)}",
                "x_label": units.get(choice.regional, ""),
                "baseline": _array(base.data[choice.regional][j]),
            }
            indices = disparity(base, spec, choice.disparity)
            weights = f"weighted by {names[spec.population]}" if spec.population else "unweighted"
            for key, label in INDICES.items():
                out["lines"].append(
                    {
                        "id": key,
                        "title": f"{label}: {names[choice.disparity]}",
                        "y_label": f"index (0: regions equal), {weights}",
                        "baseline": _array(indices[key]),
                    }
                )
        if choice.national:
            name = names[choice.national]
            out["lines"].append(
                {
                    "id": "national",
                    "title": f"{name} (national)",
                    "y_label": units.get(choice.national) or name,
                    "baseline": _array(base.data[choice.national]),
                }
            )
        return out

    def frame(self, run: Run, choice: ViewChoice, *, run_number: int) -> dict[str, Any]:
        """The current run's series for ``choice`` (bands too, with draws).

        Returns
        -------
        dict
            ``run``, ``view`` (the key of the view it belongs to), ``values`` (every
            series, one float64 array) and ``index``: series name -> ``[start, length]``
            in ``values``. Names: ``regional`` (``(T, regions)`` row-major), ``bars``,
            and ``<line>.current``, ``<line>.lo``, ``<line>.hi`` for the lines
            ``williamson``, ``theil`` and ``national``.
        """
        spec = self.spec
        series: dict[str, np.ndarray] = {}
        if choice.regional:
            current = run.data[choice.regional]
            series["regional"] = current
            series["bars"] = current[_at(run, choice.year)]
            indices = disparity(run, spec, choice.disparity)
            bands = disparity_band(run, spec, choice.disparity)
            for key in INDICES:
                series.update(_line(key, indices[key], bands.get(key)))
        if choice.national:
            series.update(
                _line("national", run.data[choice.national], run.bands.get(choice.national))
            )
        arrays = [_array(a) for a in series.values()]
        starts = np.cumsum([0] + [a.size for a in arrays])
        return {
            "run": run_number,
            "view": self._views,
            "values": np.concatenate(arrays) if arrays else np.zeros(0),
            "index": {
                name: [int(starts[k]), int(a.size)]
                for k, (name, a) in enumerate(zip(series, arrays, strict=True))
            },
        }


def unpack(frame: dict[str, Any]) -> dict[str, np.ndarray]:
    """The series of a :meth:`FigureData.frame` by name (what the browser reads from it).

    Examples
    --------
    >>> unpack({"values": np.arange(3.0), "index": {"a": [0, 2], "b": [2, 1]}})["b"]
    array([2.])
    """
    values = frame["values"]
    return {name: values[start : start + n] for name, (start, n) in frame["index"].items()}


def _line(name: str, current: np.ndarray, band: np.ndarray | None) -> dict[str, np.ndarray]:
    line = {f"{name}.current": current}
    if band is not None:
        line[f"{name}.lo"], line[f"{name}.hi"] = band[0], band[1]
    return line


def _at(run: Run, year: float) -> int:
    """The saved time nearest ``year`` (the page offers only saved times)."""
    return int(np.argmin(np.abs(run.times - year)))
