"""The policy explorer in a real browser: Debian's Chromium driven by Playwright.

Each test starts ``sd-model explore`` on a free port of 127.0.0.1, moves sliders with the
keyboard, waits for the page to say a new run is drawn, and compares the numbers shown
with ``Model.run`` (or ``sd-model run``) at the same lever values.

Chromium comes from Debian (``apt-get install chromium``; Playwright's own browser
download cannot work here). Without it these tests skip, except under CI (``CI=true``),
where they fail: ``.ci/run`` installs it.
"""

from __future__ import annotations

import os
import queue
import re
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import numpy as np
import pandas as pd
import pytest

import sd_model
from sd_model._errors import IntegrationError
from sd_model.cli import main
from sd_model.metrics import theil_index, williamson_index
from tests.test_explore import FAILING_MDL, REGIONS_MDL

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
START_TIMEOUT = 120.0  # s: model load, compilation and the baseline run, on a busy machine
WAIT_MS = 90_000  # one run and redraw, on a busy machine (the benchmark measures the real time)


def chromium_path() -> str:
    """Debian's Chromium, or skip (fail under CI, where .ci/run installs it)."""
    path = os.environ.get("SD_MODEL_CHROMIUM") or next(
        (p for p in ("/usr/bin/chromium", "/usr/bin/chromium-browser") if Path(p).exists()),
        shutil.which("chromium"),
    )
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        missing = "the playwright package (pip install playwright)"
    else:
        missing = "" if path else "Chromium (apt-get install chromium)"
    if missing:
        if os.environ.get("CI") == "true":
            pytest.fail(f"browser tests need {missing}; .ci/run installs it under CI")
        pytest.skip(f"browser tests need {missing}")
    assert path is not None
    return path


@contextmanager
def serve_explorer(
    target: Path,
    save_dir: Path,
    *extra: str,
    timeout: float = START_TIMEOUT,
    cwd: Path = ROOT,
    prelude: str = "",
) -> Iterator[str]:
    """Run ``sd-model explore TARGET --port 0`` and yield the address it prints.

    ``cwd``: the source tree whose ``sd_model`` serves (the benchmark compares two trees).
    ``prelude``: Python run in the server's process before the command (a test's patch).
    """
    cmd = [sys.executable, "-m", "sd_model.cli", "explore", str(target), "--port", "0"]
    if prelude:
        main_call = "import sys\nfrom sd_model.cli import main\nsys.exit(main(sys.argv[1:]))"
        cmd = [sys.executable, "-c", f"{prelude}\n{main_call}", *cmd[3:]]
    cmd += ["--no-browser", "--save-dir", str(save_dir), *extra]
    proc = subprocess.Popen(
        cmd,
        cwd=cwd,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    lines: queue.Queue[str] = queue.Queue()
    log: list[str] = []

    def pump() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            log.append(line)
            lines.put(line)

    threading.Thread(target=pump, daemon=True).start()
    try:
        deadline = time.monotonic() + timeout
        url = None
        while url is None:
            try:
                line = lines.get(timeout=max(0.1, deadline - time.monotonic()))
            except queue.Empty:
                break
            match = re.search(r"serving .* at (http://127\.0\.0\.1:\d+/)", line)
            url = match.group(1) if match else None
        if url is None:
            pytest.fail(f"sd-model explore did not start in {timeout:.0f} s:\n{''.join(log)}")
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=15)


