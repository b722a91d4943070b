"""Bend targets (phrases, labels, lists, objects), renormalized reweight, swap, toy defaults, bad targets."""

from __future__ import annotations

import json
from dataclasses import dataclass

import numpy as np
import pytest
import torch

import attnscope
from attnscope.bend.apply import Bender
from attnscope.bend.defaults import apply_defaults, load_defaults
from attnscope.bend.recipe import BendRecipeError, load_recipe
from attnscope.bend.targets import TargetResolver
from conftest import tiny_call_kwargs

GRID = (2, 4, 8)
S, L, HEADS = 64, 512, 2
# "a red cat and a cat" + EOS: labels as the trace builds them
WORDS = {"a": [0], "red": [1], "cat": [2], "and": [3], "a (2)": [4], "cat (2)": [5]}


@dataclass(frozen=True)
class Call:
    step: int = 0
    num_steps: int = 10
    layer: int = 0
    branch: str = "cond"
    expert: str = "transformer"
    grid: tuple[int, int, int] = GRID
    prompt_tokens: int = 7  # six words + EOS at index 6


def probs(seed: int = 0) -> torch.Tensor:
    return torch.softmax(torch.randn(1, HEADS, S, L, generator=torch.Generator().manual_seed(seed)), -1)


def bender(*bends: dict) -> Bender:
    return Bender(load_recipe(list(bends)), WORDS)


def test_phrase_label_and_list_targets_resolve_like_capture():
    r = TargetResolver(WORDS)
    assert r.check(["red cat"], "b") == [1, 2]
    assert r.check(["cat (2)"], "b") == [5]
    assert r.check(["a cat"], "b") == [4, 5]  # the only "a cat" is the second one
    assert r.check(["red", "cat (2)"], "b") == [1, 5]
    with pytest.raises(BendRecipeError, match="word 'dog' is not in the prompt.*red, cat"):
        r.check(["dog"], "bend 0 (attention reweight)")
    with pytest.raises(BendRecipeError, match="'cat red'"):
        r.check(["cat red"], "b")  # words out of order are no phrase


def test_resolver_with_tokenizer_uses_capture(tiny_pipes):
    tok = tiny_pipes["t2v"].tokenizer
    prompt = "a red cat playing with a soccer ball"
    from attnscope.capture.words import resolve_words

    every = {e.label: e.token_indices for e in resolve_words(prompt, None, tok)[0]}
    r = TargetResolver(every, prompt=prompt, tokenizer=tok)
    expected = resolve_words(prompt, ["soccer ball"], tok)[0][0].token_indices
    assert r.check(["soccer ball"], "b") == expected
    assert r.eos() == len(tok(prompt)["input_ids"]) - 1


def test_recipe_accepts_words_lists_and_objects_and_refuses_both():
    recipe = load_recipe([{"target": "attention", "op": "reweight", "words": ["red", "cat"], "scale": 0.0},
                          {"target": "attention", "op": "translate", "object": "red cat", "dx": 0.3}])
    assert recipe.bends[0].phrases == ["red", "cat"] and not recipe.bends[0].with_eos
    assert recipe.bends[1].with_eos and load_recipe(recipe.to_json()) == recipe
    with pytest.raises(BendRecipeError, match="not both"):
        load_recipe([{"target": "attention", "op": "reweight", "word": "red", "object": "red cat", "scale": 0}])


def test_object_target_bends_its_tokens_and_eos_and_optionally_padding():
    p = probs()
    out = bender({"target": "attention", "op": "reweight", "object": "red cat", "scale": 0.0}).pre_softmax(
        torch.log(p), Call())
    assert torch.isinf(out[..., [1, 2, 6]]).all() and torch.isfinite(out[..., [0, 3, 4, 5, 7]]).all()
    out = bender({"target": "attention", "op": "reweight", "object": "red cat", "scale": 0.0, "padding": True,
                  "eos": False}).pre_softmax(torch.log(p), Call())
    assert torch.isinf(out[..., 7:]).all() and torch.isfinite(out[..., 6]).all()


