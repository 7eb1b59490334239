"""pyproject.toml against the code: every import declared, every dependency used, extras lazy.

The package's imports are read from its source (``ast``, so an import in a docstring or in a
generated-code template does not count), mapped to the distributions that provide them
(``importlib.metadata.packages_distributions``), and compared with the ``dependencies`` and
``optional-dependencies`` of pyproject.toml. The checks are functions of the parsed pyproject
and the scanned imports, so the last tests can show that each of them fails on a broken
pyproject.
"""

from __future__ import annotations

import ast
import functools
import importlib.metadata
import re
import sys
import tomllib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = "sd_model"
# Our own top-level names: the package, the test package and its helper modules.
LOCAL = {PACKAGE, "tests", *(p.stem for p in (ROOT / "tests").glob("*.py"))}

# Modules that belong wholly to an extra and may import it at the top: nothing in the core
# imports them (sd-model explore imports sd_model.explore.app on demand).
EXTRA_MODULES = {
    "sd_model/explore/app.py": "explore",
    "sd_model/explore/charts.py": "explore",
}
# Declared dependencies that no `import` names, and where the code uses them instead.
USED_WITHOUT_IMPORT = {
    "netcdf4": ('engine="netcdf4"', "sd_model/results.py"),
}
# Extras that only group other extras (no distribution of their own to check).
META_EXTRAS = {"all", "test"}


def _norm(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


@dataclass(frozen=True)
class Requirement:
    name: str  # normalised
    extras: tuple[str, ...]


def _requirement(text: str) -> Requirement:
    m = re.match(r"\s*([A-Za-z0-9][A-Za-z0-9._-]*)\s*(?:\[([^\]]*)\])?", text)
    assert m, f"cannot read the requirement {text!r}"
    extras = tuple(e.strip() for e in (m.group(2) or "").split(",") if e.strip())
    return Requirement(_norm(m.group(1)), extras)


def _foreign_extra(dist: str, extra: str) -> set[str]:
    """The distributions ``dist[extra]`` adds (e.g. dask[distributed] -> distributed)."""
    try:
        reqs = importlib.metadata.requires(dist) or []
    except importlib.metadata.PackageNotFoundError:
        return set()
    marker = re.compile(rf"extra\s*==\s*['\"]{re.escape(extra)}['\"]")
    return {_requirement(r).name for r in reqs if marker.search(r)}


def declared(pyproject: Mapping[str, Any]) -> tuple[set[str], dict[str, set[str]]]:
    """(core distributions, extra -> distributions), with ``sd_model[...]`` expanded."""
    project = pyproject["project"]
    own = _norm(project["name"])
    raw = {k: [_requirement(r) for r in v] for k, v in project["optional-dependencies"].items()}

    def expand(reqs: Iterable[Requirement], seen: frozenset[str]) -> set[str]:
        out: set[str] = set()
        for req in reqs:
            if req.name == own:
                for extra in req.extras:
                    assert extra in raw, f"{project['name']}[{extra}]: no such extra"
                    if extra not in seen:
                        out |= expand(raw[extra], seen | {extra})
                continue
            out.add(req.name)
            for extra in req.extras:
                out |= _foreign_extra(req.name, extra)
        return out

    core = expand((_requirement(r) for r in project["dependencies"]), frozenset())
    extras = {name: expand(reqs, frozenset({name})) for name, reqs in raw.items()}
    return core, extras


@dataclass(frozen=True)
class Import:
    module: str  # top-level name, e.g. "matplotlib"
    file: str  # relative to the repository
    line: int
    lazy: bool  # inside a function, or only for type checkers
    extra: str | None = None  # import_optional(module, extra, ...)


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _literal_prefix(node: ast.expr) -> str | None:
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value
    if isinstance(node, ast.JoinedStr) and node.values:
        first = node.values[0]
        if isinstance(first, ast.Constant) and isinstance(first.value, str):
            return first.value
    return None


def scan_imports(files: Iterable[Path]) -> list[Import]:
    """Third-party imports (top-level names) of ``files``, and the optional ones."""
    found: list[Import] = []
    for path in files:
        rel = path.relative_to(ROOT).as_posix()
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=rel)

        def visit(node: ast.AST, lazy: bool, rel: str = rel) -> None:
            for child in ast.iter_child_nodes(node):
                child_lazy = lazy or isinstance(
                    child, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda
                )
                if isinstance(child, ast.If) and _is_type_checking(child):
                    for stmt in child.body:
                        visit(ast.Module(body=[stmt], type_ignores=[]), True)
                    for stmt in child.orelse:
                        visit(ast.Module(body=[stmt], type_ignores=[]), lazy)
                    continue
                names: list[str] = []
                extra = None
                if isinstance(child, ast.Import):
                    names = [a.name for a in child.names]
                elif isinstance(child, ast.ImportFrom) and child.level == 0 and child.module:
                    names = [child.module]
                elif (
                    isinstance(child, ast.Call)
                    and (getattr(child.func, "id", None) or getattr(child.func, "attr", None))
                    == "import_optional"
                    and len(child.args) >= 2
                ):
                    module = _literal_prefix(child.args[0])
                    extra = _literal_prefix(child.args[1])
                    if module:
                        names = [module]
                for name in names:
                    top = name.split(".")[0]
                    if top and top not in sys.stdlib_module_names and top not in LOCAL:
                        found.append(
                            Import(top, rel, getattr(child, "lineno", 0), child_lazy, extra)
                        )
                visit(child, child_lazy)

        visit(tree, False)
    return found


