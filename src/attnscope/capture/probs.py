"""Exact cross-attention probabilities for selected text tokens.

Given the exact query and key tensors of a Wan cross-attention call, compute the true softmax over all 512 text
keys (padding included: Wan does not mask it) in float32, but keep only what is asked for: per word the sum of
its tokens' probabilities, and the mass on the real prompt tokens. Queries are processed in blocks so memory stays
bounded at any video size.
"""

from __future__ import annotations

import math

import torch

QUERY_BLOCK = 32768


def _logits(q: torch.Tensor, key_t: torch.Tensor) -> torch.Tensor:
    """q [H, s, D] @ key_t [H, D, L] in float32.

    On CUDA with bf16/fp16 inputs the product runs on the tensor cores with float32 output (products of
    16-bit floats are exact in float32, sums accumulate in float32), instead of first copying the whole query
    to float32. Elsewhere the inputs are promoted to float32.
    """
    if q.is_cuda and q.dtype in (torch.bfloat16, torch.float16) and key_t.dtype == q.dtype:
        return torch.bmm(q, key_t, out_dtype=torch.float32)
    return torch.bmm(q.float(), key_t.float())


def _softmax_keys(logits: torch.Tensor) -> torch.Tensor:
    """Softmax over the last (key) dimension of [H, s, L'] logits.

    On the CPU, torch's softmax over a short last dimension (L' ≈ 25) is about 10× slower than over a middle one
    (1.2 ms against 0.1 ms per toy layer, copy included), so the keys are moved to the middle for it; the values
    are the same. CUDA's kernel has no such problem, and that path is the one the GPU benchmarks measured.
    """
    if logits.is_cuda:
        return torch.softmax(logits, dim=-1)
    return torch.softmax(logits.transpose(1, 2).contiguous(), dim=1).transpose(1, 2)


