"""The optional numba kernel gives the NumPy path's Euler results (compiles: slow)."""

from __future__ import annotations

import pathlib
import warnings

import numpy as np
import pytest

from sd_model.compiler import _kernel, compile_model
from sd_model.integrate import SolverOptions, integrate

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not _kernel.numba_available(), reason="numba is not installed"),
]

REPO = pathlib.Path(__file__).resolve().parents[1]
TEST_MODELS = [
    "tests/subscript_2d_arrays/test_subscript_2d_arrays.mdl",
    "tests/subscripted_smooth/test_subscripted_smooth.mdl",
    "tests/lookups/test_lookups.mdl",
    "tests/subscript_aggregation/test_subscript_aggregation.mdl",
    "tests/delays/test_delays.mdl",
    "tests/delay_fixed/test_delay_fixed.mdl",
    "tests/macro_stock/test_macro_stock.mdl",
]


def _compile(path: pathlib.Path):
    from pysd.translators.vensim.vensim_file import VensimFile

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        vf = VensimFile(path)
        vf.parse()
        return compile_model(vf.get_abstract_model(), model_dir=path.parent)


def _assert_same(cm, overrides) -> None:
    grid = cm.default_grid()
    system = cm.system(overrides, grid)
    fast = system.run_euler()
    assert fast is not None, "the kernel should cover this model"
    ref = integrate(system, grid, SolverOptions(method="euler"))
    np.testing.assert_allclose(fast.times, ref.times)
    np.testing.assert_allclose(fast.states, ref.states, rtol=1e-12, atol=1e-12)
    for got, want in zip(fast.observations, ref.observations, strict=True):
        assert got.keys() == want.keys()
        for name in want:
            np.testing.assert_allclose(got[name], want[name], rtol=1e-12, atol=1e-12, err_msg=name)


def test_benchmark_model_batch() -> None:
    cm = _compile(REPO / "benchmarks" / "models" / "regions20.mdl")
    _assert_same(cm, [{}, {"savings_rate": 0.3, "perception_time": 1.5}])


@pytest.mark.parametrize("model", TEST_MODELS)
def test_test_models(model: str) -> None:
    from tests._canonical import find_test_models

    root = find_test_models()
    if root is None:
        pytest.skip("shared test models not found")
    _assert_same(_compile(root / model), [{}])


def test_uncovered_cases_fall_back(tmp_path: pathlib.Path) -> None:
    import pandas as pd

    path = tmp_path / "m.mdl"
    path.write_text(
        "{UTF-8}\nc = 1\n\t~\t\n\t~\t|\n\nx = INTEG(c, 0)\n\t~\t\n\t~\t|\n\n"
        "FINAL TIME = 3\n\t~\t\n\t~\t|\n\nINITIAL TIME = 0\n\t~\t\n\t~\t|\n\n"
        "SAVEPER = 1\n\t~\t\n\t~\t|\n\nTIME STEP = 1\n\t~\t\n\t~\t|\n"
    )
    cm = _compile(path)
    # a constant replaced by a time series stays on the NumPy path
    series = pd.Series([1.0, 2.0], index=[0.0, 3.0])
    assert cm.system([{"c": series}], cm.default_grid()).run_euler() is None


def test_an_edited_kernel_module_is_written_again_before_it_runs(
    tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Importing the cached kernel module runs it: a module that is not the generated one
    # (edited by someone, or truncated) must never be imported as it is.
    import sys

    monkeypatch.setenv("SD_MODEL_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(_kernel, "_KERNEL_CACHE", {})
    cm = _compile(REPO / "tests" / "models" / "decay.mdl")
    _assert_same(cm, [{}])
    (module,) = (tmp_path / "cache" / "kernels").glob("sdk_*.py")
    generated = module.read_text()
    marker = tmp_path / "edited-module-ran"
    module.write_text(f"open({str(marker)!r}, 'w').write('ran')\n" + generated)
    monkeypatch.setattr(_kernel, "_KERNEL_CACHE", {})
    for name in [n for n in sys.modules if n.startswith("sd_model_kernel_")]:
        monkeypatch.delitem(sys.modules, name)
    _assert_same(cm, [{}])
    assert not marker.exists()
    assert module.read_text() == generated
