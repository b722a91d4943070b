"""The recorder: turns the query/key (or bent probabilities) a processor hands over into store slabs.

It is the :class:`~.context.CaptureSink` the processors talk to: it says whether a call is captured, computes
the exact word probabilities beside the stock path (:mod:`.probs`), pairs a block's self-attention with its
cross-attention for ``self_prop`` and the probe rows, keeps the selected heads, casts once to the store's fp16
(the probe rows stay float32) and starts the copy to the host; the writer (:mod:`attnscope.store`) takes it from
there.
"""

from __future__ import annotations

import math

import torch

from ..errors import AttnscopeError
from ..store.compact import encode_slabs
from ..store.layout import PROBE
from ..store.writer import summaries_of
from .context import CallInfo, ForwardState
from .probs import word_matrix, word_probabilities, words_from_probs
from .selfattn import probe_rows, propagate
from .spec import CaptureSpec
from .transfer import HostTransfer

VALUE_EXTRAS = ("value_norm", "value_proj")  # what value_norm=True captures beside the maps
SELF_PROP = "self_prop"  # what self_prop=True captures: the maps propagated through the block's self-attention


class Recorder:
    """Capture state of one generation: which calls are captured and where their slabs go."""

    def __init__(self, spec: CaptureSpec, state: ForwardState, precision: str = "fp16") -> None:
        self.spec = spec
        self.precision = precision  # the store's: "fp16" lossless, "uint8" compact (attnscope.store.compact)
        self.state = state
        self.bender = None  # set by the trace once the prompt's words are known
        self.writer = None  # set by the trace at the first captured forward (context parallel: on rank 0 only)
        self.open = False  # capturing has begun (on every rank, with or without a writer)
        self.shards = None  # capture.parallel.SequenceShards under context parallelism
        self.words: dict[str, list[int]] = {}  # every word of the prompt, for bends: label -> token indices
        self.captured: dict[str, list[int]] = {}  # the words whose maps are stored
        self.prompt_tokens = 0
        self.layers: set[int] = set()
        self.padding_identical: bool | None = None
        self.transfer = HostTransfer()
        self._matrices: dict[torch.device, tuple[torch.Tensor, torch.Tensor]] = {}
        self._self_attention: dict[tuple[str, int], tuple[torch.Tensor, torch.Tensor]] = {}
        self._probe_rows: dict[tuple[str, int], torch.Tensor] = {}

    @property
    def extras(self) -> tuple[str, ...]:
        """The arrays stored beside ``maps`` and ``prompt_mass``."""
        return (VALUE_EXTRAS if self.spec.value_norm else ()) + ((SELF_PROP,) if self.spec.self_prop else ())

    # ---- CaptureSink ---------------------------------------------------------------------------------------------
    def call_info(self, layer: int, expert: str) -> CallInfo | None:
        s = self.state
        if not s.active:
            return None
        return CallInfo(step=s.step, num_steps=s.num_steps, layer=layer, branch=s.branch, expert=expert,
                        grid=s.grid, words=self.words, prompt_tokens=self.prompt_tokens)

    def capturing(self, call: CallInfo) -> bool:
        return (self.open and call.branch == "cond" and call.layer in self.layers
                and self.spec.keeps_step(call.step))

    def propagating(self, call: CallInfo) -> bool:
        return self.capturing(call) and self.spec.propagates_at(call.step)

    def probing(self, call: CallInfo) -> bool:
        return bool(self.spec.probe_points) and self.capturing(call)

    def record(self, call: CallInfo, query, key, value, out_weight) -> None:
        """Exact probabilities from the stock path's query [S,H,D] and key [L,H,D]."""
        token_index, to_word = self._matrix(query.device)
        maps, mass, values = word_probabilities(query, key, token_index, to_word, call.prompt_tokens,
                                               1.0 / math.sqrt(query.shape[-1]), value, out_weight,
                                               padding_identical=self.padding_identical)
        self._write(call, maps, mass, self._with_self_prop(call, maps, values))

    def record_probs(self, call: CallInfo, probs, value, out_weight) -> None:
        """Probabilities a bent call actually used: probs [H, S, L], value [L, H, D]."""
        token_index, to_word = self._matrix(probs.device)
        maps, mass, values = words_from_probs(probs, token_index, to_word, call.prompt_tokens,
                                             value if self.spec.value_norm else None, out_weight)
        self._write(call, maps, mass, self._with_self_prop(call, maps, values))

    def keep_self_attention(self, expert: str, layer: int, query: torch.Tensor, key: torch.Tensor) -> None:
        """The query and key [S, H, D] a block's self-attention used: kept for its cross-attention's self_prop,
        and the probe rows taken from them now (a few rows: the query and key need not wait for attn2)."""
        s = self.state
        if self.spec.probe_points:
            index = self.spec.probe_index(s.grid)
            self._probe_rows[(expert, layer)] = probe_rows(query, key, index)
        if self.spec.propagates_at(s.step):
            self._self_attention[(expert, layer)] = (query, key)

    # ---- slabs ---------------------------------------------------------------------------------------------------
    def _matrix(self, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
        if device not in self._matrices:
            self._matrices[device] = word_matrix(self.captured, device)
        return self._matrices[device]

    def _with_self_prop(self, call: CallInfo, maps: torch.Tensor, values: dict | None) -> dict | None:
        """``values`` plus ``self_prop`` (maps [H, W, S] through the block's self-attention) at the steps that keep
        it; the other steps' self_prop chunks stay unwritten (NaN)."""
        if not self.spec.propagates_at(call.step):
            return values
        qk = self._self_attention.pop((call.expert, call.layer), None)
        if qk is None:
            raise AttnscopeError(f"layer {call.layer}'s self-attention was not seen before its cross-attention; "
                                 "self_prop needs Wan's block order (attn1, then attn2)")
        return {**(values or {}), SELF_PROP: propagate(qk[0], qk[1], maps)}

    def _probe(self, call: CallInfo) -> torch.Tensor | None:
        """The probe rows [P, S] of this call's block, taken from its self-attention in this forward."""
        if not self.spec.probe_points:
            return None
        rows = self._probe_rows.pop((call.expert, call.layer), None)
        if rows is None:
            raise AttnscopeError(f"layer {call.layer}'s self-attention was not seen before its cross-attention; "
                                 "probe points need Wan's block order (attn1, then attn2)")
        return rows

    def _write(self, call: CallInfo, maps, mass, values: dict | None) -> None:
        heads = self.spec.heads
        values = values or {}
        if heads == "mean":
            maps, mass = maps.mean(0, keepdim=True), mass.mean(0, keepdim=True)
            values = {name: v.mean(0, keepdim=True) for name, v in values.items()}
        elif heads != "all":
            maps, mass = maps[heads], mass[heads]
            values = {name: v[heads] for name, v in values.items()}
        if self.shards is not None:  # this rank holds a slice of the video tokens: bring them to rank 0
            maps, mass, values = self._gathered(maps, mass, values)
            if maps is None:
                return
        f, y, x = call.grid
        # fp16 once, here: the store holds fp16, the summaries are means of what it holds, and the transfer's own
        # cast then has nothing left to do
        grid_maps = maps.to(torch.float16).unflatten(-1, (f, y, x))  # [H, W, S] -> [H, W, F, Y, X]
        grid_mass = mass.to(torch.float16).unflatten(-1, (f, y, x))  # [H, S] -> [H, F, Y, X]
        tensors = {"maps": grid_maps, "prompt_mass": grid_mass, **summaries_of(grid_maps, grid_mass)}
        tensors.update({name: v.unflatten(-1, (f, y, x)) for name, v in values.items()})
        rows = self._probe(call)
        if rows is not None:  # no head dim: kept whatever the head selection, float32 (attnscope.store.layout)
            tensors[PROBE] = rows.unflatten(-1, (f, y, x))
        # a compact store's codes are made here, on the capture's device: a byte per value crosses to the host
        tensors = encode_slabs(tensors, self.precision)
        host, ready = self.transfer.start(tensors)
        maps_h, mass_h = host.pop("maps"), host.pop("prompt_mass")
        self.writer.write(call.step, call.layer, maps_h, mass_h, host, ready=ready)

    def _gathered(self, maps, mass, values: dict):
        """Every rank's token slice of maps, mass and values, whole on rank 0 (None elsewhere)."""
        gather = self.shards.gather
        return gather(maps), gather(mass), {name: gather(v) for name, v in values.items()}
