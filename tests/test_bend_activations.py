"""Activation bends: exact transforms on chosen channels, channel selection, k-means clusters, block hooks."""

from __future__ import annotations

import json
from types import SimpleNamespace

import pytest
import torch

from attnscope.bend.activations import ChannelPicker, bend_hidden
from attnscope.bend.apply import Bender
from attnscope.bend.clusters import ClusterFile, channel_features, kmeans
from attnscope.bend.recipe import BendRecipeError, load_recipe


def one(**bend):
    return load_recipe([{"target": "activation", **bend}]).bends[0]


def hidden(seed: int = 0, channels: int = 6) -> torch.Tensor:
    return torch.randn(1, 2, 4, 4, channels, generator=torch.Generator().manual_seed(seed))  # (B, F, Y, X, C)


def test_spatial_transform_on_chosen_channels_only():
    h = hidden()
    chosen = torch.tensor([1, 4])
    out = bend_hidden(h, one(op="translate", dx=0.25), chosen)
    assert torch.equal(out[..., [0, 2, 3, 5]], h[..., [0, 2, 3, 5]])
    assert torch.equal(out[..., 1:, 1], h[..., :-1, 1]) and torch.equal(out[..., 0, 1], torch.zeros(1, 2, 4))
    rotated = bend_hidden(h, one(op="rotate", degrees=90), None)
    assert torch.equal(rotated, torch.rot90(h, 1, dims=(2, 3)))


def test_numeric_ops_are_exact():
    h = hidden()
    assert torch.equal(bend_hidden(h, one(op="multiply", factor=-2.5), None), h * -2.5)
    assert torch.equal(bend_hidden(h, one(op="invert"), None), -h)
    assert torch.equal(bend_hidden(h, one(op="ablate"), torch.tensor([0])), torch.cat([0 * h[..., :1], h[..., 1:]],
                                                                                         -1))
    kept = bend_hidden(h, one(op="threshold", level=0.5), None)
    peak = h.abs().amax(dim=(2, 3), keepdim=True)
    assert torch.equal(kept, torch.where(h.abs() >= 0.5 * peak, h, torch.zeros(())))
    assert torch.equal(bend_hidden(h, one(op="reverse"), None), torch.flip(h, (1,)))


def test_noise_is_seeded_and_scaled():
    h = hidden(channels=64)
    bend = one(op="noise", std=0.5, seed=3)
    a, b, c = bend_hidden(h, bend, None, seed=11), bend_hidden(h, bend, None, seed=11), bend_hidden(h, bend, None, 12)
    assert torch.equal(a, b) and not torch.equal(a, c)
    assert float((a - h).std()) == pytest.approx(0.5 * float(h.std()), rel=0.1)


def test_bf16_hidden_states_keep_their_dtype():
    h = hidden().bfloat16()
    out = bend_hidden(h, one(op="translate", dx=0.25), None)
    assert out.dtype == torch.bfloat16 and torch.equal(out[:, :, :, 1:], h[:, :, :, :-1])


def test_share_selection_is_seeded():
    picker = ChannelPicker()
    h = hidden(channels=40)
    a = picker.pick(0, one(op="ablate", channels={"share": 0.25, "seed": 1}), "transformer", 0, h)
    b = ChannelPicker().pick(0, one(op="ablate", channels={"share": 0.25, "seed": 1}), "transformer", 5, h)
    c = ChannelPicker().pick(0, one(op="ablate", channels={"share": 0.25, "seed": 2}), "transformer", 0, h)
    assert a.numel() == 10 and torch.equal(a, b) and not torch.equal(a, c)
    assert torch.equal(a, a.unique())


