"""The explorer's graphs: one Panel component that draws them on canvases in the browser.

Why not Bokeh figures: a lever move then changed a dozen Bokeh models (data sources,
ranges, titles), which the browser re-laid out and repainted through Bokeh's renderer:
measured at 70-230 ms of painting per move in headless Chromium on the 2-core development
machine, more than every other part of a move except the model run. Here the server sends
the numbers only (:mod:`sd_model.explore.figures`: a view per choice, a frame of float64
arrays per run, both travelling as binary buffers in the same websocket message as the
table and the status line), and about 350 lines of plain JavaScript draw the five graphs
on ``<canvas>`` elements with the 2D context: a few milliseconds per move, with no
JavaScript library beyond what Panel already serves (so the page still works offline).

What the analyst sees is what the Bokeh page showed: baseline dashed, current run solid,
the calibration band shaded, axes labelled with the model's units, ranges fitted to the
data, a legend per graph, and values under the mouse.

The browser keeps ``window.__sdmCharts``: the last run it drew (``drawn``), when
(``drawnAt``, ``performance.now()``), how long the drawing took (``drawMs``), when the
first message of that redraw arrived (``changedAt``), when the frame holding the
drawing had been rendered (``paintedAt``), and the arrays drawn (``scene``, ``frame``):
the benchmark and the browser tests read it.
"""

from __future__ import annotations

from typing import Any

import param
from panel.custom import JSComponent

__all__ = ["Charts"]

