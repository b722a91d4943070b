"""The Gram-matrix value norms equal the direct ‖Σ_t p_t v_t W_o,h‖ (the former [H, s, C] computation)."""

from __future__ import annotations

import torch

from attnscope.capture.probs import _value_norms, word_matrix, word_probabilities, words_from_probs


def _direct(selected, token_to_word, v_sel, w_o):
    """Reference: materialize each word's per-head output Σ_t p_t v_t W_o,h [H, s, C] and take its norm."""
    out = []
    for w in range(token_to_word.shape[1]):
        contrib = torch.bmm(selected * token_to_word[:, w], v_sel)  # [H, s, D]
        out.append(torch.linalg.vector_norm(torch.bmm(contrib, w_o), dim=-1))  # [H, s]
    return torch.stack(out, dim=1)


def _inputs(seed=0, heads=4, s=300, dim=16, width=64, n_tokens=40):
    g = torch.Generator().manual_seed(seed)
    # single-token, multi-token, overlapping and disjoint words; "far" shares no token with any other word
    words = {"a": [1], "bc": [2, 3], "cde": [3, 4, 5], "far": [9], "ab": [1, 2]}
    idx, to_word = word_matrix(words, torch.device("cpu"))
    probs = torch.softmax(torch.randn(heads, s, n_tokens, generator=g) * 3, dim=-1)
    value = torch.randn(n_tokens, heads, dim, generator=g)
    out_weight = torch.randn(width, heads * dim, generator=g) / dim
    return idx, to_word, probs, value, out_weight


def test_gram_value_norms_equal_the_direct_formula():
    idx, to_word, probs, value, out_weight = _inputs()
    heads = value.shape[1]
    selected = probs[..., idx]
    v_sel = value[idx].transpose(0, 1)
    w_o = out_weight.unflatten(1, (heads, -1)).permute(1, 2, 0)
    got = _value_norms(selected, to_word, v_sel, w_o)
    ref = _direct(selected, to_word, v_sel, w_o)
    assert got.shape == ref.shape == (heads, to_word.shape[1], probs.shape[1])
    assert got.dtype == torch.float32
    torch.testing.assert_close(got, ref, rtol=1e-5, atol=1e-7)
    # float64 reference: the Gram path is as exact as the direct float32 one
    ref64 = _direct(selected.double(), to_word.double(), v_sel.double(), w_o.double())
    torch.testing.assert_close(got.double(), ref64, rtol=1e-5, atol=1e-7)


def test_gram_value_norms_zero_weights_and_cancellation():
    """Zero probabilities give exact zeros (no NaN from rounding below 0); cancelling tokens give ~0."""
    idx, to_word, probs, value, out_weight = _inputs(seed=1, s=50)
    heads = value.shape[1]
    selected = probs[..., idx].clone()
    selected[:, :10] = 0.0
    v_sel = value[idx].transpose(0, 1).clone()
    v_sel[:, 2] = -v_sel[:, 1]  # tokens 2 and 3 ("bc") cancel where their probabilities are equal
    selected[:, 10:20, 2] = selected[:, 10:20, 1]
    w_o = out_weight.unflatten(1, (heads, -1)).permute(1, 2, 0)
    got = _value_norms(selected, to_word, v_sel, w_o)
    assert torch.isfinite(got).all() and (got >= 0).all()
    assert torch.equal(got[:, :, :10], torch.zeros_like(got[:, :, :10]))
    bc = 1  # the "bc" column
    assert got[:, bc, 10:20].max() < 1e-3 * got[:, bc, 20:].mean()
    torch.testing.assert_close(got, _direct(selected, to_word, v_sel, w_o), rtol=1e-4, atol=1e-5)