def planted(channels_per: tuple[int, ...] = (7, 5, 3), seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Hidden states whose channels follow one of three spatial patterns (plus noise), and the true groups."""
    gen = torch.Generator().manual_seed(seed)
    patterns = torch.randn(len(channels_per), 2, 4, 4, generator=gen)
    groups = torch.cat([torch.full((n,), g) for g, n in enumerate(channels_per)])
    order = torch.randperm(groups.numel(), generator=gen)
    groups = groups[order]
    maps = patterns[groups] * (1 + torch.rand(groups.numel(), 1, 1, 1, generator=gen))
    maps = maps + 0.05 * torch.randn(maps.shape, generator=gen)
    return maps.permute(1, 2, 3, 0).unsqueeze(0), groups  # (1, F, Y, X, C), (C,)


def test_kmeans_finds_planted_clusters_numbered_by_size():
    h, groups = planted()
    labels = kmeans(channel_features(h), 3, seed=0)
    assert torch.equal(labels, groups)  # group 0 has 7 channels, 1 has 5, 2 has 3
    assert torch.equal(kmeans(channel_features(h), 3, seed=0), labels)
    with pytest.raises(BendRecipeError, match="cannot make 20 clusters of 15 channels"):
        kmeans(channel_features(h), 20)


def test_clusters_are_saved_beside_the_run_and_reused(tmp_path):
    h, groups = planted()
    bend = one(op="ablate", channels={"cluster": 1, "of": 3})
    first = ChannelPicker(tmp_path).pick(0, bend, "transformer", 4, h)
    assert torch.equal(first, torch.nonzero(groups == 1).flatten())
    saved = tmp_path / "bend-clusters-0.json"
    assert saved.is_file()
    data = json.loads(saved.read_text())
    assert data["of"] == 3 and data["layers"]["transformer/4"] == groups.tolist()
    # a later run names the file: the saved clustering is used, whatever the new activations are
    reuse = one(op="ablate", channels={"cluster": 1, "of": 3, "file": str(saved)})
    again = ChannelPicker().pick(0, reuse, "transformer", 4, hidden(seed=5, channels=15))
    assert torch.equal(again, first)
    with pytest.raises(BendRecipeError, match="holds 3 clusters made with seed 0"):
        ClusterFile(saved, 4, 0)
    with pytest.raises(BendRecipeError, match="has 15 channels"):
        ChannelPicker().pick(0, reuse, "transformer", 4, hidden(channels=8))


# ---- block hooks -----------------------------------------------------------------------------------------------
class Block(torch.nn.Module):
    """Stands in for a Wan block: (hidden_states, encoder_hidden_states, temb, rotary) -> hidden_states."""

    def __init__(self) -> None:
        super().__init__()
        self.attn2 = torch.nn.Linear(6, 6)

    def forward(self, hidden_states, encoder_hidden_states=None, temb=None, rotary_emb=None):
        return hidden_states * 2 + self.attn2(hidden_states)


class Transformer(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.blocks = torch.nn.ModuleList([Block() for _ in range(3)])


def test_block_hooks_read_the_state_when_they_run():
    torch.manual_seed(0)
    model = Transformer()
    state = SimpleNamespace(step=0, num_steps=4, branch="cond", expert="transformer", grid=(2, 4, 4))
    recipe = load_recipe([
        {"target": "activation", "op": "flip", "axis": "x", "layers": [1], "steps": [0.5, 1.0], "branch": "cond"},
        {"target": "layer", "op": "skip_block", "layers": [2], "steps": [3]},
    ])
    handles = Bender(recipe, {}).install_block_hooks({"transformer": model}, state)
    x = torch.randn(1, 32, 6)  # (B, S, C), S = 2 * 4 * 4
    plain = [block.forward(x) for block in model.blocks]
    assert all(torch.equal(model.blocks[i](x), plain[i]) for i in range(3))  # step 0: nothing selected
    state.step = 2
    flipped = torch.flip(plain[1].unflatten(1, (2, 4, 4)), (3,)).flatten(1, 3)
    assert torch.equal(model.blocks[1](x), flipped)
    state.branch = "uncond"
    assert torch.equal(model.blocks[1](x), plain[1])
    state.step, state.branch = 3, "uncond"
    assert torch.equal(model.blocks[2](x), x)  # skipped: the input comes out
    assert torch.equal(model.blocks[2](hidden_states=x), x)
    for handle in handles:
        handle.remove()
    state.step, state.branch = 2, "cond"
    assert torch.equal(model.blocks[1](x), plain[1])


def test_layers_beyond_the_model_fail_at_install():
    recipe = load_recipe([{"target": "head", "op": "ablate", "heads": [0], "layers": [7]}])
    with pytest.raises(BendRecipeError, match=r"layers \[7\] out of range; the model has 3 blocks"):
        Bender(recipe, {}).install_block_hooks({"transformer": Transformer()}, SimpleNamespace())


def wan_transformer():
    from diffusers import WanTransformer3DModel

    torch.manual_seed(0)
    return WanTransformer3DModel(
        patch_size=(1, 2, 2), num_attention_heads=2, attention_head_dim=8, in_channels=4, out_channels=4,
        text_dim=32, freq_dim=16, ffn_dim=32, num_layers=3, cross_attn_norm=True, qk_norm="rms_norm_across_heads",
        rope_max_seq_len=32,
    ).eval()


def test_hooks_on_a_real_wan_transformer():
    model = wan_transformer()
    gen = torch.Generator().manual_seed(1)
    latents = torch.randn(1, 4, 2, 8, 8, generator=gen)  # token grid (2, 4, 4)
    text_a, text_b = torch.randn(2, 1, 16, 32, generator=gen)
    t = torch.tensor([500])

    def run(text):
        with torch.no_grad():
            return model(latents, t, text, return_dict=False)[0]

    base = run(text_a)
    state = SimpleNamespace(step=0, num_steps=2, branch="cond", expert="transformer", grid=(2, 4, 4))

    def bent(recipe: list[dict], text=text_a):
        handles = Bender(load_recipe(recipe), {}).install_block_hooks({"transformer": model}, state)
        try:
            return run(text)
        finally:
            for handle in handles:
                handle.remove()

    assert torch.equal(bent([{"target": "activation", "op": "rotate", "degrees": 0.0}]), base)
    skip_x = [{"target": "layer", "op": "skip_cross_attention"}]
    assert torch.equal(bent(skip_x, text_a), bent(skip_x, text_b))  # no cross-attention: the text cannot matter
    assert not torch.equal(bent(skip_x), base)
    skip_all = [{"target": "layer", "op": "skip_block"}]
    assert torch.equal(bent(skip_all, text_a), bent(skip_all, text_b))
    rotated = bent([{"target": "activation", "op": "rotate", "degrees": 90, "layers": [1],
                     "channels": {"share": 0.5, "seed": 0}}])
    assert rotated.shape == base.shape and not torch.equal(rotated, base)
    assert torch.equal(run(text_a), base)  # hooks removed: the model is as before


def test_bender_saves_a_new_clustering_in_the_run_folder(tmp_path):
    torch.manual_seed(0)
    model = Transformer()
    state = SimpleNamespace(step=0, num_steps=2, branch="cond", expert="transformer", grid=(2, 4, 4))
    recipe = load_recipe([{"target": "activation", "op": "ablate", "layers": [0], "channels": {"cluster": 0,
                                                                                              "of": 2}}])
    bender = Bender(recipe, {}, run_dir=tmp_path)
    handles = bender.install_block_hooks({"transformer": model}, state)
    x = torch.randn(1, 32, 6)
    out = model.blocks[0](x)
    labels = json.loads((tmp_path / "bend-clusters-0.json").read_text())["layers"]["transformer/0"]
    zeroed = [c for c in range(6) if labels[c] == 0]
    assert zeroed and torch.equal(out[..., zeroed], torch.zeros(1, 32, len(zeroed)))
    assert bender.cluster_files == [str(tmp_path / "bend-clusters-0.json")]
    for handle in handles:
        handle.remove()
