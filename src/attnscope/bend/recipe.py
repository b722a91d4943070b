"""Bend recipes: validated descriptions of every intervention, loaded from YAML/JSON, stored in ``meta.json``.

A recipe is a list of bends. Each bend is one pydantic model picked by its ``target`` and ``op`` (the registry
:data:`BENDS`); parameters are refused unless the model declares them, so a typo fails before any generation
with a message that names the bend, the op, the parameter and the valid choices.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    SerializeAsAny,
    ValidationError,
    create_model,
    field_validator,
    model_validator,
)

from ..errors import AttnscopeError
from .fields import Indices, Steps, steps_selected, word_target
from .params import (
    ACTIVATION_ONLY_OPS,
    ATTENTION_ONLY_PARAMS,
    MAP_OPS,
    Multiply,
    NoParams,
    Reweight,
    Strict,
)

__all__ = ["BENDS", "AttentionSwapBend", "Bend", "BendRecipeError", "Recipe", "load_recipe", "parse_bend"]


class BendRecipeError(AttnscopeError):
    """A bend recipe names an unknown op or parameter, a value out of range, or something the model lacks."""


class ShareChannels(Strict):
    """A random share of the channels, the same for a given seed and channel count."""

    share: float = Field(gt=0.0, le=1.0)
    seed: int = 0


class ClusterChannels(Strict):
    """One cluster of a k-means clustering of the channels' activation maps (cluster 0 is the largest)."""

    cluster: int = Field(ge=0)
    of: int = Field(ge=2)
    file: str | None = None
    seed: int = 0

    @model_validator(mode="after")
    def _cluster_exists(self) -> ClusterChannels:
        if self.cluster >= self.of:
            raise ValueError(f"cluster {self.cluster} does not exist: clusters are numbered 0-{self.of - 1}")
        return self


class Bend(Strict):
    """What every bend shares: where it acts (layers, steps, guidance branch, expert)."""

    target: str
    op: str
    layers: Indices = None
    steps: Steps = None
    branch: Literal["cond", "uncond", "both"] = "both"
    experts: list[Literal["transformer", "transformer_2"]] | None = None

    def selects(self, step: int, num_steps: int, layer: int, branch: str, expert: str) -> bool:
        """Does this bend act on the call at (step, layer, branch, expert)?"""
        if self.layers is not None and layer not in self.layers:
            return False
        if self.branch != "both" and branch != self.branch:
            return False
        if self.experts is not None and expert not in self.experts:
            return False
        chosen = steps_selected(tuple(self.steps) if self.steps is not None else None, num_steps)
        return chosen is None or step in chosen

    def params(self) -> dict[str, Any]:
        """The op's own parameters (not selection, not bookkeeping)."""
        skip = set(Bend.model_fields) | {"word", "object", "eos", "eos_prompt", "padding", "heads", "renormalize",
                                         "channels", "ramp", "latent"}
        return {k: getattr(self, k) for k in type(self).model_fields if k not in skip}

    def params_at(self, step: int, num_steps: int) -> dict[str, Any]:
        """The op's parameters at ``step``: with ``ramp``, a translate's move is the share of the bend's own steps
        reached so far (1/n of it at the first of n, all of it at the last)."""
        params = self.params()
        if not getattr(self, "ramp", False):
            return params
        chosen = sorted(steps_selected(tuple(self.steps) if self.steps is not None else None, num_steps)
                        or range(num_steps))
        along = (chosen.index(step) + 1) / len(chosen) if step in chosen else 1.0
        return {**params, "dx": params["dx"] * along, "dy": params["dy"] * along}

    def is_identity(self) -> bool:
        """True when the bend cannot change anything; such bends are dropped so the video stays bit-identical."""
        return False


