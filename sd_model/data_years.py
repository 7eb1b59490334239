"""Years that follow the data: the latest year with complete data, and fitting windows.

Calibration files and scenario files may write a year as a reference to data files, so
that appending rows for a newer year to the data (re-basing) moves their time settings
without editing them:

```yaml
time: {initial: {latest_year_in: ../models/data/series_*.csv}, final: 2050}
```

``{latest_year_in: FILES}`` is the latest year in which every value column of every one
of ``FILES`` has a value: for the regional series, the latest year in which every region
has a value. ``FILES`` is a path or a list of paths, relative to the file that holds the
reference; a path may be a glob such as ``data/series_*.csv``. Optional keys: ``time``,
the year column (default ``year``), and ``ignore``, note columns that are not values
(default ``[unit, source]``). Gaps in earlier years do not matter, but a row after the
latest complete year is an error (an unfinished update): re-basing on the year before
without a word would be a silent failure.

A calibration file's ``window:`` is its fitting window, which sets ``time: initial`` and
``final`` and the data items' ``times:``:

```yaml
window:
  final: {latest_year_in: data/series_*.csv}  # a year or a reference
  years: 7             # at most this many years, ending in final
  breaks: [2022]       # never span a break: a window ending in or after it starts there,
  min_years: 2         # and when that leaves fewer than min_years (default 2), it ends
                       # the year before the break instead
```
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pandas as pd

from sd_model._errors import SDModelError

__all__ = [
    "DataYearError",
    "is_year_reference",
    "latest_complete_year",
    "resolve_window",
    "resolve_year",
]

REFERENCE_KEYS = ("latest_year_in", "time", "ignore")
WINDOW_KEYS = ("final", "years", "breaks", "min_years")


class DataYearError(SDModelError, ValueError):
    """A year reference or a window names missing files or columns, or data with gaps."""


def is_year_reference(value: Any) -> bool:
    """Whether a YAML value is a year reference (a mapping with ``latest_year_in``)."""
    return isinstance(value, Mapping) and "latest_year_in" in value


def latest_complete_year(spec: Mapping[str, Any], base: str | Path, where: str) -> int:
    """The year a ``{latest_year_in: FILES}`` reference stands for.

    Parameters
    ----------
    spec : mapping
        ``latest_year_in`` (a path, a glob or a list of them), and optionally ``time``
        (the year column, default ``year``) and ``ignore`` (note columns, default
        ``[unit, source]``).
    base : path-like
        The folder the paths are relative to (that of the file holding the reference).
    where : str
        The file and key, for error messages (e.g. ``"scenarios/baseline.yaml: time.initial"``).

    Returns
    -------
    int
        The latest year in which every value column of every file has a value.

    Raises
    ------
    DataYearError
        Unknown keys, a missing file or year column, or no year with complete data.

    Examples
    --------
    >>> spec = {"latest_year_in": "data/series_*.csv"}
    >>> latest_complete_year(spec, "models", "models/x.yaml: time.initial")  # doctest: +SKIP
    2022
    """
    if not is_year_reference(spec):
        raise DataYearError(
            f"{where}: a year reference is {{latest_year_in: <csv file>}}, got {spec!r}."
        )
    unknown = [k for k in spec if k not in REFERENCE_KEYS]
    if unknown:
        raise DataYearError(
            f"{where}: unknown key {unknown[0]!r} in the year reference "
            f"(keys: {', '.join(REFERENCE_KEYS)})."
        )
    raw = spec["latest_year_in"]
    patterns = raw if isinstance(raw, list) else [raw]
    if not patterns or not all(isinstance(p, str) and p.strip() for p in patterns):
        raise DataYearError(
            f"{where}: latest_year_in must be a path or a list of paths, got {raw!r}."
        )
    time = str(spec.get("time", "year"))
    ignore = spec.get("ignore", ["unit", "source"])
    if not isinstance(ignore, list):
        raise DataYearError(f"{where}: 'ignore' must be a list of column names, got {ignore!r}.")
    years: list[int] = []
    for pattern in patterns:
        for path in _files(Path(base), pattern, where):
            years.append(_latest_in_file(path, time, {str(c) for c in ignore}, where))
    return min(years)


def resolve_window(spec: Any, base: str | Path, where: str) -> tuple[int, int]:
    """The first and last year of a calibration file's ``window:`` section.

    Parameters
    ----------
    spec : mapping
        ``final`` (a year or a year reference), ``years`` (the window's length in years,
        counting both ends), and optionally ``breaks`` (years a window must not span) and
        ``min_years`` (default 2).
    base : path-like
        The folder the data paths are relative to.
    where : str
        The file, for error messages.

    Returns
    -------
    (int, int)
        The first and last year of the window.

    Examples
    --------
    >>> resolve_window({"final": 2021, "years": 7, "breaks": [2022]}, ".", "x")
    (2015, 2021)
    >>> resolve_window({"final": 2023, "years": 7, "breaks": [2022]}, ".", "x")
    (2022, 2023)
    >>> resolve_window({"final": 2022, "years": 7, "breaks": [2022]}, ".", "x")
    (2015, 2021)
    """
    if not isinstance(spec, Mapping):
        raise DataYearError(
            f"{where}: window: give {{final: <year or {{latest_year_in: ...}}>, years: N}}."
        )
    unknown = [k for k in spec if k not in WINDOW_KEYS]
    if unknown:
        raise DataYearError(
            f"{where}: window: unknown key {unknown[0]!r} (keys: {', '.join(WINDOW_KEYS)})."
        )
    for key in ("final", "years"):
        if key not in spec:
            raise DataYearError(f"{where}: window: missing key {key!r}.")
    years = _integer(spec["years"], f"{where}: window.years", least=1)
    min_years = _integer(spec.get("min_years", 2), f"{where}: window.min_years", least=1)
    breaks_raw = spec.get("breaks") or []
    if not isinstance(breaks_raw, list):
        raise DataYearError(f"{where}: window.breaks must be a list of years, got {breaks_raw!r}.")
    breaks = sorted(_integer(b, f"{where}: window.breaks") for b in breaks_raw)
    final = resolve_year(spec["final"], base, f"{where}: window.final")
    while True:
        first = final - years + 1
        crossed = [b for b in breaks if first < b <= final]
        if not crossed:
            return first, final
        first = crossed[-1]
        if final - first + 1 >= min_years:
            return first, final
        # Too few years after the break: end the window the year before it.
        final = first - 1


def resolve_year(value: Any, base: str | Path, where: str) -> int:
    """A year written as a whole number or as a ``{latest_year_in: ...}`` reference."""
    if is_year_reference(value):
        return latest_complete_year(value, base, where)
    return _integer(value, where)


def _integer(value: Any, where: str, least: int | None = None) -> int:
    number = value if isinstance(value, int | float) and not isinstance(value, bool) else None
    if number is None or not math.isfinite(number) or number != int(number):
        raise DataYearError(
            f"{where}: expected a whole number or {{latest_year_in: <csv file>}}, got {value!r}."
        )
    if least is not None and number < least:
        raise DataYearError(f"{where}: must be at least {least}, got {value!r}.")
    return int(number)


def _files(base: Path, pattern: str, where: str) -> list[Path]:
    if any(c in pattern for c in "*?["):
        found = sorted(p for p in base.glob(pattern) if p.is_file())
        if not found:
            raise DataYearError(
                f"{where}: latest_year_in: no file matches {pattern!r} (looked in "
                f"{base.resolve()}; paths are relative to this file)."
            )
        return found
    path = base / pattern
    if not path.is_file():
        raise DataYearError(
            f"{where}: latest_year_in: data file {pattern!r} not found (looked for "
            f"{path.resolve()}; paths are relative to this file)."
        )
    return [path]


def _latest_in_file(path: Path, time: str, ignore: set[str], where: str) -> int:
    try:
        df = pd.read_csv(path)
    except (OSError, ValueError) as exc:
        raise DataYearError(f"{where}: latest_year_in: cannot read {path}: {exc}") from exc
    if time not in df.columns:
        raise DataYearError(
            f"{where}: latest_year_in: {path.name} has no year column {time!r} (columns: "
            f"{', '.join(map(str, df.columns))}); name it with 'time:'."
        )
    values = df.drop(columns=[c for c in df.columns if c == time or str(c) in ignore])
    if values.columns.empty:
        raise DataYearError(
            f"{where}: latest_year_in: {path.name} has no value columns besides {time!r} and "
            f"the ignored {sorted(ignore)}."
        )
    year = pd.to_numeric(df[time], errors="coerce")
    values = values.apply(pd.to_numeric, errors="coerce")
    complete = year[values.notna().all(axis=1) & year.notna()]
    if complete.empty:
        raise DataYearError(
            f"{where}: latest_year_in: {path.name} has no year in which every column "
            f"({', '.join(map(str, values.columns))}) has a value."
        )
    latest = float(complete.max())
    later = year > latest
    if later.any():
        # A partly appended year is an unfinished update: using the year before without a
        # word would re-base on older data than the user expects.
        row = values[later].iloc[-1]
        missing = [str(c) for c in values.columns if pd.isna(row[c])]
        raise DataYearError(
            f"{where}: latest_year_in: {path.name} has incomplete data for "
            f"{year[later].iloc[-1]:g} (no value for {', '.join(missing)}); complete that "
            f"row or remove it (the latest year with complete data is {latest:g})."
        )
    if latest != int(latest):
        raise DataYearError(
            f"{where}: latest_year_in: {path.name}'s column {time!r} holds {latest}, not a year."
        )
    return int(latest)