def test_reweight_renormalized_over_real_tokens_keeps_the_padding_mass():
    p = probs()
    b = bender({"target": "attention", "op": "reweight", "word": "red", "scale": 0.0, "renormalize": "real"})
    assert not b.logit_bends and b.map_bends
    out = b.post_softmax(p.clone(), Call())
    assert torch.equal(out[..., 1], torch.zeros_like(out[..., 1]))
    torch.testing.assert_close(out[..., 7:], p[..., 7:])  # the padding sink is untouched
    torch.testing.assert_close(out[..., :7].sum(-1), p[..., :7].sum(-1))
    torch.testing.assert_close(out[..., 2] / out[..., 3], p[..., 2] / p[..., 3])  # others scaled alike


@pytest.mark.parametrize("mode", ["sink", "none"])
def test_reweight_into_the_sink_or_unnormalized_keeps_the_other_words(mode):
    p = probs()
    b = bender({"target": "attention", "op": "reweight", "word": "red", "scale": 0.0, "renormalize": mode})
    out = b.post_softmax(p.clone(), Call())
    assert torch.equal(out[..., 1], torch.zeros_like(out[..., 1]))
    torch.testing.assert_close(out[..., [0, 2, 3, 4, 5, 6]], p[..., [0, 2, 3, 4, 5, 6]])  # other words untouched
    if mode == "sink":  # the padding keys take the word's mass, in proportion to what they had
        torch.testing.assert_close(out.sum(-1), torch.ones(1, HEADS, S))
        torch.testing.assert_close(out[..., 7:] / out[..., 7:].sum(-1, keepdim=True),
                                   p[..., 7:] / p[..., 7:].sum(-1, keepdim=True))
    else:
        torch.testing.assert_close(out.sum(-1), 1.0 - p[..., 1])


def two_objects() -> torch.Tensor:
    """Probabilities where "red cat" (tokens 1, 2) sits in the left half and "cat (2)" (5) in the right half, and
    EOS (6) covers both, as a real prompt's end-of-sequence token does."""
    p = probs().clone() * 0.1
    left = torch.zeros(GRID)
    left[..., :4] = 1.0
    left = left.flatten()
    p[..., 1] += 0.3 * left
    p[..., 2] += 0.3 * left
    p[..., 5] += 0.3 * (1.0 - left)
    p[..., 6] += 0.4
    return p / p.sum(-1, keepdim=True), left.bool()


def test_masked_eos_suppress_removes_the_objects_share_and_keeps_the_others():
    p, left = two_objects()
    b = bender({"target": "attention", "op": "reweight", "object": "red cat", "scale": 0.0, "eos": "masked"})
    assert not b.logit_bends and b.map_bends  # it needs the probabilities
    out = b.post_softmax(p.clone(), Call())
    torch.testing.assert_close(out.sum(-1), torch.ones(1, HEADS, S))
    assert torch.equal(out[..., [1, 2]], torch.zeros_like(out[..., [1, 2]]))
    # EOS keeps 1 - share of itself, share = the object's map over its peak in the head and frame; then the row
    # is renormalized over every key, as the softmax would
    obj = p[..., [1, 2]].sum(-1)
    share = (obj.unflatten(-1, (2, -1)) / obj.unflatten(-1, (2, -1)).amax(-1, keepdim=True)).flatten(-2)
    kept = p[..., 6] * (1 - share)
    torch.testing.assert_close(out[..., 6], kept / (1 - obj - p[..., 6] * share))
    assert (out[..., left, 6] < 0.5 * p[..., left, 6]).all()  # mostly gone on the object
    assert (out[..., ~left, 6] > 0.7 * p[..., ~left, 6]).all()  # mostly kept on the other object
    # the whole-EOS object bend takes EOS everywhere, the other object's half too
    whole = bender({"target": "attention", "op": "reweight", "object": "red cat", "scale": 0.0})
    full = torch.softmax(whole.pre_softmax(torch.log(p), Call()), -1)
    assert full[..., ~left, 6].max() == 0.0


