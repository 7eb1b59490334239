"""Sweeps on Dask give the same numbers as in one process."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import sd_model
from sd_model import SDModelError
from sd_model.sweeps import sweep

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "models" / "example_regions.mdl"

KW = {
    "grid": {"transfer intensity": [0.0, 0.5, 1.0]},
    "samples": {
        "method": "sobol",
        "n": 16,
        "seed": 5,
        "parameters": {"mobility": [0, 0.03], "savings rate": [0.1, 0.3]},
    },
    "outputs": ["population", "capital"],
    # An adaptive method: its steps depend on the batch, so this also checks that the
    # chunks are the same whatever the number of workers.
    "method": "RK45",
    "final_time": 2035,
    "chunk_size": 7,
}


@pytest.mark.slow
def test_one_and_two_workers_give_identical_results(tmp_path: Path) -> None:
    model = sd_model.load(EXAMPLE)
    one = sweep(model, **KW)
    two = sweep(model, workers=2, store=tmp_path / "two.zarr", **KW)
    for name in ("population", "capital", "status", "mobility"):
        np.testing.assert_array_equal(one[name].values, two[name].values)
    assert one.attrs["sweep_spec_sha256"] == two.attrs["sweep_spec_sha256"]


@pytest.mark.slow
def test_joins_an_existing_cluster(tmp_path: Path) -> None:
    from distributed import Client, LocalCluster

    model = sd_model.load(EXAMPLE)
    one = sweep(model, **KW)
    with (
        LocalCluster(n_workers=2, threads_per_worker=1, dashboard_address=None) as cluster,
        Client(cluster) as client,
    ):
        by_client = sweep(model, client=client, **KW)
        by_address = sweep(model, scheduler=cluster.scheduler_address, **KW)
        assert client.status == "running"  # a client passed in is left open
        # a failure in a worker reaches the caller, named; or is recorded
        blowup = ROOT / "tests" / "models" / "sweep_blowup.mdl"
        with pytest.raises(SDModelError, match=r"growth rate=20"):
            sweep(blowup, grid={"growth rate": [0.1, 20.0, 0.2]}, chunk_size=1, client=client)
        recorded = sweep(
            blowup,
            grid={"growth rate": [0.1, 20.0, 0.2]},
            chunk_size=2,
            client=client,
            store=tmp_path / "failures.zarr",
            on_error="record",
        )
        np.testing.assert_array_equal(recorded["status"].values, [0, 1, 0])
    for ds in (by_client, by_address):
        np.testing.assert_array_equal(one["population"].values, ds["population"].values)