@contextmanager
def browser_page(chromium: str) -> Iterator[Any]:
    """A fresh headless page that records every request, failure and console error."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=chromium, args=CHROMIUM_FLAGS, timeout=60_000)
        try:
            page = browser.new_page(viewport={"width": 1500, "height": 1100})
            page.set_default_timeout(WAIT_MS)
            page.sd_requests = []  # type: ignore[attr-defined]
            page.sd_failures = []  # type: ignore[attr-defined]
            page.sd_errors = []  # type: ignore[attr-defined]
            page.on("request", lambda r: page.sd_requests.append(r.url))
            page.on("requestfailed", lambda r: page.sd_failures.append((r.url, r.failure)))
            page.on("pageerror", lambda e: page.sd_errors.append(str(e)))
            page.on(
                "console",
                lambda m: page.sd_errors.append(m.text) if m.type == "error" else None,
            )
            yield page
        finally:
            browser.close()


def wait_for_run(page: Any, n: int, state: str = "ok") -> None:
    """Wait until the status says run ``n`` is shown (or that a run failed)."""
    page.wait_for_selector(f".sdm-status[data-run='{n}'][data-state='{state}']")


def wait_for_graphs(page: Any, n: int) -> dict[str, Any]:
    """Wait until the graphs have drawn run ``n``; the numbers they drew (per graph id)."""
    page.wait_for_function(f"window.__sdmCharts && window.__sdmCharts.drawn === {n}")
    return page.evaluate(
        """() => {
        const c = window.__sdmCharts, f = c.frame, out = {};
        for (const [k, line] of Object.entries(f.lines)) out[k] = Array.from(line.current);
        out.regional = Array.from(f.regional || []);
        out.bars = Array.from(f.bars || []);
        out.regions = c.scene.regions;
        out.times = Array.from(c.scene.times);
        return out;
    }"""
    )


def check_drawn(drawn: dict[str, Any], ds: Any) -> None:
    """The graphs' arrays against a ``Model.run`` Dataset (GDP, income by region, Theil)."""
    np.testing.assert_allclose(drawn["times"], ds.time.values)
    np.testing.assert_allclose(drawn["national"], ds.gdp.values, rtol=1e-9)
    income = ds.income_per_capita.transpose("time", "Region").sel(Region=drawn["regions"])
    np.testing.assert_allclose(drawn["regional"], income.values.ravel(), rtol=1e-9)
    np.testing.assert_allclose(drawn["bars"], income.isel(time=-1).values, rtol=1e-9)
    theil = theil_index(income, ds.population, dim="Region")
    np.testing.assert_allclose(drawn["theil"], theil.values, rtol=1e-9)


def lever(page: Any, label: str) -> Any:
    return page.locator(".sdm-lever", has_text=label).first


def move(page: Any, label: str, key: str) -> None:
    """Focus a slider's handle and press a key (ArrowRight: one step; End: the maximum)."""
    lever(page, label).locator(".noUi-handle").focus()
    page.keyboard.press(key)


def slider_value(page: Any, label: str) -> str:
    return lever(page, label).locator(".bk-slider-title").inner_text().rsplit(":", 1)[1].strip()


def shown(page: Any, key: str, run: str = "current") -> tuple[float, float]:
    """A table cell: its full-precision value and the number its text shows."""
    cell = page.locator(f"tr[data-key='{key}'] td[data-run='{run}']").first
    text = cell.inner_text().replace(",", "")
    return float(cell.get_attribute("data-value")), float(text)


def assert_shown(page: Any, key: str, expected: float, run: str = "current") -> None:
    value, text = shown(page, key, run)
    assert value == pytest.approx(expected, rel=1e-9), key
    assert text == pytest.approx(expected, rel=5e-3), key  # four significant digits shown


def artifact_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Where screenshots are kept: $SD_MODEL_TEST_ARTIFACTS, else pytest's temp folder."""
    given = os.environ.get("SD_MODEL_TEST_ARTIFACTS")
    folder = Path(given) if given else tmp_path_factory.getbasetemp() / "artifacts"
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def assert_offline(page: Any, url: str) -> None:
    """Everything the page loaded came from the explorer's own server."""
    origin = urlsplit(url).netloc
    foreign = [
        u for u in page.sd_requests if not (u.startswith("blob:") or urlsplit(u).netloc == origin)
    ]
    assert foreign == [], foreign
    assert page.sd_failures == [], page.sd_failures
    assert page.sd_errors == [], page.sd_errors


def check_kazakhstan_numbers(page: Any, ds: Any) -> None:
    """The table's 2050 numbers against a ``Model.run`` Dataset, by independent formulas."""
    at = {"time": 2050}
    y = ds.income_per_capita.sel(at)
    p = ds.population.sel(at)
    assert_shown(page, "national", float(ds.gdp.sel(at)))
    assert_shown(page, "williamson", float(williamson_index(y, p, dim="Region")))
    assert_shown(page, "theil", float(theil_index(y, p, dim="Region")))
    # The model computes the Williamson index itself too (its own equation).
    assert shown(page, "williamson")[0] == pytest.approx(float(ds.williamson_index.sel(at)), 1e-9)
    for region in ds.Region.values:
        assert_shown(page, f"region:{region}", float(y.sel(Region=region)))


