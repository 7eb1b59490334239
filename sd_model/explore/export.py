"""Keep what the page shows: a scenario file that ``sd-model run`` reproduces, and results.

The saved scenario holds the page's model, time settings, solver, the base scenario's
other overrides and every lever that differs from the model file's value, plus the
``levers:`` section, so it reopens in the explorer as it was. Results are made by running
that scenario (:meth:`sd_model.Scenario.run`), the same path ``sd-model run`` takes.
"""

from __future__ import annotations

import os
import re
import tempfile
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from sd_model._errors import SDModelError
from sd_model.explore.session import ExplorerSetup
from sd_model.explore.urlstate import format_number

if TYPE_CHECKING:
    import xarray as xr

    from sd_model.scenarios import Scenario

__all__ = [
    "RESULT_FORMATS",
    "changed_levers",
    "results_bytes",
    "run_dataset",
    "save_scenario",
    "scenario_document",
    "scenario_yaml",
]

RESULT_FORMATS = (".nc", ".csv")
_SAFE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]*$")


def changed_levers(setup: ExplorerSetup, values: Mapping[str, float]) -> dict[str, Any]:
    """Lever overrides that differ from the model file, grouped per parameter.

    A subscripted parameter with any changed element is written whole (every element),
    so the file reads as one table per lever.
    """
    full = setup.levers.check(values)
    out: dict[str, Any] = {}
    for parameter, levers in setup.levers.by_parameter():
        if not any(full[lev.key] != lev.default for lev in levers):
            continue
        if levers[0].element:
            out[parameter] = {",".join(lev.element): _clean(full[lev.key]) for lev in levers}
        else:
            out[parameter] = _clean(full[levers[0].key])
    return out


def _clean(value: float) -> float | int:
    """12 significant digits, and whole numbers as integers: ``0.7``, not ``0.7000000000000001``."""
    number = float(format_number(value))
    return int(number) if number.is_integer() and abs(number) < 1e15 else number


def scenario_document(
    setup: ExplorerSetup,
    values: Mapping[str, float],
    *,
    name: str,
    description: str = "",
    directory: str | os.PathLike[str] = ".",
) -> dict[str, Any]:
    """The scenario file's content for lever ``values``, as a mapping.

    Parameters
    ----------
    setup : ExplorerSetup
    values : mapping
        Lever key -> value.
    name : str
        The scenario's name.
    description : str
        Free text; a note of where the scenario came from is added.
    directory : path-like
        Where the file will be written: the model path is written relative to it.

    Returns
    -------
    dict
    """
    model_path = Path(os.path.relpath(setup.model.path, Path(directory).resolve()))
    grid = setup.grid
    solver: dict[str, Any] = {
        "method": setup.solver.method,
        "backend": setup.requested_backend,
        "rtol": setup.solver.rtol,
        "atol": setup.solver.atol,
    }
    if setup.solver.max_step is not None:
        solver["max_step"] = setup.solver.max_step
    origin = (
        f"Saved from the policy explorer on {datetime.now(UTC):%Y-%m-%d %H:%M} UTC, "
        f"starting from {setup.source.name if setup.source else setup.model.path.name}."
    )
    doc: dict[str, Any] = {
        "name": name,
        "description": f"{description.strip()} {origin}".strip(),
        "model": model_path.as_posix(),
        "time": {
            "initial": grid.initial_time,
            "final": grid.final_time,
            "saveper": grid.saveper,
            "time_step": grid.time_step,
        },
        "solver": solver,
        "set": {**setup.base, **changed_levers(setup, values)},
    }
    if setup.seed is not None:
        doc["seed"] = setup.seed  # the page's draws of the RANDOM functions
    if setup.scenario_levers:
        doc["levers"] = {k: dict(v) for k, v in setup.scenario_levers.items()}
    return doc


class _Dumper(yaml.SafeDumper):
    """Block style for the file, flow style for short lists and lever specs."""


def _represent_dict(dumper: yaml.SafeDumper, data: dict) -> yaml.Node:
    flow = all(not isinstance(v, dict | list) for v in data.values()) and len(data) <= 8
    return dumper.represent_mapping("tag:yaml.org,2002:map", data.items(), flow_style=flow)