@functools.cache
def _distributions() -> Mapping[str, list[str]]:
    return importlib.metadata.packages_distributions()


def _distribution(module: str) -> str | None:
    dists = _distributions().get(module)
    return _norm(dists[0]) if dists else None


def undeclared(
    imports: Iterable[Import],
    core: set[str],
    extras: Mapping[str, set[str]],
    *,
    eager_ok: bool = False,
) -> list[str]:
    """Problems: imports of undeclared distributions, and optional ones imported eagerly."""
    optional: set[str] = set().union(*(d for k, d in extras.items() if k not in META_EXTRAS))
    problems = []
    for imp in imports:
        where = f"{imp.file}:{imp.line}"
        dist = _distribution(imp.module)
        if dist is None:
            problems.append(f"{where}: {imp.module!r} is not installed; which package is it?")
        elif imp.extra is not None:
            if dist not in extras.get(imp.extra, set()):
                problems.append(f"{where}: {imp.module!r} is not in the extra [{imp.extra}]")
        elif dist in core:
            continue
        elif dist not in optional:
            problems.append(f"{where}: {imp.module!r} ({dist}) is declared nowhere")
        elif not imp.lazy and not eager_ok:
            owner = EXTRA_MODULES.get(imp.file)
            if owner is None or dist not in extras[owner]:
                problems.append(
                    f"{where}: {imp.module!r} is optional but imported at module level; "
                    "import it where it is used (sd_model._errors.import_optional)"
                )
    return problems


def unused(imports: Iterable[Import], core: set[str], extras: Mapping[str, set[str]]) -> list[str]:
    """Declared distributions (core and extras) that no import of the package provides."""
    used = {_distribution(i.module) for i in imports}
    wanted: set[str] = set(core).union(*(d for k, d in extras.items() if k not in META_EXTRAS))
    problems = []
    for dist in sorted(wanted - used):
        if dist in USED_WITHOUT_IMPORT:
            text, file = USED_WITHOUT_IMPORT[dist]
            if text in (ROOT / file).read_text(encoding="utf-8"):
                continue
        problems.append(f"{dist} is declared but nothing in {PACKAGE}/ imports it")
    return problems


@pytest.fixture(scope="module")
def pyproject() -> dict[str, Any]:
    with open(ROOT / "pyproject.toml", "rb") as f:
        return tomllib.load(f)


@pytest.fixture(scope="module")
def package_imports() -> list[Import]:
    return scan_imports(sorted((ROOT / PACKAGE).rglob("*.py")))


def test_every_import_of_the_package_is_declared_and_extras_are_lazy(
    pyproject: dict[str, Any], package_imports: list[Import]
) -> None:
    core, extras = declared(pyproject)
    assert {"numpy", "scipy", "xarray", "pysd"} <= {i.module for i in package_imports}
    assert undeclared(package_imports, core, extras) == []


