"""Hostile model files: no text in a model file may run as Python, on either backend.

Each case puts a payload that would create a marker file into one place of a model file
(comments, units, names, subscript ranges and elements, GET DIRECT arguments, macro
names, XMILE attributes and CDATA). Loading, ``info``, ``parameters`` and runs on both
backends must either work or stop with one clear :class:`sd_model.SDModelError` line,
and the marker must never appear.
"""

from __future__ import annotations

import textwrap
import warnings
from pathlib import Path

import pytest

import sd_model
from sd_model._untrusted import verify_generated_module

CONTROL = textwrap.dedent(
    """\
    INITIAL TIME = 0
    \t~\tYear
    \t~\t\t|
    FINAL TIME = 2
    \t~\tYear
    \t~\t\t|
    SAVEPER = 1
    \t~\tYear
    \t~\t\t|
    TIME STEP = 1
    \t~\tYear
    \t~\t\t|
    """
)


def _payloads(marker: Path) -> dict[str, str]:
    m = marker.as_posix()
    return {
        # double quotes available, single quotes available, neither
        "dq": f'__import__("pathlib").Path("{m}").touch()',
        "sq": f"__import__('pathlib').Path('{m}').touch()",
        "nq": "__import__(chr(112)+chr(97)+chr(116)+chr(104)+chr(108)+chr(105)+chr(98))"
        ".Path(" + "+".join(f"chr({ord(c)})" for c in m) + ").touch()",
    }


def _vensim_cases(p: dict[str, str]) -> dict[str, str]:
    dq, sq, nq = p["dq"], p["sq"], p["nq"]
    stock = "s = INTEG(x, 1)\n\t~\tDmnl\n\t~\t\t|\n"
    return {
        "comment": f'x = 1\n\t~\tDmnl\n\t~\tz """; {dq}; """\n\t|\n{stock}',
        "comment_backslash": f'x = 1\n\t~\tDmnl\n\t~\tz \\\\""" \\\\ {dq} \\\\ """\n\t|\n{stock}',
        "units": f'x = 1\n\t~\tDmnl"; {dq}; "\n\t~\t\t|\n{stock}',
        "units_sq": f"x = 1\n\t~\tDmnl'; {sq}; '\n\t~\t\t|\n{stock}",
        "name_sq": f"\"x'+str({sq})+'\" = 1\n\t~\tDmnl\n\t~\t\t|\n"
        f"s = INTEG(\"x'+str({sq})+'\", 1)\n\t~\tDmnl\n\t~\t\t|\n",
        "subscript_range": f"\"Reg'+str({sq})+'\": A, B\n\t~\t\n\t~\t\t|\n"
        f"x[\"Reg'+str({sq})+'\"] = 1, 2\n\t~\tDmnl\n\t~\t\t|\n{stock.replace('x', 'x[A]')}",
        "subscript_element": f"Reg: A, \"B'+str({sq})+'\"\n\t~\t\n\t~\t\t|\n"
        f"x[Reg] = 1, 2\n\t~\tDmnl\n\t~\t\t|\n{stock.replace('x', 'x[A]')}",
        "get_direct_file": "x = GET DIRECT CONSTANTS('c.csv\\', ',', 'B2')\n\t~\tDmnl\n\t~\t\t|\n"
        f"y = GET DIRECT CONSTANTS('c.csv', '+{nq}+', 'B2')\n\t~\tDmnl\n\t~\t\t|\n{stock}",
        "get_direct_cell": f"x = GET DIRECT CONSTANTS('c.csv', ',', 'B2\\')+{nq}#')\n"
        f"\t~\tDmnl\n\t~\t\t|\n{stock}",
        "get_direct_lookups": "g( GET DIRECT LOOKUPS('c.csv\\', ',', '1', "
        f"'+{nq}+'))\n\t~\tDmnl\n\t~\t\t|\nx = g(Time)\n\t~\tDmnl\n\t~\t\t|\n{stock}",
        "macro_name": f":MACRO: EVIL{nq}(a)\nEVIL{nq} = a\n\t~\tDmnl\n\t~\t\t|\n:END OF MACRO:\n"
        f"x = 1\n\t~\tDmnl\n\t~\t\t|\n{stock}",
        "macro_comment": ':MACRO: TWICE(a)\nTWICE = 2 * a\n\t~\tDmnl\n\t~\tz """; '
        f'{dq}; """\n\t|\n:END OF MACRO:\nx = TWICE(1)\n\t~\tDmnl\n\t~\t\t|\n{stock}',
    }


