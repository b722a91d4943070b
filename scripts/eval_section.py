"""Write docs/sections/eval.md from docs/eval/eval.json (the README's faithfulness section)."""

import json
from pathlib import Path

root = Path(__file__).resolve().parents[1]
r = json.loads((root / "docs/eval/eval.json").read_text())
est = r["estimators"]
rows = "\n".join(
    f"| {n} | {e['miou']:.3f} | {e['miou_pixel']:.3f} | {e['miou_best_threshold']:.3f} (t = {e['best_threshold']:.2f}) "
    f"| {e['miou_by_kind'].get('shape', float('nan')):.3f} | {e['miou_by_kind'].get('colour', float('nan')):.3f} "
    f"| {e['miou_full_size']:.3f} | {e['miou_frame']:.3f} | {e['miou_frame_best_threshold']:.3f} "
    f"(t = {e['frame_best_threshold']:.2f}) |"
    for n, e in sorted(est.items(), key=lambda kv: -kv[1]["miou"]))
best = max(est.items(), key=lambda kv: kv[1]["miou"])
frame = max(est.items(), key=lambda kv: kv[1]["miou_frame_best_threshold"])
fb = frame[1]
s, d, rec = r["settings"], r["detection"], r["recommended"]
b = best[1]
if b["n_full_size"] == b["n"]:
    full_size = ("Every test sample's object was drawn at about its size (median ≥ 1,000 px per frame), so the "
                 "full-size column equals the first and the gap to 0.60 at 0.4 is the maps' own, not fragments'.")
else:
    full_size = (f"The full-size column keeps only the {b['n_full_size']} test samples whose object the model drew at "
                 f"about its size (median ≥ 1,000 px per frame; the smallest toy object covers 1,532): there "
                 f"**{best[0]}** reaches {b['miou_full_size']:.2f} against {est['raw']['miou_full_size']:.2f} for "
                 f"`raw`; on a 3-token fragment IoU is near 0 however good the map is.")
subset_note = (": the layer and step subset that scored best on the selection split (`best-layers`) did worse "
               "than all of them on the test split, so it is not the default" if rec["layers"] is None else
               ", the subset chosen on the selection split (`best-layers`), which also won on the test split")
missing = d["objects"] - d["objects_found"]
missing = ("The detector found every requested object, blue included." if missing == 0 else
           f"{missing} of {d['objects']} requested objects were not found in the videos and are not scored.")
where = ("all layers and steps" if rec["layers"] is None else
         f"layers {rec['layers']}, steps {rec['step_fraction'][0]:.2f}–{rec['step_fraction'][1]:.2f} of the schedule")
text = f"""## How faithful are the maps? (`attnscope eval`)

attnscope measures its maps against ground truth on the toy world: it generates held-out prompts (seeds never
used in training, half with two objects), captures every shape and colour word (with value norms), finds each
object in the *generated* video with the project's detector, and scores each estimator's map by IoU against
that object's mask, binarized at 0.4 of the map's maximum as DAAM did, on the token grid and at pixel
resolution. Layer/step choices are made on one half of the prompts and scored on the other.

```bash
attnscope eval --prompts 30 --json docs/eval/eval.json --out docs/eval
```

Result on the shipped toy model ({s['prompts']} prompts, {s['samples']} word samples of the objects the detector
found — {d['objects_found']} of {d['objects']} requested objects; {s['test_samples']} in the test split):

| estimator | mIoU @0.4, token grid | mIoU @0.4, pixels | mIoU @best threshold | shape words | colour words | objects drawn at full size | per-frame normalization @0.4 | per-frame @best threshold |
|---|---|---|---|---|---|---|---|---|
{rows}

The best threshold of each column is chosen on the selection split and scored on the test split. **Per-frame
normalization** scales each latent frame of a map to [0, 1] on its own before thresholding, as DAAM scaled each
image: a video frame plays the part of the image (the renderer's `--norm frame`).

Best at DAAM's fixed 0.4: **{best[0]}** at {best[1]['miou']:.2f}. Best overall: **{frame[0]} with per-frame
normalization at the selected threshold {fb['frame_best_threshold']:.2f}: {fb['miou_frame_best_threshold']:.2f}**
(shape words {fb['miou_frame_by_kind'].get('shape', float('nan')):.2f}, colour words
{fb['miou_frame_by_kind'].get('colour', float('nan')):.2f}), against {est['raw']['miou']:.2f} for what most tools
show (`raw`, normalized over the whole video, 0.4). With per-frame normalization the 0.4 threshold changes little
({fb['miou_frame']:.2f}); what gains is a higher threshold, which trims the ring that shape words spill past
their objects while each frame keeps its object. For comparison, DAAM reported 58.8–64.8 mIoU on COCO-Gen images with
a 0.4 threshold; the settings differ (a small toy video model here, real images there), so the numbers are
not directly comparable. The goal of ≥ 0.60 is {'met' if fb['miou_frame_best_threshold'] >= 0.6 else '**not met**'} with per-frame normalization and a threshold chosen on the selection split, and {'met' if best[1]['miou'] >= 0.6 else '**not met**'} at DAAM's fixed 0.4 with this
toy model (fifth model 0.552, fourth 0.557, third 0.39, second 0.27). {missing} A shape word is judged against
the mask of the object of its colour (every object the model drew in that colour, a duplicate included).
{full_size} By word kind, colour words reach {b['miou_by_kind']['colour']:.2f} and shape words
{b['miou_by_kind']['shape']:.2f}: a shape word's map is brightest on its object's edges and spills a token
beyond them (a ring with a dimmer centre), so its 0.4-thresholded map covers 1.6–1.8× the object's area
(measured on the fifth model). On this model `raw` and `value-norm` are tied (0.549 and 0.548; the fifth model
had value-norm ahead by 0.01): value norms sharpen colour words and blur shape words.
Everything else tried (scored at 0.4, normalized over the whole video) stayed below 0.60: `value-proj` (the word's contribution measured along the query's whole
attention output, inspired by ConceptAttention's output-space maps); post-processing of the map (grey closing,
hole filling, floors, per-layer normalization: within 0.02); and, with a scratch script on this model's eval
runs, the geometric mean of `raw` and `value-norm` (0.551), each head's map weighted by how peaked it is
(0.52–0.54), the most peaked quarter of the heads alone (0.38–0.41), the maximum over heads (0.546). Maps
propagated through the same block's self-attention (A·m, the refinement used for image segmentation from
diffusion models; 8 samples) fill the shape words' rings but raise the floor: 0.40 at the 0.4 threshold,
0.61–0.64 at a threshold of 0.8, against 0.57–0.61 for the plain maps at their best threshold (thresholds picked on the same 8 samples, so optimistic for both).

Padding sink: on average {r['padding_sink']['prompt_mass_mean'] * 100:.0f} % of each video token's attention goes
to real prompt tokens; the rest lands on Wan's zero padding — yet dividing it out (`renorm`) *hurts*
localization here, probably because background queries attend almost only to padding, so renormalizing inflates
their small word probabilities. The recommended aggregation is estimator `{rec['estimator']}` (base
`{rec['base']}`) over {where}{subset_note}.
`attnscope eval --out DIR` writes it as `DIR/recommended.json`; the copy shipped beside the toy
weights makes it the default view of `attnscope render` and of the viewer for toy runs. The full report, with mIoU
per layer × step and per layer × head and the answer in words, is [docs/eval/report.md](docs/eval/report.md).

![mIoU per layer and denoising step](docs/eval/miou_layer_step.png)
"""
(root / "docs/sections/eval.md").write_text(text)
print(text[:400])
