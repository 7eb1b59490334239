"""The page's state in its address: lever values and the chosen views, as a query string.

``?equalization_transfer_intensity=0.8&abatement_investment[Pavlodar]=60&view.year=2050``

Levers are written by PySD's name (``name[Element]`` for one element) and only where they
differ from the baseline, so a shared address reads as "the baseline plus these changes".
Any lever or view key makes the address a complete state (levers not named are at their
baseline); an address without a query opens the scenario as its file sets it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from urllib.parse import parse_qs, urlencode

from sd_model._errors import ParameterError
from sd_model.explore.levers import LeverSet

__all__ = ["VIEW_KEYS", "PageState", "decode_query", "encode_query", "format_number"]

VIEW_KEYS = ("view.regional", "view.national", "view.disparity", "view.year")


def format_number(value: float) -> str:
    """Shortest text that reads back as ``value`` to 12 significant digits (``0.35``)."""
    return f"{value:.12g}"


@dataclass(frozen=True)
class PageState:
    """What an address says.

    Attributes
    ----------
    values : dict or None
        Lever key -> value for every lever; None when the address says nothing (open
        the scenario as its file sets it).
    view : dict
        ``view.*`` key -> text, as given.
    errors : tuple of str
        What could not be used (unknown keys, values out of range), one message each.
    """

    values: dict[str, float] | None
    view: dict[str, str] = field(default_factory=dict)
    errors: tuple[str, ...] = ()


def encode_query(
    levers: LeverSet, values: Mapping[str, float], view: Mapping[str, str] | None = None
) -> str:
    """The query string (without ``?``) for lever ``values`` and ``view`` choices.

    Examples
    --------
    >>> encode_query(levers, {"transport programme": 500.0}, {"view.year": "2050"})
    ... # doctest: +SKIP
    'transport_programme=500&view.year=2050'
    """
    pairs: list[tuple[str, str]] = []
    for lever in levers:
        value = values.get(lever.key, lever.baseline)
        if format_number(value) != format_number(lever.baseline):
            pairs.append((lever.url_key, format_number(value)))
    for key in VIEW_KEYS:
        if view and view.get(key):
            pairs.append((key, str(view[key])))
    if not pairs:
        # Every lever at its baseline is a state too: say so, or a reload would reopen
        # the scenario's own settings.
        pairs.append(("view.baseline", "1"))
    return urlencode(pairs, safe="[],")


def decode_query(
    levers: LeverSet, query: str | Mapping[str, Sequence[str]], start: Mapping[str, float]
) -> PageState:
    """Read an address's query back into lever values and view choices.

    Parameters
    ----------
    levers : LeverSet
    query : str or mapping
        ``a=1&b=2`` (a leading ``?`` is allowed), or :func:`urllib.parse.parse_qs`'s form.
    start : mapping
        The lever values of an address without state (the scenario's).

    Returns
    -------
    PageState
        Bad entries are left out and described in ``errors``; a lever whose value is
        refused keeps its ``start`` value.

    Examples
    --------
    >>> state = decode_query(levers, "?transport_programme=500", start)  # doctest: +SKIP
    >>> state.values["transport programme"], state.errors  # doctest: +SKIP
    (500.0, ())
    """
    if isinstance(query, str):
        parsed = parse_qs(query.removeprefix("?"), keep_blank_values=True)
    else:
        parsed = {str(k): [str(v) for v in vs] for k, vs in query.items()}
    if not parsed:
        return PageState(values=None)
    values = levers.baseline()
    view: dict[str, str] = {}
    errors: list[str] = []
    for key, given in parsed.items():
        raw = given[-1] if given else ""
        if key == "view.baseline":
            continue
        if key.startswith("view."):
            if key in VIEW_KEYS:
                view[key] = raw
            else:
                errors.append(f"address: unknown setting {key!r}; ignored.")
            continue
        try:
            lever = levers[key]
        except ParameterError as exc:
            errors.append(f"address: {exc} Ignored.")
            continue
        try:
            values[lever.key] = lever.check(raw, where="address")
        except ParameterError as exc:
            kept = start.get(lever.key, lever.baseline)
            values[lever.key] = kept
            errors.append(f"{exc} Kept {format_number(kept)}.")
    return PageState(values=values, view=view, errors=tuple(errors))
