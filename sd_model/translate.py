"""Model files to PySD's abstract model and to PySD's runtime model, with a cache.

``pysd.read_vensim`` writes the translated ``.py`` next to the model file, which fails
in read-only folders and clutters the user's ``models/``, and it pastes the file's text
into Python source. sd_model parses model files into PySD's abstract model (no files
written, nothing executed) and builds PySD's module only for the PySD reference backend,
from a checked copy of the abstract model, into a cache directory keyed by the model's
content hash (see :mod:`sd_model._untrusted`).
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
import re
import shutil
import stat
import tempfile
import warnings
from collections.abc import Mapping
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


def code_cache_folder(name: str) -> Path | None:
    """``<cache dir>/<name>``, a folder only the user can enter, for compiled code.

    Compiled C libraries and numba kernels are native code that runs when it is loaded, so
    no one else may be able to write anything below the folder they are loaded from. The
    folder is created with mode 0700. One that belongs to the user but that others could
    enter (made by an earlier version or under a shared umask) may hold code written by
    someone else: it is emptied (it is only a cache) and made private. One that belongs to
    someone else (a team's shared cache), or is not a folder, is not used: callers then
    build in a private temporary folder or in memory, and a warning (once per folder and
    process) names the folder and the fix. Returns None then, or without a writable folder.
    """
    root = default_cache_dir().expanduser()
    folder = root / name
    try:
        root.mkdir(parents=True, exist_ok=True)
        folder.mkdir(mode=0o700, exist_ok=True)
    except OSError:
        return None
    if not hasattr(os, "geteuid"):  # no user ids (Windows): the user's profile protects it
        return folder if os.access(folder, os.W_OK) else None
    try:
        st = folder.lstat()
        if not stat.S_ISDIR(st.st_mode):
            why = "it is not a folder (a link?)"
        elif st.st_uid != os.geteuid():
            why = f"it belongs to another user (uid {st.st_uid})"
        else:
            why = ""
            if st.st_mode & 0o077:
                for entry in folder.iterdir():
                    if entry.is_dir() and not entry.is_symlink():
                        shutil.rmtree(entry)
                    else:
                        entry.unlink()
                folder.chmod(0o700)
    except OSError as exc:
        why = f"it could not be made private ({exc.strerror or exc})"
    if not why:
        return folder
    if str(folder) not in _WARNED_UNTRUSTED:
        _WARNED_UNTRUSTED.add(str(folder))
        warnings.warn(
            f"sd_model does not load compiled code from {folder}: {why}. Compiled models are "
            "built per process instead (slower). Remove the folder, or set SD_MODEL_CACHE to "
            "a folder of your own.",
            stacklevel=3,
        )
    return None


_WARNED_UNTRUSTED: set[str] = set()


def written_by_someone_else(path: Path) -> str:
    """Why ``path`` may have been written by another user ('' when it is the user's or
    root's file). Always '' where the platform has no user ids (Windows)."""
    if not hasattr(os, "geteuid"):
        return ""
    try:
        uid = path.lstat().st_uid
    except OSError as exc:
        return f"it cannot be checked ({exc.strerror or exc})"
    if uid not in (os.geteuid(), 0):
        return f"it belongs to another user (uid {uid})"
    return ""


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


def parse_abstract_model(path: Path, *, file_aliases: Mapping[str, str] | None = None) -> Any:
    """Parse a model file into PySD's ``AbstractModel`` (no files written, nothing run).

    Parameters
    ----------
    path : pathlib.Path
        A .mdl, .xmile, .stmx or .xml file.
    file_aliases : mapping, optional
        What Vensim's indirect file references stand for: ``{"?inputs": "inputs.xlsx"}``
        (relative paths are read from the model's folder). Vensim takes them from its
        own settings, which the model file does not hold.

    Returns
    -------
    pysd.translators.structures.abstract_model.AbstractModel

    Raises
    ------
    ModelLoadError
        When the file cannot be parsed, or reads data through an indirect file reference
        (``'?name'``) that ``file_aliases`` does not resolve; the message names the
        file, the line and, where it can be told, the variable.

    Examples
    --------
    >>> am = parse_abstract_model(Path("medeas.mdl"), file_aliases={"?inputs": "inputs.xlsx"})
    ... # doctest: +SKIP
    """
    _precheck(path)
    aliases = _check_aliases(file_aliases or {}, path)
    if path.suffix.lower() in VENSIM_SUFFIXES:
        # Before PySD's parse, which takes minutes on the large models that use them.
        refs = [r for r in find_indirect_references(path) if r.alias.lower() not in aliases]
        if refs:
            raise ModelLoadError(indirect_reference_message(path, refs))
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
    refs = _resolve_indirect(am, path, aliases)
    if refs:
        raise ModelLoadError(indirect_reference_message(path, refs))
    return am


# ----------------------------------------------------------------- indirect file references
# Vensim lets a data function name its file indirectly, GET DIRECT DATA('?inputs', ...):
# '?inputs' is looked up in Vensim's own settings, not in the model's equations, and
# PySD raises "Indirect reference to file" only when it initialises the model, after
# translating all of it (minutes on the MEDEAS models that use them).
_INDIRECT = re.compile(
    r"\bGET\s+(?:DIRECT|XLS|123)\s+(DATA|CONSTANTS|LOOKUPS|SUBSCRIPT)\s*\(\s*'(\?[^']*)'",
    re.IGNORECASE,
)
_SKETCH_MARK = "\\\\\\---///"


@dataclasses.dataclass(frozen=True)
class IndirectReference:
    """A data function's ``'?name'`` file argument: where, in which variable, which call."""

    alias: str
    variable: str
    function: str
    line: int | None


def find_indirect_references(path: Path) -> list[IndirectReference]:
    """Every ``'?name'`` file argument of a GET DIRECT / GET XLS call in a Vensim file.

    Reads the equations only (not comments, not the sketch); cheap enough to run before
    PySD's parse.
    """
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return []
    if "'?" not in text:
        return []
    text = text.split(_SKETCH_MARK, 1)[0]
    refs: list[IndirectReference] = []
    start = 0
    for record in text.split("|"):
        equation = record.split("~", 1)[0]
        for found in _INDIRECT.finditer(equation):
            line = text.count("\n", 0, start + found.start()) + 1
            refs.append(
                IndirectReference(
                    alias=found.group(2),
                    variable=_left_hand_side(equation[: found.start()]),
                    function=" ".join(found.group(0).split("(")[0].upper().split()),
                    line=line,
                )
            )
        start += len(record) + 1
    return refs


def _left_hand_side(head: str) -> str:
    """The variable name of a Vensim equation's text before its right-hand side."""
    head = re.sub(r"\{[^}]*\}", " ", head)  # {UTF-8}, {comments}
    lines = [ln for ln in head.splitlines() if ln.strip() and not ln.strip().startswith(":")]
    lhs = " ".join(" ".join(lines).split(":=")[0].split("=")[0].split())
    # a subscript range is defined as 'Region: ...'
    return lhs.split("[")[0].split(":")[0].strip().strip('"') or "?"


def _check_aliases(aliases: Mapping[str, str], path: Path) -> dict[str, str]:
    out = {}
    for key, value in aliases.items():
        if not isinstance(key, str) or not key.startswith("?") or not isinstance(value, str):
            raise ModelLoadError(
                f"{path}: file_aliases maps indirect references such as '?inputs' to file "
                f"paths (strings); got {key!r}: {value!r}."
            )
        out[key.lower()] = value
    return out


def _file_arguments(am: Any) -> list[tuple[Any, str, str]]:
    """(holder, variable, function) of every data-file argument of ``am``.

    The holder is the GET structure (a dataclass with a ``file`` field) or, for GET
    DIRECT SUBSCRIPT ranges, the dict PySD keeps their arguments in.
    """
    found: list[tuple[Any, str, str]] = []

    def visit(node: Any, variable: str, seen: set[int]) -> None:
        if id(node) in seen or node is None or isinstance(node, str | int | float):
            return
        seen.add(id(node))
        if dataclasses.is_dataclass(node) and not isinstance(node, type):
            if isinstance(getattr(node, "file", None), str):
                found.append((node, variable, type(node).__name__.replace("Structure", "")))
            for f in dataclasses.fields(node):
                visit(getattr(node, f.name), variable, seen)
        elif isinstance(node, list | tuple):
            for v in node:
                visit(v, variable, seen)
        elif isinstance(node, dict) and isinstance(node.get("file"), str):
            found.append((node, variable, "GET DIRECT SUBSCRIPT"))

    for section in am.sections:
        for sub in section.subscripts:
            visit(sub.subscripts, str(sub.name), set())
        for el in section.elements:
            for comp in el.components:
                visit(comp.ast, str(el.name), set())
    return found


def _get_file(holder: Any) -> str:
    return str(holder["file"] if isinstance(holder, dict) else holder.file)


def _resolve_indirect(am: Any, path: Path, aliases: dict[str, str]) -> list[IndirectReference]:
    """Replace resolvable ``'?name'`` file arguments in ``am``; return those left.

    Also the backstop of the text scan: any ``'?name'`` PySD's parse produced that the
    scan missed is reported from the abstract model.
    """
    left: list[IndirectReference] = []
    for holder, variable, function in _file_arguments(am):
        file = _get_file(holder)
        if not file.startswith("?"):
            continue
        target = aliases.get(file.lower())
        if target is None:
            left.append(IndirectReference(file, variable, function, None))
        elif isinstance(holder, dict):
            holder["file"] = target
        else:
            object.__setattr__(holder, "file", target)
    return [
        dataclasses.replace(r, line=_find_line(path, r.alias) or _definition_line(path, r.variable))
        for r in left
    ]


def indirect_reference_message(path: Path, refs: list[IndirectReference]) -> str:
    """The error for unresolved ``'?name'`` references: what, where, what is missing, the fix."""
    first = refs[0]
    where = f"{path}:{first.line}" if first.line else str(path)
    aliases = sorted({r.alias for r in refs}, key=str.lower)
    name = first.alias[1:]
    nearby = sorted(
        p.name for p in path.parent.glob("*") if p.is_file() and p.stem.lower() == name.lower()
    )
    hint = (
        f" A file named {nearby[0]!r} is in the model's folder: if '{first.alias}' stands "
        f"for it, write '{nearby[0]}' in place of '{first.alias}'."
        if nearby
        else ""
    )
    others = ""
    if len(refs) > 1:
        shown = ", ".join(
            f"'{r.variable}' (line {r.line})" if r.line else f"'{r.variable}'" for r in refs[1:4]
        )
        more = f" and {len(refs) - 4} more" if len(refs) > 4 else ""
        others = (
            f" {len(refs) - 1} other reference(s) use {', '.join(repr(a) for a in aliases)}: "
            f"{shown}{more}."
        )
    return (
        f"{where}: '{first.variable}' reads its data with {first.function}('{first.alias}', "
        f"...), a Vensim indirect file reference: Vensim looks '{first.alias}' up in its own "
        f"settings, and the model file does not say which file it stands for. Replace "
        f"'{first.alias}' with the data file's path (relative to {path.parent}), or load it "
        f"with sd_model.load(path, file_aliases={{'{first.alias}': 'file.xlsx'}}).{hint}{others}"
    )


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
    # So are the data-file arguments: '?name' references resolved through file_aliases
    # make the same file another model.
    files = "|".join(sorted({_get_file(h) for h, _, _ in _file_arguments(am)}))
    ident = f"{sha256}|{path.name}|{path.parent}|{pysd.__version__}|{_CACHE_VERSION}|{files}"
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
