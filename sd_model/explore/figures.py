"""The explorer's Bokeh figures: built once per page, redrawn by changing their data.

Baseline dashed and grey (or dashed in the region's colour), the current run solid; with
calibration draws a band around the current run. Axes carry the model's units.

A redraw sends data and explicit axis ranges in one document change and nothing else:
the figures are never rebuilt, the baseline's 20 regional series are sent only when the
variable changes, and ranges are computed here (``Range1d``) rather than by the browser
(a ``DataRange1d`` recomputes in the browser and sends its new bounds back, a second
round trip per move).
"""

from __future__ import annotations

from typing import Any, cast

import numpy as np
from bokeh.models import ColumnDataSource, FactorRange, HoverTool, NumeralTickFormatter, Range1d
from bokeh.models.annotations import Title
from bokeh.palettes import Category20_20
from bokeh.plotting import figure
from bokeh.transform import dodge

from sd_model.explore.session import Run, ViewSpec
from sd_model.explore.urlstate import format_number
from sd_model.explore.views import INDICES, ViewChoice, disparity, disparity_band

__all__ = ["Figures"]

PLOT_WIDTH = 540
PLOT_HEIGHT = 330
LINE_WIDTH = 520
BASELINE_COLOR = "#7f7f7f"
CURRENT_COLOR = "#1f77b4"
AXIS_FORMAT = "0,0.[000]"
# Legend names: what "baseline" and "current" are, for a reader who did not set the page up.
BASELINE_LABEL = "baseline run"
CURRENT_LABEL = "current levers"
# Room left around the data by the value axes (share of the data's span).
PAD = 0.06


def _fit(rng: Any, *arrays: Any, zero: bool = False) -> None:
    """Set ``rng`` to span ``arrays`` (finite values) with a margin; ``zero``: include 0.

    ``reset_start``/``reset_end`` follow, so the reset tool returns to the data.
    """
    finite = [np.asarray(a, dtype=float) for a in arrays]
    finite = [a[np.isfinite(a)] for a in finite]
    finite = [a for a in finite if a.size]
    if not finite:
        return
    lo = float(min(a.min() for a in finite))
    hi = float(max(a.max() for a in finite))
    if zero:
        lo, hi = min(lo, 0.0), max(hi, 0.0)
    span = hi - lo
    pad = span * PAD if span > 0 else max(abs(hi) * PAD, 1e-9)
    start = lo if (zero and lo == 0.0) else lo - pad
    end = hi if (zero and hi == 0.0) else hi + pad
    if (rng.start, rng.end) != (start, end):
        rng.update(start=start, end=end, reset_start=start, reset_end=end)


def _series_source() -> ColumnDataSource:
    return ColumnDataSource({"t": [], "baseline": [], "current": [], "lo": [], "hi": []})


def _series(
    times: np.ndarray, baseline: np.ndarray, current: np.ndarray, band: np.ndarray | None
) -> dict[str, Any]:
    """Columns of a line figure; without draws the band collapses onto the current run."""
    return {
        "t": times,
        "baseline": baseline,
        "current": current,
        "lo": band[0] if band is not None else current,
        "hi": band[1] if band is not None else current,
    }


def _title(fig: Any) -> Title:
    """A figure's title model (Bokeh types it loosely)."""
    return cast(Title, fig.title)


