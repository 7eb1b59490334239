"""Every emitter knows every stateful kind, builtin and reducer of the lowered program.

The lowered program's vocabulary is defined once (``_statefuls.KINDS``,
``_builtins.FUNCTIONS``/``REDUCERS``); each whole-run emitter keeps its own templates for
it. A construct added to the vocabulary without a template would silently send every
model using it to a slower tier: these tests make that a failure instead.
"""

from __future__ import annotations

from sd_model.compiler import _builtins, _c_parts, _emit_python, _statefuls


def test_every_stateful_kind_has_python_and_c_templates() -> None:
    assert set(_emit_python.PY_KINDS) == set(_statefuls.KINDS)
    assert set(_c_parts.C_KINDS) == set(_statefuls.KINDS)


def test_every_builtin_and_reducer_has_python_and_c_templates() -> None:
    assert set(_builtins.FUNCTIONS) <= set(_emit_python._FUNCTIONS)
    # IF THEN ELSE is C's conditional operator, written by the emitter itself
    assert set(_builtins.FUNCTIONS) - {"if_then_else"} <= set(_c_parts.C_FUNCTIONS)
    assert set(_builtins.REDUCERS) == set(_emit_python._REDUCE_STEP)
    assert set(_builtins.REDUCERS) == set(_c_parts.C_REDUCERS)
