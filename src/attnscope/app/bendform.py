"""The Bend tab's form, derived from the recipe model (``attnscope.bend.recipe.BENDS``) rather than kept by hand.

Every (target, op) the recipe format has becomes a choice; every parameter of its pydantic model becomes a control
by its type: numbers are sliders (their range from the field's bounds, else a range for that parameter's meaning),
``Literal`` fields are dropdowns, booleans checkboxes, anything else (channels, replace pairs, a source run) a
YAML text box. A new op or parameter in the recipe model shows up here without touching this file; the bend is
validated by the recipe model itself (``parse_bend``), so the form cannot build a recipe the CLI would refuse.
"""

from __future__ import annotations

import types
import typing
from dataclasses import dataclass
from typing import Any, Literal

import yaml
from annotated_types import Ge, Gt, Le, Lt
from pydantic.fields import FieldInfo

from ..bend.recipe import BENDS, Bend, BendRecipeError, Recipe, load_recipe, parse_bend

# fields the form shows as its own controls, not per op
SELECTION = set(Bend.model_fields)  # target, op, layers, steps, branch, experts
TARGET_FIELDS = ("word", "object", "heads")
# slider ranges for unbounded numbers, by what the parameter means (bounds from the model still apply)
RANGES: dict[str, tuple[float, float, float]] = {
    "dx": (-1.0, 1.0, 0.01), "dy": (-1.0, 1.0, 0.01), "degrees": (-180.0, 180.0, 1.0),
    "factor": (0.0, 4.0, 0.05), "sigma": (0.0, 4.0, 0.1), "amount": (0.0, 4.0, 0.1), "frames": (-8, 8, 1),
    "frame": (-8, 16, 1), "seed": (0, 1000, 1), "scale": (0.0, 5.0, 0.05), "std": (0.0, 3.0, 0.05),
    "level": (0.0, 1.0, 0.01), "share": (0.0, 1.0, 0.01), "cluster": (0, 15, 1), "of": (2, 16, 1),
}
# a starting value for required parameters (no default in the model): one that visibly bends
STARTS: dict[str, float] = {"degrees": 30.0, "factor": 1.5, "sigma": 1.5, "amount": 1.0, "level": 0.5,
                            "frames": 2, "scale": 0.0, "std": 0.5}
REGION = ("x0", "y0", "x1", "y1")


@dataclass(frozen=True)
class Param:
    """One form control: ``key`` names the component (a parameter name, plus its kind when two ops give the same
    name different types)."""

    key: str
    name: str
    kind: str  # "slider" | "int" | "check" | "choice" | "text"
    choices: tuple[Any, ...] = ()
    low: float = 0.0
    high: float = 1.0
    step: float = 0.01


def op_label(target: str, op: str) -> str:
    return f"{target} · {op}"


OP_CHOICES = [op_label(t, o) for t, o in BENDS]


def parse_op(label: str) -> tuple[str, str]:
    """(target, op) from a dropdown label; refuses a label the recipe model does not have."""
    target, _, op = (label or "").partition(" · ")
    if (target, op) not in BENDS:
        raise BendRecipeError(f"pick an op from the list; {label!r} is not one of: {', '.join(OP_CHOICES)}")
    return target, op


def _bounds(info: FieldInfo) -> tuple[float | None, float | None]:
    low = high = None
    for m in info.metadata:
        if isinstance(m, (Ge, Gt)):
            low = float(m.ge if isinstance(m, Ge) else m.gt)
        if isinstance(m, (Le, Lt)):
            high = float(m.le if isinstance(m, Le) else m.lt)
    return low, high


def _param(name: str, info: FieldInfo) -> Param:
    kind_of = info.annotation
    args = typing.get_args(kind_of)
    if kind_of is bool:
        return Param(name, name, "check")
    if typing.get_origin(kind_of) is Literal:
        return Param(f"{name}:{'|'.join(map(str, args))}", name, "choice", tuple(args))
    if isinstance(kind_of, types.UnionType) and set(args) == {bool, type(None)}:
        return Param(f"{name}:auto", name, "choice", ("auto", True, False))
    literals = [a for a in args if typing.get_origin(a) is Literal]
    if typing.get_origin(kind_of) is typing.Union and literals and set(args) - set(literals) <= {bool, type(None)}:
        # e.g. eos: true, false or "masked"; "auto" (left out) where None is allowed
        choices = (("auto",) if type(None) in args else ()) + ((True, False) if bool in args else ()) + tuple(
            v for a in literals for v in typing.get_args(a))
        return Param(f"{name}:{'|'.join(map(str, choices))}", name, "choice", choices)
    if kind_of in (int, float):
        default = RANGES.get(name, (-10, 10, 1) if kind_of is int else (-2.0, 2.0, 0.01))
        low, high = _bounds(info)
        lo = max(default[0], low) if low is not None else default[0]
        hi = min(default[1], high) if high is not None else default[1]
        return Param(name, name, "int" if kind_of is int else "slider", (), lo, hi, default[2])
    return Param(f"{name}:text", name, "text")


