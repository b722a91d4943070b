"""Generation options: one model for ``attnscope generate``, the sweep file's ``generate:`` block and the API.

Names are the CLI's (``steps`` = denoising steps, ``frames``, ``guidance``, ``negative``); the Python API's names
(``num_inference_steps``, ``num_frames``, ``guidance_scale``, ``negative_prompt``) are accepted too, except
``steps``, which here always means denoising steps: the capture step selection is ``capture_steps``.
:meth:`GenerationOptions.generate_kwargs` gives the keyword arguments of :func:`attnscope.generate`.
"""

from __future__ import annotations

from typing import Any

from pydantic import AliasChoices, BaseModel, ConfigDict, Field, ValidationError, field_validator

from .capture.spec import ProbePoint, parse_probe_points
from .errors import AttnscopeError, SelectionError
from .selection import SelectionSyntaxError, parse_selection


class OptionsError(AttnscopeError):
    """A generation option has a bad value."""


def _selection(value: Any, option: str, allow_mean: bool) -> Any:
    try:
        return parse_selection(value, option, allow_mean=allow_mean)
    except SelectionSyntaxError as exc:  # pydantic reports ValueErrors under the key's own name
        raise ValueError(exc.reason) from None


class GenerationOptions(BaseModel):
    """Settings of one traced generation; unset sizes and steps fall back to the model's defaults."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    steps: int | None = Field(None, gt=0, validation_alias=AliasChoices("steps", "num_inference_steps"))
    frames: int | None = Field(None, gt=0, validation_alias=AliasChoices("frames", "num_frames"))
    height: int | None = Field(None, gt=0)
    width: int | None = Field(None, gt=0)
    guidance: float | None = Field(None, ge=0.0, validation_alias=AliasChoices("guidance", "guidance_scale"))
    negative: str | None = Field(None, validation_alias=AliasChoices("negative", "negative_prompt"))
    words: list[str] | None = None
    heads: Any = "all"
    layers: Any = "all"
    capture_steps: Any = "all"
    value_norm: bool = False
    self_prop: bool = False
    self_prop_steps: Any = None  # None: the steps the model's recommended view reads (attnscope.generate)
    compact: bool = False  # store maps as uint8 with a scale per map (attnscope.store.compact), not lossless fp16
    previews: bool | None = None
    probe: list[ProbePoint] | None = None  # probe points (frame, y, x) on the latent token grid, or "F,Y,X" strings

    @field_validator("heads", mode="before")
    @classmethod
    def _heads(cls, value: Any) -> Any:
        return _selection(value, "heads", allow_mean=True)

    @field_validator("layers", "capture_steps", "self_prop_steps", mode="before")
    @classmethod
    def _indices(cls, value: Any) -> Any:
        return _selection(value, "indices", allow_mean=False)

    @field_validator("probe", mode="before")
    @classmethod
    def _probe(cls, value: Any) -> Any:
        try:
            return list(parse_probe_points(value)) if value is not None else None
        except SelectionError as exc:
            raise ValueError(str(exc)) from None

    @classmethod
    def from_cli(cls, **values: Any) -> GenerationOptions:
        """Validate the CLI's values; a bad one is one :class:`OptionsError` naming its ``--option``."""
        try:
            return cls.model_validate({k: v for k, v in values.items() if v is not None})
        except ValidationError as exc:
            error = exc.errors()[0]
            option = "--" + str(error["loc"][0]).replace("_", "-") if error["loc"] else "options"
            raise OptionsError(f"{option}: {error['msg'].removeprefix('Value error, ')}") from None

    def generate_kwargs(self) -> dict[str, Any]:
        """Keyword arguments for :func:`attnscope.generate` (unset options left out, so model defaults apply)."""
        kwargs = {"num_inference_steps": self.steps, "num_frames": self.frames, "height": self.height,
                  "width": self.width, "guidance_scale": self.guidance, "negative_prompt": self.negative,
                  "words": self.words, "heads": self.heads, "layers": self.layers, "steps": self.capture_steps,
                  "value_norm": self.value_norm, "self_prop": self.self_prop,
                  "self_prop_steps": self.self_prop_steps, "previews": self.previews,
                  "precision": "uint8" if self.compact else "fp16", "probe_points": self.probe or None}
        defaults = {"heads": "all", "layers": "all", "steps": "all", "value_norm": False, "self_prop": False,
                    "precision": "fp16"}
        return {k: v for k, v in kwargs.items() if v is not None and defaults.get(k, object()) != v}
