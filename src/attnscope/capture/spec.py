"""What a trace keeps: which heads, layers and steps, and at which of those steps the self-prop maps."""

from __future__ import annotations

from dataclasses import dataclass

from ..errors import SelectionError
from ..selection import Selection, parse_selection

__all__ = ["CaptureSpec", "Selection"]


@dataclass(frozen=True)
class CaptureSpec:
    """A validated selection; ``heads="mean"`` averages heads in place (one ``head`` coordinate, "mean")."""

    heads: str | list[int] = "all"
    layers: str | list[int] = "all"
    steps: str | list[int] = "all"
    value_norm: bool = False
    self_prop: bool = False
    self_prop_steps: str | list[int] = "all"  # of the captured steps, those that also get self_prop

    @classmethod
    def make(cls, heads="all", layers="all", steps="all", value_norm: bool = False,
             self_prop: bool = False, self_prop_steps="all") -> CaptureSpec:
        return cls(parse_selection(heads, "heads", allow_mean=True), parse_selection(layers, "layers"),
                   parse_selection(steps, "steps"), bool(value_norm), bool(self_prop),
                   parse_selection("all" if self_prop_steps is None else self_prop_steps, "self_prop_steps"))

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
                "self_prop_steps": self.self_prop_steps if self.self_prop else None}