def _xmile(variables: str, dims: str = "", units: str = "") -> str:
    return textwrap.dedent(
        f"""\
        <?xml version="1.0" encoding="utf-8"?>
        <xmile version="1.0" xmlns="http://docs.oasis-open.org/xmile/ns/XMILE/v1.0">
        <header><name>h</name></header>
        <sim_specs><start>0</start><stop>2</stop><dt>1</dt></sim_specs>
        {units}{dims}
        <model><variables>
        {variables}
        <stock name="s"><eqn>1</eqn><inflow>f</inflow></stock>
        <flow name="f"><eqn>1</eqn></flow>
        </variables></model></xmile>
        """
    )


def _xmile_cases(p: dict[str, str]) -> dict[str, str]:
    dq, sq = p["dq"], p["sq"]
    dq_xml = dq.replace('"', "&quot;")
    return {
        "x_doc": _xmile(f'<aux name="x"><eqn>1</eqn><doc>z """; {dq}; """</doc></aux>'),
        "x_doc_cdata": _xmile(
            f'<aux name="x"><eqn>1</eqn><doc><![CDATA[z """; {dq}; """]]></doc></aux>'
        ),
        "x_units": _xmile(f"<aux name=\"x\"><eqn>1</eqn><units>u'; {sq}; '</units></aux>"),
        "x_name": _xmile(f"<aux name=\"x'+str({dq_xml})+'\"><eqn>1</eqn></aux>"),
        "x_dimension": _xmile(
            '<aux name="x"><dimensions><dim name="D"/></dimensions><eqn>1</eqn></aux>',
            dims=f'<dimensions><dim name="D\'+str({dq_xml})+\'"><elem name="a"/>'
            '<elem name="b"/></dim></dimensions>',
        ),
        "x_element": _xmile(
            '<aux name="x"><dimensions><dim name="D"/></dimensions><eqn>1</eqn></aux>',
            dims=f'<dimensions><dim name="D"><elem name="a\'+str({dq_xml})+\'"/>'
            '<elem name="b"/></dim></dimensions>',
        ),
        "x_eqn_cdata": _xmile(f'<aux name="x"><eqn><![CDATA[1 {{ """; {dq}; """ }}]]></eqn></aux>'),
    }


def _exercise(path: Path, cache: Path) -> list[str]:
    """Load, describe and run ``path`` every way; return the one-line errors seen."""
    errors: list[str] = []

    def attempt(fn) -> None:
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                fn()
        except sd_model.SDModelError as exc:
            text = str(exc)
            assert "\n" not in text.strip(), text
            assert "Traceback" not in text
            errors.append(text)

    model: list[sd_model.Model] = []
    attempt(lambda: model.append(sd_model.load(path, cache_dir=cache)))
    if not model:
        return errors
    m = model[0]
    attempt(m.info)
    attempt(lambda: m.parameters)
    attempt(lambda: m.run(backend="compiled"))
    attempt(lambda: m.run(backend="pysd"))
    return errors


MARKER_CASES_VENSIM = sorted(_vensim_cases(_payloads(Path("/m"))))
MARKER_CASES_XMILE = sorted(_xmile_cases(_payloads(Path("/m"))))


