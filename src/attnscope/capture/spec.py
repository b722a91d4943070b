"""What a trace keeps: which heads, layers and steps, at which of those steps the self-prop maps, and the probe
points whose self-attention rows it stores."""

from __future__ import annotations

import numbers
from collections.abc import Iterable
from dataclasses import dataclass

from ..errors import AttnscopeError, SelectionError
from ..selection import Selection, parse_selection

__all__ = ["CaptureSpec", "ProbePoint", "Selection", "parse_probe_points"]

ProbePoint = tuple[int, int, int]  # (latent frame, y, x) on the token grid
POINT_FORMAT = "(frame, y, x) on the latent token grid, three whole numbers ≥ 0 like (1, 4, 7) or \"1,4,7\""


def _coordinate(item) -> int:
    if isinstance(item, str) and item.strip().isdigit():
        return int(item.strip())
    if isinstance(item, numbers.Integral) and not isinstance(item, bool) and item >= 0:
        return int(item)
    raise ValueError(item)


def _probe_point(value) -> ProbePoint:
    """One probe point from a (frame, y, x) sequence or an "F,Y,X" string."""
    items = value.split(",") if isinstance(value, str) else value
    try:
        point = tuple(_coordinate(item) for item in items)
    except (TypeError, ValueError):
        point = ()
    if len(point) != 3:
        raise SelectionError(f"probe point {value!r}: expected {POINT_FORMAT}")
    return point


def parse_probe_points(points: Iterable | None) -> tuple[ProbePoint, ...]:
    """Probe points as (frame, y, x) tuples, in the order given, each once; one "F,Y,X" string is one point."""
    points = [points] if isinstance(points, str) else list(points) if points is not None else []
    if points and all(isinstance(p, numbers.Integral) for p in points):
        raise SelectionError(f"probe_points takes a list of points, e.g. [{tuple(points)}], not {tuple(points)}")
    parsed = [_probe_point(p) for p in points]
    return tuple(dict.fromkeys(parsed))


@dataclass(frozen=True)
class CaptureSpec:
    """A validated selection; ``heads="mean"`` averages heads in place (one ``head`` coordinate, "mean")."""

    heads: str | list[int] = "all"
    layers: str | list[int] = "all"
    steps: str | list[int] = "all"
    value_norm: bool = False
    self_prop: bool = False
    self_prop_steps: str | list[int] = "all"  # of the captured steps, those that also get self_prop
    probe_points: tuple[ProbePoint, ...] = ()  # query tokens whose head-mean self-attention rows are stored

    @classmethod
    def make(cls, heads="all", layers="all", steps="all", value_norm: bool = False,
             self_prop: bool = False, self_prop_steps="all", probe_points=None) -> CaptureSpec:
        return cls(parse_selection(heads, "heads", allow_mean=True), parse_selection(layers, "layers"),
                   parse_selection(steps, "steps"), bool(value_norm), bool(self_prop),
                   parse_selection("all" if self_prop_steps is None else self_prop_steps, "self_prop_steps"),
                   parse_probe_points(probe_points))

    @property
    def grabs_self_attention(self) -> bool:
        """Whether blocks' self-attention query and key are needed (self_prop or probe rows)."""
        return self.self_prop or bool(self.probe_points)

    def check_probe_points(self, grid: tuple[int, int, int]) -> None:
        """Refuse probe points outside the generation's token grid (F', H', W'), naming the grid."""
        bad = [p for p in self.probe_points if any(c >= n for c, n in zip(p, grid, strict=True))]
        if bad:
            f, y, x = grid
            raise AttnscopeError(
                f"probe point(s) {', '.join(str(p) for p in bad)} lie outside this generation's latent token grid "
                f"of {f} frames × {y} rows × {x} columns; give (frame, y, x) with frame < {f}, y < {y}, x < {x} "
                "(token units: a pixel's x is x // (VAE spatial factor × patch), its frame (t + 3) // 4)")

    def probe_index(self, grid: tuple[int, int, int]) -> list[int]:
        """The probe points' positions in the frame-major token sequence (s = f·H'·W' + y·W' + x)."""
        _, h, w = grid
        return [f * h * w + y * w + x for f, y, x in self.probe_points]

    def layer_list(self, n_layers: int) -> list[int]:
        if self.layers == "all":
            return list(range(n_layers))
        bad = [layer for layer in self.layers if layer >= n_layers]
        if bad:
            raise SelectionError(f"layers {bad} do not exist; the model has layers 0-{n_layers - 1}")
        return list(self.layers)

    def head_list(self, n_heads: int) -> list[int | str]:
        if self.heads == "all":
            return list(range(n_heads))
        if self.heads == "mean":
            return ["mean"]
        bad = [h for h in self.heads if h >= n_heads]
        if bad:
            raise SelectionError(f"heads {bad} do not exist; the model has heads 0-{n_heads - 1}")
        return list(self.heads)

    def steps_kept(self, num_steps: int) -> int:
        """How many of a ``num_steps`` schedule's steps this selection keeps."""
        if self.steps == "all":
            return num_steps
        return len([s for s in self.steps if s < num_steps])

    def keeps_step(self, step: int) -> bool:
        return self.steps == "all" or step in self.steps

    def propagates_at(self, step: int) -> bool:
        """Whether a captured ``step`` also gets the self-prop maps (each costs about one self-attention per
        layer, so a capture may keep them only at the steps its view reads)."""
        return self.self_prop and (self.self_prop_steps == "all" or step in self.self_prop_steps)

    def to_json(self) -> dict:
        return {"heads": self.heads, "layers": self.layers, "steps": self.steps, "branch": "cond",
                "value_norm": self.value_norm, "self_prop": self.self_prop,
                "self_prop_steps": self.self_prop_steps if self.self_prop else None,
                "probe_points": [list(p) for p in self.probe_points] or None}
