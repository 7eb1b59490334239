"""An interrupted sweep (a real process, killed mid-sweep) resumes and matches a whole run."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import xarray as xr

import sd_model
from sd_model import SDModelWarning
from sd_model.sweeps import sweep_scenario

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "models" / "example_regions.mdl"
N = 2000
CHUNK = 20

SCENARIO = f"""
name: resume-test
model: {EXAMPLE}
time: {{final: 2040}}
sweep:
  grid:
    transfer intensity: [0, 1]
  samples:
    method: lhs
    n: {N // 2}
    seed: 99
    parameters:
      birth rate: [0.012, 0.024]
      mobility: {{dist: triangular, lower: 0, mode: 0.01, upper: 0.03}}
outputs: [population, capital]
"""


def _done(store: Path) -> int:
    import zarr

    try:
        status = zarr.open_group(str(store), mode="r")["status"][...]
    except Exception:  # not created yet
        return 0
    return int(np.sum(np.asarray(status) >= 0))


def _interrupted(tmp_path: Path, sig: int) -> tuple[Path, Path, int]:
    """A sweep run in another process and stopped by ``sig`` mid-way: (scenario, store,
    scenarios written)."""
    scenario = tmp_path / "s.yaml"
    scenario.write_text(SCENARIO)
    store = tmp_path / "out.zarr"
    code = (
        "from sd_model.sweeps import sweep_scenario; "
        f"sweep_scenario({str(scenario)!r}, store={str(store)!r}, chunk_size={CHUNK})"
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen([sys.executable, "-c", code], env=env, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 120
        while _done(store) < 10 * CHUNK:
            assert proc.poll() is None, proc.stderr.read().decode() if proc.stderr else ""
            assert time.monotonic() < deadline, "the sweep wrote nothing in 2 minutes"
            time.sleep(0.02)
        proc.send_signal(sig)
        proc.wait(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    written = _done(store)
    assert 0 < written < N, f"the sweep was not interrupted mid-way ({written}/{N})"
    return scenario, store, written


@pytest.fixture(scope="module")
def model() -> sd_model.Model:
    return sd_model.load(EXAMPLE)


@pytest.fixture(scope="module")
def whole(model: sd_model.Model, tmp_path_factory: pytest.TempPathFactory) -> xr.Dataset:
    """The sweep run in one go, in memory: what every resumed store must equal."""
    scenario = tmp_path_factory.mktemp("whole") / "s.yaml"
    scenario.write_text(SCENARIO)
    return sweep_scenario(scenario, chunk_size=CHUNK, model=model)


@pytest.fixture(scope="module")
def killed(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, int]:
    """One sweep process killed by SIGKILL mid-way; tests resume copies of its store."""
    return _interrupted(tmp_path_factory.mktemp("killed"), signal.SIGKILL)


def _copy(killed: tuple[Path, Path, int], tmp_path: Path) -> tuple[Path, Path, int]:
    scenario, store, written = killed
    shutil.copytree(store, tmp_path / store.name)
    shutil.copy(scenario, tmp_path / scenario.name)
    return tmp_path / scenario.name, tmp_path / store.name, written


def _check_resumed(
    store: Path,
    scenario: Path,
    written: int,
    model: sd_model.Model,
    whole: xr.Dataset,
    capsys: pytest.CaptureFixture[str],
) -> None:
    # the interrupted store is valid: it opens and says it is incomplete
    with xr.open_zarr(store) as partial:
        assert partial.attrs["sweep_complete"] == 0
        status = partial["status"].values
        assert set(np.unique(status)) <= {-1, 0}
        ok = status == 0
        assert int(ok.sum()) == written
        assert np.isfinite(partial["population"].values[ok]).all()
    resumed = sweep_scenario(scenario, store=store, chunk_size=CHUNK, model=model, progress="log")
    err = capsys.readouterr().err
    assert "resuming" in err and f"{written}/{N}" in err
    assert (resumed["status"].values == 0).all()
    for name in ("population", "capital", "birth_rate", "mobility"):
        np.testing.assert_array_equal(resumed[name].values, whole[name].values)
    assert resumed.attrs["sweep_complete"] == 1


def test_killed_sweep_resumes_and_matches(
    killed: tuple[Path, Path, int],
    tmp_path: Path,
    model: sd_model.Model,
    whole: xr.Dataset,
    capsys: pytest.CaptureFixture[str],
) -> None:
    scenario, store, written = _copy(killed, tmp_path)
    _check_resumed(store, scenario, written, model, whole, capsys)


@pytest.mark.slow
def test_interrupted_sweep_resumes_and_matches(
    tmp_path: Path,
    model: sd_model.Model,
    whole: xr.Dataset,
    capsys: pytest.CaptureFixture[str],
) -> None:
    # SIGINT: the sweep's own handler stops it; the store must be as resumable as after a kill
    scenario, store, written = _interrupted(tmp_path, signal.SIGINT)
    _check_resumed(store, scenario, written, model, whole, capsys)


def test_killed_sweep_resumes_with_another_chunk_size(
    killed: tuple[Path, Path, int], tmp_path: Path, model: sd_model.Model, whole: xr.Dataset
) -> None:
    import zarr

    scenario, store, _ = _copy(killed, tmp_path)
    # the store keeps its chunks of 20 and says so; the numbers are the whole sweep's
    # (a sweep's values do not depend on its chunk size)
    with pytest.warns(SDModelWarning, match=f"started with chunk_size {CHUNK}"):
        resumed = sweep_scenario(scenario, store=store, chunk_size=7, model=model)
    assert zarr.open_array(str(store / "status"), mode="r").chunks == (1, CHUNK)
    assert (resumed["status"].values == 0).all() and resumed.attrs["sweep_complete"] == 1
    for name in ("population", "capital", "birth_rate", "mobility"):
        np.testing.assert_array_equal(resumed[name].values, whole[name].values)
