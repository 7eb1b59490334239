"""Sweeps: run a model over many scenarios, in batches, on Dask, into resumable stores.

A sweep is a *plan* (grid axes and/or a sample of parameters, on top of fixed base
overrides) cut into *chunks* (:mod:`~sd_model.sweeps.layout`). A chunk is one batched
evaluation (:func:`sd_model.evaluate.evaluate`: one vectorized integration on the
compiled backend, a loop of PySD runs otherwise). Chunks run in this process or on a
Dask cluster (:mod:`~sd_model.sweeps.execution`), and each finished chunk is written at
once into its own region of a zarr store (:mod:`~sd_model.sweeps.store`), so memory is
bounded by the chunk and an interrupted sweep resumes where it stopped. Before anything
runs, the sweep is checked against the disk or memory it needs
(:mod:`~sd_model.sweeps.budget`); :mod:`~sd_model.sweeps.progress` reports how it goes.

The modules, in the order a sweep uses them:

- ``plan``: the scenarios, outputs, solver and time grid, the spec and its hash;
- ``layout``: chunk shapes over the leading dims;
- ``budget``: size and time estimates, refusals;
- ``store``: the zarr store (create, resume, write a region, finish);
- ``execution``: a chunk's batch, run here or on Dask;
- ``progress``: the bar or log lines;
- ``api``: :func:`sweep` and :func:`sweep_scenario`.

>>> import sd_model
>>> model = sd_model.load("models/example_regions.mdl")  # doctest: +SKIP
>>> ds = sd_model.sweep(model, grid={"transfer intensity": [0, 0.5, 1]})  # doctest: +SKIP
>>> ds["population"].sel(transfer_intensity=0.5, Region="North")  # doctest: +SKIP
"""

from __future__ import annotations

from sd_model.sweeps.api import sweep, sweep_scenario
from sd_model.sweeps.execution import ON_ERROR, OnError
from sd_model.sweeps.progress import ProgressMode

__all__ = ["ON_ERROR", "OnError", "ProgressMode", "sweep", "sweep_scenario"]
