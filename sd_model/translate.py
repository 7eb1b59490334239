"""Model files to PySD's abstract model and to PySD's runtime model, with a cache.

``pysd.read_vensim`` writes the translated ``.py`` next to the model file, which fails
in read-only folders and clutters the user's ``models/``, and it pastes the file's text
into Python source. sd_model parses model files into PySD's abstract model (no files
written, nothing executed) and builds PySD's module only for the PySD reference backend,
from a checked copy of the abstract model, into a cache directory keyed by the model's
content hash (see :mod:`sd_model._untrusted`).
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import tempfile
import warnings
from pathlib import Path
from typing import Any

import pysd

from sd_model._errors import ModelLoadError

VENSIM_SUFFIXES = frozenset({".mdl"})
XMILE_SUFFIXES = frozenset({".xmile", ".stmx", ".xml"})
SUPPORTED_SUFFIXES = VENSIM_SUFFIXES | XMILE_SUFFIXES

# Bump when the cache layout or the translation call changes.
_CACHE_VERSION = "2"


def file_sha256(path: Path) -> str:
    """Hex SHA-256 of a file's bytes."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def default_cache_dir() -> Path:
    """Where translations are cached: ``$SD_MODEL_CACHE`` or ``~/.cache/sd_model``."""
    env = os.environ.get("SD_MODEL_CACHE")
    if env:
        return Path(env)
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = Path(xdg) if xdg else Path.home() / ".cache"
    return base / "sd_model"


def check_model_path(path: str | os.PathLike[str]) -> Path:
    """Resolve and validate a model path; raise :class:`ModelLoadError` naming the problem."""
    p = Path(path).expanduser()
    if not p.exists():
        raise ModelLoadError(f"Model file not found: {p}")
    if p.is_dir():
        raise ModelLoadError(f"{p} is a folder; give the path of a .mdl, .xmile or .stmx file.")
    if p.suffix.lower() not in SUPPORTED_SUFFIXES:
        raise ModelLoadError(
            f"Cannot read {p}: unknown extension {p.suffix!r}. "
            "sd_model reads Vensim (.mdl) and XMILE (.xmile, .stmx, .xml) files."
        )
    return p.resolve()


def parse_abstract_model(path: Path) -> Any:
    """Parse a model file into PySD's ``AbstractModel`` (no files written, nothing run).

    Parameters
    ----------
    path : pathlib.Path
        A .mdl, .xmile, .stmx or .xml file.

    Returns
    -------
    pysd.translators.structures.abstract_model.AbstractModel

    Raises
    ------
    ModelLoadError
        When the file cannot be parsed; the message names the file, the line and,
        where it can be told, the variable.
    """
    _precheck(path)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            if path.suffix.lower() in VENSIM_SUFFIXES:
                from pysd.translators.vensim.vensim_file import VensimFile

                reader: Any = VensimFile(path)
            else:
                from pysd.translators.xmile.xmile_file import XmileFile

                reader = XmileFile(path)
            reader.parse()
            am = reader.get_abstract_model()
    except RecursionError as exc:
        raise ModelLoadError(f"Could not parse {path}: an equation nests too deeply.") from exc
    except Exception as exc:  # PySD raises bare Exceptions/ValueErrors/parsimonious errors
        raise ModelLoadError(_parse_error_message(exc, path)) from exc
    check_not_empty(am, path)
    return am


