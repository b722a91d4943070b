"""The toy world: coloured shapes moving on black, with exact per-object masks.

Vocabulary (a contract, see DESIGN.md): shapes ``circle square triangle``; colours ``red green blue yellow
white``; motions ``moving left|right|up|down``, ``standing still``. Captions join objects with ``and``:
"a red circle moving left and a blue square moving up". Objects in one video have distinct colours and never
overlap, so every pixel belongs to at most one object and masks are exact ground truth. Rendering is
vectorized torch (on the GPU when given one) and seeded.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np
import torch

SHAPES = ("circle", "square", "triangle")
COLOURS = {"red": (255, 0, 0), "green": (0, 255, 0), "blue": (0, 0, 255), "yellow": (255, 255, 0),
           "white": (255, 255, 255)}
MOTIONS = {"moving left": (-1.0, 0.0), "moving right": (1.0, 0.0), "moving up": (0.0, -1.0),
           "moving down": (0.0, 1.0), "standing still": (0.0, 0.0)}
FILLER = ("a", "and", ",", ".")
VOCAB = tuple(dict.fromkeys([*FILLER, *SHAPES, *COLOURS, *" ".join(MOTIONS).split()]))

SIZE, FRAMES = 256, 17
RADIUS = (30, 42)  # px: a 16-px token grid sees several tokens per object
TRAVEL = (56, 88)  # px travelled over the clip by a moving object
OBJECT_COUNTS = (1, 2, 3)
COUNT_WEIGHTS = (0.35, 0.45, 0.2)
EVAL_SEED_BASE = 10**9  # training draws seeds below this; check and eval draw seeds at or above it


@dataclass(frozen=True)
class ToyObject:
    colour: str
    shape: str
    motion: str
    x: float = 0.0  # centre at frame 0, px
    y: float = 0.0
    radius: float = 36.0
    travel: float = 72.0

    @property
    def phrase(self) -> str:
        return f"a {self.colour} {self.shape} {self.motion}"

    def centres(self, frames: int = FRAMES) -> np.ndarray:
        """Centre per frame [T, 2] (x, y), moving linearly."""
        dx, dy = MOTIONS[self.motion]
        t = np.linspace(0.0, 1.0, frames)[:, None]
        return np.array([self.x, self.y]) + t * self.travel * np.array([dx, dy])


def caption(objects: list[ToyObject]) -> str:
    return " and ".join(o.phrase for o in objects)


_PHRASE = re.compile(r"a (\w+) (\w+) (moving left|moving right|moving up|moving down|standing still)")


def parse_caption(text: str) -> list[ToyObject]:
    """Caption → objects (colour, shape, motion); positions left at zero. Raises on text outside the grammar."""
    objects = []
    for part in text.strip().rstrip(".").split(" and "):
        m = _PHRASE.fullmatch(part.strip())
        if not m or m.group(1) not in COLOURS or m.group(2) not in SHAPES:
            raise ValueError(f"{part!r} is not a toy phrase like 'a red circle moving left'")
        objects.append(ToyObject(m.group(1), m.group(2), m.group(3)))
    return objects


def _fits(obj: ToyObject, size: int) -> bool:
    c = obj.centres()
    return bool((c - obj.radius >= 2).all() and (c + obj.radius <= size - 2).all())


def _apart(a: ToyObject, b: ToyObject, margin: float = 6.0) -> bool:
    d = np.linalg.norm(a.centres() - b.centres(), axis=1)
    return bool((d > a.radius + b.radius + margin).all())


def place(rng: np.random.Generator, specs: list[tuple[str, str, str]], size: int = SIZE,
          tries: int = 200) -> list[ToyObject] | None:
    """Random positions for (colour, shape, motion) specs so objects stay inside and never touch."""
    for _ in range(tries):
        objs: list[ToyObject] = []
        for colour, shape, motion in specs:
            for _ in range(50):
                r = float(rng.uniform(*RADIUS))
                travel = float(rng.uniform(*TRAVEL)) if motion != "standing still" else 0.0
                o = ToyObject(colour, shape, motion, float(rng.uniform(r, size - r)), float(rng.uniform(r, size - r)),
                              r, travel)
                if _fits(o, size) and all(_apart(o, p) for p in objs):
                    objs.append(o)
                    break
            else:
                break
        if len(objs) == len(specs):
            return objs
    return None


def sample_scene(rng: np.random.Generator, n_objects: int | None = None, size: int = SIZE) -> list[ToyObject]:
    """1–3 objects with distinct colours and distinct (colour, shape) pairs, placed without overlap."""
    while True:
        n = n_objects or int(rng.choice(OBJECT_COUNTS, p=COUNT_WEIGHTS))
        colours = rng.choice(list(COLOURS), size=n, replace=False)
        specs = [(str(c), str(rng.choice(SHAPES)), str(rng.choice(list(MOTIONS)))) for c in colours]
        objs = place(rng, specs, size)
        if objs is not None:
            return objs


def scene_for_seed(seed: int, n_objects: int | None = None) -> list[ToyObject]:
    return sample_scene(np.random.default_rng(seed), n_objects)


def _shape_masks(shape: str, dx: torch.Tensor, dy: torch.Tensor, r: torch.Tensor) -> torch.Tensor:
    """Inside-test for one shape; dx, dy are pixel offsets from the centre, r the radius (broadcast)."""
    if shape == "circle":
        return dx * dx + dy * dy <= r * r
    if shape == "square":
        half = r * 0.82  # about the circle's area
        return (dx.abs() <= half) & (dy.abs() <= half)
    # upward equilateral triangle inscribed in a circle of radius 1.15 r, centred on the centroid
    R = r * 1.15
    top = dy >= -R
    bottom = dy <= R / 2
    slope = 3**0.5
    left = slope * dx - dy <= R
    right = -slope * dx - dy <= R
    return top & bottom & left & right


def render(objects: list[ToyObject], frames: int = FRAMES, size: int = SIZE,
           device: str | torch.device = "cpu") -> tuple[torch.Tensor, torch.Tensor]:
    """Video uint8 [T, H, W, 3] and masks bool [N, T, H, W] of one scene."""
    video, masks = render_batch([objects], frames, size, device)
    return video[0], masks[0, : len(objects)]


def render_batch(scenes: list[list[ToyObject]], frames: int = FRAMES, size: int = SIZE,
                 device: str | torch.device = "cpu") -> tuple[torch.Tensor, torch.Tensor]:
    """Videos uint8 [B, T, H, W, 3] and masks bool [B, 3, T, H, W] (missing objects all False)."""
    b = len(scenes)
    coords = torch.arange(size, device=device, dtype=torch.float32) + 0.5
    yy, xx = coords.view(1, 1, size, 1), coords.view(1, 1, 1, size)  # broadcast to [B, T, H, W]
    video = torch.zeros(b, frames, size, size, 3, dtype=torch.uint8, device=device)
    masks = torch.zeros(b, max(OBJECT_COUNTS), frames, size, size, dtype=torch.bool, device=device)
    for slot in range(max(OBJECT_COUNTS)):
        for shape in SHAPES:
            idx = [i for i, s in enumerate(scenes) if len(s) > slot and s[slot].shape == shape]
            if not idx:
                continue
            centres = torch.tensor(np.stack([scenes[i][slot].centres(frames) for i in idx]), device=device,
                                   dtype=torch.float32)  # [b', T, 2]
            radius = torch.tensor([scenes[i][slot].radius for i in idx], device=device).view(-1, 1, 1, 1)
            cx, cy = centres[..., 0, None, None], centres[..., 1, None, None]  # [b', T, 1, 1]
            inside = _shape_masks(shape, xx - cx, yy - cy, radius)  # [b', T, H, W]
            colour = torch.tensor([COLOURS[scenes[i][slot].colour] for i in idx], device=device,
                                  dtype=torch.uint8).view(-1, 1, 1, 1, 3)
            sel = torch.tensor(idx, device=device)
            masks[sel, slot] = inside
            video[sel] = torch.where(inside[..., None], colour, video[sel])
    return video, masks
