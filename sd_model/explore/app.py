"""The explorer's web page: Panel widgets and canvas graphs over :mod:`sd_model.explore`.

Why Panel: it serves Bokeh documents from a local Tornado server whose JavaScript and CSS
come from the package itself (no CDN, so the page works offline), widget changes reach
Python over one websocket, and an ``async`` callback can run the model in a worker
thread while the page stays live. The graphs are one small custom component
(:mod:`sd_model.explore.charts`) that draws on canvases from compact arrays: a move sends
the current run's numbers, the table and the status line in one message, and the browser
draws in a few milliseconds (Bokeh figures took 70-230 ms to repaint per move here).
Streamlit re-runs a whole script per interaction; Dash and Solara would serve as well but
add a second plotting stack.

Everything numerical is in the Panel-free modules (levers, session, views, urlstate,
export); this module only lays out widgets and moves numbers into graphs.
"""

from __future__ import annotations

import asyncio
import html
import io
import logging
import math
import time
import traceback
import webbrowser
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import panel as pn

from sd_model._errors import SDModelError
from sd_model.explore.charts import Charts
from sd_model.explore.export import results_bytes, run_dataset, save_scenario
from sd_model.explore.figures import FigureData
from sd_model.explore.levers import Lever
from sd_model.explore.session import ExplorerSetup, Run, Runner
from sd_model.explore.urlstate import decode_query, encode_query, format_number
from sd_model.explore.views import INDICES, ViewChoice, summary_rows

__all__ = ["ExplorerPage", "make_server", "serve"]

log = logging.getLogger(__name__)

# A run that takes longer than this shows the busy state (shorter ones would only flicker).
BUSY_AFTER = 0.15
SIDEBAR_WIDTH = 380
INDICES_FIRST = next(iter(INDICES))

_CSS = """
.sdm-numbers { border-collapse: collapse; font-size: 13px; }
.sdm-numbers th, .sdm-numbers td { padding: 3px 10px; text-align: right; }
.sdm-numbers td:first-child, .sdm-numbers th:first-child { text-align: left; }
.sdm-numbers tr.sdm-head td { font-weight: 600; border-top: 1px solid #ccc; padding-top: 8px; }
.sdm-numbers thead th { border-bottom: 2px solid #999; }
.sdm-up { color: #1a7f37; } .sdm-down { color: #b42318; }
.sdm-status { font-size: 13px; color: #444; }
.sdm-status[data-state="running"]::before { content: ""; display: inline-block; width: 10px;
  height: 10px; margin-right: 6px; border: 2px solid #1f77b4; border-right-color: transparent;
  border-radius: 50%; animation: sdm-spin 0.8s linear infinite; vertical-align: -1px; }
.sdm-status[data-state="error"] { color: #b42318; }
@keyframes sdm-spin { to { transform: rotate(360deg); } }
"""


class _Slider(pn.widgets.FloatSlider):
    """A slider whose moves reach Python at once, without Panel's busy bookkeeping.

    Panel holds a widget's change for 50 ms to gather more (``_debounce``); a lever move
    is one change, and moves that arrive while the model runs are coalesced by the page
    (the latest values win), so the wait would only add 50 ms to every redraw.
    """

    _debounce: ClassVar[int] = 0
    # Panel counts every widget event in its global "busy" state (for loading spinners
    # this page does not use); that bookkeeping cost ~10 ms of server CPU per move. The
    # page shows its own busy state when a run is slow.
    _busy__ignore: ClassVar[list[str]] = ["value", "value_throttled"]


class _LeverSlider(_Slider):
    """A lever's slider: only ``value`` reaches Python.

    The browser reports a key press or a release as two changes (``value`` and
    ``value_throttled``) in two websocket messages; a lever listens to ``value`` only, so
    the second is left to Bokeh (Panel would process it as a separate event, ~5 ms of
    server CPU per move).
    """

    @property
    def _linked_properties(self) -> tuple[str, ...]:
        return tuple(p for p in super()._linked_properties if p != "value_throttled")


def _numeral(step: float) -> str:
    """The slider's number format: as many decimals as the step has (0.0025 -> 4)."""
    text = format_number(step)
    decimals = len(text.split(".")[1]) if "." in text and "e" not in text else 0
    if "e-" in text:
        decimals = int(text.split("e-")[1]) + len(text.split("e")[0].replace(".", "")) - 1
    return "0,0." + "0" * decimals if decimals else "0,0"


