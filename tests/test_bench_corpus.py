"""The benchmark corpus generator: deterministic models both backends run alike.

The generated stand-ins (``benchmarks/models/generate.py``) are what the speed work is
measured on; a model PySD and the compiled backend disagree on would make its ratios
meaningless. The small ones are checked here against PySD's own run (Euler, as the files
declare); the large ones share the same building blocks. The table helpers of
``benchmarks/bench_corpus.py`` are checked on made-up rows.
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


@pytest.fixture(scope="module")
def bench() -> ModuleType:
    path = GENERATOR.parent.parent / "bench_corpus.py"
    spec = importlib.util.spec_from_file_location("bench_corpus_script", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def test_tier_sequence_counts_consecutive_runs(bench: ModuleType) -> None:
    assert bench.tier_sequence(["python"] * 3) == "3 python"
    assert bench.tier_sequence(["python", "python", "c", "c", "c"]) == "2 python, then 3 c"


def test_table_has_one_cell_per_column(bench: ModuleType) -> None:
    measured = {
        "model": "m.mdl",
        "variables": 4,
        "steps": 240,
        "pysd_s": 0.1,
        "run_s": 0.2,
        "run_tier": "c",
        "run_tiers": "3 python, then 17 c",
        "jit_first_s": 10.0,
        "jit_s": 0.01,
        "c_first_s": 0.5,
        "c_s": 0.001,
        "batch_s": 0.1,
        "batch_tier": "c",
        "max_rel_diff": 0.0,
    }
    no_c = {
        **measured,
        "model": "n.mdl",
        "run_tier": "python",
        "run_tiers": "20 python",
        "run_tier_note": "c: the C tier does not cover X",
        "c_first_s": None,
        "c_s": None,
        "c": "not used (the C tier does not cover X); ran on python",
    }
    text = bench.table(
        [("src", measured), ("src", no_c), ("src", {"model": "s.mdl", "skip": "why"})], "# T"
    )
    rows = [line for line in text.splitlines() if line.startswith("| ")]
    assert len(rows) == 5  # header, two models, median, worst
    assert len({line.count("|") for line in rows}) == 1
    assert "| **0.50x** (200.0 ms) | c (3 python, then 17 c) |" in text
    assert "- n.mdl: c: the C tier does not cover X" in text
    assert "- s.mdl (src): why" in text
    assert bench.ratios(measured)["c_warm"] == pytest.approx(100.0)
