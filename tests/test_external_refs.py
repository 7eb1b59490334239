"""Vensim's indirect file references (``GET DIRECT DATA('?inputs', ...)``).

Vensim looks ``'?inputs'`` up in its own settings, which a model file does not hold;
PySD raises only when it initialises the model, after translating all of it (minutes
on the MEDEAS models). sd_model refuses such a file at load time, before PySD's parse,
naming the reference, the variable, the file and line, or resolves the references it is
given through ``file_aliases``.
"""

from __future__ import annotations

import shutil
import time
from pathlib import Path

import numpy as np
import pytest

import sd_model
from sd_model import ModelLoadError
from sd_model.translate import (
    file_sha256,
    find_indirect_references,
    load_runtime,
    parse_abstract_model,
    translate,
)

MODELS = Path(__file__).parent / "models"
ONE = MODELS / "indirect_ref.mdl"
MANY = MODELS / "indirect_refs_many.mdl"
SUBSCRIPT = MODELS / "indirect_subscript.mdl"


def test_load_fails_fast_naming_reference_variable_file_and_line() -> None:
    sd_model.load(MODELS / "decay.mdl")  # imports done: time the check alone
    t0 = time.perf_counter()
    with pytest.raises(ModelLoadError) as info:
        sd_model.load(ONE)
    assert time.perf_counter() - t0 < 1.0
    msg = str(info.value)
    assert f"{ONE}:3:" in msg  # the line of the GET DIRECT CONSTANTS call
    assert "'growth rate'" in msg
    assert "GET DIRECT CONSTANTS('?inputs'" in msg
    assert "does not say which file" in msg
    assert "Replace '?inputs'" in msg


def test_references_in_comments_are_not_references() -> None:
    refs = find_indirect_references(ONE)
    assert [(r.alias, r.variable, r.line) for r in refs] == [("?inputs", "growth rate", 3)]


def test_every_reference_is_listed() -> None:
    refs = find_indirect_references(MANY)
    assert [(r.alias, r.variable, r.function, r.line) for r in refs] == [
        ("?scenario data", "demand", "GET XLS DATA", 8),
        ("?prices", "price", "GET DIRECT LOOKUPS", 14),
    ]
    with pytest.raises(ModelLoadError) as info:
        sd_model.load(MANY)
    msg = str(info.value)
    assert f"{MANY}:8:" in msg and "'demand'" in msg
    assert "1 other reference(s)" in msg and "'price' (line 14)" in msg


def test_subscript_range_from_an_indirect_file() -> None:
    with pytest.raises(ModelLoadError) as info:
        sd_model.load(SUBSCRIPT)
    msg = str(info.value)
    assert f"{SUBSCRIPT}:3:" in msg
    assert "'Region'" in msg and "GET DIRECT SUBSCRIPT('?regions'" in msg


def test_hint_names_a_file_of_the_same_name(tmp_path: Path) -> None:
    model = tmp_path / ONE.name
    shutil.copy(ONE, model)
    (tmp_path / "inputs.csv").write_text("name,value\ngrowth rate,0.05\n")
    with pytest.raises(ModelLoadError, match=r"A file named 'inputs.csv' is in the model's folder"):
        sd_model.load(model)


def test_aliases_resolve_on_both_backends(tmp_path: Path) -> None:
    from sd_model.compiler import compile_model
    from sd_model.integrate import SolverOptions, integrate

    aliases = {"?inputs": "indirect_inputs.csv"}
    am = parse_abstract_model(ONE, file_aliases=aliases)
    compiled = compile_model(am, model_dir=ONE.parent)
    grid = compiled.default_grid()
    result = integrate(compiled.system([{}], grid), grid, SolverOptions(method="euler"))
    ours = np.array([o["population"][0] for o in result.observations])
    # Euler at dt 1 with the CSV's growth rate 0.05: 100 * 1.05**t
    np.testing.assert_allclose(ours, 100 * 1.05 ** np.arange(11), rtol=1e-12)

    runtime = load_runtime(translate(ONE, file_sha256(ONE), am, tmp_path), ONE)
    theirs = runtime.run(return_columns=["Population"])["Population"].to_numpy()
    np.testing.assert_allclose(theirs, ours, rtol=1e-12)


def test_an_alias_left_unresolved_is_still_refused() -> None:
    with pytest.raises(ModelLoadError, match=r"'\?prices'"):
        parse_abstract_model(MANY, file_aliases={"?scenario data": "demand.xlsx"})


def test_bad_aliases_are_refused() -> None:
    with pytest.raises(ModelLoadError, match="file_aliases maps indirect references"):
        parse_abstract_model(ONE, file_aliases={"inputs": "indirect_inputs.csv"})


def test_translations_are_keyed_by_the_resolved_files(tmp_path: Path) -> None:
    model = tmp_path / ONE.name
    shutil.copy(ONE, model)
    (tmp_path / "slow.csv").write_text("name,value\ngrowth rate,0.01\n")
    (tmp_path / "fast.csv").write_text("name,value\ngrowth rate,0.1\n")
    finals = []
    for data in ("slow.csv", "fast.csv"):
        am = parse_abstract_model(model, file_aliases={"?inputs": data})
        runtime = load_runtime(translate(model, file_sha256(model), am, tmp_path / "cache"), model)
        finals.append(float(runtime.run(return_columns=["Population"])["Population"].iloc[-1]))
    np.testing.assert_allclose(finals, [100 * 1.01**10, 100 * 1.1**10], rtol=1e-12)


def test_load_takes_the_aliases(tmp_path: Path) -> None:
    import sd_model

    with pytest.raises(ModelLoadError, match=r"file_aliases=\{'\?inputs'"):
        sd_model.load(ONE, cache_dir=tmp_path)
    model = sd_model.load(ONE, cache_dir=tmp_path, file_aliases={"?inputs": "indirect_inputs.csv"})
    for backend in ("compiled", "pysd"):
        ds = model.run(method="euler", backend=backend)
        # Euler at dt 1 with the CSV's growth rate 0.05: 100 * 1.05**t
        np.testing.assert_allclose(ds["population"].values, 100 * 1.05 ** np.arange(11), rtol=1e-12)
