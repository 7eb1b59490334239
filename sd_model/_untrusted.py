"""Model files are untrusted input: what may reach PySD's code generator, and a check of its output.

PySD's builder writes a Python module by pasting strings from the model file into
source text: comments into ``\"\"\"`` docstrings, subscript-range names and macro names into
``'...'`` literals, data-file arguments into ``r'...'`` literals. A comment such as
``\"\"\"; __import__("os").system(...); \"\"\"`` therefore becomes code when PySD's module is
imported. sd_model never imports a module built from an unchecked file:

* metadata (names, units, comments, dims) comes from the abstract model
  (:mod:`sd_model.metadata`), and the compiled backend emits only generated identifiers
  and numbers;
* the PySD reference backend builds from :func:`checked_for_pysd`'s copy of the
  abstract model, in which comments and units are blank (they are metadata, read from
  the original) and every other string is refused if it holds a character that can end
  a Python string literal (quotes, backslashes, line breaks, other control characters);
* :func:`verify_generated_module` parses the module PySD wrote and refuses it if it
  imports anything outside PySD/NumPy/xarray or names Python's dynamic-execution
  builtins, a second wall should PySD's builder paste text somewhere new.

What a model file can do, as in Vensim: compute, and read the data files its GET DIRECT
/ GET XLS calls name (any path the user running it can read).
"""

from __future__ import annotations

import ast
import copy
import dataclasses
import pathlib
from typing import Any

from sd_model._errors import ModelLoadError

# Characters that can end or escape a Python string literal, or a source line.
_FORBIDDEN = frozenset({'"', "'", "\\"}) | {chr(i) for i in range(32)} | {"\x7f"}
# Apostrophes are common in variable names ("Farmer's income"); PySD writes element
# names only through repr(), and references are looked up in its namespace, never pasted.
_APOSTROPHE_OK = {("AbstractElement", "name"), ("AbstractControlElement", "name")}
_REFERENCE_FIELDS = {("ReferenceStructure", "reference")}
_KINDS = {
    "AbstractElement": "variable",
    "AbstractControlElement": "variable",
    "AbstractSubscriptRange": "subscript range",
    "AbstractSection": "macro",
}
# Metadata only: sd_model reads them from the original abstract model.
_BLANKED = {"documentation", "units"}
# Data-file arguments, resolved against the model file's real folder.
_FILE_FIELDS = {"file"}

_ALLOWED_IMPORT_ROOTS = frozenset({"pysd", "numpy", "xarray", "pathlib", "scipy", "pandas"})
_FORBIDDEN_NAMES = frozenset(
    {
        "__import__",
        "__builtins__",
        "__loader__",
        "__spec__",
        "breakpoint",
        "compile",
        "delattr",
        "eval",
        "exec",
        "getattr",
        "globals",
        "help",
        "input",
        "locals",
        "memoryview",
        "open",
        "setattr",
        "vars",
    }
)


def _describe(value: str) -> str:
    text = value if len(value) <= 80 else value[:77] + "..."
    return repr(text)


def _check_string(value: str, where: str, path: pathlib.Path, *, apostrophe: bool) -> None:
    core = value
    if len(core) >= 2 and core[0] == '"' and core[-1] == '"':  # a Vensim quoted name
        core = core[1:-1]
    bad = sorted({c for c in core if c in _FORBIDDEN and not (apostrophe and c == "'")})
    if bad:
        shown = ", ".join(repr(c) for c in bad)
        raise ModelLoadError(
            f"{path}: {where} {_describe(value)} contains {shown}, which the PySD reference "
            "backend cannot run safely (PySD pastes it into Python source). Rename it, or "
            "run on the compiled backend (backend='compiled')."
        )


def _resolve_file(value: str, model_dir: pathlib.Path) -> str:
    # Vensim on Windows writes either separator; PySD and the compiler expect '/'.
    text = value.replace("\\", "/")
    # '?name' references were resolved or refused by sd_model.translate.parse_abstract_model
    if not text or text.startswith("?"):
        return text
    p = pathlib.Path(text)
    if not p.is_absolute():
        p = model_dir / p
    return p.resolve().as_posix()