# ---- per-target bases ------------------------------------------------------------------------------------------
class _Target(Strict):
    """Which text tokens a bend acts on: ``word`` (word, phrase, ``cat (2)`` label or list) or ``object``.

    ``object: red circle`` bends every token of the phrase together with the prompt's end-of-sequence token
    (``eos``, on by default for objects) and, with ``padding: true``, the padding sink (every padding key).
    ``eos: masked`` bends only the object's share of the end-of-sequence token: its column weighted, per head and
    frame, by the object's own map relative to that map's peak. The end-of-sequence token covers every object of
    the prompt, so bending all of it also bends the objects the recipe did not name.
    ``eos: edited`` leaves the end-of-sequence column's weight alone and gives it the key and value of the
    end-of-sequence token of the prompt without the target (``eos_prompt``; by default the prompt with the target's
    words taken out), on the conditional pass: the other objects keep their summary, the target loses its. When
    nothing is left of the prompt, the end-of-sequence token is the target's alone and is bent with it.
    """

    word: Annotated[Any, BeforeValidator(word_target)] = None
    object: Annotated[Any, BeforeValidator(word_target)] = None
    eos: bool | Literal["masked", "edited"] | None = None  # default: True for an object, False for a word
    eos_prompt: str | None = None  # eos: edited: the prompt whose end-of-sequence token replaces this one's
    padding: bool = False
    heads: Indices = None

    @model_validator(mode="before")
    @classmethod
    def _words_alias(cls, data: Any) -> Any:
        if isinstance(data, dict) and "words" in data:
            if "word" in data:
                raise ValueError("give 'word' or 'words', not both")
            data = {("word" if k == "words" else k): v for k, v in data.items()}
        return data

    @model_validator(mode="after")
    def _one_target(self) -> _Target:
        if self.word is None and self.object is None:
            raise ValueError("missing parameter 'word' (a word, a phrase or a list: words: [red, circle]) or "
                             "'object' (a phrase, bent with the end-of-sequence token)")
        if self.word is not None and self.object is not None:
            raise ValueError("give 'word' or 'object', not both")
        if self.eos_prompt is not None and self.eos != "edited":
            raise ValueError("eos_prompt is the prompt an edited end-of-sequence token comes from; it needs "
                             "eos: edited")
        return self

    @property
    def phrases(self) -> list[str]:
        """The words/phrases/labels named, in order."""
        value = self.object if self.object is not None else self.word
        return [value] if isinstance(value, str) else list(value)

    @property
    def with_eos(self) -> bool:
        """Is the whole end-of-sequence column one of the bent columns?"""
        return self.eos is True or (self.eos is None and self.object is not None)

    @property
    def masked_eos(self) -> bool:
        """Is the object's share of the end-of-sequence column bent (``eos: masked``)?"""
        return self.eos == "masked"

    @property
    def edited_eos(self) -> bool:
        """Does the end-of-sequence token come from the prompt without the target (``eos: edited``)?"""
        return self.eos == "edited"

    @property
    def described(self) -> str:
        kind = "object" if self.object is not None else "word"
        return f"{kind} {', '.join(repr(p) for p in self.phrases)}"


class AttentionBend(Bend, _Target):
    """Acts on a target's columns of the cross-attention (every token of its words or phrases)."""


class AttentionMapBend(AttentionBend):
    """Post-softmax transform of the word's maps; rows are renormalized to sum to one unless told otherwise."""

    renormalize: bool = True


class AttentionSwapBend(Bend):
    """``{target: attention, op: swap}``: Prompt-to-Prompt word swap (Hertz et al., 2022).

    The run of prompt A (``source``, a Run folder captured with every word) lends its cross-attention maps: on the
    conditional pass of each selected (step, layer), the columns of prompt B's tokens that match A's words (every
    word both prompts share, by label, with ``shared``; and the ``replace`` pairs, B's word -> A's word, for the
    words that differ) take A's probabilities, the end-of-sequence token A's too (``eos``: A's prompt mass minus
    its words), and each row is renormalized to sum to one. B's words keep their meaning, A's layout.
    """

    target: Literal["attention"] = "attention"
    op: Literal["swap"] = "swap"
    source: str
    replace: dict[str, str] = Field(default_factory=dict)
    shared: bool = True
    eos: bool = True
    heads: Indices = None
    branch: Literal["cond"] = "cond"  # A's maps are of its conditional pass; B's uncond pass reads its own prompt

    @field_validator("replace", mode="before")
    @classmethod
    def _pairs(cls, value: Any) -> Any:
        if isinstance(value, (list, tuple)):  # [[blue, red]] or ["blue: red"] also work
            pairs = {}
            for item in value:
                if isinstance(item, str) and ":" in item:
                    b, a = item.split(":", 1)
                    pairs[b.strip()] = a.strip()
                elif isinstance(item, (list, tuple)) and len(item) == 2:
                    pairs[str(item[0]).strip()] = str(item[1]).strip()
                else:
                    raise ValueError(f"replace pairs are {{B word: A word}}, got {item!r}")
            return pairs
        return value