def test_masked_eos_into_the_sink_keeps_the_other_words_and_rows_at_one():
    p, left = two_objects()
    b = bender({"target": "attention", "op": "reweight", "object": "red cat", "scale": 0.0, "eos": "masked",
                "renormalize": "sink"})
    out = b.post_softmax(p.clone(), Call())
    torch.testing.assert_close(out.sum(-1), torch.ones(1, HEADS, S))
    torch.testing.assert_close(out[..., [0, 3, 4, 5]], p[..., [0, 3, 4, 5]])
    assert (out[..., 7:].sum(-1) > p[..., 7:].sum(-1)).all()


def test_masked_eos_translate_moves_the_objects_share_of_eos_with_it():
    p, left = two_objects()
    b = bender({"target": "attention", "op": "translate", "object": "red cat", "dx": 0.5, "eos": "masked",
                "renormalize": False})
    out = b.post_softmax(p.clone(), Call())
    share = p[..., [1, 2]].sum(-1).unflatten(-1, (2, -1))
    share = (share / share.amax(-1, keepdim=True)).flatten(-2)
    moving = (p[..., 6] * share).unflatten(-1, GRID)
    moved = torch.zeros_like(moving)
    moved[..., 4:] = moving[..., :4]  # dx 0.5 of 8 tokens: 4 tokens right
    expected = p[..., 6] * (1 - share) + moved.flatten(-3)
    torch.testing.assert_close(out[..., 6], expected)
    torch.testing.assert_close(out[..., 1].unflatten(-1, GRID)[..., 4:], p[..., 1].unflatten(-1, GRID)[..., :4])
    torch.testing.assert_close(out[..., [0, 3, 4, 5]], p[..., [0, 3, 4, 5]])  # other words untouched


def test_masked_eos_is_refused_for_words_that_are_not_eos_modes():
    with pytest.raises(BendRecipeError, match="eos"):
        load_recipe([{"target": "attention", "op": "reweight", "object": "red cat", "scale": 0.0, "eos": "half"}])


def test_identity_targets_are_dropped():
    b = bender({"target": "attention", "op": "reweight", "object": "red cat", "scale": 1.0},
               {"target": "attention", "op": "translate", "words": ["red", "cat"], "dx": 0.0})
    assert not b.active(Call())


def test_toy_defaults_fill_only_unset_steps():
    defaults = load_defaults("toy")
    bend = load_recipe([{"target": "attention", "op": "translate", "word": "cat", "dx": 0.3}]).bends[0]
    assert apply_defaults(0, bend, defaults).steps == defaults["attention.translate"]["steps"]
    own = load_recipe([{"target": "attention", "op": "translate", "word": "cat", "dx": 0.3,
                        "steps": [0.0, 1.0]}]).bends[0]
    assert apply_defaults(0, own, defaults).steps == [0.0, 1.0]
    assert load_defaults(None) == {}
    moved = load_recipe([{"target": "attention", "op": "translate", "object": "red cat", "dx": 0.3}]).bends[0]
    acting = apply_defaults(0, moved, defaults)  # the measured translate moves the latent too, without EOS
    assert (acting.latent, acting.eos, acting.layers) == (True, False, defaults["attention.translate"]["layers"])


def test_defaults_fill_eos_renormalize_and_branch_only_where_the_recipe_left_them_out():
    defaults = {"attention.reweight": {"eos": "masked", "renormalize": "sink", "branch": "cond"}}
    obj = load_recipe([{"target": "attention", "op": "reweight", "object": "red cat", "scale": 0.0}]).bends[0]
    filled = apply_defaults(0, obj, defaults)
    assert (filled.eos, filled.renormalize, filled.branch) == ("masked", "sink", "cond")
    own = load_recipe([{"target": "attention", "op": "reweight", "object": "red cat", "scale": 0.0, "eos": True,
                        "renormalize": "all", "branch": "both"}]).bends[0]
    kept = apply_defaults(0, own, defaults)
    assert (kept.eos, kept.renormalize, kept.branch) == (True, "all", "both")
    word = load_recipe([{"target": "attention", "op": "reweight", "word": "red", "scale": 0.0}]).bends[0]
    assert apply_defaults(0, word, defaults).eos is None  # a word's EOS handling is not an object's


