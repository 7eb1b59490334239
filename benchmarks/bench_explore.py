"""Policy explorer latency, measured in the browser: slider move to redrawn graphs.

Starts ``sd-model explore`` on the Kazakhstan model, opens the page in headless Chromium
(Debian's, driven by Playwright), and moves sliders with the keyboard. For each move the
page itself times the interval from the key press (a ``keydown`` listener) to the frame
after the status line reports the new run: every graph and the table are updated in the
same document change as the status, and two ``requestAnimationFrame`` callbacks later
the browser has painted them.

Each sample is split into: the model run and the server's whole handling of the move
(from the slider's value reaching Python to the redraw sent; both written by the page into
the status line's ``data-model-ms`` / ``data-server-ms``), the rest of the time to the
patch's arrival (the browser sending the value, the websocket, Bokeh and Panel on both
sides), the browser applying the patch, and painting.

Each move goes to lever values not visited before, so every sample re-runs the model
(the explorer caches runs by lever values).

Run from the repository root (not part of the test run)::

    .venv/bin/python benchmarks/bench_explore.py              # 30 moves, ~1-2 minutes
    .venv/bin/python benchmarks/bench_explore.py --moves 60 --scenario scenarios/green.yaml
    .venv/bin/python benchmarks/bench_explore.py --jit     # Euler on the numba kernel
    .venv/bin/python benchmarks/bench_explore.py --method euler   # Euler in NumPy
    .venv/bin/python benchmarks/bench_explore.py --moves 4 --screenshot docs/explorer.png
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
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
# (Bokeh's Document.apply_json_patch, wrapped). Every animation frame checks the status
# line (found again when Panel replaces it); when it reports a new run, the sample is
# taken two frames later, when the graphs changed in the same patch as the status have
# been painted. Frames are ~16 ms apart, so a sample may read up to one frame long. The
# server's own times (model run, whole handling) are read from the status line.
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
                              patch: null};
  window.addEventListener('keydown', () => { sdm.t0 = performance.now(); }, true);
  const doc = window.Bokeh.documents[0];
  const apply = doc.apply_json_patch.bind(doc);
  doc.apply_json_patch = (...args) => {
    const t = performance.now();
    const out = apply(...args);
    sdm.patch = {t, done: performance.now()};
    return out;
  };
  const frame = () => {
    if (!status.isConnected) status = deep(document, '.sdm-status[data-run]') || status;
    const run = status.getAttribute('data-run');
    if (status.getAttribute('data-state') === 'ok' && run !== sdm.last && sdm.t0 !== null) {
      sdm.last = run;
      const t0 = sdm.t0, patch = sdm.patch || {t: NaN, done: NaN};
      sdm.t0 = null;
      const num = (k) => Number(status.getAttribute(k));
      requestAnimationFrame(() => {
        const now = performance.now();
        sdm.samples.push({total: now - t0, received: patch.t - t0, apply: patch.done - patch.t,
                          paint: now - patch.done, model: num('data-model-ms'),
                          server: num('data-server-ms')});
      });
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


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    k = (len(ordered) - 1) * q
    lo, hi = int(k), min(int(k) + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (k - lo)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--scenario", default=str(ROOT / "scenarios" / "equalization.yaml"))
    parser.add_argument("--moves", type=int, default=30)
    parser.add_argument("--warmup", type=int, default=2, help="moves not counted")
    parser.add_argument(
        "--screenshot", metavar="PNG", help="save the page (1500x1000 pixels) after the moves"
    )
    parser.add_argument(
        "--method",
        help="serve with --method METHOD (euler runs the numba kernel when numba is installed)",
    )
    parser.add_argument(
        "--jit",
        action="store_true",
        help="serve with --method euler --jit (the numba kernel; first start compiles it)",
    )
    args = parser.parse_args()
    extra = ["--method", "euler", "--jit"] if args.jit else []
    if args.method and not args.jit:
        extra = ["--method", args.method]
    chromium = chromium_path()
    samples: list[dict[str, float]] = []
    with (
        tempfile.TemporaryDirectory() as tmp,
        serve_explorer(Path(args.scenario), Path(tmp), *extra) as url,
    ):
        with browser_page(chromium) as page:
            page.goto(url)
            wait_for_run(page, 1)
            page.evaluate(HOOK)
            wanted = args.moves + args.warmup
            plan = [label for label, n in MOVES for _ in range(n)][:wanted]
            if len(plan) < wanted:
                raise SystemExit(f"at most {len(plan)} distinct moves are planned")
            for i, label in enumerate(plan):
                handle = page.locator(".sdm-lever", has_text=label).first.locator(".noUi-handle")
                handle.focus()
                page.keyboard.press("ArrowRight")
                page.wait_for_function(f"window.__sdm.samples.length >= {i + 1}", timeout=120_000)
                time.sleep(0.05)  # let the page settle between moves
            samples = page.evaluate("window.__sdm.samples")[args.warmup :]
            if args.screenshot:
                page.set_viewport_size({"width": 1500, "height": 1000})
                page.wait_for_timeout(500)
                page.screenshot(path=args.screenshot)
    how = "Euler + numba kernel" if args.jit else (args.method or "the scenario's solver")
    print(
        f"{len(samples)} slider moves on {Path(args.scenario).name}, {how} "
        f"(after {args.warmup} warm-up)"
    )
    rows = [
        ("key press -> graphs painted", "total"),
        ("  model run (server)", "model"),
        ("  server, value in -> patch out", "server"),
        ("  key press -> patch in (browser)", "received"),
        ("  patch applied (browser JS)", "apply"),
        ("  applied -> painted (browser)", "paint"),
    ]
    for name, key in rows:
        values = [s[key] for s in samples]
        print(
            f"  {name:34s} median {statistics.median(values):6.0f} ms   "
            f"p95 {percentile(values, 0.95):6.0f} ms   "
            f"min {min(values):6.0f}   max {max(values):6.0f}"
        )
    transport = statistics.median([s["received"] - s["server"] for s in samples])
    print(f"  {'  key press -> patch in, less server':34s} median {transport:6.0f} ms")
    load = Path("/proc/loadavg").read_text().split()[:3] if Path("/proc/loadavg").exists() else []
    if load:
        print(f"  load average during the run: {' '.join(load)}")
    if not samples:
        raise SystemExit("no samples")


if __name__ == "__main__":
    main()