def test_kazakhstan_explorer_in_browser(
    tmp_path: Path, tmp_path_factory: pytest.TempPathFactory
) -> None:
    chromium = chromium_path()
    scenario = sd_model.Scenario.from_yaml(ROOT / "scenarios" / "equalization.yaml")
    with ThreadPoolExecutor(1) as pool:  # load here while the server starts
        loading = pool.submit(scenario.load_model)
        with serve_explorer(ROOT / "scenarios" / "equalization.yaml", tmp_path) as url:
            model = loading.result()
            with browser_page(chromium) as page:
                page.goto(url)
                wait_for_run(page, 1)
                drawn = wait_for_graphs(page, 1)
                assert slider_value(page, "Equalisation grants") == "0.80"
                # The page opens at the scenario, beside the baseline (all levers off).
                opened = scenario.run(model)
                check_kazakhstan_numbers(page, opened)
                check_drawn(drawn, opened)
                base = sd_model.Scenario.from_yaml(ROOT / "scenarios" / "baseline.yaml").run(model)
                assert_shown(
                    page, "williamson", float(base.williamson_index.sel(time=2050)), "baseline"
                )

                move(page, "Equalisation grants", "ArrowRight")
                wait_for_run(page, 2)
                drawn = wait_for_graphs(page, 2)
                assert slider_value(page, "Equalisation grants") == "0.85"
                assert "equalization_transfer_intensity=0.85" in page.url
                moved = {"equalization transfer intensity": 0.85}
                expected = scenario.run(model, params=moved)
                check_kazakhstan_numbers(page, expected)
                check_drawn(drawn, expected)

                # A per-region lever: its card opens on a click, one region moves.
                page.locator(".sdm-regional-lever", has_text="Abatement investment").locator(
                    ".card-header, .card-button"
                ).first.click()
                move(page, "Pavlodar", "ArrowRight")
                wait_for_run(page, 3)
                assert "abatement_investment[Pavlodar]=5" in page.url
                moved["abatement investment[Pavlodar]"] = 5
                check_kazakhstan_numbers(page, scenario.run(model, params=moved))
                assert_offline(page, url)
                page.screenshot(
                    path=str(artifact_dir(tmp_path_factory) / "explorer.png"), full_page=True
                )
                before = shown(page, "williamson")

                # Reload: the address restores the levers and the numbers.
                address = page.url
                page.reload()
                wait_for_run(page, 1)
                assert page.url == address
                assert slider_value(page, "Equalisation grants") == "0.85"
                assert shown(page, "williamson") == before

                # Download: the results file holds the page's run.
                with page.expect_download() as download:
                    page.locator(".sdm-download-csv").first.click()
                table = pd.read_csv(download.value.path())
                row = table.loc[table["Time"] == 2050].iloc[0]
                assert_shown(page, "national", float(row["GDP"]))
                assert_shown(page, "region:Turkistan", float(row["Income per Capita[Turkistan]"]))

                # Save: `sd-model run` of the saved file gives the page's numbers.
                page.locator(".sdm-save-name input").fill("browser_saved")
                page.locator(".sdm-save-button button").click()
                saved = Path(page.locator("[data-saved]").get_attribute("data-saved"))
                assert saved == tmp_path / "browser_saved.yaml"
                out = tmp_path / "saved.nc"
                assert main(["run", str(saved), "-o", str(out)]) == 0  # `sd-model run`
                check_kazakhstan_numbers(page, sd_model.open_results(out))


def _write(folder: Path, name: str, text: str) -> Path:
    path = folder / name
    path.write_text(text, encoding="utf-8")
    return path


