"""Where a cross-attention call happens: denoising step, layer, guidance branch, expert, token grid."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class CallInfo:
    """Everything a capture or a bend needs to know about one cross-attention call."""

    step: int
    num_steps: int
    layer: int
    branch: str  # "cond" or "uncond"
    expert: str  # "transformer" or "transformer_2" (Wan2.2 A14B)
    grid: tuple[int, int, int]  # (F', H', W') video tokens, frame-major: s = f*H'*W' + y*W' + x
    words: dict[str, list[int]] = field(default_factory=dict)
    prompt_tokens: int = 0


@dataclass
class ForwardState:
    """The transformer forward in progress, set by the transformer hook and read by processors and bends."""

    step: int = 0
    num_steps: int = 1
    branch: str = "cond"
    expert: str = "transformer"
    grid: tuple[int, int, int] = (1, 1, 1)
    timestep: float | None = None
    sigma: float | None = None
    active: bool = False
