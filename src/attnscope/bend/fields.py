"""Recipe fields shared by every bend: index lists and ranges, step fractions, and word/phrase/list targets.

They are pydantic ``BeforeValidator``s, so YAML, Python and CLI spellings all reach the same values.
"""

from __future__ import annotations

import re
from functools import lru_cache
from typing import Annotated, Any

from pydantic import BeforeValidator

__all__ = ["Indices", "Steps", "steps_selected", "word_target"]

_RANGE = re.compile(r"^\s*(\d+)\s*-\s*(\d+)\s*$")


def _index_list(value: Any) -> list[int] | None:
    """``"all"``/None -> None; an int, a list of ints or ``"A-B"`` strings (inclusive) -> sorted unique ints."""
    if value is None or value == "all":
        return None
    items = value if isinstance(value, (list, tuple)) else [value]
    out: set[int] = set()
    for item in items:
        if isinstance(item, bool):
            raise ValueError(f"expected indices, got {item!r}")
        if isinstance(item, int):
            out.add(item)
        elif isinstance(item, str) and _RANGE.match(item):
            start, end = (int(p) for p in _RANGE.match(item).groups())
            if end < start:
                raise ValueError(f"range {item!r} runs backwards")
            out.update(range(start, end + 1))
        elif isinstance(item, str) and item.isdigit():
            out.add(int(item))
        else:
            raise ValueError(f"expected 'all', integer indices or 'A-B' ranges, got {item!r}")
    if any(i < 0 for i in out):
        raise ValueError(f"indices must be >= 0, got {sorted(out)}")
    return sorted(out)


def _steps(value: Any) -> list[int] | list[float] | None:
    """Integer step indices (as for layers), or two floats ``[start, end]``: a half-open fraction of the schedule."""
    items = value if isinstance(value, (list, tuple)) else [value]
    if value is not None and value != "all" and any(isinstance(v, float) for v in items):
        if len(items) != 2 or not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in items):
            raise ValueError(f"fractions of the schedule are two numbers [start, end] in [0, 1], got {value!r}")
        start, end = float(items[0]), float(items[1])
        if not 0.0 <= start < end <= 1.0:
            raise ValueError(f"fractions need 0 <= start < end <= 1, got [{start}, {end}]")
        return [start, end]
    return _index_list(value)


Indices = Annotated[Any, BeforeValidator(_index_list)]
Steps = Annotated[Any, BeforeValidator(_steps)]


@lru_cache(maxsize=4096)
def steps_selected(steps: tuple | None, num_steps: int) -> frozenset[int] | None:
    if steps is None:
        return None
    if isinstance(steps[0], float):
        start, end = steps
        # step i sits at progress i / num_steps; [start, end) so [0, .5] and [.5, 1] split the schedule
        return frozenset(i for i in range(num_steps) if start <= i / num_steps < end)
    return frozenset(steps)


def word_target(value: Any) -> str | list[str] | None:
    """A word, a phrase, a repeated word's label (``cat (2)``) or a list of them; a one-item list is that item."""
    if value is None or isinstance(value, str):
        if isinstance(value, str) and not value.strip():
            raise ValueError("name a word or phrase of the prompt")
        return value.strip() if isinstance(value, str) else None
    if isinstance(value, (list, tuple)) and value and all(isinstance(v, str) and v.strip() for v in value):
        items = [v.strip() for v in value]
        return items[0] if len(items) == 1 else items
    raise ValueError(f"expected a word, a phrase or a list of them, got {value!r}")
