"""The parameters of each bend op, one small model per op, shared by the targets that offer the op.

``is_identity`` says when a bend cannot change anything, so the Bender can drop it and leave the video
bit-identical.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator


class Strict(BaseModel):
    """Unknown parameters are refused; bends are immutable once validated."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class Translate(Strict):
    dx: float = 0.0  # fraction of the width; positive moves right
    dy: float = 0.0  # fraction of the height; positive moves down
    ramp: bool = False  # the move grows step by step over the bend's steps, reaching dx, dy at the last one

    def is_identity(self) -> bool:
        return self.dx == 0.0 and self.dy == 0.0


class AttentionTranslate(Translate):
    # the object's hidden states move too: at each bent layer the block's output inside the target's map is cut
    # out (the frame's mean background fills the hole) and pasted at the moved place
    latent: bool = False


class Rotate(Strict):
    degrees: float  # counter-clockwise on screen, about the grid's centre

    def is_identity(self) -> bool:
        return self.degrees % 360.0 == 0.0


class Scale(Strict):
    factor: float = Field(gt=0.0)  # > 1 zooms in about the centre

    def is_identity(self) -> bool:
        return self.factor == 1.0


class Flip(Strict):
    axis: Literal["x", "y", "both"] = "x"


class Blur(Strict):
    sigma: float = Field(ge=0.0)  # in latent tokens

    def is_identity(self) -> bool:
        return self.sigma == 0.0


class Sharpen(Strict):
    amount: float = Field(ge=0.0)
    sigma: float = Field(default=1.0, gt=0.0)

    def is_identity(self) -> bool:
        return self.amount == 0.0


class Mask(Strict):
    x0: float = Field(default=0.0, ge=0.0, le=1.0)
    y0: float = Field(default=0.0, ge=0.0, le=1.0)
    x1: float = Field(default=1.0, ge=0.0, le=1.0)
    y1: float = Field(default=1.0, ge=0.0, le=1.0)
    keep: Literal["inside", "outside"] = "inside"

    @model_validator(mode="after")
    def _ordered(self) -> Mask:
        if not (self.x0 < self.x1 and self.y0 < self.y1):
            raise ValueError(f"the region needs x0 < x1 and y0 < y1, got x0={self.x0} x1={self.x1} y0={self.y0} "
                             f"y1={self.y1}")
        return self

    def is_identity(self) -> bool:
        return self.keep == "inside" and (self.x0, self.y0, self.x1, self.y1) == (0.0, 0.0, 1.0, 1.0)


class NoParams(Strict):
    pass


class Threshold(Strict):
    level: float = Field(ge=0.0, le=1.0)  # fraction of the map's per-frame maximum

    def is_identity(self) -> bool:
        return self.level == 0.0


class Shift(Strict):
    frames: int  # positive: frame f shows what frame f - frames showed

    def is_identity(self) -> bool:
        return self.frames == 0


class Freeze(Strict):
    frame: int = 0  # every frame shows this frame (negative counts from the end)


class Multiply(Strict):
    factor: float

    def is_identity(self) -> bool:
        return self.factor == 1.0


class Noise(Strict):
    std: float = Field(ge=0.0)  # multiple of the bent channels' own standard deviation in this call
    seed: int = 0

    def is_identity(self) -> bool:
        return self.std == 0.0


class Reweight(Strict):
    scale: float = Field(ge=0.0)  # multiplies exp(logit): 0 removes the word, 2 doubles its weight
    # "all": the softmax over all 512 keys renormalizes (lost mass goes to every key, the padding sink too);
    # "real": the word's probabilities times scale, then the prompt's real tokens rescaled to their old total;
    # "sink": what the word loses (or gains) is taken from (or given to) the padding sink, the other words keep theirs;
    # "none": nothing is renormalized, the rows sum to less (or more) than one
    renormalize: Literal["all", "real", "sink", "none"] = "all"

    def is_identity(self) -> bool:
        return self.scale == 1.0


MAP_OPS: dict[str, type[Strict]] = {
    "translate": Translate, "rotate": Rotate, "scale": Scale, "flip": Flip, "blur": Blur,
    "sharpen": Sharpen, "mask": Mask, "invert": NoParams, "threshold": Threshold,
    "reverse": NoParams, "shift": Shift, "freeze": Freeze,
}
ATTENTION_ONLY_PARAMS: dict[str, type[Strict]] = {"translate": AttentionTranslate}
ACTIVATION_ONLY_OPS: dict[str, type[Strict]] = {
    "multiply": Multiply, "ablate": NoParams, "noise": Noise,
}