def test_a_recipe_passed_on_as_json_still_takes_the_models_defaults(tmp_path):
    """The CLI and sweeps hand the recipe on as ``to_json()``: what the file left out must stay out."""
    path = tmp_path / "object.yaml"
    path.write_text("bends:\n  - {target: attention, op: reweight, object: red cat, scale: 0.0}\n")
    passed_on = load_recipe(load_recipe(path).to_json())
    acting = Bender(passed_on, WORDS, model="toy").applied()[0]
    toy = load_defaults("toy")["attention.reweight"]
    assert acting["branch"] == toy["branch"] and acting["steps"] == toy["steps"]
    assert load_recipe(path).to_json() == [{"target": "attention", "op": "reweight", "object": "red cat",
                                            "scale": 0.0}]


PROMPT_A = "a red cat playing with a soccer ball"
PROMPT_B = "a blue cat playing with a soccer ball"


def _run(pipe, store, prompt, bends=None):
    with attnscope.trace(pipe, words=None, store=store, bends=bends):
        frames = pipe(prompt=prompt, **tiny_call_kwargs("t2v")).frames
    return frames, attnscope.open_run(store)


def test_swap_injects_the_source_maps_and_keeps_rows_normalized(tiny_pipes, tmp_path):
    pipe = tiny_pipes["t2v"]
    _, run_a = _run(pipe, tmp_path / "a", PROMPT_A)
    base_b, run_b = _run(pipe, tmp_path / "b", PROMPT_B)
    swap = [{"target": "attention", "op": "swap", "source": str(tmp_path / "a"), "replace": {"blue": "red"}}]
    bent_b, run_s = _run(pipe, tmp_path / "s", PROMPT_B, bends=swap)
    assert not np.array_equal(base_b, bent_b)
    # the captured maps of the bent run are A's maps (fp16 stored), "blue" took "red"'s
    a = run_a.maps.sel(word="red").values
    s = run_s.maps.sel(word="blue").values
    np.testing.assert_allclose(s, a, atol=2e-3)
    np.testing.assert_allclose(run_s.maps.sel(word="cat").values, run_a.maps.sel(word="cat").values, atol=2e-3)
    assert json.loads((tmp_path / "s" / "meta.json").read_text())["bends"][0]["op"] == "swap"


def test_swap_with_a_bad_source_or_word_fails_clearly(tiny_pipes, tmp_path):
    pipe = tiny_pipes["t2v"]
    bad = [{"target": "attention", "op": "swap", "source": str(tmp_path / "nowhere")}]
    with pytest.raises(BendRecipeError, match="not a run of prompt A"):
        _run(pipe, tmp_path / "x", PROMPT_B, bends=bad)
    _run(pipe, tmp_path / "a", PROMPT_A)
    bad = [{"target": "attention", "op": "swap", "source": str(tmp_path / "a"), "replace": {"blue": "green"}}]
    with pytest.raises(BendRecipeError, match="'green' was not captured"):
        _run(pipe, tmp_path / "y", PROMPT_B, bends=bad)


def test_phrase_target_through_trace_and_identity_bit_identity(tiny_pipes, tmp_path):
    pipe = tiny_pipes["t2v"]
    base, _ = _run(pipe, tmp_path / "base", PROMPT_A)
    same, _ = _run(pipe, tmp_path / "id", PROMPT_A, bends=[
        {"target": "attention", "op": "reweight", "object": "soccer ball", "scale": 1.0}])
    assert np.array_equal(base, same)
    _, run = _run(pipe, tmp_path / "zero", PROMPT_A, bends=[
        {"target": "attention", "op": "reweight", "word": "soccer ball", "scale": 0.0}])
    assert np.all(run.maps.sel(word="soccer").values == 0) and np.all(run.maps.sel(word="ball").values == 0)
    with pytest.raises(BendRecipeError, match="'red ball' is not in the prompt"):
        _run(pipe, tmp_path / "bad", PROMPT_A, bends=[
            {"target": "attention", "op": "reweight", "word": "red ball", "scale": 0.0}])


# ---- eos: edited -----------------------------------------------------------------------------------------------
PROMPT_E = "a red cat and a soccer ball"


