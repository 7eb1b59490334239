"""The policy explorer: a web page of levers and graphs that re-runs the model on every move.

``sd-model explore scenarios/baseline.yaml`` serves it (:mod:`sd_model.explore.app` and
its graphs component :mod:`sd_model.explore.charts`, the only modules that import Panel).
The logic lives in Panel-free modules, usable and tested on their own:

- :mod:`~sd_model.explore.levers`: which constants are sliders, with what range;
- :mod:`~sd_model.explore.session`: the model, base scenario and cached runs;
- :mod:`~sd_model.explore.views`: the numbers the graphs and table show;
- :mod:`~sd_model.explore.figures`: those numbers as the graphs' messages (compact arrays);
- :mod:`~sd_model.explore.urlstate`: lever values in the page's address;
- :mod:`~sd_model.explore.export`: scenario files and result downloads.

Examples
--------
>>> from sd_model.explore import load_setup, Runner
>>> setup = load_setup("scenarios/equalization.yaml")  # doctest: +SKIP
>>> run = Runner(setup).run({"equalization transfer intensity": 0.5})  # doctest: +SKIP
"""

from __future__ import annotations

from sd_model.explore.export import run_dataset, save_scenario, scenario_yaml
from sd_model.explore.levers import Lever, LeverSet, discover_levers
from sd_model.explore.session import ExplorerSetup, Run, Runner, load_setup, read_draws
from sd_model.explore.urlstate import PageState, decode_query, encode_query
from sd_model.explore.views import ViewChoice, disparity, summary_rows

__all__ = [
    "ExplorerSetup",
    "Lever",
    "LeverSet",
    "PageState",
    "Run",
    "Runner",
    "ViewChoice",
    "decode_query",
    "discover_levers",
    "disparity",
    "encode_query",
    "load_setup",
    "read_draws",
    "run_dataset",
    "save_scenario",
    "scenario_yaml",
    "summary_rows",
]
