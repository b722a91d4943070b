"""Map transforms on (..., F, Y, X): exact on known tensors, zeros at the borders, identities untouched."""

from __future__ import annotations

import pytest
import torch

from attnscope.bend import maps


def blob(frames: int = 3, ny: int = 6, nx: int = 8, at: tuple[int, int] = (2, 3)) -> torch.Tensor:
    """A one-hot token at (y, x) in every frame, with a leading batch dim: (1, F, Y, X)."""
    x = torch.zeros(1, frames, ny, nx)
    x[..., at[0], at[1]] = 1.0
    return x


def centroid(m: torch.Tensor) -> tuple[float, float]:
    """Mass centroid (y, x) of a (Y, X) map, in tokens."""
    ny, nx = m.shape
    ys = torch.arange(ny, dtype=m.dtype)[:, None]
    xs = torch.arange(nx, dtype=m.dtype)[None, :]
    return float((m * ys).sum() / m.sum()), float((m * xs).sum() / m.sum())


def test_translate_by_whole_tokens_moves_the_blob_exactly():
    x = blob()
    out = maps.translate(x, dx=2 / 8, dy=-1 / 6)
    assert torch.equal(out, blob(at=(1, 5)))


def test_translate_zeros_come_in_and_content_leaves():
    x = torch.rand(1, 2, 4, 4) + 0.1
    out = maps.translate(x, dx=0.5, dy=0.0)
    assert torch.equal(out[..., :2], torch.zeros(1, 2, 4, 2))
    assert torch.equal(out[..., 2:], x[..., :2])


@pytest.mark.parametrize("dx", [0.125, 0.1, -0.07])
def test_translate_moves_the_centroid_by_dx(dx):
    ny, nx = 16, 16
    ys, xs = torch.meshgrid(torch.arange(ny, dtype=torch.float64), torch.arange(nx, dtype=torch.float64),
                            indexing="ij")
    m = torch.exp(-((ys - 7.5) ** 2 + (xs - 7.5) ** 2) / 2.0)[None, None]  # a bump far from the borders
    before, after = centroid(m[0, 0]), centroid(maps.translate(m, dx=dx, dy=0.05)[0, 0])
    assert after[1] - before[1] == pytest.approx(dx * nx, abs=1e-3)
    assert after[0] - before[0] == pytest.approx(0.05 * ny, abs=1e-3)


def test_rotate_90_maps_a_known_pixel_and_matches_rot90_on_a_square():
    square = torch.arange(25.0).view(1, 1, 5, 5)
    assert torch.equal(maps.rotate(square, 90), torch.rot90(square, 1, dims=(-2, -1)))
    assert torch.equal(maps.rotate(square, -90), torch.rot90(square, -1, dims=(-2, -1)))
    assert torch.equal(maps.rotate(square, 180), torch.flip(square, (-2, -1)))
    # counter-clockwise on screen: the token right of the centre goes above it
    x = torch.zeros(1, 1, 5, 5)
    x[..., 2, 3] = 1.0
    assert maps.rotate(x, 90)[0, 0].nonzero().tolist() == [[1, 2]]


def test_rotate_on_a_wide_grid_keeps_the_centre_and_loses_the_corners():
    x = torch.ones(1, 1, 4, 6)
    out = maps.rotate(x, 90)
    assert torch.equal(out[..., 1:3, 2:4], torch.ones(1, 1, 2, 2))
    assert out[..., 0, 0].item() == 0.0  # comes from outside the grid


def test_identities_return_the_same_object():
    x = torch.rand(2, 3, 4, 5)
    for op, params in [("translate", {"dx": 0.0, "dy": 0.0}), ("rotate", {"degrees": 0.0}),
                       ("rotate", {"degrees": 720.0}), ("scale", {"factor": 1.0}), ("blur", {"sigma": 0.0}),
                       ("sharpen", {"amount": 0.0}), ("shift", {"frames": 0}), ("threshold", {"level": 0.0}),
                       ("mask", {})]:
        assert maps.transform(x, op, **params) is x, op


def test_scale_two_doubles_distances_from_the_centre():
    x = torch.zeros(1, 1, 9, 9)
    x[..., 4, 5] = 1.0  # one token right of the centre
    out = maps.scale(x, 2.0)
    assert centroid(out[0, 0]) == pytest.approx((4.0, 6.0))
    assert torch.equal(maps.scale(out, 0.5)[..., 4, 5], torch.ones(1, 1))


def test_flip():
    x = torch.arange(12.0).view(1, 1, 3, 4)
    assert maps.flip(x, "x")[0, 0, 0].tolist() == [3.0, 2.0, 1.0, 0.0]
    assert maps.flip(x, "y")[0, 0, :, 0].tolist() == [8.0, 4.0, 0.0]
    assert torch.equal(maps.flip(x, "both"), maps.rotate(x, 180))


