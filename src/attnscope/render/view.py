"""The view: which words, steps, layers, heads, estimator, normalization and segmentation cut a picture shows.

One resolution for every place that draws a run (``attnscope render``, the viewer, ``attnscope export``): what
the caller gives wins; what it leaves as None comes from the preset (:mod:`attnscope.render.preset`); no words
means the words the user marked or passed at capture, else the prompt's content words (:func:`default_words`).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

import xarray as xr

from ..store import Run
from .preset import Preset, preset_for
from .selection import ESTIMATORS, Spec, check_words, resolve, select

# words a map of is rarely what anyone wants to see; the one list of them (preview, render and export defaults)
STOP_WORDS = frozenset({
    "a", "an", "the", "and", "or", "but", "of", "with", "without", "in", "on", "at", "to", "into", "onto", "from",
    "by", "for", "over", "under", "is", "are", "was", "were", "be", "it", "its", "this", "that", "while", "as",
})
SEGMENT_THRESHOLD = 0.3  # the segmentation's cut where no measured one applies
_WORD = re.compile(r"[\w'-]+")


def _base(label: str) -> str:
    """``"cat (2)"`` -> ``"cat"``: the text of a word label, lower case, without punctuation."""
    return " ".join(_WORD.findall(re.sub(r"\s*\(\d+\)$", "", label).lower()))


def file_stem(words: Sequence[str]) -> str:
    """Word labels as a file name part: ``["red circle", "cat (2)"]`` -> ``"red-circle+cat-2"``."""
    return "+".join(re.sub(r"[^A-Za-z0-9_-]+", "-", w).strip("-") or "word" for w in words)


def content_words(words: Sequence[str]) -> list[str]:
    """The labels that are not stop words (all of them when every one is)."""
    kept = [w for w in words if _base(w) not in STOP_WORDS]
    return kept or list(words)


def default_words(run: Run) -> list[str]:
    """The words to show when none were named: those the user marked or passed at capture (all of the run's
    words then), else the prompt's content words."""
    chosen = (run.meta.get("capture") or {}).get("words")
    return list(run.words) if chosen else content_words(run.words)


@dataclass(frozen=True)
class View:
    """A resolved view. ``step``/``layer``/``head`` are ``select`` specs (``"mean"`` or coordinates)."""

    words: tuple[str, ...]
    step: Spec
    layer: Spec
    head: Spec
    estimator: str
    norm: str
    threshold: float
    preset: Preset

    @property
    def word(self) -> str:
        return self.words[0]

    @property
    def measured(self) -> bool:
        """Whether this is the view the preset's eval measured (its estimator and normalization): its segmentation
        cut then applies."""
        return (self.preset.threshold is not None and self.estimator == self.preset.estimator
                and self.norm == self.preset.norm)

    def selection(self) -> dict[str, Any]:
        """``step``, ``layer``, ``head``, ``estimator`` keyword arguments for ``select`` and the frame builders."""
        return {"step": self.step, "layer": self.layer, "head": self.head, "estimator": self.estimator}

    def map(self, run: Run, word: str | None = None, **kwargs: Any) -> xr.DataArray:
        """The view's map of ``word`` (default: its first word), float32 (frame, y, x)."""
        return select(run, word or self.word, **self.selection(), **kwargs)


def resolve_view(run: Run, words: str | Sequence[str] | None = None, step: Spec = None, layer: Spec = None,
                 head: Spec = None, estimator: str | None = None, norm: str | None = None,
                 preset: str = "recommended", threshold: float | None = None, kind: str | None = None) -> View:
    """The view of ``run`` for these arguments; None means the preset's choice (words: :func:`default_words`).

    ``kind="timeline"`` shows steps as its time axis: its step default is every step and its normalization one
    range over them (``global``), so a word's strength compares across the denoising. ``threshold`` None is the
    preset's measured cut when the view is the measured one, else 0.3. The selection is checked against the run.
    """
    defaults = preset_for(run, preset)
    chosen = defaults.selection(run, "mean" if kind == "timeline" and step is None else step, layer, estimator)
    if norm is None:
        norm = "global" if kind == "timeline" else defaults.norm
    names = default_words(run) if words is None or (not isinstance(words, str) and not list(words)) else words
    view = View(words=tuple(check_words(run, names)), step=chosen["step"], layer=chosen["layer"],
                head="mean" if head is None else head, estimator=chosen["estimator"], norm=norm,
                threshold=SEGMENT_THRESHOLD, preset=defaults)
    cut = threshold if threshold is not None else defaults.threshold if view.measured else SEGMENT_THRESHOLD
    view = replace(view, threshold=float(cut))
    resolve(run, list(view.words), view.step, view.layer, view.head, view.estimator)  # bad input fails here
    return view


__all__ = ["ESTIMATORS", "STOP_WORDS", "View", "content_words", "default_words", "file_stem", "resolve_view"]
