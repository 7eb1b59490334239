"""Conformance: the PySD backend with Euler reproduces canonical Vensim/Stella outputs.

Every model in ``../shared/test-models`` with a canonical output is run with
``method="euler"`` at its own TIME STEP and compared column by column (rows aligned by
nearest time, tolerance 1e-3 of each column's scale). The exceptions below are the
models PySD itself cannot translate or run, or where PySD's results differ from
Vensim's; each names its reason, and each is still checked: the failure must be the
clear error we promise, not a crash or a silently wrong result.
"""

from __future__ import annotations

import warnings

import pytest

import sd_model
from tests._canonical import Case, compare, discover_cases, find_test_models, read_canonical

_XMILE_PARSE = "PySD's XMILE translator cannot parse this file"
_LEGACY_XMILE = "XMILE in the pre-OASIS namespace: PySD reads no variables (we raise)"

# folder/file -> (expected sd_model error, reason)
CANNOT_TRANSLATE: dict[str, str] = {
    "SIR/SIR_legacy.stmx": _LEGACY_XMILE,
    "teacup/teacup_legacy.stmx": _LEGACY_XMILE,
    "comparisons/comparisons.stmx": _LEGACY_XMILE,
    "eval_order/eval_order.stmx": _LEGACY_XMILE,
    "lookups/test_lookups_no-indirect.stmx": _LEGACY_XMILE,
    "logicals/test_logicals.stmx": _XMILE_PARSE + " ('not' operator)",
    "lookups/test_lookups.stmx": _XMILE_PARSE + " (graphical function call)",
    "macro_expression/test_macro_expression.stmx": _XMILE_PARSE + " (macros)",
    "macro_expression/test_macro_expression.xmile": _XMILE_PARSE + " (macros)",
    "macro_multi_expression/test_macro_multi_expression.stmx": _XMILE_PARSE + " (macros)",
    "macro_multi_expression/test_macro_multi_expression.xmile": _XMILE_PARSE + " (macros)",
    "macro_multi_macros/test_macro_multi_macros.stmx": _XMILE_PARSE + " (macros)",
    "macro_multi_macros/test_macro_multi_macros.xmile": _XMILE_PARSE + " (macros)",
    "macro_stock/test_macro_stock.stmx": _XMILE_PARSE + " (macros)",
    "macro_stock/test_macro_stock.xmile": _XMILE_PARSE + " (macros)",
    "special_characters_xmile/test_special_variable_names.stmx": _XMILE_PARSE,
    "subscript_1d_arrays/test_subscript_1d_arrays.stmx": _XMILE_PARSE + " (arrays)",
    "subscript_1d_arrays/test_subscript_1d_arrays.xmile": _XMILE_PARSE + " (arrays)",
    "subscript_constant_call/test_subscript_constant_call.stmx": _XMILE_PARSE + " (arrays)",
    "subscript_constant_call/test_subscript_constant_call.xmile": _XMILE_PARSE + " (arrays)",
    "subscript_mixed_assembly/test_subscript_mixed_assembly.stmx": _XMILE_PARSE + " (arrays)",
    "subscript_mixed_assembly/test_subscript_mixed_assembly.xmile": _XMILE_PARSE + " (arrays)",
    "subscript_subranges/test_subscript_subrange.stmx": _XMILE_PARSE + " (arrays)",
    "subscript_subranges/test_subscript_subrange.xmile": _XMILE_PARSE + " (arrays)",
    "subscripted_flows/test_subscripted_flows.stmx": _XMILE_PARSE + " (arrays)",
    "subscripted_flows/test_subscripted_flows.xmile": _XMILE_PARSE + " (arrays)",
}

# Models PySD translates but cannot run, or that sd_model refuses on purpose.
CANNOT_RUN: dict[str, str] = {
    "data_from_other_model/model_to_generate_data.mdl": "PySD's runtime fails (state shape)",
    "data_from_other_model/test_data_from_other_model.mdl": "needs a .tab data file PySD loads "
    "only through run(data_files=...)",
    "get_time_value/test_get_time_value.mdl": "PySD does not implement GET TIME VALUE with "
    "relativeto=0, measure=1",
    "control_vars/test_control_vars.mdl": "control variables that change during the run; "
    "sd_model fixes the time grid at the start and says so",
    "dynamic_final_time/test_dynamic_final_time.mdl": "FINAL TIME that depends on the state; "
    "sd_model fixes the time grid at the start and says so",
}

# Models PySD runs whose results differ from the canonical ones (PySD's own run() differs too).
PYSD_DIFFERS: dict[str, str] = {
    "Query_file/Query_file.mdl": "uses RANDOM functions: every run differs",
    "arguments/test_arguments.mdl": "PySD's own run() differs from Vensim by 0.7 % on one "
    "column (nested macro arguments)",
}

_root = find_test_models()
CASES: list[Case] = discover_cases(_root) if _root is not None else []


def _ids(cases: list[Case]) -> list[str]:
    return [c.id for c in cases]


def test_corpus_is_present_in_ci() -> None:
    import os

    if os.environ.get("CI") and _root is None:
        pytest.fail("CI must run the conformance suite: ../shared/test-models is missing")
    if _root is None:
        pytest.skip("../shared/test-models is not on this machine")
    assert len(CASES) > 150
    listed = set(CANNOT_TRANSLATE) | set(CANNOT_RUN) | set(PYSD_DIFFERS)
    unknown = listed - {c.id for c in CASES}
    assert not unknown, f"exception lists name models that are not in the corpus: {unknown}"


@pytest.mark.parametrize("case", CASES, ids=_ids(CASES))
def test_euler_reproduces_canonical_output(case: Case) -> None:
    if case.id in CANNOT_TRANSLATE:
        with pytest.raises(sd_model.ModelLoadError, match="PySD|parse"):
            sd_model.load(case.model)
        return
    with warnings.catch_warnings():
        # Models may declare other methods or saved times off the step grid; those
        # warnings are checked elsewhere.
        warnings.simplefilter("ignore", sd_model.SDModelWarning)
        model = sd_model.load(case.model)
        if case.id in CANNOT_RUN:
            with pytest.raises(sd_model.SDModelError):
                model.run(backend="pysd", method="euler")
            return
        ds = model.run(backend="pysd", method="euler")
    problems = compare(ds, read_canonical(case.output))
    if case.id in PYSD_DIFFERS:
        assert problems, f"{case.id} now matches; remove it from PYSD_DIFFERS"
        pytest.xfail(PYSD_DIFFERS[case.id])
    assert not problems, "\n".join(problems)
