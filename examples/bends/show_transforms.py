"""Draw what each attention map transform does to a synthetic word map (docs/bend/transforms.png).

    python examples/bends/show_transforms.py [OUT.png]

The map is one frame of a 30 x 52 latent grid (Wan2.1 at 480 x 832): an off-centre blob and a weaker one.
"""

from __future__ import annotations

import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import torch  # noqa: E402

from attnscope.bend import maps  # noqa: E402

OPS = [
    ("original", "translate", {"dx": 0.0}),
    ("translate dx=0.25 dy=-0.2", "translate", {"dx": 0.25, "dy": -0.2}),
    ("rotate 30", "rotate", {"degrees": 30.0}),
    ("scale 1.6", "scale", {"factor": 1.6}),
    ("flip x", "flip", {"axis": "x"}),
    ("blur sigma=2", "blur", {"sigma": 2.0}),
    ("sharpen 2", "sharpen", {"amount": 2.0, "sigma": 2.0}),
    ("mask left half", "mask", {"x0": 0.0, "y0": 0.0, "x1": 0.5, "y1": 1.0}),
    ("invert", "invert", {}),
    ("threshold 0.5", "threshold", {"level": 0.5}),
]


def word_map(ny: int = 30, nx: int = 52) -> torch.Tensor:
    """(1, 1, Y, X): a blob at (10, 16) and a weaker one at (20, 38), normalized like a probability column."""
    ys, xs = torch.meshgrid(torch.arange(ny, dtype=torch.float32), torch.arange(nx, dtype=torch.float32),
                            indexing="ij")
    m = torch.exp(-((ys - 10) ** 2 + (xs - 16) ** 2) / 18) + 0.5 * torch.exp(-((ys - 20) ** 2 + (xs - 38) ** 2) / 8)
    return (m / m.sum() * 0.3)[None, None]


def main(out: Path) -> None:
    m = word_map()
    fig, axes = plt.subplots(2, 5, figsize=(15, 4.4))
    for ax, (title, op, params) in zip(axes.flat, OPS, strict=True):
        bent = maps.transform(m, op, **params)
        if op == "sharpen":
            bent = bent.clamp_min(0.0)  # as the Bender does for probabilities
        ax.imshow(bent[0, 0].numpy(), cmap="magma", vmin=0.0, vmax=float(m.max()) * 1.05)
        ax.set_title(title, fontsize=10)
        ax.set_xticks([])
        ax.set_yticks([])
    fig.suptitle("Attention map transforms on a 30 x 52 latent grid (before renormalization; zeros come in at the "
                 "borders)", fontsize=11)
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=90)
    print(f"wrote {out}")


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else Path("docs/bend/transforms.png"))
