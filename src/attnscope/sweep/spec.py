"""The sweep file: which model, prompts, seeds and bend recipes to cross, and the generation settings they share.

Validated with pydantic before anything loads, so a typo fails in a second with the bad key named, not after an
hour of generations. The ``generate:`` block is :class:`attnscope.options.GenerationOptions`, the very model
``attnscope generate`` uses: the CLI's names (``steps`` = denoising steps, ``frames``, ``guidance``, ``negative``,
``capture_steps``, ``self_prop``); the Python API's names are accepted too, except ``steps``, which in the sweep
file always means denoising steps (the capture step selection is ``capture_steps``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from ..errors import AttnscopeError
from ..options import GenerationOptions
from ..selection import SelectionSyntaxError, parse_selection

BASELINE = "none"


class SweepSpecError(AttnscopeError):
    """The sweep file is missing, unreadable, or has a bad key or value."""


# one options model for the CLI, sweeps and the API (issue 10); the old name stays importable
GenerateOptions = GenerationOptions


class SweepSpec(BaseModel):
    """A sweep: the cross product prompts × seeds × bends, one generation each."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    model: str = "toy"
    prompts: list[str] = Field(min_length=1)
    seeds: list[int] = Field(default_factory=lambda: [0], min_length=1)
    bends: list[list[dict[str, Any]] | None] = Field(default_factory=lambda: [None], min_length=1)
    generate: GenerationOptions = Field(default_factory=GenerationOptions)
    word: str | None = None

    @field_validator("prompts")
    @classmethod
    def _prompts(cls, value: list[str]) -> list[str]:
        if any(not p.strip() for p in value):
            raise ValueError("prompts must not be empty strings")
        return value

    @field_validator("seeds", mode="before")
    @classmethod
    def _seeds(cls, value: Any) -> Any:
        if isinstance(value, (int, str)) and not isinstance(value, bool):
            try:
                return parse_selection(str(value), "seeds")
            except SelectionSyntaxError as exc:
                raise ValueError(exc.reason) from None
        return value

    @field_validator("seeds")
    @classmethod
    def _seed_range(cls, value: list[int]) -> list[int]:
        bad = [s for s in value if not 0 <= s < 2**63]
        if bad:
            raise ValueError(f"seeds must be in [0, 2**63), got {bad}")
        return value

    @field_validator("bends", mode="before")
    @classmethod
    def _recipes(cls, value: Any) -> Any:
        """Each entry: ``none`` (the unbent baseline), a list of bends, ``{bends: [...]}`` or a recipe file."""
        from ..bend.recipe import BendRecipeError, load_recipe

        if not isinstance(value, list):
            raise ValueError(f"expected a list of recipes ('none' for the baseline), got {type(value).__name__}")
        recipes: list[list[dict[str, Any]] | None] = []
        for i, entry in enumerate(value):
            if entry is None or (isinstance(entry, str) and entry.strip().lower() in (BASELINE, "baseline")):
                recipes.append(None)
                continue
            try:
                recipe = load_recipe(entry).to_json()
            except BendRecipeError as exc:
                raise ValueError(f"entry {i}: {exc}") from None
            recipes.append(recipe or None)  # an empty recipe is the baseline
        return recipes

    @model_validator(mode="after")
    def _unique(self) -> SweepSpec:
        for key in ("prompts", "seeds", "bends"):
            values = [repr(v) for v in getattr(self, key)]
            duplicates = sorted({v for v in values if values.count(v) > 1})
            if duplicates:
                raise ValueError(f"'{key}' lists {', '.join(duplicates)} more than once; each job must differ")
        return self


def _describe(error: dict[str, Any]) -> str:
    loc = ".".join(str(p) for p in error["loc"]) or "sweep"
    message = error["msg"].removeprefix("Value error, ")
    if error["type"] == "extra_forbidden":
        return f"unknown key '{loc}'"
    if error["type"] == "missing":
        return f"missing key '{loc}'"
    return f"'{loc}': {message}"


def _valid_keys(errors: list[dict[str, Any]]) -> str:
    unknown = [e["loc"] for e in errors if e["type"] == "extra_forbidden"]
    if not unknown:
        return ""
    model = GenerationOptions if unknown[0][0] == "generate" else SweepSpec
    under = " under generate" if model is GenerationOptions else ""
    return f" (valid keys{under}: {', '.join(model.model_fields)})"


def parse_spec(data: Any, base: Path | None = None, source: str = "sweep") -> SweepSpec:
    """Validate a sweep given as a mapping; recipe files named in ``bends`` are relative to ``base``."""
    if not isinstance(data, dict):
        raise SweepSpecError(f"{source}: expected a mapping with 'model', 'prompts', 'seeds', 'bends', "
                             f"'generate', got {type(data).__name__}")
    if base is not None and isinstance(data.get("bends"), list):
        data = dict(data, bends=[str(base / e) if isinstance(e, str) and e.endswith((".yaml", ".yml", ".json"))
                                 and not Path(e).is_absolute() else e for e in data["bends"]])
    try:
        return SweepSpec.model_validate(data)
    except ValidationError as exc:
        errors = exc.errors()
        raise SweepSpecError(f"{source}: " + "; ".join(_describe(e) for e in errors) + _valid_keys(errors)) from None


def load_spec(source: str | Path | dict | SweepSpec) -> SweepSpec:
    """A sweep from a YAML/JSON file, a mapping, or an already validated :class:`SweepSpec`."""
    if isinstance(source, SweepSpec):
        return source
    if isinstance(source, dict):
        return parse_spec(source)
    path = Path(source)
    if not path.is_file():
        raise SweepSpecError(f"sweep file {path} not found; pass a YAML file with 'prompts', 'seeds' and 'bends' "
                             "(see examples/sweeps/)")
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise SweepSpecError(f"sweep file {path} is not valid YAML: {exc}") from None
    return parse_spec(data, base=path.parent, source=str(path))