def _channels(value: Any) -> str | ShareChannels | ClusterChannels:
    """``all`` | ``{share, seed}`` | ``{cluster, of, file, seed}``, told apart by their keys."""
    if value == "all" or isinstance(value, (ShareChannels, ClusterChannels)):
        return value
    kind = None
    if isinstance(value, dict):
        kind = ShareChannels if "share" in value else ClusterChannels if "cluster" in value else None
    if kind is None:
        raise ValueError("channels is 'all', {share: 0.25, seed: 0} or {cluster: 2, of: 6, file: clusters.json}")
    try:
        return kind.model_validate(value)
    except ValidationError as exc:
        fields = ", ".join(kind.model_fields)
        raise ValueError("; ".join(f"{'.'.join(map(str, e['loc'])) or kind.__name__}: {e['msg']}"
                                   .replace("Value error, ", "") for e in exc.errors())
                         + f" (valid keys: {fields})") from None


class ActivationBend(Bend):
    """Acts on a block's output hidden states seen as (batch, frame, y, x, channel)."""

    channels: Annotated[Any, BeforeValidator(_channels)] = "all"


class HeadBend(Bend):
    """Acts on the cross-attention output of chosen heads, before the output projection."""

    heads: Indices

    @field_validator("heads")
    @classmethod
    def _some_heads(cls, value: list[int] | None) -> list[int] | None:
        if value is not None and not value:
            raise ValueError("name at least one head")
        return value


def _make(base: type[Bend], target: str, op: str, params: type[Strict]) -> type[Bend]:
    name = f"{target.title()}{op.title().replace('_', '')}Bend"
    model = create_model(name, __base__=(params, base), target=(Literal[target], target),  # type: ignore[call-overload]
                         op=(Literal[op], op))
    model.__doc__ = f"``{{target: {target}, op: {op}}}``"
    return model


BENDS: dict[tuple[str, str], type[Bend]] = {
    ("attention", "reweight"): _make(AttentionBend, "attention", "reweight", Reweight),
    ("attention", "swap"): AttentionSwapBend,
    **{("attention", op): _make(AttentionMapBend, "attention", op, ATTENTION_ONLY_PARAMS.get(op, p))
       for op, p in MAP_OPS.items()},
    **{("activation", op): _make(ActivationBend, "activation", op, p)
       for op, p in {**MAP_OPS, **ACTIVATION_ONLY_OPS}.items()},
    ("head", "ablate"): _make(HeadBend, "head", "ablate", NoParams),
    ("head", "multiply"): _make(HeadBend, "head", "multiply", Multiply),
    ("layer", "skip_cross_attention"): _make(Bend, "layer", "skip_cross_attention", NoParams),
    ("layer", "skip_block"): _make(Bend, "layer", "skip_block", NoParams),
}
TARGETS: dict[str, list[str]] = {}
for _target, _op in BENDS:
    TARGETS.setdefault(_target, []).append(_op)


# ---- parsing -----------------------------------------------------------------------------------------------------
def _describe(error: dict[str, Any], model: type[Bend], where: str) -> str:
    loc = ".".join(str(p) for p in error["loc"])
    valid = ", ".join(k for k in model.model_fields if k not in ("target", "op"))
    if error["type"] == "extra_forbidden":
        return f"{where}: unknown parameter '{loc}'; valid parameters: {valid}"
    if error["type"] == "missing":
        return f"{where}: missing parameter '{loc}' (valid parameters: {valid})"
    message = error["msg"].removeprefix("Value error, ")
    if not loc:
        return f"{where}: {message}"
    return f"{where}: parameter '{loc}' = {error.get('input')!r}: {message}"


