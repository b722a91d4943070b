"""Put capture on a pipeline and take it off again, leaving the pipeline exactly as it was.

Everything installed (processors, diffusers hooks, torch hook handles) is recorded as one undo action, and
:meth:`Installation.undo` runs them in reverse order, every one of them even if one fails, also when the
generation raised. A half-finished install is undone before its error is raised. This is what makes a
generation a pure function of its inputs: nothing a traced or bent run put on the model survives into the next.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from diffusers.hooks.hooks import HookRegistry, ModelHook

from ..models import wan
from .context import CaptureSink
from .processor import AttnscopeProcessor, TensorGrab
from .selfattn import SelfAttentionGrab
from .spec import CaptureSpec
from .steps import HOOK_NAME, StepHook


class Installation:
    """An undo stack of what was put on the model."""

    def __init__(self) -> None:
        self._undo: list[Callable[[], None]] = []

    def add(self, undo: Callable[[], None]) -> None:
        self._undo.append(undo)

    def processor(self, attn: torch.nn.Module, processor) -> None:
        stock = attn.processor
        attn.set_processor(processor)
        self.add(lambda: attn.set_processor(stock))

    def hook(self, module: torch.nn.Module, hook: ModelHook, name: str) -> None:
        registry = HookRegistry.check_if_exists_or_initialize(module)
        registry.register_hook(hook, name)
        self.add(lambda: registry.remove_hook(name, recurse=False))

    def handles(self, handles) -> None:
        for handle in handles:
            self.add(handle.remove)

    def undo(self) -> None:
        """Undo everything, newest first; the first failure is raised after all others ran."""
        first: BaseException | None = None
        while self._undo:
            action = self._undo.pop()
            try:
                action()
            except Exception as exc:  # keep undoing: a half-restored model is worse; raised below
                first = first or exc
        if first is not None:
            raise first


def install_capture(transformers: dict[str, torch.nn.Module], sink: CaptureSink, spec: CaptureSpec,
                    begin: Callable, end: Callable) -> Installation:
    """Step hooks, cross-attention processors (and self-attention grabs for ``self_prop`` and probe points) on
    every expert."""
    done = Installation()
    try:
        for expert, transformer in transformers.items():
            done.hook(transformer, StepHook(expert, begin, end), HOOK_NAME)
            for layer, attn in enumerate(wan.cross_attentions(transformer)):
                grab = TensorGrab(attn, with_value=spec.value_norm)
                done.handles(grab.handles)
                done.processor(attn, AttnscopeProcessor(attn.processor, layer, expert, sink, grab))
            if spec.grabs_self_attention:
                for layer, block in enumerate(transformer.blocks):
                    grab = SelfAttentionGrab(block.attn1.processor, block.attn1, layer, expert, sink)
                    done.handles(grab.handles)
                    done.processor(block.attn1, grab)
    except BaseException:
        done.undo()
        raise
    return done