def _fmt(value: float) -> str:
    """Numbers as a reader wants them: four significant digits, thousands grouped."""
    if not math.isfinite(value):
        return "n/a"
    if abs(value) >= 1000:
        return f"{value:,.0f}"
    return f"{value:.4g}"


def _change(row_change: float) -> str:
    if not math.isfinite(row_change):
        return ""
    css = "sdm-up" if row_change > 0 else "sdm-down" if row_change < 0 else ""
    return f'<span class="{css}">{row_change * 100:+.2f} %</span>'


class ExplorerPage:
    """One browser session's page.

    Parameters
    ----------
    setup : ExplorerSetup
    runner : Runner
        Shared by the server's sessions (it caches runs).
    executor : concurrent.futures.Executor
        Where runs execute, off the server's event loop.
    save_dir : pathlib.Path
        Folder that "Save scenario" writes to.
    query : mapping, optional
        The address's query (``parse_qs`` form).
    """

    def __init__(
        self,
        setup: ExplorerSetup,
        runner: Runner,
        executor: ThreadPoolExecutor,
        *,
        save_dir: Path,
        query: dict[str, list[str]] | None = None,
    ) -> None:
        self.setup = setup
        self.runner = runner
        self.executor = executor
        self.save_dir = save_dir
        self.view = setup.view
        state = decode_query(setup.levers, query or {}, setup.start)
        self.values: dict[str, float] = dict(state.values or setup.start)
        self.baseline = runner.baseline
        self.shown: Run = runner.baseline
        self.run_count = 0
        self._pending = False
        self._running = False
        self._syncing = False
        self._url_stale = False
        self._requested_at = time.perf_counter()
        self.choice = self._choice_from(state.view)
        self.sliders: dict[str, pn.widgets.FloatSlider] = {}
        self._all_sliders: dict[str, pn.widgets.FloatSlider] = {}
        self._cards: dict[str, pn.pane.HTML] = {}
        self._build_widgets()
        self.figures = FigureData(
            self.view, time_units=setup.model.time_units, bands=bool(setup.draws)
        )
        # Two rows of graphs (trajectories and bars; indices and national), or one.
        self.charts = Charts(
            sizing_mode="stretch_width",
            height=672 if self.choice.regional else 304,
            margin=(4, 10),
            css_classes=["sdm-graphs"],
        )
        self._build_controls()
        url_notes = list(state.errors)
        self.url_alert.object = (
            '<span class="sdm-url-text">'
            + "<br>".join(html.escape(e) for e in url_notes)
            + "</span>"
        )
        self.url_alert.visible = bool(url_notes)
        self._draw(self.shown)
        self._set_status("Running the model at the page's lever values…", state="running")
        self._request_run()

    # ------------------------------------------------------------------ choices
    def _choice_from(self, view: dict[str, str]) -> ViewChoice:
        spec = self.view
        times = self.baseline.times

        def pick(key: str, options: tuple[str, ...], default: str | None) -> str:
            given = view.get(key)
            if given in options:
                return given
            return default or (options[0] if options else "")

        year = float(times[-1])
        given_year = view.get("view.year")
        if given_year:
            try:
                wanted = float(given_year)
                if np.min(np.abs(times - wanted)) < 1e-9:
                    year = wanted
            except ValueError:
                pass
        return ViewChoice(
            regional=pick("view.regional", spec.regional, spec.default_regional()),
            national=pick("view.national", spec.national, spec.default_national()),
            disparity=pick(
                "view.disparity",
                spec.per_capita or spec.regional,
                spec.default_disparity() or spec.default_regional(),
            ),
            year=year,
        )

    def _view_query(self) -> dict[str, str]:
        return {
            "view.regional": self.choice.regional,
            "view.national": self.choice.national,
            "view.disparity": self.choice.disparity,
            "view.year": format_number(self.choice.year),
        }

    # ------------------------------------------------------------------ widgets
    def _build_widgets(self) -> None:
        setup = self.setup
        self.reset_button = pn.widgets.Button(
            name="Reset to baseline", button_type="default", width=160, css_classes=["sdm-reset"]
        )
        self.reset_button.on_click(lambda _e: self._set_values(setup.levers.baseline()))
        self.scenario_button = pn.widgets.Button(
            name="Back to the scenario" if setup.source else "Back to the start", width=160
        )
        self.scenario_button.on_click(lambda _e: self._set_values(setup.start))
        groups = []
        for group, parameters in setup.levers.groups().items():
            items: list[Any] = []
            for parameter, levers in parameters:
                if levers[0].element:
                    items.append(self._regional_lever(parameter, levers))
                else:
                    items.append(self._scalar_lever(levers[0]))
            groups.append(
                pn.Card(
                    *items, title=group, collapsed=False, sizing_mode="stretch_width", margin=(4, 2)
                )
            )
        self.save_name = pn.widgets.TextInput(
            name="Scenario name",
            value=f"{setup.name}_explored",
            width=230,
            css_classes=["sdm-save-name"],
        )
        self.save_button = pn.widgets.Button(
            name="Save scenario",
            button_type="primary",
            width=110,
            align="end",
            css_classes=["sdm-save-button"],
        )
        self.save_button.on_click(self._on_save)
        self.save_message = pn.pane.HTML("", sizing_mode="stretch_width", margin=(0, 10))
        self.download_nc = pn.widgets.FileDownload(
            callback=lambda: self._download(".nc"),
            filename=f"{setup.name}_explored.nc",
            label="Download results (.nc)",
            width=175,
        )
        self.download_csv = pn.widgets.FileDownload(
            callback=lambda: self._download(".csv"),
            filename=f"{setup.name}_explored.csv",
            label="Download results (.csv)",
            css_classes=["sdm-download-csv"],
            width=175,
        )
        source = html.escape(setup.levers.source)
        self.sidebar = pn.Column(
            pn.pane.HTML(
                f"<h3 style='margin:4px 0'>Policy levers</h3>"
                f"<div class='sdm-status'>Ranges from {source}. Hover "
                "<b>?</b> for units and meaning.</div>",
                margin=(0, 10),
            ),
            pn.Row(self.reset_button, self.scenario_button),
            *groups,
            pn.pane.HTML("<h3 style='margin:8px 0 0 0'>Keep</h3>", margin=(0, 10)),
            pn.Row(self.save_name, self.save_button),
            self.save_message,
            pn.Row(self.download_nc, self.download_csv),
            width=SIDEBAR_WIDTH,
            scroll=True,
            sizing_mode="stretch_height",
        )

    def _tooltip(self, lever: Lever, *, per_element: bool = False) -> str:
        what = " (each region)" if per_element else ""
        base = "" if per_element else f" Baseline: {format_number(lever.baseline)}."
        units = lever.units or "no units"
        text = lever.description or lever.parameter
        return (
            f"{text} Units: {units}. Range{what}: {format_number(lever.min)} to "
            f"{format_number(lever.max)}, step {format_number(lever.step)}.{base} "
            f"Model name: {lever.parameter}."
        )

    def _format(self, lever: Lever) -> str:
        """Slider number format; years are not grouped in thousands (2025, not 2,025)."""
        numeral = _numeral(lever.step)
        time_units = self.setup.model.time_units
        return numeral.replace("0,0", "0", 1) if lever.units == time_units else numeral

    def _slider(self, lever: Lever, name: str, width: int) -> pn.widgets.FloatSlider:
        slider = _LeverSlider(
            name=name,
            start=lever.min,
            end=lever.max,
            step=lever.step,
            value=self.values[lever.key],
            format=self._format(lever),
            width=width,
            margin=(2, 6),
            css_classes=["sdm-lever"],
        )
        slider.param.watch(lambda e, key=lever.key: self._on_slider(key, e.new), "value")
        self.sliders[lever.key] = slider
        return slider

    def _scalar_lever(self, lever: Lever) -> pn.Row:
        units = f" ({lever.units})" if lever.units and lever.units != "Dmnl" else ""
        slider = self._slider(lever, f"{lever.label}{units}", SIDEBAR_WIDTH - 70)
        return pn.Row(slider, pn.widgets.TooltipIcon(value=self._tooltip(lever)), margin=0)

    def _regional_lever(self, parameter: str, levers: list[Lever]) -> pn.Card:
        """A collapsed card: an "all regions" slider, and one slider per region.

        The per-region sliders are built when the card is first opened: four regional
        levers of 20 regions are 80 widgets, which would triple the page's load time.
        """
        first = levers[0]
        every = _Slider(
            name="All regions",
            start=first.min,
            end=first.max,
            step=first.step,
            value=first.baseline,
            format=self._format(first),
            width=SIDEBAR_WIDTH - 100,
            margin=(2, 6),
        )
        every.param.watch(
            lambda e, lv=levers: self._set_values({lev.key: e.new for lev in lv}, merge=True),
            "value_throttled",
        )
        self._all_sliders[parameter] = every
        grid = pn.GridBox(ncols=2, margin=0)
        header = pn.pane.HTML(self._regional_title(levers), margin=(0, 4))
        card = pn.Card(
            pn.Row(
                every,
                pn.widgets.TooltipIcon(value=self._tooltip(first, per_element=True)),
                margin=0,
            ),
            grid,
            header=header,
            collapsed=True,
            sizing_mode="stretch_width",
            margin=(4, 2),
            css_classes=["sdm-regional-lever"],
        )

        def open_card(event: Any) -> None:
            if not event.new and not grid.objects:
                width = (SIDEBAR_WIDTH - 70) // 2
                grid.objects = [self._slider(lev, ", ".join(lev.element), width) for lev in levers]

        card.param.watch(open_card, "collapsed")
        self._cards[parameter] = header
        return card

    def _regional_title(self, levers: list[Lever]) -> str:
        first = levers[0]
        changed = sum(self.values[lev.key] != lev.baseline for lev in levers)
        units = f" ({first.units})" if first.units not in ("", "Dmnl") else ""
        return (
            f'<div style="font-size:13px;line-height:1.25"><b>{html.escape(first.label)}</b>'
            f"{html.escape(units)}<br><span class='sdm-status'>by region: {changed} of "
            f"{len(levers)} changed</span></div>"
        )

    # ------------------------------------------------------------------ plots
    def _build_controls(self) -> None:
        spec = self.view
        self.pick_regional = pn.widgets.Select(
            name="Regional variable",
            options={spec.label(p): p for p in spec.regional} or {"(none)": ""},
            value=self.choice.regional,
            width=270,
        )
        self.pick_national = pn.widgets.Select(
            name="National variable",
            options={spec.label(p): p for p in spec.national} or {"(none)": ""},
            value=self.choice.national,
            width=270,
        )
        disparity_options = spec.per_capita or spec.regional
        self.pick_disparity = pn.widgets.Select(
            name="Disparity of",
            options={spec.label(p): p for p in disparity_options} or {"(none)": ""},
            value=self.choice.disparity,
            width=240,
        )
        times = self.baseline.times
        self.pick_year = pn.widgets.DiscreteSlider(
            name="Year compared",
            options={format_number(t): float(t) for t in times},
            value=self.choice.year,
            css_classes=["sdm-year"],
            width=240,
        )
        for w in (self.pick_regional, self.pick_national, self.pick_disparity, self.pick_year):
            w.param.watch(self._on_view, "value")

        # A fixed height: a status line that changes length must not re-lay out the page.
        self.status = pn.pane.HTML("", sizing_mode="stretch_width", height=22, margin=(0, 10))
        self.error_alert = pn.pane.Alert(
            "", alert_type="danger", visible=False, sizing_mode="stretch_width", margin=(2, 10)
        )
        self.url_alert = pn.pane.Alert(
            "", alert_type="warning", visible=False, sizing_mode="stretch_width", margin=(2, 10)
        )
        notes = []
        if self.setup.backend_note:
            notes.append(
                "This model runs on PySD's reference backend (slower), because the compiled "
                f"backend does not cover it: {html.escape(self.setup.backend_note)}"
            )
        notes += [html.escape(n) for n in self.setup.notices]
        self.backend_alert = pn.pane.Alert(
            '<span class="sdm-backend-text">' + "<br>".join(notes) + "</span>",
            alert_type="warning",
            visible=bool(notes),
            sizing_mode="stretch_width",
            margin=(2, 10),
            css_classes=["sdm-backend-note"],
        )
        self.table = pn.pane.HTML("", sizing_mode="stretch_width", margin=(0, 10))

    # ------------------------------------------------------------------ drawing
    def _draw(self, run: Run) -> None:
        """Put ``run`` (and the cached baseline) into every graph and the table."""
        view, frame = self.figures.update(
            run, self.baseline, self.choice, run_number=self.run_count
        )
        self.charts.redraw(view, frame)
        self.table.object = self._table_html(run)

    def _table_html(self, run: Run) -> str:
        """The numbers behind the graphs at the chosen year (``data-value``: full precision)."""
        rows = summary_rows(self.baseline, run, self.view, self.choice)
        year = format_number(self.choice.year)
        spec, choice = self.view, self.choice
        sections = {"national": "National"}
        if choice.regional:
            regional_units = spec.units.get(choice.regional, "")
            sections[INDICES_FIRST] = f"Disparity of {spec.names[choice.disparity]} across regions"
            sections[f"region:{spec.regions[0]}"] = f"{spec.names[choice.regional]} by region" + (
                f" ({regional_units})" if regional_units else ""
            )
        out = [
            f'<table class="sdm-numbers" data-year="{year}"><thead><tr>'
            f"<th>In {year}</th><th>Baseline</th><th>Current</th><th>Change</th></tr></thead>"
            "<tbody>"
        ]
        for row in rows:
            if row.key in sections:
                out.append(
                    f'<tr class="sdm-head"><td colspan="4">{html.escape(sections[row.key])}'
                    "</td></tr>"
                )
            if row.key.startswith("region:"):
                label = row.key.removeprefix("region:")
            else:
                units = row.units if row.units not in ("", "Dmnl") else ""
                label = row.label.split(" of ")[0] if row.key in INDICES else row.label
                label += f" ({units})" if units else ""
            out.append(
                f'<tr data-key="{html.escape(row.key)}">'
                f"<td>{html.escape(label)}</td>"
                f'<td data-run="baseline" data-value="{row.baseline!r}">{_fmt(row.baseline)}</td>'
                f'<td data-run="current" data-value="{row.current!r}">{_fmt(row.current)}</td>'
                f"<td>{_change(row.change)}</td></tr>"
            )
        out.append("</tbody></table>")
        return "".join(out)

    def _set_status(self, text: str, *, state: str, timing: str = "") -> None:
        self.status.object = (
            f'<span class="sdm-status" data-run="{self.run_count}" data-state="{state}"'
            f"{timing}>{text}</span>"
        )

    def _describe(self, run: Run, elapsed: float) -> str:
        s = self.setup
        solver: str = s.solver.method
        if s.solver.adaptive:
            solver += f", rtol {s.solver.rtol:g}"
        else:
            solver += f", time step {s.grid.time_step:g}"
        if s.jit:
            solver += ", numba kernel"
        bands = f", 90 % band over {len(s.draws)} calibration draws" if s.draws else ""
        return (
            f"Run {self.run_count}: model {run.seconds * 1000:.0f} ms, page "
            f"{elapsed * 1000:.0f} ms, {run.backend} backend ({solver}), "
            f"{format_number(s.grid.initial_time)}–{format_number(s.grid.final_time)}"
            f"{bands}."
        )

    # ------------------------------------------------------------------ events
    def _on_slider(self, key: str, value: float) -> None:
        if self._syncing:
            return
        self._requested_at = time.perf_counter()
        self.values[key] = value
        self._after_lever_change()

    def _after_lever_change(self) -> None:
        for parameter, levers in self.setup.levers.by_parameter():
            header = self._cards.get(parameter)
            if header is not None:
                header.object = self._regional_title(levers)
        self._url_stale = True
        self._request_run()

    def _set_values(self, values: dict[str, float], *, merge: bool = False) -> None:
        """Move many sliders at once (reset, all regions) with one run."""
        self._requested_at = time.perf_counter()
        new = {**self.values, **values} if merge else dict(values)
        self._syncing = True
        try:
            for key, slider in self.sliders.items():
                if slider.value != new[key]:
                    slider.value = new[key]
            if not merge:
                for parameter, levers in self.setup.levers.by_parameter():
                    same = {new[lev.key] for lev in levers}
                    every = self._all_sliders.get(parameter)
                    if every is not None and len(same) == 1:
                        every.value = same.pop()
        finally:
            self._syncing = False
        self.values = new
        self._after_lever_change()

    def _on_view(self, _event: Any) -> None:
        self.choice = ViewChoice(
            regional=self.pick_regional.value,
            national=self.pick_national.value,
            disparity=self.pick_disparity.value,
            year=float(self.pick_year.value),
        )
        with pn.io.hold():
            self._draw(self.shown)
            self._update_url()

    def _update_url(self) -> None:
        if pn.state.location is not None:
            query = encode_query(self.setup.levers, self.values, self._view_query())
            pn.state.location.search = f"?{query}"

    def _request_run(self) -> None:
        self._pending = True
        pn.state.execute(self._drain)

    async def _drain(self) -> None:
        """Run until the page's lever values have been run (latest values win)."""
        if self._running:
            return
        self._running = True
        loop = asyncio.get_running_loop()
        try:
            while self._pending:
                self._pending = False
                values = dict(self.values)
                requested = self._requested_at
                future = loop.run_in_executor(self.executor, self._run, values)
                done, _ = await asyncio.wait({future}, timeout=BUSY_AFTER)
                if not done:
                    self._set_busy(True)
                outcome, timing = await future
                self._show(outcome, requested, timing)
        finally:
            self._running = False
            self._set_busy(False)

    def _run(self, values: dict[str, float]) -> tuple[Run | BaseException, tuple[float, float]]:
        """The run at ``values`` (or its error), with its wall and CPU seconds.

        The CPU time is this worker thread's alone: what the run costs on a quiet
        machine, whatever else shares the cores.
        """
        start, cpu = time.perf_counter(), time.thread_time()
        outcome: Run | BaseException
        try:
            outcome = self.runner.run(values, where="page")
        except SDModelError as exc:
            outcome = exc
        except Exception as exc:  # a defect must not take the page down: show it
            log.error("explorer run failed:\n%s", traceback.format_exc())
            outcome = exc
        return outcome, (time.perf_counter() - start, time.thread_time() - cpu)

    def _set_busy(self, busy: bool) -> None:
        # The graphs dim while they are out of date; the status line says why.
        self.charts.busy = busy
        if busy:
            self._set_status(
                "Running the model… (the page stays usable; the graphs show the last run)",
                state="running",
            )

    def _show(
        self,
        outcome: Run | BaseException,
        requested: float,
        model_timing: tuple[float, float] = (0.0, 0.0),
    ) -> None:
        start, cpu = time.perf_counter(), time.thread_time()
        with pn.io.hold():
            # The address holds the levers, not the results: it changes once per run (not
            # per slider event of a drag), in the same message as the redraw: one
            # websocket message per move.
            if self._url_stale:
                self._url_stale = False
                self._update_url()
            if isinstance(outcome, BaseException):
                kind = "" if isinstance(outcome, SDModelError) else f"{type(outcome).__name__}: "
                self.error_alert.object = (
                    '<span class="sdm-error-text"><b>The model failed at these lever values.'
                    f"</b> {html.escape(kind + str(outcome))}<br>The graphs show the last "
                    "good run.</span>"
                )
                self.error_alert.visible = True
                self._set_status(
                    f"Run failed; showing run {self.run_count} (the last good run).",
                    state="error",
                )
            else:
                self.run_count += 1
                self.shown = outcome
                self.error_alert.visible = False
                self._draw(outcome)
                note = ""
                if outcome.messages:
                    note = " Solver: " + html.escape("; ".join(outcome.messages))
                now = time.perf_counter()
                elapsed = now - requested
                # Machine-readable times for benchmarks/bench_explore.py: the model run
                # (wall, and its thread's CPU), the server from the slider's value to the
                # graphs' message built, and building that message (graphs and table).
                timing = (
                    f' data-model-ms="{model_timing[0] * 1000:.1f}"'
                    f' data-model-cpu-ms="{model_timing[1] * 1000:.1f}"'
                    f' data-server-ms="{elapsed * 1000:.1f}"'
                    f' data-draw-ms="{(now - start) * 1000:.2f}"'
                    f' data-draw-cpu-ms="{(time.thread_time() - cpu) * 1000:.2f}"'
                )
                self._set_status(self._describe(outcome, elapsed) + note, state="ok", timing=timing)

    def _on_save(self, _event: Any) -> None:
        try:
            path = save_scenario(
                self.setup, self.shown.values, self.save_dir, self.save_name.value or ""
            )
        except SDModelError as exc:
            self.save_message.object = f'<span class="sdm-down">{html.escape(str(exc))}</span>'
            return
        self.save_message.object = (
            f'<span data-saved="{html.escape(str(path))}">Saved <code>{html.escape(str(path))}'
            f"</code>. Run it with <code>sd-model run {html.escape(str(path))}</code>.</span>"
        )

    def _download(self, suffix: str) -> io.BytesIO:
        ds = run_dataset(self.setup, self.shown.values)
        return io.BytesIO(results_bytes(ds, suffix))

    # ------------------------------------------------------------------ layout
    def layout(self) -> pn.viewable.Viewable:
        """The page."""
        s = self.setup
        desc = (
            f"<div class='sdm-status'>{html.escape(s.description)}</div>" if s.description else ""
        )
        header = pn.pane.HTML(
            f"<h2 style='margin:6px 0 2px 0'>Policy explorer: {html.escape(s.title)}</h2>{desc}",
            sizing_mode="stretch_width",
            margin=(0, 10),
        )
        regional = bool(self.choice.regional)
        national = bool(self.choice.national)
        pickers = pn.Row(
            *([self.pick_regional] if regional else []),
            *([self.pick_national] if national else []),
            *([self.pick_disparity] if regional else []),
            self.pick_year,
        )
        main = pn.Column(
            header,
            self.status,
            self.error_alert,
            self.backend_alert,
            self.url_alert,
            pickers,
            self.charts,
            self.table,
            sizing_mode="stretch_width",
        )
        return pn.Row(self.sidebar, main, sizing_mode="stretch_both")