def _walk(obj: Any, where: str, path: pathlib.Path, model_dir: pathlib.Path, seen: set[int]) -> Any:
    """Check every string below ``obj`` in place; return the (possibly replaced) value."""
    if isinstance(obj, str):
        _check_string(obj, where, path, apostrophe=False)
        return obj
    if obj is None or isinstance(obj, int | float | complex | bool):
        return obj
    if id(obj) in seen:
        return obj
    seen.add(id(obj))
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        cls = type(obj).__name__
        label = where
        kind = _KINDS.get(cls, cls)
        name = getattr(obj, "name", None)
        if isinstance(name, str) and cls in _KINDS:
            label = f"{kind} {_describe(name)}"
        for f in dataclasses.fields(obj):
            value = getattr(obj, f.name)
            if f.name in _BLANKED and isinstance(value, str):
                setattr(obj, f.name, "")
                continue
            if isinstance(value, str):
                if f.name in _FILE_FIELDS:
                    value = _resolve_file(value, model_dir)
                    setattr(obj, f.name, value)
                ok_apostrophe = (cls, f.name) in _APOSTROPHE_OK or (
                    cls,
                    f.name,
                ) in _REFERENCE_FIELDS
                where_ = f"the {kind} name" if f.name == "name" else f"the {f.name} in {label}"
                _check_string(value, where_, path, apostrophe=ok_apostrophe)
                continue
            if isinstance(value, pathlib.PurePath):
                continue  # section paths are set by the caller
            inner = label if cls not in _KINDS else f"the {f.name} of {label}"
            setattr(obj, f.name, _walk(value, inner, path, model_dir, seen))
        return obj
    if isinstance(obj, list):
        obj[:] = [_walk(v, where, path, model_dir, seen) for v in obj]
        return obj
    if isinstance(obj, tuple):
        items = [_walk(v, where, path, model_dir, seen) for v in obj]
        return type(obj)(*items) if hasattr(obj, "_fields") else tuple(items)
    if isinstance(obj, dict):
        # GET DIRECT SUBSCRIPT ranges keep their arguments in a dict
        return {
            _walk(k, where, path, model_dir, seen): _walk(
                _resolve_file(v, model_dir) if k in _FILE_FIELDS and isinstance(v, str) else v,
                where,
                path,
                model_dir,
                seen,
            )
            for k, v in obj.items()
        }
    return obj  # numbers, NumPy arrays


def checked_for_pysd(am: Any, path: pathlib.Path, build_dir: pathlib.Path) -> Any:
    """A copy of ``am`` that PySD's builder can turn into Python without running model text.

    Parameters
    ----------
    am : pysd.translators.structures.abstract_model.AbstractModel
        The model file's abstract model (not modified).
    path : pathlib.Path
        The model file (for messages; data files resolve against its folder).
    build_dir : pathlib.Path
        Folder where PySD will write the modules (the sections' paths point there).

    Returns
    -------
    AbstractModel
        Comments and units blank, data-file paths absolute, every section writing into
        ``build_dir``.

    Raises
    ------
    ModelLoadError
        Naming the string (and the variable, subscript range or macro holding it) that
        contains a quote, backslash or control character.
    """
    checked = copy.deepcopy(am)
    model_dir = path.parent.resolve()
    _walk(checked, "the model", path, model_dir, set())
    for i, section in enumerate(checked.sections):
        if i == 0:
            section.path = build_dir / (path.stem + ".py")
        else:
            _check_string(str(section.name), "the macro name", path, apostrophe=False)
            section.path = build_dir / f"_macro_{i}.py"
    checked.original_path = build_dir / path.name
    return checked


def verify_generated_module(py_file: pathlib.Path, model_path: pathlib.Path) -> None:
    """Refuse a PySD-generated module that imports or calls more than a model needs.

    Raises
    ------
    ModelLoadError
        When the module imports outside PySD, NumPy, xarray, pandas, SciPy and pathlib,
        imports inside a function, names a dynamic-execution builtin (``eval``,
        ``__import__``, ``open``...) or a dunder attribute.
    """
    source = py_file.read_text(encoding="utf-8")
    try:
        tree = ast.parse(source, filename=str(py_file))
    except SyntaxError as exc:
        raise ModelLoadError(
            f"{model_path}: PySD's translation is not valid Python ({exc.msg}, line {exc.lineno})."
        ) from exc

    def refuse(node: ast.AST, what: str) -> ModelLoadError:
        line = source.splitlines()[node.lineno - 1].strip() if hasattr(node, "lineno") else ""
        return ModelLoadError(
            f"{model_path}: refusing PySD's translation: it {what} "
            f"(generated line {getattr(node, 'lineno', '?')}: {line[:120]!r}). The model file "
            "holds text that reaches Python code; run it on the compiled backend or report it."
        )

    for stmt in tree.body:
        if isinstance(stmt, ast.Import | ast.ImportFrom):
            names = (
                [stmt.module or ""]
                if isinstance(stmt, ast.ImportFrom)
                else [a.name for a in stmt.names]
            )
            for name in names:
                if name.split(".")[0] not in _ALLOWED_IMPORT_ROOTS or (
                    isinstance(stmt, ast.ImportFrom) and stmt.level
                ):
                    raise refuse(stmt, f"imports {name!r}")
    for node in ast.walk(tree):
        if isinstance(node, ast.Import | ast.ImportFrom) and node not in tree.body:
            raise refuse(node, "imports inside a function")
        if isinstance(node, ast.Name) and node.id in _FORBIDDEN_NAMES:
            raise refuse(node, f"uses {node.id!r}")
        if isinstance(node, ast.Attribute) and node.attr.startswith("__"):
            raise refuse(node, f"reads the attribute {node.attr!r}")
