"""The Bend tab's form covers the recipe format: every (target, op) of ``BENDS`` is a choice, each op's every
parameter a control, and the form's start values make a bend the recipe model accepts; YAML goes out and back."""

from __future__ import annotations

import numpy as np
import pytest

from attnscope.app import bendform as bf
from attnscope.app.region import draw_box, region_of_strokes
from attnscope.bend import load_recipe
from attnscope.bend.recipe import BENDS, BendRecipeError


def form_values(target: str, op: str) -> dict:
    return {p.key: bf.start_value(target, op, p) for p in bf.op_params(target, op)}


def test_every_op_of_the_recipe_model_is_a_choice_with_all_its_parameters():
    assert len(bf.OP_CHOICES) == len(BENDS)
    keys = {p.key for p in bf.all_params()}
    for target, op in BENDS:
        own = {p.name for p in bf.op_params(target, op)}
        fields = set(BENDS[(target, op)].model_fields) - bf.SELECTION - set(bf.TARGET_FIELDS)
        assert own == fields, (target, op)
        assert {p.key for p in bf.op_params(target, op)} <= keys


@pytest.mark.parametrize(("target", "op"), [k for k in BENDS if k != ("attention", "swap")])
def test_start_values_build_a_valid_bend(target, op):
    uses = bf.takes(target, op)
    bend = bf.build_bend(bf.op_label(target, op), "red circle", False, "0-1" if uses["heads_required"] else "",
                         "0-3", 0.25, 1.0, "cond", form_values(target, op))
    assert bend["target"] == target and bend["op"] == op and bend["steps"] == [0.25, 1.0]
    assert load_recipe([bend]).bends[0].layers == [0, 1, 2, 3]


def test_translate_yaml_round_trip_and_errors_say_what_to_do():
    bend = bf.build_bend("attention · translate", "red circle", False, "", "", 0.0, 1.0, bf.DEFAULT_BRANCH,
                         {**form_values("attention", "translate"), "dx": 0.3})
    assert bend == {"target": "attention", "op": "translate", "word": "red circle", "dx": 0.3}
    text = bf.to_yaml([bend])
    assert "op: translate" in text and bf.from_yaml(text) == [bend]
    both = bf.build_bend("attention · translate", "red circle", False, "", "", 0.0, 1.0, "both",
                         {**form_values("attention", "translate"), "dx": 0.3})
    assert both["branch"] == "both" and bf.from_yaml(bf.to_yaml([both])) == [both]  # chosen, so kept
    with pytest.raises(BendRecipeError, match="type a word"):
        bf.build_bend("attention · blur", "", False, "", "", 0.0, 1.0, bf.DEFAULT_BRANCH,
                      form_values("attention", "blur"))
    with pytest.raises(BendRecipeError, match="unknown op"):
        bf.from_yaml("bends: [{target: attention, op: teleport}]")
    with pytest.raises(BendRecipeError, match="pick an op"):
        bf.parse_op("attention · teleport")


def test_mask_region_from_a_box_or_strokes():
    assert bf.takes("attention", "mask")["region"] and not bf.takes("attention", "translate")["region"]
    layer = np.zeros((100, 200, 4), np.uint8)
    layer[20:40, 50:150, 3] = 255
    assert region_of_strokes({"background": None, "layers": [layer], "composite": None}) == (0.25, 0.2, 0.75, 0.4)
    assert region_of_strokes({"layers": [np.zeros((10, 10, 4), np.uint8)]}) is None
    boxed = draw_box(np.zeros((100, 100, 3), np.uint8), (0.1, 0.1), (0.5, 0.5))
    assert boxed[10, 30].any() and not boxed[30, 30].any()


def test_two_clicks_on_the_frame_set_the_mask_box(tmp_path):
    import gradio as gr

    from attnscope.app.bend_tab import BendHandlers
    from attnscope.app.session import Viewer

    handlers = BendHandlers(studio=None, viewer=Viewer(tmp_path), handlers=None)
    frame = np.zeros((100, 200, 3), np.uint8)

    def click(x: int, y: int) -> gr.SelectData:
        return gr.SelectData(None, {"index": [x, y], "value": None, "selected": True})

    corner, drawn, *rest = handlers.click_box(frame, None, click(150, 80))
    assert corner == [(0.75, 0.8)] and drawn.any()
    corner, drawn, *box = handlers.click_box(frame, corner, click(50, 20))
    assert corner is None and box == [0.25, 0.2, 0.75, 0.8]


def test_an_objects_eos_is_a_choice_of_auto_true_false_masked_or_edited():
    params = {p.name: p for p in bf.op_params("attention", "reweight")}
    eos = params["eos"]
    assert eos.kind == "choice" and eos.choices == ("auto", True, False, "masked", "edited")
    values = {**form_values("attention", "reweight"), eos.key: "masked"}
    bend = bf.build_bend("attention · reweight", "red circle", True, "", "", 0.0, 1.0, bf.DEFAULT_BRANCH, values)
    assert bend["eos"] == "masked" and bend["object"] == "red circle"
    values = {**form_values("attention", "reweight"), eos.key: "edited",
              params["eos_prompt"].key: "a green square moving left"}
    bend = bf.build_bend("attention · reweight", "red circle", True, "", "", 0.0, 1.0, bf.DEFAULT_BRANCH, values)
    assert (bend["eos"], bend["eos_prompt"]) == ("edited", "a green square moving left")
    assert "eos" not in bf.build_bend("attention · reweight", "red circle", True, "", "", 0.0, 1.0,
                                      bf.DEFAULT_BRANCH, form_values("attention", "reweight"))