def test_every_declared_dependency_is_imported(
    pyproject: dict[str, Any], package_imports: list[Import]
) -> None:
    core, extras = declared(pyproject)
    assert unused(package_imports, core, extras) == []


def test_the_test_extra_installs_every_extra_and_what_the_tests_import(
    pyproject: dict[str, Any],
) -> None:
    core, extras = declared(pyproject)
    for name, dists in extras.items():
        assert dists <= extras["test"], f"[test] misses [{name}]: {sorted(dists - extras['test'])}"
    test_imports = scan_imports(sorted((ROOT / "tests").rglob("*.py")))
    assert undeclared(test_imports, core, {"tests": extras["test"]}, eager_ok=True) == []
    # The README's install line installs the test extra, and then runs the main job.
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert 'pip install -e ".[test]" && .venv/bin/sd-model run scenarios/baseline.yaml' in readme


def test_the_main_job_needs_no_extra(pyproject: dict[str, Any]) -> None:
    # `sd-model run` and its modules import nothing optional at module level.
    core, _ = declared(pyproject)
    main_job = ["cli", "model", "scenarios", "results", "integrate", "evaluate", "provenance"]
    files = [ROOT / PACKAGE / f"{m}.py" for m in main_job]
    eager = [i for i in scan_imports(files) if not i.lazy]
    assert [
        f"{i.file}:{i.line} {i.module}" for i in eager if _distribution(i.module) not in core
    ] == []


def test_a_missing_extra_is_named_in_the_error(monkeypatch: pytest.MonkeyPatch) -> None:
    import numpy as np
    import xarray as xr

    from sd_model._errors import MissingDependencyError
    from sd_model.plots import plot_regions

    # None in sys.modules makes `import seaborn` fail as if it were not installed.
    monkeypatch.setitem(sys.modules, "seaborn", None)
    ds = xr.Dataset(
        {"x": (("time", "Region"), np.ones((2, 2)))},
        coords={"time": [0.0, 1.0], "Region": ["a", "b"]},
    )
    with pytest.raises(MissingDependencyError, match=r"'seaborn'.*sd_model\[plot\]") as caught:
        plot_regions(ds, "x")
    assert isinstance(caught.value, ImportError)  # `except ImportError` still catches it


def test_the_version_comes_from_the_installed_metadata() -> None:
    import sd_model
    from sd_model import _version

    assert sd_model.__version__ == importlib.metadata.version(PACKAGE)
    assert _version.version() == sd_model.__version__
    source = (ROOT / PACKAGE / "__init__.py").read_text(encoding="utf-8")
    assert not re.search(r"^__version__\s*=", source, flags=re.MULTILINE)


# --------------------------------------------------------------------------- the checks fail
def _broken(pyproject: dict[str, Any], **project: Any) -> dict[str, Any]:
    return {**pyproject, "project": {**pyproject["project"], **project}}


def test_the_checks_catch_a_missing_a_stale_and_an_eager_dependency(
    pyproject: dict[str, Any], package_imports: list[Import]
) -> None:
    deps = pyproject["project"]["dependencies"]
    without_scipy = _broken(pyproject, dependencies=[d for d in deps if "scipy" not in d])
    problems = undeclared(package_imports, *declared(without_scipy))
    assert any("'scipy' (scipy) is declared nowhere" in p for p in problems), problems

    stale = _broken(pyproject, dependencies=[*deps, "requests>=2"])
    assert "requests is declared but nothing in sd_model/ imports it" in unused(
        package_imports, *declared(stale)
    )

    core, extras = declared(pyproject)
    eager = Import("seaborn", "sd_model/compare.py", 1, lazy=False)
    assert "imported at module level" in " ".join(undeclared([eager], core, extras))
    wrong_extra = Import("seaborn", "sd_model/plots.py", 1, lazy=True, extra="sweep")
    assert undeclared([wrong_extra], core, extras) == [
        "sd_model/plots.py:1: 'seaborn' is not in the extra [sweep]"
    ]
    optional = {k: v for k, v in pyproject["project"]["optional-dependencies"].items()}
    optional["test"] = [r for r in optional["test"] if not r.startswith("sd_model[")]
    _, no_all = declared(_broken(pyproject, **{"optional-dependencies": optional}))
    assert not no_all["plot"] <= no_all["test"]
