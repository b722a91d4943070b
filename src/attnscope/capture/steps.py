"""Which denoising step, guidance branch and expert a transformer forward belongs to.

Diffusers' Wan pipelines wrap each denoiser call in ``cache_context("cond" | "uncond", step_index=i,
sigma=..., num_inference_steps=...)``; a *stateful* diffusers ``ModelHook`` receives that context. The hook here
hands it to a :class:`StepTracker`, which keeps the :class:`~.context.ForwardState` that processors and bends
read. Outside a pipeline loop (a user calling the transformer directly) there is no context: every forward is
then the conditional branch, and the step is the count of forwards so far.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from diffusers.hooks.hooks import BaseState, ModelHook, StateManager

from ..models import wan
from .context import ForwardState

HOOK_NAME = "attnscope.steps"


class _NoState(BaseState):
    def reset(self, *args, **kwargs) -> None:
        return None


@dataclass(frozen=True)
class Forward:
    """One transformer forward as the hook saw it: the tracker's view plus the tensors around it."""

    module: torch.nn.Module
    hidden: torch.Tensor  # the latents going in, (B, C, F, H, W)
    context_states: torch.Tensor | None  # encoder_hidden_states (text; I2V: image tokens first)


class StepHook(ModelHook):
    """A named diffusers hook on one transformer: calls ``begin(expert, forward, context)`` and ``end(output)``."""

    _is_stateful = True  # so diffusers hands us the pipeline's cache_context

    def __init__(self, expert: str, begin: Callable, end: Callable) -> None:
        super().__init__()
        self.expert = expert
        self._begin, self._end = begin, end
        self.state_manager = StateManager(_NoState)

    def pre_forward(self, module, *args, **kwargs):
        hidden = kwargs["hidden_states"] if "hidden_states" in kwargs else args[0]
        forward = Forward(module, hidden, kwargs.get("encoder_hidden_states"))
        self._begin(self.expert, forward, wan.cache_context(self.state_manager), kwargs.get("timestep"))
        return args, kwargs

    def post_forward(self, module, output):
        self._end(output)
        return output

    def reset_state(self, module):
        self.state_manager.reset()
        return module


class StepTracker:
    """Turns (expert, cache context, latents, timestep) into the :class:`ForwardState` of the forward running."""

    def __init__(self, scheduler) -> None:
        self.scheduler = scheduler
        self.state = ForwardState()
        self.cond_forwards = 0

    def begin(self, expert: str, forward: Forward, context, timestep) -> ForwardState:
        branch = context.name if context is not None else "cond"
        if branch == "cond":
            self.cond_forwards += 1
        step = context.step_index if context is not None and context.step_index is not None \
            else self.cond_forwards - 1
        num_steps = context.num_inference_steps if context is not None and context.num_inference_steps \
            else len(self.scheduler.timesteps)
        if context is not None and context.sigma is not None:
            sigma = float(context.sigma)
        elif getattr(self.scheduler, "sigmas", None) is not None and step < len(self.scheduler.sigmas):
            sigma = float(self.scheduler.sigmas[step])
        else:
            sigma = None
        s = self.state
        s.step, s.num_steps, s.branch, s.expert = step, num_steps, branch, expert
        s.grid = wan.token_grid(forward.module, forward.hidden)
        # kept as a tensor: converting it here would synchronize the GPU; the writer thread converts it
        s.timestep = timestep.detach().max() if torch.is_tensor(timestep) else timestep
        s.sigma = sigma
        s.active = True
        return s

    def end(self) -> ForwardState:
        self.state.active = False
        return self.state