def distinct_keys(key: torch.Tensor, prompt_tokens: int, padding_identical: bool | None = None
                  ) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Collapse Wan's identical padding keys into one key with a log-count weight.

    Wan pads the text context with zeros, and the text embedder maps every zero row to the same vector, so the
    keys past the prompt are all equal. The softmax over 512 keys then equals a softmax over the prompt keys
    plus one padding key whose logit is raised by log(number of padding keys) — the same probabilities from
    (prompt_tokens + 1) dot products instead of 512. Checked on every call; falls back to all keys when the
    padding rows differ (e.g. user-supplied embeddings). key [L, H, D] -> (keys [L', H, D], log-weights [L'] or None).
    ``padding_identical`` lets a caller that already checked the text context skip the check (which would
    synchronize a GPU on every call).
    """
    n_pad = key.shape[0] - prompt_tokens
    if padding_identical is None:
        padding_identical = identical_padding(key, prompt_tokens)
    if n_pad <= 1 or not padding_identical:
        return key, None
    weights = torch.zeros(prompt_tokens + 1, device=key.device, dtype=torch.float32)
    # fill_ passes the scalar as a kernel argument; `weights[-1] = x` copies it from the host and synchronizes the
    # GPU, once per layer: that alone was +7 % per captured forward on an H200 (docs/benchmarks.md)
    weights[-1:].fill_(math.log(n_pad))
    return key[: prompt_tokens + 1], weights


def identical_padding(rows: torch.Tensor, prompt_tokens: int) -> bool:
    """Whether the rows past the prompt (keys or values [L, H, D]) are more than one and all equal."""
    pad = rows[prompt_tokens:]
    return pad.shape[0] > 1 and torch.equal(pad, pad[:1].expand_as(pad))


def word_matrix(words: dict[str, list[int]], device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """Token indices used by any word, and a (tokens, words) 0/1 matrix that sums tokens into words."""
    tokens = sorted({i for idx in words.values() for i in idx})
    pos = {t: j for j, t in enumerate(tokens)}
    matrix = torch.zeros(len(tokens), len(words), device=device)
    for w, idx in enumerate(words.values()):
        for i in idx:
            matrix[pos[i], w] = 1.0
    return torch.tensor(tokens, dtype=torch.long, device=device), matrix


def word_probabilities(
    query: torch.Tensor,
    key: torch.Tensor,
    token_index: torch.Tensor,
    token_to_word: torch.Tensor,
    prompt_tokens: int,
    scale: float,
    value: torch.Tensor | None = None,
    out_weight: torch.Tensor | None = None,
    collapse_padding: bool = True,
    padding_identical: bool | None = None,
) -> tuple[torch.Tensor, torch.Tensor, dict[str, torch.Tensor] | None]:
    """Word maps, prompt mass and (optionally) value norms for one sample.

    query [S, H, D], key/value [L, H, D] (after Wan's RMSNorm), token_index [T], token_to_word [T, W],
    out_weight [C, H*D] (the output projection). Returns maps [H, W, S], prompt_mass [H, S] and, when ``value``
    is given, ‖Σ_t p_t v_t W_o,h‖ per head, word and query [H, W, S] — each word's contribution to the output.
    """
    s, h, _ = query.shape
    n_words = token_to_word.shape[1]
    key, log_weights = (distinct_keys(key, prompt_tokens, padding_identical) if collapse_padding
                        else (key, None))
    key_t = key.permute(1, 2, 0)  # [H, D, L']
    maps = query.new_empty((h, n_words, s), dtype=torch.float32)
    mass = query.new_empty((h, s), dtype=torch.float32)
    vnorm = vproj = None
    if value is not None:
        vnorm = query.new_empty((h, n_words, s), dtype=torch.float32)
        vproj = query.new_empty((h, n_words, s), dtype=torch.float32)
        v_sel = value[token_index].float().transpose(0, 1)  # [H, T, D]
        w_o = out_weight.float().unflatten(1, (h, -1)).permute(1, 2, 0)  # [H, D, C]
        gram = _value_gram(v_sel, w_o)  # [H, T, T], once for all query blocks
        out_gram = _output_gram(value[: key.shape[0]], w_o)  # the distinct keys' values: [H·L', H·L']
    for start in range(0, s, QUERY_BLOCK):
        block = slice(start, start + QUERY_BLOCK)
        q = query[block].transpose(0, 1)  # [H, s, D]
        # few passes over the [H, s, L'] logits, since they are what the capture's GPU time is spent on: the scale
        # and the padding's log-count in one op, then one fused softmax that every output is read from
        logits = _logits(q, key_t)  # [H, s, L']
        logits = logits.mul_(scale) if log_weights is None else torch.add(log_weights, logits, alpha=scale)
        probs = _softmax_keys(logits)
        del logits
        selected = probs[..., token_index]  # [H, s, T]
        maps[:, :, block] = (selected @ token_to_word).transpose(1, 2)
        mass[:, block] = probs[..., :prompt_tokens].sum(-1)
        if vnorm is not None:
            vnorm[:, :, block] = _norms_from_gram(selected, token_to_word, gram)
            vproj[:, :, block] = _projections(probs, token_index, token_to_word, out_gram)
    return maps, mass, (None if vnorm is None else {"value_norm": vnorm, "value_proj": vproj})


def _value_norms(selected: torch.Tensor, token_to_word: torch.Tensor, v_sel: torch.Tensor,
                 w_o: torch.Tensor) -> torch.Tensor:
    """‖Σ_t p_t v_t W_o,h‖ per head, word and query: selected [H, s, T], v_sel [H, T, D], w_o [H, D, C] -> [H, W, s]."""
    return _norms_from_gram(selected, token_to_word, _value_gram(v_sel, w_o))


def _value_gram(v_sel: torch.Tensor, w_o: torch.Tensor) -> torch.Tensor:
    """Per-head Gram matrix G_h = U_h U_hᵀ of the projected values u_{h,t} = v_{h,t} W_o,h: [H, T, T] float32.

    ‖Σ_t a_t u_t‖² = aᵀ G a, so the norms never need the [H, s, C] outputs: G costs H·T·D·C once per call
    (T = the words' tokens, a handful) instead of H·s·D·C per word.
    """
    u = torch.bmm(v_sel.float(), w_o.float())  # [H, T, C]
    return torch.bmm(u, u.transpose(1, 2))


def _output_gram(value: torch.Tensor, w_o: torch.Tensor) -> torch.Tensor:
    """Gram matrix of every head's projected values u_{h,t} = v_{h,t} W_o,h, across heads: [H·L, H·L] float32.

    value [L, H, D] (the distinct keys' values: the prompt's and one padding row), w_o [H, D, C]. The
    attention output of a query is y = Σ_h Σ_t p_{h,t} u_{h,t}, so with a = (p_{h,t}) every product of outputs
    is a quadratic form in G: ‖y‖² = aᵀ G a.
    """
    u = torch.bmm(value.float().transpose(0, 1), w_o.float()).flatten(0, 1)  # [H·L, C]
    return u @ u.T


def _projections(probs: torch.Tensor, token_index: torch.Tensor, token_to_word: torch.Tensor,
                 gram: torch.Tensor) -> torch.Tensor:
    """⟨c_{w,h}, y⟩ / ‖y‖ per head, word and query: probs [H, s, L] over the distinct keys -> [H, W, s].

    c_{w,h} = Σ_{t∈w} p_{h,t} u_{h,t} is word w's contribution through head h, y the query's whole attention
    output (every head, every key, padding included). Summed over heads it is the length of the word's
    contribution along the output: large where the word drives what the layer writes, small where the output
    points elsewhere (at the padding, say) however much the word is attended. ConceptAttention found such
    output-space maps sharper than attention weights.
    """
    h, s, n = probs.shape
    a = probs.float().permute(1, 0, 2).reshape(s, h * n)  # [s, H·L]
    ab = a * (a @ gram)  # [s, H·L]: a_i (G a)_i, whose sum is ‖y‖²
    norm = ab.sum(-1).clamp_min(0).sqrt()  # [s]
    terms = ab.unflatten(1, (h, n))[..., token_index] @ token_to_word  # [s, H, W]
    return (terms / norm.clamp_min(1e-12)[:, None, None]).permute(1, 2, 0)


def _norms_from_gram(selected: torch.Tensor, token_to_word: torch.Tensor, gram: torch.Tensor) -> torch.Tensor:
    """sqrt(aᵀ G a) with a = p ⊙ (word w's column) per head, word and query: O(H·s·T²) per word.

    The word's column zeroes the other tokens, which restricts the sum to its tokens without reading the
    word layout back to the host (no GPU sync). Rounding can make aᵀ G a slightly negative; it is clamped to 0.
    """
    selected = selected.float()
    h, s, _ = selected.shape
    out = selected.new_empty((h, token_to_word.shape[1], s))
    for w in range(token_to_word.shape[1]):
        col = token_to_word[:, w].float()
        g_w = gram * (col[:, None] * col[None, :])  # [H, T, T]: G restricted (and weighted) to word w
        sq = torch.linalg.vecdot(torch.bmm(selected, g_w), selected)  # [H, s]
        out[:, w] = sq.clamp_min_(0).sqrt_()
    return out


def words_from_probs(probs: torch.Tensor, token_index: torch.Tensor, token_to_word: torch.Tensor,
                     prompt_tokens: int, value: torch.Tensor | None = None, out_weight: torch.Tensor | None = None
                     ) -> tuple[torch.Tensor, torch.Tensor, dict[str, torch.Tensor] | None]:
    """The same outputs as :func:`word_probabilities`, from probabilities already computed (bent calls).

    probs [H, S, L], value [L, H, D]. Returns maps [H, W, S], prompt_mass [H, S] and the value dict or None.
    """
    selected = probs[..., token_index].float()  # [H, S, T]
    maps = (selected @ token_to_word).transpose(1, 2)
    mass = probs[..., :prompt_tokens].float().sum(-1)
    extras = None
    if value is not None:
        h = value.shape[1]
        v_sel = value[token_index].float().transpose(0, 1)  # [H, T, D]
        w_o = out_weight.float().unflatten(1, (h, -1)).permute(1, 2, 0)  # [H, D, C]
        probs_d, value_d = _collapse_padding_values(probs, value, prompt_tokens)
        extras = {"value_norm": _value_norms(selected, token_to_word, v_sel, w_o),
                  "value_proj": _projections(probs_d, token_index, token_to_word, _output_gram(value_d, w_o))}
    return maps, mass, extras


def _collapse_padding_values(probs: torch.Tensor, value: torch.Tensor, prompt_tokens: int
                             ) -> tuple[torch.Tensor, torch.Tensor]:
    """Identical padding values act as one: their probabilities summed onto one row (exact, and it keeps the
    output Gram at (prompt + 1) tokens per head instead of 512). probs [H, S, L], value [L, H, D]."""
    if not identical_padding(value, prompt_tokens):
        return probs, value
    probs_d = torch.cat([probs[..., :prompt_tokens], probs[..., prompt_tokens:].sum(-1, keepdim=True)], dim=-1)
    return probs_d, value[: prompt_tokens + 1]