def test_blur_keeps_interior_mass_and_is_symmetric():
    x = blob(ny=15, nx=15, at=(7, 7))
    out = maps.blur(x, 1.0)
    assert out.sum().item() == pytest.approx(x.sum().item(), rel=1e-5)
    assert torch.allclose(out, maps.flip(out, "x")) and torch.allclose(out, maps.flip(out, "y"))
    assert out[..., 7, 7].max() < 1.0
    edge = maps.blur(blob(ny=15, nx=15, at=(0, 0)), 1.0)
    assert edge.sum() < 3.0 * 0.9  # mass leaks out at the border (zeros beyond it)


def test_sharpen_is_an_unsharp_mask():
    x = torch.rand(1, 2, 6, 6)
    assert torch.allclose(maps.sharpen(x, 0.5, 1.0), x + 0.5 * (x - maps.blur(x, 1.0)))


def test_mask_keeps_token_centres_in_the_region():
    x = torch.ones(1, 1, 4, 4)
    inside = maps.mask(x, x0=0.0, y0=0.0, x1=0.5, y1=0.5)
    assert inside[0, 0].tolist() == [[1, 1, 0, 0], [1, 1, 0, 0], [0, 0, 0, 0], [0, 0, 0, 0]]
    assert torch.equal(maps.mask(x, 0.0, 0.0, 0.5, 0.5, keep="outside"), 1 - inside)


def test_invert_reflects_within_each_frame_range():
    x = torch.tensor([[[[0.1, 0.5], [0.2, 0.3]], [[1.0, 0.0], [0.0, 0.0]]]])
    out = maps.invert(x)
    assert torch.allclose(out[0, 0], torch.tensor([[0.5, 0.1], [0.4, 0.3]]))
    assert torch.equal(out[0, 1], torch.tensor([[0.0, 1.0], [1.0, 1.0]]))


def test_threshold_relative_to_the_frame_max():
    x = torch.tensor([[[[0.1, 0.5], [0.2, 1.0]]]])
    assert maps.threshold(x, 0.4)[0, 0].tolist() == [[0.0, 0.5], [0.0, 1.0]]
    assert maps.threshold(-x, 0.4, magnitude=True)[0, 0].tolist() == [[0.0, -0.5], [0.0, -1.0]]


def test_temporal_reverse_shift_freeze():
    x = torch.arange(4.0).view(1, 4, 1, 1).expand(1, 4, 2, 2)
    frames = lambda t: t[0, :, 0, 0].tolist()  # noqa: E731
    assert frames(maps.reverse(x)) == [3.0, 2.0, 1.0, 0.0]
    assert frames(maps.shift(x, 1)) == [0.0, 0.0, 1.0, 2.0]
    assert frames(maps.shift(x, -2)) == [2.0, 3.0, 0.0, 0.0]
    assert frames(maps.shift(x, 5)) == [0.0, 0.0, 0.0, 0.0]
    assert frames(maps.freeze(x, 2)) == [2.0, 2.0, 2.0, 2.0]
    assert frames(maps.freeze(x, -1)) == [3.0, 3.0, 3.0, 3.0]
    with pytest.raises(IndexError):
        maps.freeze(x, 4)


def test_transforms_are_deterministic_and_keep_dtype():
    x = torch.rand(2, 3, 5, 7, dtype=torch.float16)
    for op, params in [("translate", {"dx": 0.13, "dy": 0.07}), ("rotate", {"degrees": 33.0}),
                       ("scale", {"factor": 1.3}), ("blur", {"sigma": 0.8})]:
        a, b = maps.transform(x, op, **params), maps.transform(x, op, **params)
        assert a.dtype == x.dtype and a.shape == x.shape and torch.equal(a, b), op


def test_move_region_cuts_the_object_out_and_pastes_it_at_the_new_place():
    from attnscope.bend.latent import move_region, region_of

    hidden = torch.ones(1, 2, 4, 8, 3)  # (B, F, Y, X, C): background 1 everywhere
    hidden[:, :, 1:3, 0:2, 0] = 5.0  # the object, in channel 0, columns 0-1
    region = torch.zeros(1, 2, 4, 8)
    region[:, :, 1:3, 0:2] = 1.0
    out = move_region(hidden, region, dx=0.25, dy=0.0)  # 8 columns: 2 tokens to the right
    assert torch.equal(out[:, :, 1:3, 2:4, 0], torch.full((1, 2, 2, 2), 5.0))  # arrived
    assert torch.equal(out[:, :, 1:3, 0:2], torch.ones(1, 2, 2, 2, 3))  # the hole takes the background
    assert torch.equal(out[..., 1:], hidden[..., 1:])  # channels without the object are unchanged
    word = torch.zeros(1, 2, 2 * 4 * 8, 1)
    word[..., 0] = 0.3 * region.flatten(1).unsqueeze(1).expand(1, 2, -1)  # two heads, the same map
    assert torch.allclose(region_of(word, 2), region.flatten(-2))  # over its peak: 1 on the object