def test_failed_run_and_bad_address_in_browser(tmp_path: Path) -> None:
    chromium = chromium_path()
    model_file = _write(tmp_path, "failing.mdl", FAILING_MDL)
    model = sd_model.load(model_file)
    with serve_explorer(model_file, tmp_path) as url, browser_page(chromium) as page:
        # A value outside the lever's range: named on the page, the lever kept as it was.
        page.goto(url + "?growth=5")
        wait_for_run(page, 1)
        warning = page.locator(".sdm-url-text").first.inner_text()
        assert "'growth' = 5 is outside its range 0 to 0.1" in warning
        assert slider_value(page, "growth") == "0.02"

        move(page, "growth", "ArrowRight")
        wait_for_run(page, 2)
        good = float(model.run({"growth": 0.03}).x[-1])
        assert_shown(page, "national", good)

        # The model fails mid-run: the error is shown, the last good run stays drawn.
        move(page, "feedback", "End")
        wait_for_run(page, 2, state="error")
        error = page.locator(".sdm-error-text").first.inner_text()
        assert "The model failed at these lever values" in error
        with pytest.raises(IntegrationError) as failure:  # the same failure, from Python
            model.run({"growth": 0.03, "feedback": 1.0})
        assert str(failure.value).split(": ", 1)[1] in " ".join(error.split())
        assert_shown(page, "national", good)
        assert "feedback=1" in page.url

        # Reset: every lever back at its baseline, the error gone, the baseline's numbers.
        page.locator(".sdm-reset button").first.click()
        wait_for_run(page, 3)
        assert (slider_value(page, "growth"), slider_value(page, "feedback")) == ("0.02", "0.0")
        assert_shown(page, "national", float(model.run().x[-1]))
        assert page.locator(".sdm-error-text").first.is_hidden()
        assert page.sd_errors == []


def test_fallback_backend_in_browser(tmp_path: Path) -> None:
    chromium = chromium_path()
    # RANDOM UNIFORM with min = max is deterministic; a small time step makes each run
    # slow enough on the reference backend to see the busy state.
    text = REGIONS_MDL.replace(
        "INITIAL TIME = 2022",
        "noise = RANDOM UNIFORM(0, 0, 1)\n\t~\tDmnl\n\t~\tZero.\n\t|\nINITIAL TIME = 2022",
    ).replace("TIME STEP = 0.25", "TIME STEP = 0.05")
    model_file = _write(tmp_path, "noisy.mdl", text)
    # The compiled backend now covers RANDOM UNIFORM too: the server's process is told
    # that it does not (as the compiler says of a construct it lacks).
    refuse = (
        "import sd_model.model, sd_model._errors\n"
        "def compiled(self):\n"
        "    raise sd_model._errors.UnsupportedFeatureError(\n"
        '        "The compiled backend does not support the function RANDOM UNIFORM in "\n'
        "        \"element 'noise'; use backend='pysd' for this model.\")\n"
        "sd_model.model.Model.compiled = compiled\n"
    )
    with (
        serve_explorer(model_file, tmp_path, prelude=refuse) as url,
        browser_page(chromium) as page,
    ):
        page.goto(url)
        wait_for_run(page, 1)
        note = page.locator(".sdm-backend-text").first.inner_text()
        assert "PySD's reference backend" in note and "RANDOM UNIFORM" in note

        move(page, "transfer share", "ArrowRight")
        page.wait_for_selector(".sdm-status[data-state='running']")
        # Busy, not frozen: the view still answers while the model runs.
        year = page.locator(".sdm-year .noUi-handle").first
        year.focus()
        page.keyboard.press("Home")
        page.wait_for_selector("table.sdm-numbers[data-year='2022']")
        assert page.locator(".sdm-status[data-state='running']").count() == 1
        page.keyboard.press("End")
        wait_for_run(page, 2)
        assert "pysd backend" in page.locator(".sdm-status[data-run]").first.inner_text()
        model = sd_model.load(model_file)
        ds = model.run({"transfer share": 0.1}, backend="pysd")
        y = ds.income_per_capita.sel(time=2040)
        assert_shown(
            page,
            "williamson",
            float(williamson_index(y, ds.population.sel(time=2040), dim="Region")),
        )
        assert_shown(page, "region:South", float(y.sel(Region="South")))
