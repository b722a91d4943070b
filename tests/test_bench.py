"""The bench's logic on a tiny config (the GPU figures come from `attnscope bench` on an H200)."""

from __future__ import annotations

import pytest
import torch

from attnscope.bench.capture import run_capture_bench
from attnscope.bench.e2e import run_e2e_bench
from attnscope.capture.probs import distinct_keys, word_matrix, word_probabilities


def test_capture_bench_reports_side_by_side_and_identical_output():
    result = run_capture_bench("tiny", device="cpu", repeats=2)
    assert result["output_identical"] is True
    assert set(result["median_s"]) == {"stock", "stock_uncond", "attnscope", "attnscope_uncond", "naive"}
    assert all(len(v) == 2 for v in result["raw_s"].values())
    layers, heads, words, tokens = 3, 2, 8, result["video_tokens"]
    assert result["bytes_captured"] == 2 * layers * heads * (words + 1) * tokens * 2
    assert result["bytes_written"] > 0
    expected = result["median_s"]["attnscope"] / result["median_s"]["stock"] - 1
    assert abs(result["ratio_forward"] - expected) < 1e-12


def test_capture_bench_self_prop_mode_is_timed_beside_and_identical():
    result = run_capture_bench("tiny", device="cpu", repeats=1, naive=False, self_prop=True)
    assert result["self_prop_identical"] is True and result["output_identical"] is True
    assert {"self_prop", "self_prop_uncond"} <= set(result["median_s"])
    med = result["median_s"]
    assert result["ratio_self_prop_forward"] == med["self_prop"] / med["stock"] - 1
    err = result["self_prop_half_error"]
    assert 0 <= err["max_abs"] < 1e-3 * 10 and err["mean_value"] > 0


def test_e2e_bench_tiny_pipeline_identical():
    result = run_e2e_bench("tiny", repeats=1, device="cpu", self_prop=True)
    assert result["output_identical"] is True  # with self-prop too
    assert result["store_bytes_on_disk"] > 0
    assert result["median_s"]["stock"] > 0 and result["median_s"]["attnscope"] > 0
    assert set(result["ratios"]) == {"attnscope", "attnscope_self_prop"}
    pairs = [a / b - 1 for a, b in zip(result["raw_s"]["attnscope"], result["raw_s"]["stock"], strict=True)]
    assert result["paired_ratios"]["attnscope"] == pytest.approx(sorted(pairs)[len(pairs) // 2])
    # CPU by thread: the main thread runs the pipeline in every mode; the writer thread, gone by the end of its
    # run, is part of the "ended threads", and its own CPU time is counted, per task
    for per_repeat in result["thread_cpu_s"].values():
        assert per_repeat[0]["MainThread"] > 0.1
    writer_cpu = result["writer_cpu_s"]["attnscope"][0]
    assert writer_cpu > 0 and "_do_step" in result["writer_cpu_by_task_s"]["attnscope"][0]
    assert sum(result["writer_cpu_by_task_s"]["attnscope"][0].values()) == pytest.approx(writer_cpu, abs=0.01)
    assert result["thread_cpu_s"]["attnscope"][0].get("ended threads", 0.0) >= writer_cpu - 0.03


def test_paired_ratio_is_the_median_of_each_repeat_against_its_neighbour():
    from attnscope.bench.e2e import _paired

    # the machine slows by half over the run; each capture repeat costs 10 % more than the stock one beside it
    stock = [10.0, 12.0, 15.0]
    assert _paired([11.0, 13.2, 16.5], stock) == pytest.approx(0.10)


def test_padding_collapse_equals_full_softmax():
    """The fast path (one key for all identical padding keys) gives the full 512-key softmax."""
    g = torch.Generator().manual_seed(0)
    n_real, heads, dim = 7, 3, 16
    key = torch.randn(512, heads, dim, generator=g)
    key[n_real:] = key[n_real]  # Wan: every zero-padded row embeds to the same key
    query = torch.randn(50, heads, dim, generator=g)
    collapsed, weights = distinct_keys(key, n_real)
    assert collapsed.shape[0] == n_real + 1 and weights is not None
    idx, to_word = word_matrix({"a": [1], "ab": [2, 3]}, torch.device("cpu"))
    fast = word_probabilities(query, key, idx, to_word, n_real, 0.25)
    full = word_probabilities(query, key, idx, to_word, n_real, 0.25, collapse_padding=False)
    for a, b in zip(fast[:2], full[:2], strict=False):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-7)
    key[-1] += 1.0  # padding keys differ: the fast path must not be taken
    assert distinct_keys(key, n_real)[1] is None


def test_value_norms_from_probs_match_the_direct_path():
    """Bent calls (probabilities given) and stock calls (query/key given) store the same value norms."""
    g = torch.Generator().manual_seed(1)
    n_real, heads, dim, s = 5, 2, 8, 12
    key = torch.randn(20, heads, dim, generator=g)
    value = torch.randn(20, heads, dim, generator=g)
    query = torch.randn(s, heads, dim, generator=g)
    w_o = torch.randn(16, heads * dim, generator=g)
    idx, to_word = word_matrix({"a": [1], "bc": [2, 3]}, torch.device("cpu"))
    direct = word_probabilities(query, key, idx, to_word, n_real, 0.3, value, w_o, collapse_padding=False)
    probs = torch.softmax(torch.einsum("shd,lhd->hsl", query, key) * 0.3, dim=-1)
    from attnscope.capture.probs import words_from_probs

    given = words_from_probs(probs, idx, to_word, n_real, value, w_o)
    for a, b in zip(direct[:2], given[:2], strict=True):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-6)
    assert direct[2].keys() == given[2].keys() == {"value_norm", "value_proj"}
    for name in direct[2]:
        torch.testing.assert_close(direct[2][name], given[2][name], rtol=1e-4, atol=1e-5)