def make_server(
    setup: ExplorerSetup,
    *,
    port: int = 0,
    address: str = "127.0.0.1",
    save_dir: str | Path | None = None,
) -> Any:
    """A Panel (Bokeh/Tornado) server for the explorer, not started.

    Parameters
    ----------
    setup : ExplorerSetup
    port : int
        0 picks a free port (``server.port`` tells which).
    address : str
        The address to listen on; the default serves this machine only.
    save_dir : path-like, optional
        Where "Save scenario" writes (default: the scenario's folder, or the current
        folder for a model file).

    Returns
    -------
    panel.io.server.Server
    """
    folder = (
        Path(save_dir)
        if save_dir is not None
        else (setup.source.parent if setup.source is not None else Path.cwd())
    )
    runner = Runner(setup)
    executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="sd-model-explore")
    pn.extension(raw_css=[_CSS], notifications=False)

    def page() -> pn.viewable.Viewable:
        args = pn.state.session_args or {}
        query = {
            str(k): [v.decode() if isinstance(v, bytes) else str(v) for v in vs]
            for k, vs in args.items()
        }
        return ExplorerPage(setup, runner, executor, save_dir=folder, query=query).layout()

    return pn.serve(
        page,
        port=port,
        address=address,
        show=False,
        start=False,
        verbose=False,
        title=f"sd_model explorer: {setup.title}",
    )


def serve(
    setup: ExplorerSetup,
    *,
    port: int = 0,
    address: str = "127.0.0.1",
    open_browser: bool = True,
    save_dir: str | Path | None = None,
    announce: Callable[[str], None] = print,
) -> None:
    """Serve the explorer until interrupted, announcing its address.

    Examples
    --------
    >>> serve(load_setup("scenarios/baseline.yaml"), port=5006)  # doctest: +SKIP
    """
    server = make_server(setup, port=port, address=address, save_dir=save_dir)
    host = "127.0.0.1" if address in ("127.0.0.1", "0.0.0.0", "") else address
    url = f"http://{host}:{server.port}/"
    server.start()
    announce(f"sd-model explore: serving {setup.title} at {url} (Ctrl+C stops)")
    if open_browser:
        server.io_loop.add_callback(lambda: webbrowser.open(url))
    try:
        server.io_loop.start()
    finally:
        server.stop()