def test_both_call_sites_match_the_direct_formula():
    """word_probabilities (Gram hoisted out of the query blocks) and words_from_probs agree with the reference."""
    g = torch.Generator().manual_seed(2)
    n_real, heads, dim, s, width = 6, 3, 8, 40, 32
    key = torch.randn(20, heads, dim, generator=g)
    value = torch.randn(20, heads, dim, generator=g)
    query = torch.randn(s, heads, dim, generator=g)
    out_weight = torch.randn(width, heads * dim, generator=g)
    idx, to_word = word_matrix({"a": [1], "bc": [2, 3], "e": [5]}, torch.device("cpu"))
    _, _, direct = word_probabilities(query, key, idx, to_word, n_real, 0.3, value, out_weight,
                                      collapse_padding=False)
    probs = torch.softmax(torch.einsum("shd,lhd->hsl", query, key) * 0.3, dim=-1)
    _, _, given = words_from_probs(probs, idx, to_word, n_real, value, out_weight)
    ref = _direct(probs[..., idx], to_word, value[idx].transpose(0, 1),
                  out_weight.unflatten(1, (heads, -1)).permute(1, 2, 0))
    torch.testing.assert_close(direct["value_norm"], ref, rtol=1e-4, atol=1e-6)
    torch.testing.assert_close(given["value_norm"], ref, rtol=1e-5, atol=1e-7)


def _direct_projection(probs, idx, to_word, value, out_weight):
    """⟨c_{w,h}, y⟩/‖y‖ by materializing every output vector: probs [H, S, L], value [L, H, D]."""
    heads = value.shape[1]
    u = torch.einsum("lhd,chd->hlc", value, out_weight.unflatten(1, (heads, -1)))  # [H, L, C]
    y = torch.einsum("hsl,hlc->sc", probs, u)  # the whole attention output per query
    out = torch.zeros(heads, to_word.shape[1], probs.shape[1])
    for w in range(to_word.shape[1]):
        tokens = idx[to_word[:, w] > 0]
        c = torch.einsum("hst,htc->hsc", probs[..., tokens], u[:, tokens])  # word w through each head
        out[:, w] = (c * y).sum(-1) / y.norm(dim=-1)
    return out


def test_value_proj_matches_the_output_vectors_and_sums_to_the_projection():
    """Both call sites, with the padding collapsed (identical padding rows) and not, equal the explicit formula;
    summed over heads and words with every token as a word, the projections give back ‖y‖."""
    g = torch.Generator().manual_seed(3)
    n_real, heads, dim, s, width = 6, 3, 8, 40, 32
    context = torch.randn(20, heads, dim, generator=g)
    context[n_real:] = context[n_real]  # Wan's padding: identical rows
    key, value = context, context.flip(-1) * 0.5
    query = torch.randn(s, heads, dim, generator=g)
    out_weight = torch.randn(width, heads * dim, generator=g)
    idx, to_word = word_matrix({"a": [1], "bc": [2, 3], "e": [5]}, torch.device("cpu"))
    probs = torch.softmax(torch.einsum("shd,lhd->hsl", query, key) * 0.3, dim=-1)
    ref = _direct_projection(probs, idx, to_word, value, out_weight)
    for collapse in (True, False):
        _, _, got = word_probabilities(query, key, idx, to_word, n_real, 0.3, value, out_weight,
                                       collapse_padding=collapse)
        torch.testing.assert_close(got["value_proj"], ref, rtol=1e-4, atol=1e-5)
    _, _, given = words_from_probs(probs, idx, to_word, n_real, value, out_weight)
    torch.testing.assert_close(given["value_proj"], ref, rtol=1e-4, atol=1e-5)
    every = {str(i): [i] for i in range(20)}
    all_idx, all_words = word_matrix(every, torch.device("cpu"))
    _, _, whole = words_from_probs(probs, all_idx, all_words, 20, value, out_weight)
    u = torch.einsum("lhd,chd->hlc", value, out_weight.unflatten(1, (heads, -1)))
    norm = torch.einsum("hsl,hlc->sc", probs, u).norm(dim=-1)
    torch.testing.assert_close(whole["value_proj"].sum((0, 1)), norm, rtol=1e-4, atol=1e-4)
