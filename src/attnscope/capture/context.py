"""Where a cross-attention call happens: denoising step, layer, guidance branch, expert, token grid."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol


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


class CaptureSink(Protocol):
    """What the attention processors need from a capture session, and nothing more.

    The processors depend on this protocol, not on :class:`attnscope.tracing.Trace`, so capture/ never imports
    the trace (one-way imports; the recorder in :mod:`.recorder` implements it)."""

    bender: Any  # the recipe's Bender (attnscope.bend.apply), or None

    def call_info(self, layer: int, expert: str) -> CallInfo | None: ...

    def capturing(self, call: CallInfo) -> bool: ...

    def propagating(self, call: CallInfo) -> bool: ...

    def probing(self, call: CallInfo) -> bool: ...

    def record(self, call: CallInfo, query, key, value, out_weight) -> None: ...

    def record_probs(self, call: CallInfo, probs, value, out_weight) -> None: ...

    def keep_self_attention(self, expert: str, layer: int, query, key) -> None: ...
