"""The attention processor attnscope installs on every Wan cross-attention (``blocks[i].attn2``).

Unbent calls run the *stock* processor, so the video stays bit-identical; forward hooks on ``norm_q`` /
``norm_k`` (and ``to_v`` for value norms) hand over the exact tensors the stock path used, from which the
probabilities are recomputed beside it. Bent calls compute attention here (logits → bends → softmax → bends →
probabilities @ values), and what is captured is what the model used.
"""

from __future__ import annotations

import math

import torch
from diffusers.models.attention_dispatch import dispatch_attention_fn

from .context import CallInfo, CaptureSink

TEXT_CONTEXT = 512  # Wan pads the text context to 512 tokens; image tokens (I2V) come before it


class TensorGrab:
    """Forward hooks that keep the last output of ``norm_q``, ``norm_k`` and ``to_v`` while armed."""

    def __init__(self, attn: torch.nn.Module, with_value: bool) -> None:
        self.armed = False
        self.outputs: dict[str, torch.Tensor] = {}
        modules = {"q": attn.norm_q, "k": attn.norm_k}
        if with_value:
            modules["v"] = attn.to_v
        self.handles = [m.register_forward_hook(self._hook(name)) for name, m in modules.items()]

    def _hook(self, name: str):
        def hook(module, args, output):
            if self.armed:
                self.outputs[name] = output

        return hook

    def remove(self) -> None:
        for handle in self.handles:
            handle.remove()


class AttnscopeProcessor:
    """Stock output + exact probabilities for the chosen words; bends when a recipe asks for them."""

    def __init__(self, stock, layer: int, expert: str, sink: CaptureSink, grab: TensorGrab) -> None:
        self.stock = stock
        self.layer = layer
        self.expert = expert
        self.sink = sink
        self.grab = grab

    def __call__(self, attn, hidden_states, encoder_hidden_states=None, attention_mask=None, rotary_emb=None,
                 **kwargs):
        call = self.sink.call_info(self.layer, self.expert)
        if call is None:
            return self.stock(attn, hidden_states, encoder_hidden_states, attention_mask, rotary_emb, **kwargs)
        bender = self.sink.bender
        if bender is not None and bender.active(call):
            return self._bent(attn, hidden_states, encoder_hidden_states, call)
        if not self.sink.capturing(call):
            return self.stock(attn, hidden_states, encoder_hidden_states, attention_mask, rotary_emb, **kwargs)
        self.grab.armed = True
        try:
            out = self.stock(attn, hidden_states, encoder_hidden_states, attention_mask, rotary_emb, **kwargs)
        finally:
            self.grab.armed = False
        grabbed, self.grab.outputs = self.grab.outputs, {}
        heads = attn.heads
        query = grabbed["q"][0].unflatten(-1, (heads, -1))  # [S, H, D], sample 0 of the batch
        key = grabbed["k"][0].unflatten(-1, (heads, -1))  # [L, H, D]
        value = grabbed["v"][0].unflatten(-1, (heads, -1)) if "v" in grabbed else None
        self.sink.record(call, query, key, value, attn.to_out[0].weight)
        return out

    def _bent(self, attn, hidden_states, encoder_hidden_states, call: CallInfo) -> torch.Tensor:
        """Cross-attention computed here so bends can act on logits, probabilities and head outputs."""
        bender = self.sink.bender
        context_img = None
        if attn.add_k_proj is not None:
            n_img = encoder_hidden_states.shape[1] - TEXT_CONTEXT
            context_img, encoder_hidden_states = encoder_hidden_states[:, :n_img], encoder_hidden_states[:, n_img:]
        encoder_hidden_states = bender.edit_context(encoder_hidden_states, call)
        query = attn.norm_q(attn.to_q(hidden_states)).unflatten(2, (attn.heads, -1))  # [B, S, H, D]
        key = attn.norm_k(attn.to_k(encoder_hidden_states)).unflatten(2, (attn.heads, -1))  # [B, L, H, D]
        value = attn.to_v(encoder_hidden_states).unflatten(2, (attn.heads, -1))  # [B, L, H, D]
        scale = 1.0 / math.sqrt(query.shape[-1])
        logits = torch.einsum("bshd,blhd->bhsl", query.float(), key.float()) * scale
        logits = bender.pre_softmax(logits, call)
        probs = bender.post_softmax(torch.softmax(logits, dim=-1), call)  # [B, H, S, L]
        out = torch.einsum("bhsl,blhd->bshd", probs, value.float()).to(query.dtype)
        out = bender.on_head_outputs(out, call).flatten(2, 3)
        if context_img is not None:
            key_img = attn.norm_added_k(attn.add_k_proj(context_img)).unflatten(2, (attn.heads, -1))
            value_img = attn.add_v_proj(context_img).unflatten(2, (attn.heads, -1))
            out_img = dispatch_attention_fn(query, key_img, value_img, attn_mask=None, dropout_p=0.0,
                                            is_causal=False)
            out = out + out_img.flatten(2, 3).type_as(query)
        if self.sink.capturing(call):
            self.sink.record_probs(call, probs[0], value[0], attn.to_out[0].weight)
        out = attn.to_out[0](out.type_as(query))
        return attn.to_out[1](out)