_Dumper.add_representer(dict, _represent_dict)


def scenario_yaml(
    setup: ExplorerSetup,
    values: Mapping[str, float],
    *,
    name: str,
    description: str = "",
    directory: str | os.PathLike[str] = ".",
) -> str:
    """:func:`scenario_document` as YAML text."""
    doc = scenario_document(setup, values, name=name, description=description, directory=directory)
    # A wide line keeps each lever on one line (flow mappings wrap badly).
    return yaml.dump(_tidy(doc), Dumper=_Dumper, sort_keys=False, allow_unicode=True, width=200)


def _tidy(value: Any) -> Any:
    """Whole-number floats as integers (``2022``, not ``2022.0``), recursively."""
    if isinstance(value, dict):
        return {k: _tidy(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_tidy(v) for v in value]
    if isinstance(value, float) and value.is_integer() and abs(value) < 1e15:
        return int(value)
    return value


def save_scenario(
    setup: ExplorerSetup,
    values: Mapping[str, float],
    directory: str | os.PathLike[str],
    name: str,
    *,
    description: str = "",
) -> Path:
    """Write ``DIRECTORY/NAME.yaml``; never replaces an existing file.

    Parameters
    ----------
    setup : ExplorerSetup
    values : mapping
        Lever key -> value.
    directory : path-like
        The folder.
    name : str
        File name without ``.yaml``: letters, digits, ``_``, ``-`` and ``.``.

    Returns
    -------
    pathlib.Path
        The file written.

    Raises
    ------
    SDModelError
        For a name with other characters, or when the file exists.

    Examples
    --------
    >>> setup = load_setup("scenarios/equalization.yaml")  # doctest: +SKIP
    >>> values = {**setup.start, "transport programme": 500}
    >>> save_scenario(setup, values, "scenarios", "my_package")  # doctest: +SKIP
    PosixPath('scenarios/my_package.yaml')
    """
    stem = name.strip().removesuffix(".yaml").removesuffix(".yml")
    if not _SAFE_NAME.match(stem):
        raise SDModelError(
            f"Scenario name {name!r}: use letters, digits, '_', '-' and '.' only "
            "(it becomes the file name)."
        )
    folder = Path(directory)
    if not folder.is_dir():
        raise SDModelError(f"Cannot save the scenario: folder {folder} does not exist.")
    path = folder / f"{stem}.yaml"
    text = scenario_yaml(setup, values, name=stem, description=description, directory=folder)
    try:
        with path.open("x", encoding="utf-8") as fh:  # "x": refuse to replace a file
            fh.write(text)
    except FileExistsError:
        raise SDModelError(
            f"{path} exists already; choose another name (saved scenarios never replace a file)."
        ) from None
    return path


def page_scenario(setup: ExplorerSetup, values: Mapping[str, float]) -> Scenario:
    """The page's state as a :class:`~sd_model.Scenario` (not written anywhere)."""
    from sd_model.scenarios import Scenario

    directory = setup.model.path.parent
    doc = scenario_document(setup, values, name=setup.name, directory=directory)
    return Scenario.from_dict(doc, base_dir=directory, source=f"explorer ({setup.name})")


def run_dataset(setup: ExplorerSetup, values: Mapping[str, float]) -> xr.Dataset:
    """The page's run as a Dataset, made the way ``sd-model run`` makes it."""
    return page_scenario(setup, values).run(model=setup.model)


def results_bytes(ds: xr.Dataset, suffix: str) -> bytes:
    """``ds`` written as ``.nc`` or ``.csv`` (:func:`sd_model.results.write_results`)."""
    from sd_model.results import write_results

    if suffix not in RESULT_FORMATS:
        raise SDModelError(f"Results download as {', '.join(RESULT_FORMATS)}, not {suffix!r}.")
    with tempfile.TemporaryDirectory() as tmp:
        path = write_results(ds, Path(tmp) / f"results{suffix}")
        return path.read_bytes()
