"""The calibration notebook: committed with its outputs, and re-executed (slow)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.test_notebooks import _execute, _pngs, _tagged, _text

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOK = ROOT / "notebooks" / "fit_boarding_school.ipynb"
FIGURES = ("fit-figure", "posterior-figure", "fan-figure", "backtest-figure")


def _check(nb: object) -> None:
    code = [c for c in nb.cells if c.cell_type == "code"]  # type: ignore[attr-defined]
    assert not [o for c in code for o in c.outputs if o.output_type == "error"]
    for tag in FIGURES:
        (png,) = _pngs(_tagged(nb, tag))
        assert png.startswith(b"\x89PNG\r\n\x1a\n") and len(png) > 5_000, tag
    # The fit and the least-squares fit show the published values.
    fit = _text(_tagged(nb, "fit-table"))
    beta = float(re.search(r"contact rate=([\d.]+)", fit).group(1))  # type: ignore[union-attr]
    assert abs(beta - 1.73) < 0.03
    ls = _text(_tagged(nb, "least-squares"))
    assert "'contact rate': 1.66" in ls or "'contact rate': 1.67" in ls
    posterior = _text(_tagged(nb, "posterior-table"))
    for word in ("contact rate", "recovery rate", "R-hat", "ESS", "evaluations"):
        assert word in posterior, word
    backtest = _text(_tagged(nb, "backtest-table"))
    for word in ("model", "no_change", "trend", "mase"):
        assert word in backtest, word


def test_notebook_is_committed_with_its_outputs() -> None:
    import nbformat

    nb = nbformat.read(NOTEBOOK, as_version=4)
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert [c.execution_count for c in code] == list(range(1, len(code) + 1))
    _check(nb)
    text = NOTEBOOK.read_text(encoding="utf-8")
    assert str(ROOT) not in text and "/home/" not in text
    assert NOTEBOOK.stat().st_size < 1_000_000


@pytest.mark.slow
def test_notebook_runs_and_shows_the_fit_posterior_and_fan_chart() -> None:
    nb, seconds = _execute(NOTEBOOK)
    _check(nb)
    assert seconds < 300, f"the notebook took {seconds:.0f} s"