_ESM = r"""
const BASE = '#7f7f7f', CURRENT = '#1f77b4', GRID = '#ebebeb', AXIS = '#555', TEXT = '#222';
const FONT = 'Helvetica, Arial, sans-serif';
const PAD = 0.06;  // room around the data, a share of its span
// Heights are fixed (the page reserves them); widths share the component's width: the
// trajectories take 58 % of the first row, the three line graphs a third of the second.
const ROW1 = 360, ROW2 = 300, GAP = 8;

const formats = new Map();
function numberFormat(decimals, grouping) {
  const key = decimals + (grouping ? 'g' : '');
  if (!formats.has(key)) {
    formats.set(key, new Intl.NumberFormat('en-US', {
      minimumFractionDigits: decimals, maximumFractionDigits: decimals, useGrouping: grouping}));
  }
  return formats.get(key);
}

// Four significant digits, thousands grouped: as the table of numbers shows them.
function value(v) {
  if (!Number.isFinite(v)) return 'n/a';
  if (Math.abs(v) >= 1000) return numberFormat(0, true).format(v);
  return String(Number(v.toPrecision(4)));
}

function extent(arrays, zero) {
  let lo = Infinity, hi = -Infinity;
  for (const a of arrays) {
    if (!a) continue;
    for (let i = 0; i < a.length; i++) {
      const v = a[i];
      if (Number.isFinite(v)) { if (v < lo) lo = v; if (v > hi) hi = v; }
    }
  }
  if (lo > hi) return [0, 1];
  if (zero) { lo = Math.min(lo, 0); hi = Math.max(hi, 0); }
  const span = hi - lo;
  const pad = span > 0 ? span * PAD : Math.max(Math.abs(hi) * PAD, 1e-9);
  return [zero && lo === 0 ? 0 : lo - pad, zero && hi === 0 ? 0 : hi + pad];
}

// Ticks at 1, 2 or 5 times a power of ten, about n of them.
function ticks(lo, hi, n, integer) {
  const raw = (hi - lo) / n;
  const mag = Math.pow(10, Math.floor(Math.log10(raw)));
  const f = raw / mag;
  let step = (f < 1.5 ? 1 : f < 3 ? 2 : f < 7 ? 5 : 10) * mag;
  if (integer) step = Math.max(1, Math.round(step));
  const out = [];
  for (let k = Math.ceil(lo / step - 1e-9); k * step <= hi + step * 1e-9; k++) out.push(k * step);
  const decimals = step >= 1 ? 0 : Math.min(8, Math.ceil(-Math.log10(step) - 1e-9));
  const fmt = numberFormat(decimals, !integer);
  return out.map((v) => [v, fmt.format(Math.abs(v) < step * 1e-9 ? 0 : v)]);
}

function path(g, xs, ys, sx, sy, offset, stride) {
  g.beginPath();
  let open = false;
  for (let i = 0; i < xs.length; i++) {
    const y = ys[offset + i * stride];
    if (!Number.isFinite(y)) { open = false; continue; }
    if (open) g.lineTo(sx(xs[i]), sy(y)); else { g.moveTo(sx(xs[i]), sy(y)); open = true; }
  }
  g.stroke();
}

class Chart {
  constructor(parent, size, kind) {
    [this.w, this.h] = size;
    this.kind = kind;
    this.box = document.createElement('div');
    this.box.className = 'sdm-chart sdm-chart-' + kind;
    this.box.style.cssText = `position:relative;width:${this.w}px;height:${this.h}px;`;
    this.canvas = document.createElement('canvas');
    const dpr = window.devicePixelRatio || 1;
    this.canvas.width = Math.round(this.w * dpr);
    this.canvas.height = Math.round(this.h * dpr);
    this.canvas.style.cssText = `width:${this.w}px;height:${this.h}px;`;
    this.g = this.canvas.getContext('2d');
    this.g.scale(dpr, dpr);
    this.tip = document.createElement('div');
    this.tip.className = 'sdm-tip';
    this.tip.style.cssText = 'position:absolute;display:none;pointer-events:none;'
      + 'background:rgba(255,255,255,0.95);border:1px solid #bbb;border-radius:3px;'
      + 'padding:3px 6px;font:12px ' + FONT + ';white-space:nowrap;color:' + TEXT + ';';
    this.box.append(this.canvas, this.tip);
    parent.append(this.box);
    this.hover = null;
    this.canvas.addEventListener('mousemove', (e) => {
      const r = this.canvas.getBoundingClientRect();
      this.hover = [e.clientX - r.left, e.clientY - r.top];
      this.redraw();
    });
    this.canvas.addEventListener('mouseleave', () => { this.hover = null; this.redraw(); });
  }

  redraw() { if (this.again) this.again(); }

  text(s, x, y, align, font, color, base) {
    const g = this.g;
    g.font = font || '11px ' + FONT;
    g.fillStyle = color || TEXT;
    g.textAlign = align || 'left';
    g.textBaseline = base || 'middle';
    g.fillText(s, x, y);
  }

  // Title and legend above the plot; returns the top of the plot area.
  head(title, entries) {
    this.text(title, 4, 10, 'left', 'bold 13px ' + FONT);
    let x = 6;
    for (const [label, color, style] of entries) {
      const g = this.g;
      g.save();
      if (style === 'band') {
        g.fillStyle = color; g.globalAlpha = 0.25; g.fillRect(x, 25, 22, 10);
      } else if (style === 'bar') {
        g.fillStyle = color; g.fillRect(x, 25, 22, 10);
      } else {
        g.strokeStyle = color; g.lineWidth = 2.5; g.setLineDash(style === 'dashed' ? [6, 4] : []);
        g.beginPath(); g.moveTo(x, 30); g.lineTo(x + 22, 30); g.stroke();
      }
      g.restore();
      this.text(label, x + 27, 30);
      x += 27 + g_width(this.g, label) + 16;
    }
    return 44;
  }

  // Axes, grid and labels around the plot area; returns the scales.
  frame(xr, yr, opts) {
    const g = this.g;
    const yt = ticks(yr[0], yr[1], opts.yTicks || 5, false);
    g.font = '11px ' + FONT;
    const labelW = Math.max(...yt.map(([, s]) => g.measureText(s).width));
    const left = (opts.left || 0) + labelW + 26;
    const top = opts.top, right = this.w - (opts.right || 12), bottom = this.h - 38;
    const sx = (x) => left + (x - xr[0]) / (xr[1] - xr[0]) * (right - left);
    const sy = (y) => bottom - (y - yr[0]) / (yr[1] - yr[0]) * (bottom - top);
    g.lineWidth = 1;
    for (const [v, s] of yt) {
      const y = Math.round(sy(v)) + 0.5;
      g.strokeStyle = GRID; g.beginPath(); g.moveTo(left, y); g.lineTo(right, y); g.stroke();
      this.text(s, left - 5, y, 'right', null, AXIS);
    }
    for (const [v, s] of ticks(xr[0], xr[1], opts.xTicks || 6, opts.integerX)) {
      const x = Math.round(sx(v)) + 0.5;
      g.strokeStyle = GRID; g.beginPath(); g.moveTo(x, top); g.lineTo(x, bottom); g.stroke();
      this.text(s, x, bottom + 10, 'center', null, AXIS);
    }
    g.strokeStyle = AXIS;
    g.beginPath(); g.moveTo(left + 0.5, top); g.lineTo(left + 0.5, bottom + 0.5);
    g.lineTo(right, bottom + 0.5); g.stroke();
    this.text(opts.xLabel || '', (left + right) / 2, this.h - 9, 'center', '12px ' + FONT);
    g.save();
    g.translate(11, (top + bottom) / 2); g.rotate(-Math.PI / 2);
    this.text(opts.yLabel || '', 0, 0, 'center', fitted(g, opts.yLabel || '', bottom - top));
    g.restore();
    return {sx, sy, left, right, top, bottom};
  }

  showTip(lines, x, y) {
    this.tip.innerHTML = lines.join('<br>');
    this.tip.style.display = 'block';
    const w = this.tip.offsetWidth;
    this.tip.style.left = Math.min(Math.max(0, x + 12), this.w - w) + 'px';
    this.tip.style.top = Math.max(0, y - 40) + 'px';
  }

  hideTip() { this.tip.style.display = 'none'; }

  // Pixel under the mouse -> nearest saved time (null when outside the plot).
  hoverIndex(times, s) {
    if (!this.hover) return null;
    const [x, y] = this.hover;
    if (x < s.left || x > s.right || y < s.top || y > s.bottom) return null;
    let best = 0;
    for (let i = 1; i < times.length; i++) {
      if (Math.abs(s.sx(times[i]) - x) < Math.abs(s.sx(times[best]) - x)) best = i;
    }
    return best;
  }

  rule(s, x) {
    const g = this.g;
    g.save(); g.strokeStyle = '#999'; g.lineWidth = 1; g.setLineDash([2, 2]);
    g.beginPath(); g.moveTo(Math.round(x) + 0.5, s.top); g.lineTo(Math.round(x) + 0.5, s.bottom);
    g.stroke(); g.restore();
  }
}

// The largest font up to 12px in which a label fits ``room`` pixels (an axis's length).
function fitted(g, s, room) {
  for (let px = 12; px > 9; px--) {
    g.font = px + 'px ' + FONT;
    if (g.measureText(s).width <= room) break;
  }
  return g.font;
}

function g_width(g, s) { g.font = '11px ' + FONT; return g.measureText(s).width; }

function esc(s) {
  const named = {'&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;'};
  return String(s).replace(/[&<>"]/g, (c) => named[c]);
}

// Baseline (dashed), current run (solid), with draws the 90 % band: indices and national.
function drawLine(c, view, spec, line) {
  c.again = () => drawLine(c, view, spec, line);
  const g = c.g, t = view.times;
  g.clearRect(0, 0, c.w, c.h);
  const entries = [[view.baseline_label, BASE, 'dashed'], [view.current_label, CURRENT, 'solid']];
  if (line.lo) entries.push([view.band_label, CURRENT, 'band']);
  const top = c.head(spec.title, entries);
  const xr = [t[0], t[t.length - 1]];
  const s = c.frame(xr, extent([spec.baseline, line.current, line.lo, line.hi], false),
                    {top, xLabel: view.time_label, yLabel: spec.y_label, integerX: true});
  g.save();
  g.beginPath(); g.rect(s.left, s.top, s.right - s.left, s.bottom - s.top); g.clip();
  if (line.lo) {
    g.fillStyle = CURRENT; g.globalAlpha = 0.18; g.beginPath();
    for (let i = 0; i < t.length; i++) g.lineTo(s.sx(t[i]), s.sy(line.hi[i]));
    for (let i = t.length - 1; i >= 0; i--) g.lineTo(s.sx(t[i]), s.sy(line.lo[i]));
    g.fill(); g.globalAlpha = 1;
  }
  g.lineWidth = 2.5; g.strokeStyle = BASE; g.setLineDash([6, 4]);
  path(g, t, spec.baseline, s.sx, s.sy, 0, 1);
  g.setLineDash([]); g.strokeStyle = CURRENT;
  path(g, t, line.current, s.sx, s.sy, 0, 1);
  g.restore();
  const i = c.hoverIndex(t, s);
  if (i === null) { c.hideTip(); return; }
  c.rule(s, s.sx(t[i]));
  const rows = [`<b>${esc(view.time_label)} ${t[i]}</b>`,
    `${esc(view.baseline_label)}: ${value(spec.baseline[i])}`,
    `${esc(view.current_label)}: ${value(line.current[i])}`];
  if (line.lo) rows.push(`band: ${value(line.lo[i])} to ${value(line.hi[i])}`);
  c.showTip(rows, s.sx(t[i]), c.hover[1]);
}

// One line per region, current solid and baseline dashed in the region's colour.
function drawRegional(c, view, current) {
  c.again = () => drawRegional(c, view, current);
  const g = c.g, t = view.times, spec = view.regional, n = view.regions.length;
  g.clearRect(0, 0, c.w, c.h);
  c.text(spec.title, 4, 10, 'left', 'bold 13px ' + FONT);
  const legendW = 104;
  const s = c.frame([t[0], t[t.length - 1]], extent([spec.baseline, current], false),
                    {top: 28, right: legendW + 8, xLabel: view.time_label, yLabel: spec.y_label,
                     integerX: true});
  g.save();
  g.beginPath(); g.rect(s.left, s.top, s.right - s.left, s.bottom - s.top); g.clip();
  g.lineWidth = 1.2; g.setLineDash([5, 3]); g.globalAlpha = 0.55;
  for (let r = 0; r < n; r++) {
    g.strokeStyle = view.colors[r]; path(g, t, spec.baseline, s.sx, s.sy, r, n);
  }
  g.setLineDash([]); g.globalAlpha = 1; g.lineWidth = 2;
  let near = null;
  const i = c.hoverIndex(t, s);
  if (i !== null) {
    let best = Infinity;
    for (let r = 0; r < n; r++) {
      const d = Math.abs(s.sy(current[i * n + r]) - c.hover[1]);
      if (d < best) { best = d; near = r; }
    }
  }
  for (let r = 0; r < n; r++) {
    g.strokeStyle = view.colors[r];
    g.lineWidth = r === near ? 3.5 : 2;
    path(g, t, current, s.sx, s.sy, r, n);
  }
  g.restore();
  const step = Math.min(14, (c.h - 40) / n);
  for (let r = 0; r < n; r++) {
    const y = 30 + r * step + step / 2, x = c.w - legendW;
    g.strokeStyle = view.colors[r]; g.lineWidth = 3; g.beginPath();
    g.moveTo(x, y); g.lineTo(x + 14, y); g.stroke();
    c.text(view.regions[r], x + 18, y, 'left', (r === near ? 'bold ' : '') + '10px ' + FONT);
  }
  if (near === null) { c.hideTip(); return; }
  c.rule(s, s.sx(t[i]));
  c.showTip([`<b>${esc(view.regions[near])}</b>, ${esc(view.time_label)} ${t[i]}`,
    `${esc(view.current_label)}: ${value(current[i * n + near])}`,
    `${esc(view.baseline_label)}: ${value(spec.baseline[i * n + near])}`],
    s.sx(t[i]), c.hover[1]);
}

// Per-region comparison at the chosen year: baseline and current bars side by side.
function drawBars(c, view, current) {
  c.again = () => drawBars(c, view, current);
  const g = c.g, spec = view.bars, n = view.regions.length;
  g.clearRect(0, 0, c.w, c.h);
  const top = c.head(spec.title, [[view.baseline_label, 'rgba(127,127,127,0.6)', 'bar'],
                                  [view.current_label, CURRENT, 'bar']]);
  g.font = '10px ' + FONT;
  const names = Math.max(...view.regions.map((r) => g.measureText(r).width));
  // The value axis is horizontal here: the "y" of frame() is the region axis, drawn below.
  const xr = extent([spec.baseline, current], true);
  const left = names + 10, right = c.w - 12, bottom = c.h - 38;
  const sx = (x) => left + (x - xr[0]) / (xr[1] - xr[0]) * (right - left);
  const row = (bottom - top) / n;
  g.lineWidth = 1;
  for (const [v, s] of ticks(xr[0], xr[1], 5, false)) {
    const x = Math.round(sx(v)) + 0.5;
    g.strokeStyle = GRID; g.beginPath(); g.moveTo(x, top); g.lineTo(x, bottom); g.stroke();
    c.text(s, x, bottom + 10, 'center', null, AXIS);
  }
  let near = null;
  if (c.hover && c.hover[0] >= left && c.hover[1] >= top && c.hover[1] < bottom) {
    near = Math.floor((c.hover[1] - top) / row);
  }
  const zero = sx(Math.max(xr[0], Math.min(0, xr[1])));
  for (let r = 0; r < n; r++) {
    const y = top + r * row;
    if (r === near) { g.fillStyle = '#f2f2f2'; g.fillRect(left, y, right - left, row); }
    g.fillStyle = 'rgba(127,127,127,0.6)';
    const b = sx(spec.baseline[r]);
    g.fillRect(Math.min(zero, b), y + row * 0.12, Math.abs(b - zero), row * 0.36);
    g.fillStyle = CURRENT;
    const x = sx(current[r]);
    g.fillRect(Math.min(zero, x), y + row * 0.5, Math.abs(x - zero), row * 0.36);
    c.text(view.regions[r], left - 5, y + row / 2, 'right', '10px ' + FONT);
  }
  g.strokeStyle = AXIS;
  g.beginPath(); g.moveTo(left + 0.5, top); g.lineTo(left + 0.5, bottom + 0.5);
  g.lineTo(right, bottom + 0.5); g.stroke();
  c.text(spec.x_label, (left + right) / 2, c.h - 9, 'center', '12px ' + FONT);
  if (near === null) { c.hideTip(); return; }
  const base = spec.baseline[near], cur = current[near];
  const change = base !== 0 ? ` (${((cur - base) / Math.abs(base) * 100).toFixed(2)} %)` : '';
  c.showTip([`<b>${esc(view.regions[near])}</b>`,
    `${esc(view.baseline_label)}: ${value(base)}`,
    `${esc(view.current_label)}: ${value(cur)}${change}`], c.hover[0], c.hover[1]);
}

export function render({ model, el }) {
  const root = document.createElement('div');
  root.className = 'sdm-charts';
  root.style.cssText = 'display:flex;flex-wrap:wrap;gap:8px;align-items:flex-start;'
    + 'transition:opacity 0.2s;';
  el.append(root);
  // What the benchmark and the browser tests read: the last run drawn, and when.
  const state = window.__sdmCharts = {drawn: -1, drawnAt: 0, drawMs: 0, changedAt: 0,
                                      paintedAt: 0};
  let charts = null, layout = '', pending = false, firstChange = 0;

  function build(view, width) {
    root.replaceChildren();
    charts = {lines: {}};
    if (view.regional) {
      const w = Math.round((width - GAP) * 0.58);
      charts.regional = new Chart(root, [w, ROW1], 'regional');
      charts.bars = new Chart(root, [width - GAP - w, ROW1], 'bars');
    }
    const n = Math.max(view.lines.length, 3);
    const w = Math.floor((width - GAP * (n - 1)) / n);
    for (const spec of view.lines) charts.lines[spec.id] = new Chart(root, [w, ROW2], spec.id);
  }

  // The frame's series, as views into its one array (no copies). Plain Float64Array
  // views: Bokeh's array type does not take subarray()'s constructor arguments.
  function unpack(frame) {
    const out = {lines: {}}, all = frame.values;
    for (const [name, [start, n]] of Object.entries(frame.index)) {
      const values = new Float64Array(all.buffer, all.byteOffset + start * 8, n);
      const [line, part] = name.split('.');
      if (part) (out.lines[line] = out.lines[line] || {})[part] = values;
      else out[name] = values;
    }
    return out;
  }

  function draw() {
    pending = false;
    redraw();
  }

  function redraw() {
    const view = model.scene, packed = model.frame;
    // A frame belongs to one view: wait until both of a new choice have arrived.
    if (!view || !packed || !view.times || packed.view !== view.key) return;
    const t0 = performance.now();
    const frame = Object.assign(unpack(packed), {run: packed.run});
    const width = Math.max(600, Math.floor(root.clientWidth || el.clientWidth || 1080));
    const key = (view.regional ? 'r' : '') + view.lines.map((l) => l.id).join() + width;
    if (key !== layout || charts === null) { build(view, width); layout = key; }
    if (view.regional) {
      drawRegional(charts.regional, view, frame.regional);
      drawBars(charts.bars, view, frame.bars);
    }
    for (const spec of view.lines) {
      drawLine(charts.lines[spec.id], view, spec, frame.lines[spec.id]);
    }
    const t1 = performance.now();
    Object.assign(state, {drawn: frame.run, drawnAt: t1, drawMs: t1 - t0, changedAt: firstChange,
                          paintedAt: 0, scene: view, frame});
    root.dataset.drawnRun = String(frame.run);
    firstChange = 0;
    // The next frame renders the drawing; a task queued during that frame's callbacks
    // runs once it is rendered.
    requestAnimationFrame(() => setTimeout(() => { state.paintedAt = performance.now(); }, 0));
  }

  // Changes of one server message are applied in one task: draw once, right after it
  // (a microtask), so the graphs are painted in the same frame as the table and status.
  function schedule() {
    if (!firstChange) firstChange = performance.now();
    if (pending) return;
    pending = true;
    queueMicrotask(draw);
  }
  model.on('scene', schedule);
  model.on('frame', schedule);
  // A message applied while Panel is still mounting the component (its module loads
  // asynchronously on a page's first visit) can be lost: once mounted, the component
  // tells the server which run it drew, and the server sends the frame again if it has a
  // newer one.
  model.on('after_render', schedule);
  for (const wait of [300, 1500, 4000]) {
    setTimeout(() => model.send_msg({drawn: state.drawn}), wait);
  }
  schedule();
}
"""


class Charts(JSComponent):
    """The page's five graphs, drawn in the browser from :class:`~.figures.FigureData`.

    Parameters
    ----------
    scene : dict
        The last :meth:`FigureData.view` (titles, labels, baseline series).
    frame : dict
        The last :meth:`FigureData.frame` (the current run's series).
    busy : bool
        A run is under way: the graphs are dimmed (they still show the last run).
    """

    scene = param.Dict(default={}, doc="Titles, labels, times and the baseline's series.")
    frame = param.Dict(default={}, doc="The current run's series.")
    busy = param.Boolean(default=False, doc="Dim the graphs while a run is under way.")

    _esm = _ESM

    def _handle_msg(self, data: Any) -> None:
        # The browser says which run it drew; a frame lost while it was mounting the
        # component is sent again (Panel sends a parameter on trigger, changed or not).
        if isinstance(data, dict) and data.get("drawn") != self.frame.get("run"):
            self.param.trigger("scene", "frame")

    def redraw(self, view: dict[str, Any] | None, frame: dict[str, Any]) -> None:
        """Send a new frame (and view, when the choice changed) to the browser."""
        if view is not None:
            self.scene = view
        self.frame = frame
