"""Execute the example notebooks and check what they show."""

from __future__ import annotations

import base64
import time
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOK = ROOT / "notebooks" / "kazakhstan_policies.ipynb"


def _execute(path: Path) -> tuple[Any, float]:
    try:
        import nbformat
        from nbclient import NotebookClient
    except ImportError as exc:  # pragma: no cover - depends on the environment
        pytest.fail(f"{exc}; install the test extras: pip install -e '.[test]'")
    nb = nbformat.read(path, as_version=4)
    client = NotebookClient(
        nb,
        timeout=300,
        kernel_name="python3",
        resources={"metadata": {"path": str(path.parent)}},
    )
    start = time.perf_counter()
    client.execute()  # raises CellExecutionError, naming the cell, on the first error
    return nb, time.perf_counter() - start


def _tagged(nb: Any, tag: str) -> Any:
    cells = [c for c in nb.cells if tag in c.get("metadata", {}).get("tags", [])]
    assert len(cells) == 1, f"expected one cell tagged {tag!r}, found {len(cells)}"
    return cells[0]


def _text(cell: Any) -> str:
    parts = []
    for out in cell.outputs:
        if out.output_type == "stream":
            parts.append(out.text)
        elif "data" in out and "text/plain" in out.data:
            parts.append(out.data["text/plain"])
    return "\n".join(parts)


def _pngs(cell: Any) -> list[bytes]:
    return [
        base64.b64decode(out.data["image/png"])
        for out in cell.outputs
        if "data" in out and "image/png" in out.data
    ]


@pytest.mark.slow
def test_kazakhstan_policies_notebook_runs_and_shows_results() -> None:
    nb, seconds = _execute(NOTEBOOK)
    errors = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs]
    assert not [o for o in errors if o.output_type == "error"]
    assert all(c.execution_count for c in nb.cells if c.cell_type == "code")

    for tag in ("williamson-figure", "regional-figure"):
        images = _pngs(_tagged(nb, tag))
        assert len(images) == 1, tag
        assert images[0].startswith(b"\x89PNG\r\n\x1a\n") and len(images[0]) > 10_000

    # The regional table has a row for each of the 20 regional units of the data.
    regions = pd.read_csv(ROOT / "models" / "data" / "region_centres.csv")["region"]
    assert len(regions) == 20
    table = _text(_tagged(nb, "regional-table"))
    rows = [line for line in table.splitlines()[2:] if line.strip()]
    assert len(rows) == 20
    for region in regions:
        assert region in table, region

    disparity = _text(_tagged(nb, "disparity-table"))
    for word in ("williamson", "gini", "baseline", "equalization", "loans_incentives", "2050"):
        assert word in disparity, word

    check = _text(_tagged(nb, "williamson-figure"))
    gap = float(check.split("Williamson index:")[1].split()[0])
    assert gap < 1e-9
    assert "equalization: Williamson index -" in _text(_tagged(nb, "summary"))
    # The sensitivity heatmap and its table: 4 public-service weights x 3 income weights.
    assert len(_pngs(_tagged(nb, "sensitivity-figure"))) == 1
    sens = _text(_tagged(nb, "sensitivity-figure")).splitlines()
    start = next(i for i, line in enumerate(sens) if line.startswith("income_utility_weight"))
    rows = [line.split() for line in sens[start + 2 : start + 6]]
    assert [r[0] for r in rows] == ["0.00", "0.10", "0.25", "0.50"]
    assert all(len(r) == 4 for r in rows)
    assert seconds < 240, f"the notebook took {seconds:.0f} s; keep it under a minute"


def test_notebook_is_committed_with_its_outputs() -> None:
    # A reader on the web sees the committed file, not a run: it must carry its figures
    # and tables, from one run in order, without local paths, at a size a repo can hold.
    import nbformat

    nb = nbformat.read(NOTEBOOK, as_version=4)
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert [c.execution_count for c in code] == list(range(1, len(code) + 1))
    assert all(c.outputs for c in code)
    assert not [o for c in code for o in c.outputs if o.output_type == "error"]
    for tag in ("williamson-figure", "regional-figure", "sensitivity-figure"):
        (png,) = _pngs(_tagged(nb, tag))
        assert png.startswith(b"\x89PNG\r\n\x1a\n"), tag
    for tag in ("regional-table", "disparity-table", "summary"):
        assert _text(_tagged(nb, tag)).strip(), tag
    text = NOTEBOOK.read_text(encoding="utf-8")
    assert str(ROOT) not in text and "/home/" not in text
    assert NOTEBOOK.stat().st_size < 1_000_000