def _precheck(path: Path) -> None:
    """Refuse files PySD would mis-read with an unhelpful message (binary, XML entities)."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ModelLoadError(f"Cannot read {path}: {exc.strerror or exc}.") from exc
    nul = data.find(b"\x00", 0, 1 << 20)
    if nul >= 0:
        raise ModelLoadError(
            f"{path} is not a text model file (it holds binary data, e.g. a NUL byte at "
            f"offset {nul}). Give the .mdl/.xmile text file, not a .vmf/.vpm."
        )
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        latin = data.decode("latin-1")
        printable = sum(ch.isprintable() or ch in "\r\n\t" for ch in latin[:65536])
        if printable < 0.95 * min(len(latin), 65536):
            raise ModelLoadError(
                f"{path} is not a text model file (byte {exc.start} is not text in any "
                "encoding sd_model reads)."
            ) from exc
        return
    if path.suffix.lower() in XMILE_SUFFIXES:
        head = text[:65536]
        if "<!ENTITY" in head or "<!entity" in head.lower():
            line = head[: head.lower().index("<!entity")].count("\n") + 1
            raise ModelLoadError(
                f"{path}:{line}: the file declares XML entities (<!ENTITY ...>), which XMILE "
                "files never need; refusing it (entities can expand without bound or read "
                "other files)."
            )


def _find_line(path: Path, needle: str, start: int = 0) -> int | None:
    """1-based number of the first line at or after ``start`` (0-based) holding ``needle``."""
    try:
        lines = path.read_text(encoding="utf-8", errors="replace").splitlines()
    except OSError:
        return None
    key = " ".join(needle.lower().split())
    if not key:
        return None
    for i in range(start, len(lines)):
        if key in " ".join(lines[i].lower().split()):
            return i + 1
    return None


def _definition_line(path: Path, name: str) -> int | None:
    """The file line where variable ``name`` is defined (Vensim or XMILE)."""
    try:
        lines = path.read_text(encoding="utf-8", errors="replace").splitlines()
    except OSError:
        return None
    want = " ".join(name.lower().replace("_", " ").split())
    for i, line in enumerate(lines):
        low = " ".join(line.lower().replace("_", " ").split())
        if path.suffix.lower() in XMILE_SUFFIXES:
            if f'name="{want}"' in low:
                return i + 1
            continue
        head = low.split("=")[0].split("(")[0].split("[")[0].split(":")[0].strip().strip('"')
        if head == want and ("=" in low or low.rstrip().endswith("(") or "(" in low):
            return i + 1
    return None


def _parse_error_message(exc: BaseException, path: Path) -> str:
    text = getattr(exc, "text", None)
    pos = getattr(exc, "pos", None)
    if isinstance(text, str) and isinstance(pos, int):
        # A parsimonious grammar error: ``text`` is one equation (or its right-hand
        # side), not the file; find it in the file to name the line and the variable.
        near = text[pos : pos + 40].strip() or "the end of the equation"
        line = _find_line(path, text.strip()[:40])
        name = ""
        if line is not None:
            source = path.read_text(encoding="utf-8", errors="replace").splitlines()
            for i in range(line - 1, max(line - 30, -1), -1):
                if path.suffix.lower() in XMILE_SUFFIXES:
                    found = re.search(r'\bname\s*=\s*"([^"]*)"', source[i])
                    if found:
                        name = found.group(1)
                        break
                    continue
                if "=" in source[i] and not source[i].lstrip().startswith("~"):
                    name = source[i].split("=")[0].split("(")[0].split("[")[0].strip()
                    break
            at = _find_line(path, near[:20], line - 1) if near[:1] != "t" else None
            what = f"the equation of '{name}'" if name else "an equation"
            return (
                f"{path}:{at or line}: cannot parse {what} near {near!r}: a syntax error, "
                "or a construct PySD's parser does not read. Check operators, parentheses "
                "and names there."
            )
        return (
            f"{path}: cannot parse the equation {text.strip()[:80]!r} near {near!r}: a syntax "
            "error, or a construct PySD's parser does not read."
        )
    msg = _one_line(exc)
    if "decode()" in msg or "encoding" in msg:
        return (
            f"Could not read {path}: its text encoding could not be detected. Save it as "
            "UTF-8 with '{UTF-8}' as its first line."
        )
    if path.suffix.lower() in XMILE_SUFFIXES:
        from lxml import etree

        parser = etree.XMLParser(resolve_entities=False, no_network=True, huge_tree=False)
        try:
            etree.fromstring(path.read_bytes(), parser)
        except etree.XMLSyntaxError as xml_exc:
            # Stella writes undeclared namespace prefixes that PySD tolerates.
            if not str(xml_exc.msg).startswith("Namespace prefix"):
                return f"{path}:{xml_exc.lineno or '?'}: not well-formed XML: {xml_exc.msg}."
        except OSError:
            pass
        return (
            f"PySD could not parse {path} as XMILE ({type(exc).__name__}: {msg}). sd_model reads "
            "XMILE 1.0 files with <sim_specs> and <model><variables>."
        )
    return f"Could not parse {path}: {msg}"


def describe_build_error(exc: BaseException, am: Any, path: Path) -> str:
    """One line for an error of PySD's builder: usually an undefined reference.

    Parameters
    ----------
    exc : Exception
        What PySD raised while building names and types.
    am : AbstractModel
        The model it was building.
    path : pathlib.Path
        The model file.

    Returns
    -------
    str
    """
    if isinstance(exc, KeyError) and exc.args and isinstance(exc.args[0], str):
        missing = exc.args[0]
        user = _referencing_element(am, missing)
        shown = missing.replace("_", " ")
        if user is not None:
            line = _definition_line(path, user)
            where = f"{path}:{line}" if line else str(path)
            return (
                f"{where}: '{user}' refers to '{shown}', which the model does not define. "
                "Define it, fix the spelling, or check that the file is complete."
            )
        return f"{path}: '{shown}' is used but not defined (is the file complete?)."
    return f"PySD could not read {path}: {_one_line(exc)}"


def _referencing_element(am: Any, clean: str) -> str | None:
    """The name of the first element whose equations reference ``clean``."""
    import dataclasses

    from pysd.translators.structures import abstract_expressions as ae

    def refers(node: Any, seen: set[int]) -> bool:
        if id(node) in seen:
            return False
        seen.add(id(node))
        if isinstance(node, ae.ReferenceStructure) and str(node.reference) == clean:
            return True
        if dataclasses.is_dataclass(node) and not isinstance(node, type):
            return any(refers(getattr(node, f.name), seen) for f in dataclasses.fields(node))
        if isinstance(node, list | tuple):
            return any(refers(v, seen) for v in node)
        return False

    for section in am.sections[:1]:
        for el in section.elements:
            if any(refers(c.ast, set()) for c in el.components):
                return str(el.name)
    return None


_CONTROL_NAMES = frozenset({"initial time", "final time", "time step", "saveper", "time"})


def check_not_empty(am: Any, path: Path) -> None:
    """Refuse a translation that silently lost every variable of a non-trivial file."""
    names = [" ".join(el.name.lower().split()) for sec in am.sections[:1] for el in sec.elements]
    if any(n not in _CONTROL_NAMES for n in names):
        return
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return
    if path.suffix.lower() in XMILE_SUFFIXES:
        defined = sum(text.count(m) for m in ("<stock", "<aux", "<flow"))
    else:  # every Vensim file defines the four control variables
        defined = max(text.split("\\\\\\---///")[0].count("~") // 2 - 4, 0)
    if defined > 0:
        hint = (
            " PySD reads XMILE 1.0 files in the OASIS namespace "
            '(xmlns="http://docs.oasis-open.org/xmile/ns/XMILE/v1.0"); re-save the model '
            "from a current Stella or convert it."
            if path.suffix.lower() in XMILE_SUFFIXES
            else ""
        )
        raise ModelLoadError(
            f"PySD found no model variables in {path}, which does define some.{hint}"
        )


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return text if len(text) < 600 else text[:600] + " ..."


def translate(path: Path, sha256: str, am: Any, cache_dir: Path | None = None) -> Path:
    """Build PySD's Python module for a model file from its checked abstract model.

    The module is built from :func:`sd_model._untrusted.checked_for_pysd`'s copy of
    ``am`` (comments and units blank, every other string free of characters that can end
    a Python string, data-file paths absolute) and verified by
    :func:`sd_model._untrusted.verify_generated_module` before it is cached or loaded.
    Translations are reused while the model file's content, its folder, PySD's version
    and the cache layout are unchanged.

    Parameters
    ----------
    path : pathlib.Path
        The model file.
    sha256 : str
        Its content hash.
    am : AbstractModel
        Its abstract model (from :func:`parse_abstract_model`; not modified).
    cache_dir : pathlib.Path, optional
        The cache root (default :func:`default_cache_dir`).

    Returns
    -------
    pathlib.Path
        The cached ``.py`` file.

    Raises
    ------
    ModelLoadError
        When a string of the model cannot be passed to PySD safely, or PySD fails.
    """
    from sd_model._untrusted import checked_for_pysd, verify_generated_module

    cache_root = (cache_dir or default_cache_dir()).expanduser()
    # Data-file paths are written into the module as absolute paths: the folder is
    # part of the key, as the same model beside other data files is another model.
    ident = f"{sha256}|{path.name}|{path.parent}|{pysd.__version__}|{_CACHE_VERSION}"
    key = hashlib.sha256(ident.encode()).hexdigest()
    work = cache_root / "translations" / key[:24]
    py_file = work / (path.stem + ".py")
    if py_file.exists():
        verify_generated_module(py_file, path)
        return py_file
    work.parent.mkdir(parents=True, exist_ok=True)
    # Build in a private temporary folder, then rename: concurrent loads of the same
    # model (Dask workers) never see a half-written translation.
    tmp = Path(tempfile.mkdtemp(prefix=key[:8] + "-", dir=work.parent))
    # mkdtemp makes 0700 folders; a cache shared by a team needs the usual mode.
    mask = os.umask(0)
    os.umask(mask)
    tmp.chmod(0o777 & ~mask)
    try:
        checked = checked_for_pysd(am, path, tmp)
        from pysd.builders.python.python_model_builder import ModelBuilder

        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                built = Path(ModelBuilder(checked).build_model())
        except Exception as exc:
            raise ModelLoadError(f"PySD could not translate {path}: {_one_line(exc)}") from exc
        if not built.exists():  # pragma: no cover - PySD contract
            raise ModelLoadError(f"PySD did not write a translation for {path}.")
        for module in tmp.glob("*.py"):
            verify_generated_module(module, path)
        try:
            os.replace(tmp, work)
        except OSError:
            # Another process finished first; use its translation.
            shutil.rmtree(tmp, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return py_file


def load_runtime(py_file: Path, model_path: Path | None = None) -> Any:
    """Load PySD's runtime model from a translation (a fresh object every call).

    Parameters
    ----------
    py_file : pathlib.Path
        A module written by :func:`translate` (checked when it was built).
    model_path : pathlib.Path, optional
        The model file, named in errors.
    """
    where = model_path or py_file
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return pysd.load(str(py_file), initialize=True)
    except RecursionError as exc:
        raise ModelLoadError(
            f"{where}: PySD could not initialise the model: its equations refer to each other "
            "in a loop (simultaneous equations), which Vensim rejects too. Break the loop with "
            "a stock or an INITIAL()."
        ) from exc
    except Exception as exc:
        raise ModelLoadError(f"PySD could not load {where}: {_one_line(exc)}") from exc
