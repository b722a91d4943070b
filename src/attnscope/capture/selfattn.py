"""Word maps propagated through the same block's self-attention: the ``self-prop`` estimator.

A cross-attention map says which video tokens *asked for* a word. Self-attention says which tokens belong
together: each token's self-attention row spreads over its own object. Propagating a word's map through it,
m' = Ā·m with Ā the mean over heads of the block's self-attention softmax(q kᵀ/√d), fills what the raw map leaves
out inside an object (a shape word's map rings its object's edges) — the refinement that training-free
segmentation from diffusion models uses (e.g. DiffSegmenter, Wang et al. 2023).

The self-attention of ``blocks[i].attn1`` runs before the block's cross-attention, so a thin wrapper around
attn1's *stock* processor keeps the exact rotated query and key it used (the video is unchanged), and the
cross-attention capture of the same block and forward propagates its maps through them. On a GPU Ā·m is
fused ``scaled_dot_product_attention`` with the maps as values (the S×S matrix is never formed); on the CPU the
head-mean Ā is formed in small query blocks.

The same query and key give the probe rows (``trace(probe_points=...)``): the rows of Ā at a few query tokens,
where a point of the video looks in space-time (:func:`probe_rows`).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from .context import CaptureSink

# query block × keys × heads of float32 logits formed at once on the CPU: 4 MB stay in the caches and under glibc's
# mmap threshold (larger blocks were 3x slower on the toy model: fresh pages on every call); at least MIN_BLOCK rows
BLOCK_ELEMENTS = 1 << 20
MIN_BLOCK = 64


def rotate(x: torch.Tensor, freqs_cos: torch.Tensor, freqs_sin: torch.Tensor) -> torch.Tensor:
    """Wan's rotary embedding on x [B, S, H, D], with the very ops of diffusers' ``WanAttnProcessor`` (which
    defines it inside its ``__call__``), so the result is bit-identical to what the stock path attended with."""
    x1, x2 = x.unflatten(-1, (-1, 2)).unbind(-1)
    cos = freqs_cos[..., 0::2]
    sin = freqs_sin[..., 1::2]
    out = torch.empty_like(x)
    out[..., 0::2] = x1 * cos - x2 * sin
    out[..., 1::2] = x1 * sin + x2 * cos
    return out.type_as(x)


class SelfAttentionGrab:
    """Processor for ``blocks[i].attn1``: the stock processor's output, and — when the trace propagates this
    block's maps or probes its self-attention in this forward — the query and key [S, H, D] (sample 0) it attended
    with."""

    def __init__(self, stock, attn: torch.nn.Module, layer: int, expert: str, sink: CaptureSink) -> None:
        self.stock = stock
        self.layer = layer
        self.expert = expert
        self.sink = sink
        self.armed = False
        self.outputs: dict[str, torch.Tensor] = {}
        self.handles = [attn.norm_q.register_forward_hook(self._hook("q")),
                        attn.norm_k.register_forward_hook(self._hook("k"))]

    def _hook(self, name: str):
        def hook(module, args, output):
            if self.armed:
                self.outputs[name] = output

        return hook

    def __call__(self, attn, hidden_states, encoder_hidden_states=None, attention_mask=None, rotary_emb=None,
                 **kwargs):
        call = self.sink.call_info(self.layer, self.expert)
        if call is None or not (self.sink.propagating(call) or self.sink.probing(call)):
            return self.stock(attn, hidden_states, encoder_hidden_states, attention_mask, rotary_emb, **kwargs)
        self.armed = True
        try:
            out = self.stock(attn, hidden_states, encoder_hidden_states, attention_mask, rotary_emb, **kwargs)
        finally:
            self.armed = False
        grabbed, self.outputs = self.outputs, {}
        query = grabbed["q"][:1].unflatten(2, (attn.heads, -1))  # [1, S, H, D]
        key = grabbed["k"][:1].unflatten(2, (attn.heads, -1))
        if rotary_emb is not None:
            query, key = rotate(query, *rotary_emb), rotate(key, *rotary_emb)
        self.sink.keep_self_attention(self.expert, self.layer, query[0], key[0])
        return out

    def remove(self) -> None:
        for handle in self.handles:
            handle.remove()


def probe_rows(query: torch.Tensor, key: torch.Tensor, index: list[int]) -> torch.Tensor:
    """Rows of the head-mean self-attention Ā at query tokens ``index``: (1/H) Σ_h softmax(q_h[p] k_hᵀ/√d) from
    query/key [S, H, D] -> [P, S] float32, each row summing to one.

    A few rows of P×S logits per head, formed directly in float32 on the capture's device: cheaper than a fused
    kernel call would be to set up, and the same arithmetic on every device (the tests check it on the CPU).
    """
    d = query.shape[-1]
    q = query[index].float()  # [P, H, D]
    logits = torch.einsum("phd,shd->hps", q, key.float()).mul_(d ** -0.5)  # [H, P, S]
    return torch.softmax(logits, dim=-1).mean(0)


def propagate(query: torch.Tensor, key: torch.Tensor, maps: torch.Tensor, half: bool | None = None) -> torch.Tensor:
    """Ā·m per cross-attention head and word: maps [H2, W, S] through the head-mean self-attention of
    query/key [S, H1, D] -> [H2, W, S] float32.

    Self-attention heads and cross-attention heads are different heads, so every cross head's map goes through
    the mean of all self-attention heads: (1/H1) Σ_h softmax(q_h k_hᵀ/√d) m. Each row of Ā sums to 1, so a map
    of probabilities stays one (a constant map is a fixed point).

    ``half`` (default: on CUDA with 16-bit activations) runs it in float16 on the fused attention kernels, D map
    columns per call: the query and key are the model's own bf16/fp16 values (exact in float16), the kernel
    accumulates in float32, and the maps — probabilities in [0, 1] — keep float16's precision, which is the
    store's. Otherwise float32 throughout, over query blocks (the CPU path, which the tests check exactly).
    """
    if half is None:
        half = query.is_cuda and query.dtype in (torch.bfloat16, torch.float16)
    values = maps.float().flatten(0, 1).T  # [S, H2·W]
    out = _propagate_half(query, key, values) if half else _propagate_float(query, key, values)
    return out.T.unflatten(0, maps.shape[:2])


def _propagate_float(query: torch.Tensor, key: torch.Tensor, values: torch.Tensor) -> torch.Tensor:
    """values [S, C] -> Ā·values [S, C] float32, over query blocks.

    Ā itself is formed, block by block: averaging the heads' softmax first makes the product with the C map
    columns one [b, S] @ [S, C] instead of one per head (on the toy model's CPU run faster than a fused attention
    call with the maps as values: 43 against 63 ms per layer, both in one block).
    """
    s, h1, d = query.shape
    q = query.transpose(0, 1).float()  # [H1, S, D]
    k_t = key.permute(1, 2, 0).float()  # [H1, D, S]
    block = max(MIN_BLOCK, BLOCK_ELEMENTS // (s * h1))
    out = values.new_empty(values.shape)
    for start in range(0, s, block):
        rows = slice(start, start + block)
        probs = torch.softmax(torch.bmm(q[:, rows], k_t).mul_(d ** -0.5), dim=-1)  # [H1, b, S]
        out[rows] = probs.mean(0) @ values  # [b, C]
    return out


def _propagate_half(query: torch.Tensor, key: torch.Tensor, values: torch.Tensor) -> torch.Tensor:
    """values [S, C] -> Ā·values [S, C] float32 through float16 fused attention, D columns per call (the fused
    kernels want the value width to equal the query's head width)."""
    s, h1, d = query.shape
    q = query.transpose(0, 1).unsqueeze(0).to(torch.float16)  # [1, H1, S, D]
    k = key.transpose(0, 1).unsqueeze(0).to(torch.float16)
    out = values.new_empty(values.shape)
    for start in range(0, values.shape[1], d):
        n = min(d, values.shape[1] - start)
        v = F.pad(values[:, start:start + n], (0, d - n)).to(torch.float16)  # [S, D]
        v = v.unsqueeze(0).unsqueeze(0).expand(1, h1, s, d).contiguous()  # [1, H1, S, D]
        out[:, start:start + n] = F.scaled_dot_product_attention(q, k, v)[0].float().mean(0)[:, :n]
    return out