def parse_bend(index: int, data: Any) -> Bend:
    """Validate one bend given as a dict; errors name the bend's index, op and parameter."""
    if isinstance(data, Bend):
        return data
    if not isinstance(data, dict):
        raise BendRecipeError(f"bend {index}: expected a mapping like {{target: attention, op: reweight, ...}}, "
                              f"got {data!r}")
    target, op = data.get("target"), data.get("op")
    if target not in TARGETS:
        raise BendRecipeError(f"bend {index}: unknown target {target!r}; valid targets: {', '.join(TARGETS)}")
    if op not in TARGETS[target]:
        raise BendRecipeError(f"bend {index} (target {target}): unknown op {op!r}; valid ops for {target}: "
                              f"{', '.join(TARGETS[target])}")
    model = BENDS[(target, op)]
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        where = f"bend {index} ({target} {op})"
        raise BendRecipeError("; ".join(_describe(e, model, where) for e in exc.errors())) from None


class Recipe(BaseModel):
    """An ordered list of bends; bends act in this order within each call."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    bends: list[SerializeAsAny[Bend]] = Field(default_factory=list)

    @field_validator("bends", mode="before")
    @classmethod
    def _parse(cls, value: Any) -> list[Bend]:
        if not isinstance(value, (list, tuple)):
            raise BendRecipeError(f"'bends' must be a list of bends, got {type(value).__name__}")
        return [parse_bend(i, b) for i, b in enumerate(value)]

    def to_json(self) -> list[dict[str, Any]]:
        """Every bend with the fields its recipe set, loadable again into the same bends.

        What the recipe left out stays out, so a model's measured defaults still fill it when the bends act
        (``meta.json`` records the bends as they acted, every field included: :meth:`Bender.applied`)."""
        return [{"target": b.target, "op": b.op} | b.model_dump(mode="json", exclude_unset=True) for b in self.bends]


def _resolve_files(recipe: Recipe, base: Path) -> Recipe:
    """Cluster files named relative to a recipe file live beside it."""
    bends = []
    for bend in recipe.bends:
        channels = getattr(bend, "channels", None)
        if isinstance(channels, ClusterChannels) and channels.file and not Path(channels.file).is_absolute():
            channels = channels.model_copy(update={"file": str((base / channels.file).resolve())})
            bend = bend.model_copy(update={"channels": channels})
        if isinstance(bend, AttentionSwapBend) and not Path(bend.source).is_absolute():
            beside = base / bend.source  # beside the recipe when it is there, else as given (the working directory)
            bend = bend.model_copy(update={"source": str(beside.resolve() if beside.exists() else
                                                         Path(bend.source).resolve())})
        bends.append(bend)
    return Recipe(bends=bends)


def load_recipe(source: str | Path | dict | list | Recipe) -> Recipe:
    """A recipe from a YAML/JSON file path, a ``{"bends": [...]}`` dict, a list of bend dicts, or a Recipe."""
    if isinstance(source, Recipe):
        return source
    if isinstance(source, (str, Path)):
        path = Path(source)
        if not path.is_file():
            raise BendRecipeError(f"bend recipe {path} not found; pass a YAML or JSON file with a 'bends' list")
        try:
            data = yaml.safe_load(path.read_text())
        except yaml.YAMLError as exc:
            raise BendRecipeError(f"bend recipe {path} is not valid YAML/JSON: {exc}") from None
        return _resolve_files(load_recipe(data if data is not None else []), path.parent)
    if isinstance(source, dict):
        extra = set(source) - {"bends"}
        if extra:
            raise BendRecipeError(f"unknown recipe key(s) {sorted(extra)}; a recipe has one key, 'bends'")
        source = source.get("bends", [])
    if not isinstance(source, (list, tuple)):
        raise BendRecipeError(f"a recipe is a file path, a {{'bends': [...]}} mapping or a list of bends, "
                              f"got {type(source).__name__}")
    return Recipe(bends=list(source))