def test_prompt_without_drops_the_phrase_and_its_connector():
    from attnscope.bend.targets import prompt_without

    assert prompt_without("a red circle standing still and a green square moving left",
                          ["a red circle standing still"]) == "a green square moving left"
    assert prompt_without("a red circle and a green square", ["a green square"]) == "a red circle"
    assert prompt_without("a cat, a dog and a bird", ["a dog"]) == "a cat and a bird"
    assert prompt_without("a cat and a cat", ["cat (2)"]) == "a cat and a"
    assert prompt_without("a white triangle moving left", ["a white triangle moving left"]) == ""
    with pytest.raises(BendRecipeError, match="eos_prompt"):
        prompt_without("a red cat", ["dog"])


def test_edited_eos_is_the_edited_prompts_eos_on_the_cond_pass(tiny_pipes, tmp_path, monkeypatch):
    """eos: edited == the same suppress with the cond prompt's EOS embedding replaced by the edited prompt's."""
    pipe = tiny_pipes["t2v"]
    suppress = {"target": "attention", "op": "reweight", "object": "a red cat", "scale": 0.0, "branch": "cond"}
    edited, run = _run(pipe, tmp_path / "edited", PROMPT_E, bends=[{**suppress, "eos": "edited"}])
    assert run.meta["bends"][0]["eos_prompt"] == "a soccer ball"  # the prompt its EOS came from, recorded
    plain, _ = _run(pipe, tmp_path / "plain", PROMPT_E, bends=[{**suppress, "eos": False}])

    tok = pipe.tokenizer
    eos_a = len(tok(PROMPT_E)["input_ids"]) - 1
    eos_b = len(tok("a soccer ball")["input_ids"]) - 1
    stock = pipe.encode_prompt

    def spliced(prompt, *args, **kwargs):
        embeds, negative = stock(prompt, *args, **kwargs)
        if prompt == PROMPT_E:
            other, _ = stock("a soccer ball", *args, **kwargs)
            embeds = embeds.clone()
            embeds[:, eos_a] = other[:, eos_b]
        return embeds, negative

    monkeypatch.setattr(pipe, "encode_prompt", spliced)
    reference, _ = _run(pipe, tmp_path / "ref", PROMPT_E, bends=[{**suppress, "eos": False}])
    np.testing.assert_allclose(edited, reference, rtol=0, atol=1e-6)
    assert np.abs(edited - plain).max() > 1e-3  # the edit is not a no-op


def test_edited_eos_with_an_identity_op_still_edits_and_eos_prompt_needs_it(tiny_pipes, tmp_path):
    pipe = tiny_pipes["t2v"]
    base, _ = _run(pipe, tmp_path / "base", PROMPT_E)
    only, _ = _run(pipe, tmp_path / "only", PROMPT_E, bends=[
        {"target": "attention", "op": "reweight", "object": "a red cat", "scale": 1.0, "eos": "edited",
         "eos_prompt": "a blue dog and a soccer ball"}])
    assert np.abs(only - base).max() > 1e-3
    with pytest.raises(BendRecipeError, match="eos: edited"):
        load_recipe([{"target": "attention", "op": "reweight", "object": "red cat", "scale": 0.0,
                      "eos_prompt": "a dog"}])


def test_edited_eos_outside_a_trace_says_what_it_needs():
    b = bender({"target": "attention", "op": "reweight", "object": "red cat", "scale": 0.0, "eos": "edited",
                "eos_prompt": "a cat"})
    with pytest.raises(BendRecipeError, match="text encoder"):
        b.edit_context(torch.zeros(1, L, 4), Call())


def test_edited_eos_of_a_whole_prompt_target_is_bent_with_it():
    """Nothing left of the prompt: its EOS is the target's alone, removed with it (not an empty prompt's EOS)."""
    recipe = load_recipe([{"target": "attention", "op": "reweight", "object": "a red cat and a cat", "scale": 0.0,
                           "eos": "edited"}])
    b = Bender(recipe, WORDS, prompt="a red cat and a cat")
    logits = b.pre_softmax(torch.zeros(1, HEADS, S, L), Call())
    assert torch.isinf(logits[..., :7]).all() and not torch.isinf(logits[..., 7:]).any()
    assert b.edit_context(torch.ones(1, L, 4), Call()).eq(1).all()  # no edited prompt to take an EOS from