def op_params(target: str, op: str) -> list[Param]:
    """The controls of one op's own parameters, in the model's field order."""
    model = BENDS[(target, op)]
    return [_param(n, f) for n, f in model.model_fields.items() if n not in SELECTION and n not in TARGET_FIELDS]


def all_params() -> list[Param]:
    """Every distinct control any op needs (the form builds each once and shows the op's own)."""
    seen: dict[str, Param] = {}
    for target, op in BENDS:
        for p in op_params(target, op):
            seen.setdefault(p.key, p)
    return list(seen.values())


def start_value(target: str, op: str, p: Param) -> Any:
    """The control's value when the op is picked: the model's default, else a value that visibly bends."""
    info = BENDS[(target, op)].model_fields[p.name]
    if not info.is_required():
        value = info.get_default(call_default_factory=True)
        if p.kind == "text":
            return "" if value is None else value if isinstance(value, str) else yaml.safe_dump(
                value, default_flow_style=True).strip()
        return "auto" if value is None and p.kind == "choice" else value
    if p.kind in ("slider", "int"):
        return min(max(STARTS.get(p.name, 0.0), p.low), p.high)
    return "" if p.kind == "text" else None


DEFAULT_BRANCH = "model default"
BRANCHES = [DEFAULT_BRANCH, "both", "cond", "uncond"]


def takes(target: str, op: str) -> dict[str, bool]:
    """Which shared controls the op uses: a word/object, heads, a region on a frame."""
    fields = BENDS[(target, op)].model_fields
    return {"word": "word" in fields, "heads": "heads" in fields,
            "heads_required": "heads" in fields and fields["heads"].is_required(),
            "region": all(r in fields for r in REGION)}


def _indices(text: str) -> list[Any] | None:
    """``all``/empty -> None; ``0-3, 5`` -> ["0-3", 5] (the recipe's own index syntax)."""
    text = (text or "").strip()
    if not text or text == "all":
        return None
    return [int(p) if p.strip().isdigit() else p.strip() for p in text.split(",") if p.strip()]


def build_bend(label: str, word: str, as_object: bool, heads: str, layers: str, step_from: float, step_to: float,
               branch: str, values: dict[str, Any]) -> dict[str, Any]:
    """One bend as the recipe's dict, validated by the recipe model; ``values`` maps control keys to values."""
    target, op = parse_op(label)
    uses = takes(target, op)
    bend: dict[str, Any] = {"target": target, "op": op}
    if uses["word"]:
        if not (word or "").strip():
            raise BendRecipeError(f"{target} {op} acts on a word: type a word or phrase of the prompt")
        bend["object" if as_object else "word"] = word.strip()
    if uses["heads"] and _indices(heads) is not None:
        bend["heads"] = _indices(heads)
    fields = BENDS[(target, op)].model_fields
    for p in op_params(target, op):
        value = values.get(p.key)
        if not fields[p.name].is_required() and value == start_value(target, op, p):
            continue  # the model's default: the YAML stays short and says only what was chosen
        if p.kind == "text":
            if (value or "").strip():
                bend[p.name] = yaml.safe_load(value)
        elif p.kind == "choice" and value == "auto":
            continue
        elif p.kind == "int":
            bend[p.name] = int(value)
        elif p.kind == "slider":
            bend[p.name] = float(value)
        elif value is not None:
            bend[p.name] = value
    if _indices(layers) is not None:
        bend["layers"] = _indices(layers)
    if (float(step_from), float(step_to)) != (0.0, 1.0):
        bend["steps"] = [float(step_from), float(step_to)]
    if branch != DEFAULT_BRANCH:  # left to the model's measured default (on the toy model: per op)
        bend["branch"] = branch
    parse_bend(0, bend)
    return bend


def to_yaml(bends: list[dict[str, Any]]) -> str:
    """The recipe as the YAML ``attnscope generate --bend`` reads (docs/sections/bend.md)."""
    return yaml.safe_dump({"bends": list(bends)}, sort_keys=False, default_flow_style=False)


def from_yaml(text: str) -> list[dict[str, Any]]:
    """A recipe's bends from YAML (pasted or uploaded), validated; refuses what the CLI would refuse."""
    try:
        data = yaml.safe_load(text or "")
    except yaml.YAMLError as exc:
        raise BendRecipeError(f"the recipe is not valid YAML: {exc}") from None
    recipe: Recipe = load_recipe(data if data is not None else [])
    return recipe.to_json()
