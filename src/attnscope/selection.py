"""One parser for index selections (heads, layers, steps, seeds): the syntax every entry point shares.

A selection is ``"all"``, ``"mean"`` (heads: averaged at capture; render: the mean over everything), one index
(``3`` or ``"3"``), a comma list (``"0,3,5"``), a range (``"2-5"``, both ends included) or a list mixing indices and
ranges (``[0, "2-4"]``). :func:`parse_items` reads that syntax; :func:`parse_selection` turns it into what
``trace()`` takes (``"all"``, ``"mean"`` or sorted unique indices); ``render`` resolves the same items against what a
run has (:func:`attnscope.render.selection.parse_spec`: a range there names the run's values inside it).

Bad input is one :class:`SelectionSyntaxError` (a :class:`SelectionError`) that names the option and what is valid:
``--heads: expected "all", "mean", an index like 3, a comma list like 0,3,5 or a range like 2-5, got 'some'``.
"""

from __future__ import annotations

import numbers
import re
from dataclasses import dataclass
from typing import Any, Literal

from .errors import SelectionError

ALL, MEAN = "all", "mean"
Selection = Literal["all", "mean"] | list[int]
_ITEM = re.compile(r"^\s*(\d+)\s*(?:-\s*(\d+)\s*)?$")


@dataclass(frozen=True)
class Span:
    """A range ``lo-hi`` of a selection, both ends included."""

    lo: int
    hi: int

    def indices(self) -> list[int]:
        return list(range(self.lo, self.hi + 1))


Item = int | Span


def valid_text(allow_mean: bool, allow_all: bool = True) -> str:
    """What a selection may be, as error messages say it."""
    words = [f'"{w}"' for w, ok in ((ALL, allow_all), (MEAN, allow_mean)) if ok]
    return ", ".join([*words, "an index like 3, a comma list like 0,3,5 or a range like 2-5"])


class SelectionSyntaxError(SelectionError):
    """A selection that is not ``"all"``/``"mean"``/indices/ranges. ``reason`` is the message without the option
    name (a sweep file names the key itself)."""

    def __init__(self, option: str, value: Any, allow_mean: bool, allow_all: bool = True, detail: str = "") -> None:
        self.option, self.value = option, value
        self.reason = detail or f"expected {valid_text(allow_mean, allow_all)}, got {value!r}"
        super().__init__(f"{option}: {self.reason}")


def _item(item: Any, option: str, allow_mean: bool, allow_all: bool) -> Item:
    if isinstance(item, numbers.Integral) and not isinstance(item, bool):
        if item < 0:
            raise SelectionSyntaxError(option, item, allow_mean, allow_all)
        return int(item)
    match = _ITEM.match(item) if isinstance(item, str) else None
    if match is None:
        raise SelectionSyntaxError(option, item, allow_mean, allow_all)
    lo, hi = int(match.group(1)), int(match.group(2) or match.group(1))
    if match.group(2) is None:
        return lo
    if lo > hi:
        raise SelectionSyntaxError(option, item, allow_mean, allow_all,
                                   detail=f"range {item.strip()!r} is empty (start after end)")
    return Span(lo, hi)


def parse_items(value: Any, option: str, allow_mean: bool = False,
                allow_all: bool = True) -> Literal["all", "mean"] | list[Item]:
    """``"all"`` | ``"mean"`` (when allowed) | the indices and :class:`Span` ranges ``value`` lists, in order."""
    if isinstance(value, str) and value.strip().lower() in ((ALL,) if allow_all else ()) + (
            (MEAN,) if allow_mean else ()):
        return value.strip().lower()  # type: ignore[return-value]
    if isinstance(value, str):
        parts: list[Any] = value.split(",")
    elif isinstance(value, (list, tuple, range)):
        parts = list(value)
    else:
        parts = [value]
    if not parts:
        raise SelectionSyntaxError(option, value, allow_mean, allow_all)
    return [_item(p, option, allow_mean, allow_all) for p in parts]


def expand(items: list[Item]) -> list[int]:
    """The indices ``items`` names, in order (ranges expanded)."""
    out: list[int] = []
    for item in items:
        out.extend(item.indices() if isinstance(item, Span) else [item])
    return out


def parse_selection(value: Any, option: str, allow_mean: bool = False) -> Selection:
    """What ``trace()`` takes: ``"all"``, ``"mean"`` (``allow_mean``: heads) or sorted unique indices.

    ``option`` names the setting in errors as the caller's user knows it (``"--heads"``, ``"heads"``).
    """
    items = parse_items(value, option, allow_mean)
    if isinstance(items, str):
        return items  # type: ignore[return-value]
    return sorted(set(expand(items)))
