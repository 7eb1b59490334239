"""Policy explorer latency, measured in the browser: slider move to redrawn graphs.

Starts ``sd-model explore`` on the Kazakhstan model, opens the page in headless Chromium
(Debian's, driven by Playwright), and moves sliders with the keyboard, each move to lever
values not visited before (the explorer caches runs by lever values, so every sample
re-runs the model). For each move the page is timed from the key press (a ``keydown``
listener) to the graphs painted: the graphs component records when it drew the move's run
(``window.__sdmCharts``) and, from a task queued while drawing, when that frame was
painted.

Each sample is split into parts that add up to the total:

- **model run**: wall time of the run in the server's worker thread (and that thread's CPU
  time, what the run costs on a quiet machine);
- **server, rest**: from the slider's value reaching Python to the redraw message built,
  less the model run (lever checks, waiting for the event loop, the graphs' arrays and the
  table; the CPU time of building them is reported too);
- **messages**: key press to the message's arrival in the browser, less the server's time
  (the slider's event, the websocket both ways, Bokeh/Panel serialising and parsing);
- **apply**: the browser applying the message (the table's HTML, the status line, the
  graphs' arrays handed over);
- **wait for frame**: until the next animation frame, where the graphs are drawn;
- **draw**: the graphs' JavaScript drawing the five canvases;
- **paint**: from the drawing to the end of that frame's rendering.

The machine's load average is sampled every second during the moves and reported with the
results. Results are appended to ``benchmarks/results/explorer.md`` (``--out``).

Run from the repository root (not part of the test run)::

    .venv/bin/python benchmarks/bench_explore.py              # 30 moves, ~1-2 minutes
    .venv/bin/python benchmarks/bench_explore.py --method euler   # Euler instead of RK45
    .venv/bin/python benchmarks/bench_explore.py --repo /tmp/old  # serve another source tree
    .venv/bin/python benchmarks/bench_explore.py --moves 4 --screenshot docs/explorer.png

``--repo`` serves the explorer from another checkout (e.g. ``git archive`` of an older
commit unpacked in /tmp) with the same Python environment: a before/after comparison on
the same machine and load. A page without the graphs component (the Bokeh page before
2026-12-01) is timed to the frame after its status line changed, as the earlier version
of this benchmark did.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.test_explore_browser import (  # noqa: E402  (helpers shared with the browser test)
    browser_page,
    chromium_path,
    serve_explorer,
    wait_for_run,
)

# Installed in the page: stamps each key press and every document patch the server sends
# (Bokeh's Document.apply_json_patch, wrapped). A sample is complete when the graphs
# component has drawn and painted the run the status line reports; on a page without
# the component, one frame after the status line changed (up to ~16 ms late).
HOOK = """
() => {
  const deep = (root, sel) => {
    const hit = root.querySelector(sel);
    if (hit) return hit;
    for (const el of root.querySelectorAll('*')) {
      if (el.shadowRoot) { const f = deep(el.shadowRoot, sel); if (f) return f; }
    }
    return null;
  };
  let status = deep(document, '.sdm-status[data-run]');
  const sdm = window.__sdm = {t0: null, samples: [], last: status.getAttribute('data-run'),
                              patch: null, run: null};
  window.addEventListener('keydown', () => { sdm.t0 = performance.now(); sdm.patch = null; },
                          true);
  const doc = window.Bokeh.documents[0];
  const apply = doc.apply_json_patch.bind(doc);
  doc.apply_json_patch = (...args) => {
    const t = performance.now();
    const out = apply(...args);
    sdm.patch = {t, done: performance.now()};
    return out;
  };
  const num = (k) => (status.hasAttribute(k) ? Number(status.getAttribute(k)) : NaN);
  const take = (t0, patch, end, charts) => {
    const s = {total: end - t0, received: patch.t - t0, apply: patch.done - patch.t,
               model: num('data-model-ms'), model_cpu: num('data-model-cpu-ms'),
               server: num('data-server-ms'), build: num('data-draw-ms'),
               build_cpu: num('data-draw-cpu-ms')};
    if (charts) {
      s.wait = charts.drawnAt - charts.drawMs - patch.done;
      s.draw = charts.drawMs;
      s.paint = end - charts.drawnAt;
    } else {
      s.wait = NaN; s.draw = NaN; s.paint = end - patch.done;
    }
    sdm.samples.push(s);
  };
  const frame = () => {
    if (!status.isConnected) status = deep(document, '.sdm-status[data-run]') || status;
    const run = status.getAttribute('data-run');
    if (status.getAttribute('data-state') === 'ok' && run !== sdm.last && sdm.t0 !== null) {
      sdm.last = run;
      sdm.run = {n: Number(run), t0: sdm.t0, patch: sdm.patch || {t: NaN, done: NaN}};
      sdm.t0 = null;
    }
    const pending = sdm.run, charts = window.__sdmCharts;
    if (pending && charts) {
      if (charts.drawn === pending.n && charts.paintedAt > pending.t0) {
        sdm.run = null;
        take(pending.t0, pending.patch, charts.paintedAt, charts);
      }
    } else if (pending) {
      sdm.run = null;
      requestAnimationFrame(() => take(pending.t0, pending.patch, performance.now(), null));
    }
    requestAnimationFrame(frame);
  };
  requestAnimationFrame(frame);
}
"""

# (slider label, presses of ArrowRight): each press reaches lever values not seen before.
MOVES = [
    ("Interregional transport programme", 30),
    ("Special subsidies to lagging regions", 20),
    ("Equalisation grants", 4),
    ("Clean-technology programme", 20),
]

# (label, sample key, per-sample formula) of the report, in order.
PARTS = [
    ("key press -> graphs painted", lambda s: s["total"]),
    ("  model run (wall)", lambda s: s["model"]),
    ("    model run, its thread's CPU", lambda s: s["model_cpu"]),
    ("  server, rest (value in -> message built)", lambda s: s["server"] - s["model"]),
    ("    building graphs + table (wall)", lambda s: s["build"]),
    ("    building graphs + table (CPU)", lambda s: s["build_cpu"]),
    ("  messages (browser <-> server)", lambda s: s["received"] - s["server"]),
    ("  apply message (browser JS)", lambda s: s["apply"]),
    ("  wait for animation frame", lambda s: s["wait"]),
    ("  draw graphs (browser JS)", lambda s: s["draw"]),
    ("  paint (draw -> frame rendered)", lambda s: s["paint"]),
]


def indent(name: str) -> str:
    return "&nbsp;&nbsp;" * ((len(name) - len(name.lstrip())) // 2) + name.strip()


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    k = (len(ordered) - 1) * q
    lo, hi = int(k), min(int(k) + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (k - lo)


def _processes() -> dict[int, tuple[int, str, float]]:
    """pid -> (parent pid, command name, CPU seconds so far) of every process."""
    tick = os.sysconf("SC_CLK_TCK")
    out = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            text = (entry / "stat").read_text()
        except OSError:
            continue
        name = text[text.index("(") + 1 : text.rindex(")")]
        fields = text[text.rindex(")") + 2 :].split()
        out[int(entry.name)] = (int(fields[1]), name, (int(fields[11]) + int(fields[12])) / tick)
    return out


def cpu_by_kind() -> dict[str, float]:
    """CPU seconds used so far by this script's server and browser processes.

    Descendants of this process: the explorer's server (a Python process) and Chromium's
    processes (started by Playwright's driver); the driver itself is not counted.
    """
    procs = _processes()
    children: dict[int, list[int]] = {}
    for pid, (ppid, _, _) in procs.items():
        children.setdefault(ppid, []).append(pid)
    totals = {"server": 0.0, "browser": 0.0}
    stack = list(children.get(os.getpid(), []))
    while stack:
        pid = stack.pop()
        stack += children.get(pid, [])
        name = procs[pid][1]
        if name.startswith("python"):
            totals["server"] += procs[pid][2]
        elif "chrom" in name:
            totals["browser"] += procs[pid][2]
    return totals


class LoadSampler:
    """The 1-minute load average, read every second while the moves run."""

    def __init__(self) -> None:
        self.values: list[float] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def _loop(self) -> None:
        while not self._stop.wait(1.0):
            self.values.append(float(Path("/proc/loadavg").read_text().split()[0]))

    def __enter__(self) -> LoadSampler:
        if Path("/proc/loadavg").exists():
            self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()


def source_label(repo: Path) -> str:
    """The commit of ``repo`` (and whether its tree has changes), or its folder."""
    try:
        head = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=repo, capture_output=True, text=True
        )
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--", "sd_model"],
            cwd=repo,
            capture_output=True,
            text=True,
        )
    except OSError:
        return str(repo)
    if head.returncode != 0:
        return str(repo)
    return head.stdout.strip() + (" + uncommitted changes" if dirty.stdout.strip() else "")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--scenario", default="scenarios/equalization.yaml")
    parser.add_argument("--moves", type=int, default=30)
    parser.add_argument("--warmup", type=int, default=2, help="moves not counted")
    parser.add_argument("--repo", default=str(ROOT), help="source tree to serve from")
    parser.add_argument(
        "--screenshot", metavar="PNG", help="save the page (1500x1000 pixels) after the moves"
    )
    parser.add_argument("--method", help="serve with --method METHOD (default: the scenario's)")
    parser.add_argument(
        "--jit", action="store_true", help="serve with --method euler --jit (the numba kernel)"
    )
    parser.add_argument(
        "--out",
        default=str(ROOT / "benchmarks" / "results" / "explorer.md"),
        help="markdown file the results are appended to ('' : print only)",
    )
    parser.add_argument("--note", default="", help="a line saying what this run compares")
    parser.add_argument(
        "--cached",
        action="store_true",
        help="move one slider back and forth: runs come from the cache (the page's own cost)",
    )
    args = parser.parse_args()
    extra = ["--method", "euler", "--jit"] if args.jit else []
    if args.method and not args.jit:
        extra = ["--method", args.method]
    repo = Path(args.repo).resolve()
    chromium = chromium_path()
    with (
        tempfile.TemporaryDirectory() as tmp,
        serve_explorer(Path(args.scenario), Path(tmp), *extra, cwd=repo) as url,
        browser_page(chromium) as page,
    ):
        page.goto(url)
        wait_for_run(page, 1)
        page.evaluate(HOOK)
        wanted = args.moves + args.warmup
        plan = [label for label, n in MOVES for _ in range(n)][:wanted]
        if len(plan) < wanted:
            raise SystemExit(f"at most {len(plan)} distinct moves are planned")
        if args.cached:
            # Back and forth between two values: after the first two moves every run comes
            # from the explorer's cache, so the samples time the page without the model.
            plan = [MOVES[0][0]] * wanted
        keys = ["ArrowLeft" if args.cached and i % 2 else "ArrowRight" for i in range(wanted)]
        with LoadSampler() as load:
            for i, (label, key) in enumerate(zip(plan, keys, strict=True)):
                if i == args.warmup:
                    cpu_before = cpu_by_kind()
                handle = page.locator(".sdm-lever", has_text=label).first.locator(".noUi-handle")
                handle.focus()
                page.keyboard.press(key)
                page.wait_for_function(f"window.__sdm.samples.length >= {i + 1}", timeout=120_000)
                time.sleep(0.05)  # let the page settle between moves
            cpu_after = cpu_by_kind()
        samples = page.evaluate("window.__sdm.samples")[args.warmup :]
        if args.screenshot:
            page.set_viewport_size({"width": 1500, "height": 1000})
            page.wait_for_timeout(500)
            page.screenshot(path=args.screenshot)
    if not samples:
        raise SystemExit("no samples")
    how = "Euler + numba kernel" if args.jit else (args.method or "the scenario's solver")
    if args.cached:
        how += ", runs served from the explorer's cache (no model run)"
    loads = load.values or [float("nan")]
    lines = [
        f"### {dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC: {source_label(repo)}",
        "",
        *([args.note, ""] if args.note else []),
        f"{len(samples)} slider moves on {Path(args.scenario).name}, {how}, after "
        f"{args.warmup} warm-up; {os.cpu_count()} cores, 1-minute load average during the "
        f"moves {min(loads):.1f}-{max(loads):.1f} (mean {statistics.fmean(loads):.1f}).",
        "",
        "| part | median ms | p90 ms | min | max |",
        "|---|---:|---:|---:|---:|",
    ]
    for name, part in PARTS:
        values = [part(s) for s in samples]
        values = [v for v in values if v == v]  # NaN: a part the page does not have
        if not values:
            lines.append(f"| {indent(name)} | n/a | | | |")
            continue
        lines.append(
            f"| {indent(name)} | {statistics.median(values):.1f} "
            f"| {percentile(values, 0.9):.1f} | {min(values):.1f} | {max(values):.1f} |"
        )
    per_move = {k: (cpu_after[k] - cpu_before[k]) * 1000 / len(samples) for k in cpu_after}
    lines += [
        "",
        f"CPU per move (process accounting, 10 ms ticks, mean of {len(samples)} moves): "
        f"server process {per_move['server']:.0f} ms, browser processes "
        f"{per_move['browser']:.0f} ms.",
    ]
    report = "\n".join(lines) + "\n"
    print(report)
    if args.out:
        out = Path(args.out)
        out.parent.mkdir(parents=True, exist_ok=True)
        header = "" if out.exists() else _HEADER
        with out.open("a", encoding="utf-8") as f:
            f.write(header + report + "\n")


_HEADER = """# Policy explorer latency (benchmarks/bench_explore.py)

Key press on a slider to the graphs painted, in headless Chromium (Debian's, software
rendering), on the Kazakhstan model; every move re-runs the model. The parts add up to the
total (see the script's docstring); "CPU" rows are thread CPU times: what the part costs
on a quiet machine. The development machine has 2 cores shared with other jobs, so the
wall times depend on the load stated with each run.

"""


if __name__ == "__main__":
    main()
