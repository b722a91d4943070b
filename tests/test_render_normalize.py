"""Normalization modes map to [0, 1] from the ranges they state, and report those ranges."""

from __future__ import annotations

import numpy as np
import pytest
import xarray as xr

from attnscope.errors import SelectionError
from attnscope.render import normalize


@pytest.fixture
def maps() -> xr.DataArray:
    rng = np.random.default_rng(1)
    data = rng.random((3, 4, 6, 5)).astype(np.float32) * np.arange(1, 4)[:, None, None, None]  # step scales
    return xr.DataArray(data, dims=("step", "frame", "y", "x"))


def test_global_uses_min_and_max(maps):
    n = normalize(maps, "global")
    assert n.range_at() == pytest.approx((float(maps.min()), float(maps.max())))
    assert float(n.values.min()) == 0 and float(n.values.max()) == pytest.approx(1)
    assert n.label == "global"


def test_frame_mode_has_one_range_per_step_and_frame(maps):
    n = normalize(maps, "frame")
    assert set(n.lo.dims) == {"step", "frame"}
    for s in range(3):
        for f in range(4):
            cell = maps.isel(step=s, frame=f)
            assert n.range_at(step=s, frame=f) == pytest.approx((float(cell.min()), float(cell.max())))
            vals = n.values.isel(step=s, frame=f)
            assert float(vals.min()) == 0 and float(vals.max()) == pytest.approx(1)


def test_step_mode_has_one_range_per_step(maps):
    n = normalize(maps, "step")
    assert n.lo.dims == ("step",)
    hi = [n.range_at(step=s)[1] for s in range(3)]
    assert hi == pytest.approx([float(maps.isel(step=s).max()) for s in range(3)])
    assert hi[0] < hi[2]  # the steps really differ, so a shared range would not do


def test_absolute_is_zero_to_one_and_unstretched(maps):
    small = maps * 0.01
    n = normalize(small, "absolute")
    assert n.range_at() == (0.0, 1.0)
    np.testing.assert_allclose(n.values.values, small.values, rtol=1e-6)


def test_percentile_clip(maps):
    n = normalize(maps, "global", clip=90)
    lo, hi = n.range_at()
    assert lo == pytest.approx(float(np.percentile(maps.values, 10)), rel=1e-5)
    assert hi == pytest.approx(float(np.percentile(maps.values, 90)), rel=1e-5)
    assert float((n.values == 1).mean()) == pytest.approx(0.1, abs=0.01)
    assert n.label == "global, clip 10-90%"


def test_per_dim_and_errors(maps):
    n = normalize(maps, "global", per=("step",))
    assert n.lo.dims == ("step",)
    with pytest.raises(SelectionError, match="global, frame, step, absolute"):
        normalize(maps, "loud")
    with pytest.raises(SelectionError, match="percentile"):
        normalize(maps, clip=20)
