"""Policy explorer latency, measured in the browser: slider move to redrawn graphs.

Starts ``sd-model explore`` on the Kazakhstan model, opens the page in headless Chromium
(Debian's, driven by Playwright), and moves sliders with the keyboard. For each move the
page itself times the interval from the key press (a ``keydown`` listener) to the frame
after the status line reports the new run: every graph and the table are updated in the
same document change as the status, and two ``requestAnimationFrame`` callbacks later
the browser has painted them.

Each move goes to lever values not visited before, so every sample re-runs the model
(the explorer caches runs by lever values).

Run from the repository root (not part of the test run)::

    .venv/bin/python benchmarks/bench_explore.py              # 30 moves, ~1-2 minutes
    .venv/bin/python benchmarks/bench_explore.py --moves 60 --scenario scenarios/green.yaml
    .venv/bin/python benchmarks/bench_explore.py --jit     # Euler on the numba kernel
    .venv/bin/python benchmarks/bench_explore.py --moves 4 --screenshot docs/explorer.png
"""

from __future__ import annotations

import argparse
import re
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

# Installed in the page: stamps each key press; every animation frame checks the status
# line (Panel may rebuild the pane, so the element is found again when it is replaced),
# and a new run is stamped one frame after it appears, when the graphs updated in the
# same document change have been painted. Frames are ~16 ms apart: a sample may read up
# to one frame long.
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
  const sdm = window.__sdm = {t0: null, samples: [], last: status.getAttribute('data-run')};
  window.addEventListener('keydown', () => { sdm.t0 = performance.now(); }, true);
  const frame = () => {
    if (!status.isConnected) status = deep(document, '.sdm-status[data-run]') || status;
    const run = status.getAttribute('data-run');
    if (status.getAttribute('data-state') === 'ok' && run !== sdm.last && sdm.t0 !== null) {
      sdm.last = run;
      const t0 = sdm.t0;
      sdm.t0 = null;
      const model = Number((status.textContent.match(/model (\\d+) ms/) || [0, NaN])[1]);
      requestAnimationFrame(() => sdm.samples.push({total: performance.now() - t0, model}));
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
        "--jit",
        action="store_true",
        help="serve with --method euler --jit (the numba kernel; first start compiles it)",
    )
    args = parser.parse_args()
    chromium = chromium_path()
    samples: list[dict[str, float]] = []
    with (
        tempfile.TemporaryDirectory() as tmp,
        serve_explorer(Path(args.scenario), Path(tmp)) as url,
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
    totals = [s["total"] for s in samples]
    models = [s["model"] for s in samples]
    how = "Euler + numba kernel" if args.jit else "the scenario's solver"
    print(
        f"{len(totals)} slider moves on {Path(args.scenario).name}, {how} "
        f"(after {args.warmup} warm-up)"
    )
    for name, values in (("key press -> graphs painted", totals), ("model run (server)", models)):
        print(
            f"  {name:30s} median {statistics.median(values):6.0f} ms   "
            f"p95 {percentile(values, 0.95):6.0f} ms   "
            f"min {min(values):6.0f}   max {max(values):6.0f}"
        )
    rest = [t - m for t, m in zip(totals, models, strict=True)]
    print(f"  {'page overhead (total - model)':30s} median {statistics.median(rest):6.0f} ms")
    load = Path("/proc/loadavg").read_text().split()[:3] if Path("/proc/loadavg").exists() else []
    if load:
        print(f"  load average during the run: {' '.join(load)}")
    if not re.search(r"\d", str(totals)):
        raise SystemExit("no samples")


if __name__ == "__main__":
    main()
