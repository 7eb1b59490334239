"""The lowered program, the stateful-construct table and the numba kernel's caches."""

from __future__ import annotations

import dataclasses
import pathlib
import warnings

import numpy as np
import pytest

import sd_model
from sd_model.compiler import _kernel, _lowered, _statefuls, compile_model

MODEL = (
    "{UTF-8}\nc = 2\n\t~\t\n\t~\t|\n\n"
    "x = INTEG(c - s, 1)\n\t~\t\n\t~\t|\n\n"
    "s = SMOOTH(x, 3)\n\t~\t\n\t~\t|\n\n"
    "d = DELAY FIXED(x, 2, 0)\n\t~\t\n\t~\t|\n\n"
    "FINAL TIME = 10\n\t~\t\n\t~\t|\n\nINITIAL TIME = 0\n\t~\t\n\t~\t|\n\n"
    "SAVEPER = 1\n\t~\t\n\t~\t|\n\nTIME STEP = 0.5\n\t~\t\n\t~\t|\n"
)


def _compile(tmp_path: pathlib.Path):
    from pysd.translators.vensim.vensim_file import VensimFile

    path = tmp_path / "m.mdl"
    path.write_text(MODEL)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        vf = VensimFile(path)
        vf.parse()
        return compile_model(vf.get_abstract_model(), model_dir=path.parent)


def test_every_pysd_stateful_structure_has_one_row() -> None:
    from pysd.translators.structures import abstract_expressions as ae

    stateful = [
        n
        for n in dir(ae)
        if n.endswith("Structure")
        and n.startswith(
            ("Integ", "Smooth", "Delay", "Trend", "Forecast", "SampleIfTrue", "Initial")
        )
    ]
    assert sorted(stateful) == sorted(_statefuls.BY_STRUCTURE)
    for kind in _statefuls.KINDS.values():
        fields = set(kind.fields)
        for roles in (kind.init_roles, kind.dyn_roles, kind.ddt_roles):
            assert set(roles) <= fields, kind.name
        # a kind with state moves it by a derivative, an Euler step, or both
        if kind.has_state:
            assert kind.np_ddt is not None or kind.np_step is not None, kind.name
            assert (kind.np_ddt is None) == (kind.kernel_ddt is None), kind.name
            assert (kind.np_step is None) == (kind.kernel_step is None), kind.name


def test_lowered_program_is_frozen_data(tmp_path: pathlib.Path) -> None:
    prog = _compile(tmp_path)._program
    assert isinstance(prog, _lowered.Program)
    with pytest.raises(dataclasses.FrozenInstanceError):
        prog.time_units = "x"  # type: ignore[misc]
    kinds = sorted(sf.kind for sf in prog.statefuls)
    assert kinds == ["delayfixed", "integ", "smooth"]
    smooth = next(sf for sf in prog.statefuls if sf.kind == "smooth")
    x = prog.by_py_name["x"]
    assert smooth.args["input"] == _lowered.Ref(x, (), "")
    assert smooth.args["smooth_time"] == _lowered.Num(3.0)
    assert x in smooth.ddt_refs and not smooth.init_refs - {x}


def test_smooth_and_delay_fixed_follow_their_definitions(tmp_path: pathlib.Path) -> None:
    # Euler by hand: x' = c - s, s' = (x - s) / 3 (first-order SMOOTH starts at x),
    # d is x two time units (four steps) earlier, 0 before.
    cm = _compile(tmp_path)
    grid = cm.default_grid()
    from sd_model.integrate import SolverOptions, integrate

    res = integrate(cm.system([{}], grid), grid, SolverOptions(method="euler"))
    x, s, hist = 1.0, 1.0, [1.0]
    xs, ds = [], []
    for step in range(21):
        if step % 2 == 0:
            xs.append(x)
            ds.append(hist[step - 4] if step >= 4 else 0.0)
        x, s = x + 0.5 * (2 - s), s + 0.5 * (x - s) / 3
        hist.append(x)
    got_x = [o["x"][0] for o in res.observations]
    got_d = [o["d"][0] for o in res.observations]
    np.testing.assert_allclose(got_x, xs, rtol=1e-12)
    np.testing.assert_allclose(got_d, ds, rtol=1e-12)


@pytest.mark.skipif(not _kernel.numba_available(), reason="numba is not installed")
def test_a_kernel_that_numba_cannot_compile_warns_once_and_is_remembered(
    tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SD_MODEL_CACHE", str(tmp_path / "cache"))
    cm = _compile(tmp_path)
    ks = cm._kernel_for(frozenset())
    assert isinstance(ks, _kernel.KernelSource)
    assert cm._kernel_for(frozenset()) is ks  # generated once per compiled model

    def too_big(*args: object) -> None:
        raise RecursionError("maximum recursion depth exceeded")

    _kernel._KERNEL_CACHE[ks.src] = too_big
    try:
        system = cm.system([{}], cm.default_grid())
        with pytest.warns(sd_model.SDModelWarning, match="RecursionError"):
            assert system.run_euler() is None
        assert "RecursionError" in system.kernel_note
        markers = list((tmp_path / "cache" / "kernels").glob("sdk_*.failed"))
        assert len(markers) == 1 and "RecursionError" in markers[0].read_text()
        # a new process: nothing in memory; the failure is read from disk, numba not called
        _kernel._KERNEL_CACHE.pop(ks.src)
        _kernel._FAILURES.pop(ks.src)
        assert _kernel.compile_kernel(ks) is None
        assert "RecursionError" in (_kernel.kernel_failure(ks) or "")
    finally:
        _kernel._KERNEL_CACHE.pop(ks.src, None)
        _kernel._FAILURES.pop(ks.src, None)


def test_kernel_notes_say_why_it_is_not_used(tmp_path: pathlib.Path) -> None:
    import pandas as pd

    cm = _compile(tmp_path)
    series = pd.Series([1.0, 2.0], index=[0.0, 10.0])
    system = cm.system([{"c": series}], cm.default_grid())
    assert system.run_euler() is None
    assert "time series" in system.kernel_note
