"""Canonical outputs of the SDXorg test models and how to compare with them.

The corpus lives outside the project (``../shared/test-models`` beside the checkout,
or ``$SD_MODEL_TEST_MODELS``); tests that need it skip cleanly when it is absent.
"""

from __future__ import annotations

import itertools
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import xarray as xr

MODEL_SUFFIXES = (".mdl", ".xmile", ".stmx")


def find_test_models() -> Path | None:
    """The test-model corpus, or None when it is not on this machine."""
    env = os.environ.get("SD_MODEL_TEST_MODELS")
    candidates = [Path(env)] if env else []
    here = Path(__file__).resolve()
    candidates += [
        here.parents[2] / "shared" / "test-models",
        here.parents[1] / "shared" / "test-models",
    ]
    for c in candidates:
        if c.is_dir():
            return c
    return None


@dataclass(frozen=True)
class Case:
    """One model file with its canonical output."""

    model: Path
    output: Path

    @property
    def id(self) -> str:
        return f"{self.model.parent.name}/{self.model.name}"


def discover_cases(root: Path) -> list[Case]:
    """Every model file in the corpus that has a canonical output beside it.

    Vensim files pair with ``output.tab``/``output.csv``; XMILE files prefer
    ``output_stella.csv`` (Stella's own output) and fall back to ``output.tab``/``.csv``.
    """
    cases: list[Case] = []
    for folder in sorted(p for p in root.glob("*/*") if p.is_dir()):
        outputs = {p.name: p for p in folder.iterdir() if p.name.startswith("output")}
        for model in sorted(folder.iterdir()):
            suffix = model.suffix.lower()
            if suffix not in MODEL_SUFFIXES:
                continue
            if suffix == ".mdl":
                order = ["output.tab", "output.csv"]
            else:
                order = ["output_stella.csv", "output.tab", "output.csv"]
            out = next((outputs[n] for n in order if n in outputs), None)
            if out is not None:
                cases.append(Case(model, out))
    return cases


def read_canonical(path: Path) -> pd.DataFrame:
    """Read a canonical output (tab or comma separated, any line endings), time as index."""
    text = path.read_bytes().decode("utf-8", errors="replace")
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    sep = "\t" if path.suffix == ".tab" else ","
    from io import StringIO

    df = pd.read_csv(StringIO(text), sep=sep)
    df.columns = [str(c).strip().strip('"') for c in df.columns]
    first = df.columns[0]
    # Some files are transposed (one row per variable); detect by a non-numeric first column.
    if not pd.api.types.is_numeric_dtype(df[first]):
        df = df.set_index(first).T
        df.index = df.index.astype(float)
    else:
        df = df.set_index(first)
    df.index = df.index.astype(float)
    return df.apply(pd.to_numeric, errors="coerce")


def _norm(name: str) -> str:
    return " ".join(name.replace("_", " ").replace('"', "").split()).lower()


def dataset_columns(ds: xr.Dataset) -> dict[str, np.ndarray]:
    """Our results as ``normalized 'Name[a,b]'`` -> values over time."""
    out: dict[str, np.ndarray] = {}
    n = ds.sizes["time"]
    for name, da in ds.data_vars.items():
        if "sd_kind" not in da.attrs:
            continue
        long = _norm(str(da.attrs.get("long_name", name)))
        if "time" not in da.dims:
            da = da.expand_dims(time=n)
        sub = [d for d in da.dims if d != "time"]
        da = da.transpose("time", *sub)
        if not sub:
            out[long] = da.values
            continue
        labels = [[str(v) for v in da.coords[d].values] for d in sub]
        vals = da.values.reshape(n, -1)
        for i, combo in enumerate(itertools.product(*labels)):
            out[_norm(f"{long}[{','.join(combo)}]")] = vals[:, i]
    return out


def compare(ds: xr.Dataset, canonical: pd.DataFrame, rtol: float = 1e-3) -> list[str]:
    """Differences between a run and a canonical output, as readable lines.

    Rows are aligned by nearest time; each column is compared with a tolerance of
    ``rtol`` times the column's scale (its largest magnitude), so near-zero values get
    a sensible absolute tolerance. Empty canonical cells are ignored. Returns the
    list of failing columns (empty when everything matches); a canonical column we
    do not produce is a failure too.
    """
    ours = dataset_columns(ds)
    times = ds["time"].values
    problems: list[str] = []
    matched = 0
    for col in canonical.columns:
        key = _norm(col)
        if key in {"time"}:
            continue
        if key not in ours:
            problems.append(f"missing column {col!r}")
            continue
        ref = canonical[col]
        idx = np.abs(times[None, :] - ref.index.values[:, None]).argmin(axis=1)
        close_in_time = np.abs(times[idx] - ref.index.values) <= 1e-3 * max(
            1.0, float(np.abs(times).max() or 1.0)
        )
        got = ours[key][idx]
        want = ref.values.astype(float)
        ok = np.isfinite(want) & close_in_time
        if not ok.any():
            continue
        matched += 1
        scale = max(float(np.nanmax(np.abs(want[ok]))), 1e-12)
        err = np.abs(got[ok] - want[ok])
        bad = err > rtol * scale + 1e-12
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            t = ref.index.values[ok][i]
            problems.append(
                f"{col!r}: at time {t:g} got {got[ok][i]:.6g}, canonical {want[ok][i]:.6g} "
                f"(max error {err.max():.3g}, scale {scale:.3g})"
            )
    if matched == 0:
        problems.append("no canonical column could be compared")
    return problems
