"""Model files to PySD's abstract model and to PySD's runtime model, with a cache.

``pysd.read_vensim`` writes the translated ``.py`` next to the model file, which fails
in read-only folders and clutters the user's ``models/``. We translate a copy in a
cache directory keyed by the model's content hash instead, with the model's folder
mirrored beside it (symlinks) so that GET DIRECT/GET XLS data files resolve.
"""

from __future__ import annotations

import hashlib
import os
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
_CACHE_VERSION = "1"


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
    """Parse a model file into PySD's ``AbstractModel`` (no files written).

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
        When the file cannot be parsed; the message names the file and, where PySD
        reports it, the line.
    """
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
    except Exception as exc:  # PySD raises bare Exceptions/ValueErrors/parsimonious errors
        raise ModelLoadError(f"Could not parse {path}: {_one_line(exc)}") from exc
    check_not_empty(am, path)
    return am


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


def _mirror_folder(src_dir: Path, dst_dir: Path, skip: Path) -> None:
    """Make the files of ``src_dir`` visible in ``dst_dir`` (symlinks, copies as fallback)."""
    for entry in src_dir.iterdir():
        if entry.name in {"__pycache__", ".git"} or entry.resolve() == skip:
            continue
        if entry.suffix == ".py":  # never shadow the translation
            continue
        target = dst_dir / entry.name
        if target.is_symlink() or target.exists():
            continue
        try:
            target.symlink_to(entry.resolve(), target_is_directory=entry.is_dir())
        except OSError:
            if entry.is_dir():
                shutil.copytree(entry, target)
            else:
                shutil.copy2(entry, target)


def translate(path: Path, sha256: str, cache_dir: Path | None = None) -> Path:
    """Translate a model file with PySD's builder; return the cached ``.py`` file.

    The translation is reused while the model file's content, PySD's version and
    the cache layout are unchanged.
    """
    cache_root = (cache_dir or default_cache_dir()).expanduser()
    # The file name is part of the key: PySD names the module after it, and two
    # folders may hold the same model with different data files beside it.
    ident = f"{sha256}|{path.name}|{path.parent}|{pysd.__version__}|{_CACHE_VERSION}"
    key = hashlib.sha256(ident.encode()).hexdigest()
    work = cache_root / "translations" / key[:24]
    model_copy = work / path.name
    py_file = model_copy.with_suffix(".py")
    if py_file.exists():
        _mirror_folder(path.parent, work, skip=path)
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
        shutil.copy2(path, tmp / path.name)
        # Data files must be visible while translating: PySD reads subscript ranges
        # defined by GET DIRECT SUBSCRIPT at translation time.
        _mirror_folder(path.parent, tmp, skip=path)
        am = parse_abstract_model(tmp / path.name)
        from pysd.builders.python.python_model_builder import ModelBuilder

        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                built = Path(ModelBuilder(am).build_model())
        except Exception as exc:
            raise ModelLoadError(f"PySD could not translate {path}: {_one_line(exc)}") from exc
        if not built.exists():  # pragma: no cover - PySD contract
            raise ModelLoadError(f"PySD did not write a translation for {path}.")
        try:
            os.replace(tmp, work)
        except OSError:
            # Another process finished first; use its translation.
            shutil.rmtree(tmp, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    _mirror_folder(path.parent, work, skip=path)
    return py_file


def load_runtime(py_file: Path) -> Any:
    """Load PySD's runtime model from a translated file (a fresh object every call)."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return pysd.load(str(py_file), initialize=True)
    except Exception as exc:
        raise ModelLoadError(
            f"PySD could not load the translation {py_file}: {_one_line(exc)}"
        ) from exc
