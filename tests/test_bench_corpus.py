"""The benchmark corpus generator: deterministic models both backends run alike.

The generated stand-ins (``benchmarks/models/generate.py``) are what the speed work is
measured on; a model PySD and the compiled backend disagree on would make its ratios
meaningless. The small ones are checked here against PySD's own run (Euler, as the files
declare); the large ones share the same building blocks.
"""

from __future__ import annotations

import importlib.util
import shutil
import sys
import warnings
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest

import sd_model

GENERATOR = Path(__file__).resolve().parent.parent / "benchmarks" / "models" / "generate.py"


@pytest.fixture(scope="module")
def generate() -> ModuleType:
    spec = importlib.util.spec_from_file_location("bench_generate", GENERATOR)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


def test_generation_is_deterministic_and_sized(generate: ModuleType) -> None:
    for name, (kind, size) in generate.CORPUS.items():
        text = generate.generate(name)
        assert text == generate.generate(name)
        # every definition ends with '|'; not counted: the four control variables and,
        # in the COVID-shaped model, the macro's own equation and the subscript range
        not_variables = 4 + (2 if kind == "covid" else 0)
        assert text.count("\n\t|\n") - not_variables == size, name
    assert generate.scalar_model(50, seed=1) != generate.scalar_model(50, seed=2)


def _pysd_run(path: Path, tmp: Path) -> object:
    import pysd

    copy = tmp / path.name
    shutil.copy(path, copy)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return pysd.read_vensim(str(copy)).run(final_time=10)


@pytest.mark.parametrize(
    "text_of",
    [
        pytest.param(lambda g: g.scalar_model(50, seed=50), id="scalar50"),
        pytest.param(lambda g: g.covid_like(60, seed=19), id="covid_like_small"),
    ],
)
def test_both_backends_agree_under_euler(generate: ModuleType, tmp_path: Path, text_of) -> None:
    path = tmp_path / "model" / "gen.mdl"
    path.parent.mkdir()
    path.write_text(text_of(generate))
    model = sd_model.load(path, cache_dir=tmp_path / "cache")
    ds = model.run(backend="compiled", final_time=10)  # Euler, as the file declares
    pysd_dir = tmp_path / "pysd"
    pysd_dir.mkdir()
    df = _pysd_run(path, pysd_dir)
    compared = 0
    for name in ds.data_vars:
        da = ds[name]
        long = da.attrs.get("long_name")
        if da.dims != ("time",) or long not in df.columns:  # type: ignore[attr-defined]
            continue
        theirs = df[long].to_numpy(dtype=float)  # type: ignore[index]
        np.testing.assert_allclose(da.values, theirs, rtol=1e-12, atol=1e-12, err_msg=long)
        compared += 1
    assert compared >= 25
    kinds = {
        type(c.ast).__name__
        for el in model.abstract_model.sections[0].elements
        for c in el.components
    }
    assert {"IntegStructure", "LookupsStructure"} <= kinds
    assert kinds & {"SmoothStructure", "SmoothNStructure"}
    assert kinds & {"DelayStructure", "DelayNStructure"}