@pytest.mark.parametrize("case", MARKER_CASES_VENSIM)
def test_hostile_vensim_file_runs_no_code(case: str, tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    folder = tmp_path / "model"
    folder.mkdir()
    (folder / "c.csv").write_text("a,b\n1,2\n3,4\n")
    text = "{UTF-8}\n" + _vensim_cases(_payloads(marker))[case] + CONTROL
    path = folder / f"{case}.mdl"
    path.write_text(text)
    _exercise(path, tmp_path / "cache")
    assert not marker.exists(), f"{case}: model text ran as Python"


@pytest.mark.parametrize("case", MARKER_CASES_XMILE)
def test_hostile_xmile_file_runs_no_code(case: str, tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    path = tmp_path / f"{case}.xmile"
    path.write_text(_xmile_cases(_payloads(marker))[case])
    _exercise(path, tmp_path / "cache")
    assert not marker.exists(), f"{case}: model text ran as Python"


def test_comment_with_quotes_is_kept_as_metadata_and_runs_on_both_backends(
    tmp_path: Path,
) -> None:
    marker = tmp_path / "pwned"
    text = "{UTF-8}\n" + _vensim_cases(_payloads(marker))["comment"] + CONTROL
    path = tmp_path / "m.mdl"
    path.write_text(text)
    model = sd_model.load(path, cache_dir=tmp_path / "cache")
    for backend in ("compiled", "pysd"):
        ds = model.run(backend=backend)
        # the comment is reported as written, and the stock integrates x = 1
        assert '"""' in ds["x"].attrs["description"]
        assert ds["s"].values.tolist() == [1.0, 2.0, 3.0]
    assert not marker.exists()


def test_quoted_subscript_range_is_refused_on_pysd_backend_with_the_name(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    text = "{UTF-8}\n" + _vensim_cases(_payloads(marker))["subscript_range"] + CONTROL
    path = tmp_path / "m.mdl"
    path.write_text(text)
    try:
        model = sd_model.load(path, cache_dir=tmp_path / "cache")
    except sd_model.ModelLoadError as exc:  # PySD's parser may refuse the name itself
        assert str(path) in str(exc)
        return
    with pytest.raises(sd_model.ModelLoadError, match=r"subscript range name .*Reg.*contains"):
        model.run(backend="pysd")
    assert not marker.exists()


def test_loading_and_compiled_runs_build_no_pysd_module(tmp_path: Path) -> None:
    src = Path(__file__).parents[1] / "models" / "example_regions.mdl"
    cache = tmp_path / "cache"
    model = sd_model.load(src, cache_dir=cache)
    model.info()
    assert len(model.parameters) > 0
    model.run(backend="compiled")
    assert not (cache / "translations").exists()
    model.run(backend="pysd")
    modules = list((cache / "translations").rglob("*.py"))
    assert modules, "the PySD backend builds its module in the cache"
    for module in modules:
        # comments are not written into the translation: they are read from the model
        assert "Illustrative starting populations" not in module.read_text()


def test_verify_generated_module_refuses_dynamic_execution(tmp_path: Path) -> None:
    ok = tmp_path / "ok.py"
    ok.write_text(
        "import numpy as np\nfrom pysd.py_backend.functions import step\n\ndef f():\n"
        "    return np.exp(1)\n"
    )
    verify_generated_module(ok, tmp_path / "m.mdl")
    for body in (
        "import os\n",
        "def f():\n    return __import__('os')\n",
        "def f():\n    return eval('1')\n",
        "def f():\n    import subprocess\n",
        "def f(x):\n    return x.__class__\n",
        "def f():\n    return open('x')\n",
    ):
        bad = tmp_path / "bad.py"
        bad.write_text(body)
        with pytest.raises(sd_model.ModelLoadError, match="refusing PySD's translation"):
            verify_generated_module(bad, tmp_path / "m.mdl")


def test_data_file_above_the_model_folder_is_read_by_both_backends(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    (data / "c.csv").write_text("a,7.5\n")
    models = tmp_path / "models"
    models.mkdir()
    path = models / "m.mdl"
    path.write_text(
        "{UTF-8}\nx = GET DIRECT CONSTANTS('../data/c.csv', ',', 'B1')\n\t~\tDmnl\n\t~\t\t|\n"
        "s = INTEG(x, 0)\n\t~\tDmnl\n\t~\t\t|\n" + CONTROL
    )
    model = sd_model.load(path, cache_dir=tmp_path / "cache")
    for backend in ("compiled", "pysd"):
        ds = model.run(backend=backend)
        assert float(ds["x"]) == 7.5
        assert ds["s"].values.tolist() == [0.0, 7.5, 15.0]