class Figures:
    """The page's figures: regional trajectories, per-region bars, indices, national.

    Parameters
    ----------
    spec : ViewSpec
    time_units : str
        Label of the time axes.
    bands : bool
        Draw the calibration draws' band.
    """

    def __init__(self, spec: ViewSpec, *, time_units: str, bands: bool) -> None:
        self.spec = spec
        self.time_units = time_units or "time"
        self.bands = bands
        self._drawn: tuple[int, ViewChoice] | None = None
        t_units = self.time_units
        tools = "pan,box_zoom,wheel_zoom,reset,save"
        n = len(spec.regions)
        colors = [Category20_20[i % 20] for i in range(n)]
        self.regional_source = ColumnDataSource({"xs": [], "ys": [], "region": [], "color": []})
        self.regional_base_source = ColumnDataSource(
            {"xs": [], "ys": [], "region": [], "color": []}
        )
        self._colors = colors
        fig = figure(
            width=PLOT_WIDTH + 90,
            height=PLOT_HEIGHT,
            tools=tools,
            x_axis_label=t_units,
            toolbar_location="right",
            x_range=Range1d(start=0, end=1),
            y_range=Range1d(start=0, end=1),
        )
        fig.multi_line(
            "xs",
            "ys",
            source=self.regional_base_source,
            line_color="color",
            line_dash="dashed",
            line_alpha=0.55,
            line_width=1.2,
        )
        current = fig.multi_line(
            "xs",
            "ys",
            source=self.regional_source,
            line_color="color",
            line_width=2,
            legend_field="region",
        )
        fig.add_tools(HoverTool(renderers=[current], tooltips=[("region", "@region")]))
        fig.legend[0].update(
            location="top_left",
            label_text_font_size="8pt",
            glyph_height=10,
            glyph_width=14,
            spacing=0,
            padding=4,
            click_policy="hide",
        )
        fig.add_layout(fig.legend[0], "right")
        fig.toolbar.autohide = True
        fig.yaxis.formatter = NumeralTickFormatter(format=AXIS_FORMAT)
        self.regional = fig

        self.bars_source = ColumnDataSource({"region": [], "baseline": [], "current": []})
        bars = figure(
            width=PLOT_WIDTH - 100,
            height=PLOT_HEIGHT + 60,
            y_range=FactorRange(factors=list(reversed(spec.regions))),
            x_range=Range1d(start=0, end=1),
            tools="save,hover",
            tooltips=[
                ("region", "@region"),
                ("baseline", "@baseline{0,0.[000]}"),
                ("current", "@current{0,0.[000]}"),
            ],
            toolbar_location="right",
        )
        bars.hbar(
            y=dodge("region", 0.18, range=bars.y_range),
            right="baseline",
            height=0.34,
            source=self.bars_source,
            color=BASELINE_COLOR,
            alpha=0.6,
            legend_label=BASELINE_LABEL,
        )
        bars.hbar(
            y=dodge("region", -0.18, range=bars.y_range),
            right="current",
            height=0.34,
            source=self.bars_source,
            color=CURRENT_COLOR,
            legend_label=CURRENT_LABEL,
        )
        bars.legend.location = "top_right"
        bars.legend.orientation = "horizontal"
        bars.legend.label_text_font_size = "8pt"
        bars.add_layout(bars.legend[0], "above")
        bars.xaxis.formatter = NumeralTickFormatter(format=AXIS_FORMAT)
        bars.toolbar.autohide = True
        bars.yaxis.major_label_text_font_size = "8pt"
        self.bars = bars

        self.national_source = _series_source()
        self.national = self._line(self.national_source, "", width=LINE_WIDTH)
        self.index_sources = {key: _series_source() for key in INDICES}
        self.index = {
            key: self._line(self.index_sources[key], "index (dimensionless)", width=LINE_WIDTH)
            for key in INDICES
        }

    def _line(self, source: ColumnDataSource, y_label: str, *, width: int) -> Any:
        """Baseline (dashed), current run (solid) and, with draws, the 90 % band."""
        fig = figure(
            width=width,
            height=PLOT_HEIGHT,
            tools="pan,box_zoom,wheel_zoom,reset,save",
            x_axis_label=self.time_units,
            y_axis_label=y_label,
            toolbar_location="right",
            x_range=Range1d(start=0, end=1),
            y_range=Range1d(start=0, end=1),
        )
        if self.bands:
            fig.varea(
                "t",
                "lo",
                "hi",
                source=source,
                fill_color=CURRENT_COLOR,
                fill_alpha=0.18,
                legend_label="90 % band (draws)",
            )
        fig.line(
            "t",
            "baseline",
            source=source,
            color=BASELINE_COLOR,
            line_dash="dashed",
            line_width=2.5,
            legend_label=BASELINE_LABEL,
        )
        fig.line(
            "t",
            "current",
            source=source,
            color=CURRENT_COLOR,
            line_width=2.5,
            legend_label=CURRENT_LABEL,
        )
        fig.legend[0].update(
            orientation="horizontal", label_text_font_size="8pt", padding=2, margin=2
        )
        fig.add_layout(fig.legend[0], "above")
        fig.toolbar.autohide = True
        fig.yaxis.formatter = NumeralTickFormatter(format=AXIS_FORMAT)
        fig.add_tools(
            HoverTool(
                tooltips=[
                    ("year", "@t{0.[00]}"),
                    ("baseline", f"@baseline{{{AXIS_FORMAT}}}"),
                    ("current", f"@current{{{AXIS_FORMAT}}}"),
                ],
                mode="vline",
            )
        )
        return fig

    def draw(self, run: Run, base: Run, choice: ViewChoice) -> None:
        """Put ``run`` and the ``base`` run into every figure (data sources change in place).

        Only what changed is sent: with the same variables, year and baseline as the last
        draw, the current run's columns and the ranges; everything on a new choice.
        """
        spec = self.spec
        names, units = spec.names, spec.units
        n = len(spec.regions)
        same = self._drawn == (id(base), choice)
        self._drawn = (id(base), choice)
        if choice.regional:
            reg_c = run.data[choice.regional]
            reg_b = base.data[choice.regional]
            ys = [reg_c[:, k] for k in range(n)]
            if same:
                self.regional_source.data.update(ys=ys)
            else:
                self.regional_source.data = {
                    "xs": [run.times] * n,
                    "ys": ys,
                    "region": list(spec.regions),
                    "color": self._colors,
                }
                self.regional_base_source.data = {
                    "xs": [base.times] * n,
                    "ys": [reg_b[:, k] for k in range(n)],
                    "region": list(spec.regions),
                    "color": self._colors,
                }
                _fit(self.regional.x_range, run.times)
            _fit(self.regional.y_range, reg_c, reg_b)
            _title(
                self.regional
            ).text = (
                f"{names[choice.regional]} by region (solid: current levers, dashed: baseline run)"
            )
            self.regional.yaxis.axis_label = units.get(choice.regional) or names[choice.regional]

            i = int(np.argmin(np.abs(run.times - choice.year)))
            j = int(np.argmin(np.abs(base.times - choice.year)))
            if same:
                self.bars_source.data.update(current=reg_c[i])
            else:
                self.bars_source.data = {
                    "region": list(spec.regions),
                    "baseline": reg_b[j],
                    "current": reg_c[i],
                }
            _fit(self.bars.x_range, reg_c[i], reg_b[j], zero=True)
            _title(self.bars).text = f"{names[choice.regional]} in {format_number(choice.year)}"
            self.bars.xaxis.axis_label = units.get(choice.regional, "")

        if choice.national:
            self._draw_series(
                self.national,
                self.national_source,
                run.times,
                base.data[choice.national],
                run.data[choice.national],
                run.bands.get(choice.national),
                same=same,
            )
            _title(self.national).text = f"{names[choice.national]} (national)"
            self.national.yaxis.axis_label = units.get(choice.national) or names[choice.national]

        if choice.regional:
            d_c = disparity(run, spec, choice.disparity)
            d_b = disparity(base, spec, choice.disparity)
            d_band = disparity_band(run, spec, choice.disparity)
            weights = f"weighted by {names[spec.population]}" if spec.population else "unweighted"
            for key, label in INDICES.items():
                self._draw_series(
                    self.index[key],
                    self.index_sources[key],
                    run.times,
                    d_b[key],
                    d_c[key],
                    d_band.get(key),
                    same=same,
                )
                _title(self.index[key]).text = f"{label}: {names[choice.disparity]}"
                self.index[key].yaxis.axis_label = f"index (0: regions equal), {weights}"

    @staticmethod
    def _draw_series(
        fig: Any,
        source: ColumnDataSource,
        times: np.ndarray,
        baseline: np.ndarray,
        current: np.ndarray,
        band: np.ndarray | None,
        *,
        same: bool,
    ) -> None:
        """A line figure: every column on a new choice, else the current run's only."""
        columns = _series(times, baseline, current, band)
        if same:
            source.data.update({k: columns[k] for k in ("current", "lo", "hi")})
        else:
            source.data = columns
            _fit(fig.x_range, times)
        _fit(fig.y_range, baseline, current, columns["lo"], columns["hi"])
