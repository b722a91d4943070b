"""``attnscope render``: the command's body (mounted by attnscope.cli)."""

from __future__ import annotations

from pathlib import Path

import typer

from .normalize import NORM_MODES
from .output import KINDS


def render_command(
    run: Path = typer.Argument(..., help="Run folder (written by `attnscope generate` or trace(store=...))."),
    word: list[str] = typer.Option(None, "--word", "-w", help="Word label from the run (repeatable: "
                                   "segmentation and grid compare several). Default: the words marked or passed "
                                   "at capture, else the prompt's content words (one file per word for the "
                                   "single-word kinds)."),
    kind: str = typer.Option("overlay", "--kind", "-k", help=f"One of: {', '.join(KINDS)}."),
    step: str = typer.Option(None, help="Denoising step: index (3), range (2-5, averaged) or mean. "
                             "Timeline: which steps to show (default: all). Default: the preset's."),
    layer: str = typer.Option(None, help="Layer: index, range (averaged) or mean. Default: the preset's."),
    head: str = typer.Option("mean", help="Head: index, range (averaged) or mean."),
    out: Path = typer.Option(None, "--out", "-o", help="Output .mp4 or .png (a single frame); for --kind matte "
                             "also a folder (a 16-bit PNG sequence, <word>_matte_0000.png ...). "
                             "Default: RUN/renders/<word>_<kind>.mp4 (.png for grid, the folder <word>_rgba "
                             "with --rgba)."),
    alpha: float = typer.Option(0.6, help="Overlay/segmentation opacity over the video, 0..1."),
    cmap: str = typer.Option("inferno", help="Colormap: inferno, magma, viridis, turbo (any matplotlib name)."),
    norm: str = typer.Option(None, help=f"Value range: {', '.join(NORM_MODES)} (see docs). Default: the preset's "
                             "(frame for the toy model; global for unmeasured models and the timeline)."),
    clip: float = typer.Option(None, help="Percentile clipping, e.g. 99: colours span the 1st..99th "
                               "percentile."),
    estimator: str = typer.Option(None, help="raw probabilities; renorm (divided by the attention on the real "
                                  "prompt tokens: removes the padding sink); value-norm (the word's contribution "
                                  "to the attention output) and value-proj (its length along that output): both need a run generated with "
                                  "--value-norm; self-prop (the map spread through the block's self-attention: "
                                  "fills objects) needs --self-prop. Default: the preset's."),
    preset: str = typer.Option("recommended", help="Defaults for step, layer and estimator: recommended (what "
                               "`attnscope eval` measured best for the run's model; the plain mean for models "
                               "never measured) or none (plain raw mean over everything)."),
    frames_in_steps: bool = typer.Option(False, "--frames-in-steps", help="Timeline: play every video frame "
                                         "within each step instead of holding one frame."),
    threshold: float = typer.Option(None, help="Segmentation: normalized attention below this is left clear. "
                                    "Default: the cut the eval measured for the preset's view (0.80 for the toy "
                                    "model), else 0.3."),
    frame: int = typer.Option(None, help="Pixel frame for .png stills, grids and the timeline (default: the "
                              "middle one)."),
    time: str = typer.Option("hold", help="Latent to pixel frames: hold (each latent frame on the 4 pixel "
                             "frames it encodes) or linear (interpolated between latent frames)."),
    colorbar: bool = typer.Option(True, "--colorbar/--no-colorbar", help="Draw the colour bar (segmentation: "
                                  "the legend and caption) on overlay, heatmap, timeline and segmentation; "
                                  "--no-colorbar gives clean frames for compositing."),
    rgba: bool = typer.Option(False, "--rgba", help="--kind matte: RGBA PNG overlays (the colormap in RGB, the "
                              "map as alpha) instead of 16-bit grey; -o a folder or a .png."),
) -> Path:
    """Render a word's attention from a Run folder as MP4 or PNG, with a colour bar of real values.

    --kind matte writes the map alone for compositing, at the run's frame count and size: a grayscale MP4
    (default), a 16-bit PNG sequence (-o FOLDER), one 16-bit PNG (-o x.png), or RGBA overlays (--rgba).

    Example: attnscope render runs/circle --word circle --kind overlay --step mean --layer 10-20 -o circle.mp4
    """
    from ..errors import SelectionError
    from ..store import open_run
    from .matte import matte_target
    from .output import MULTI_WORD, render
    from .view import default_words

    opened = open_run(run)
    words = list(word) if word else default_words(opened)
    options = dict(step=step, layer=layer, head=head, out=out, alpha=alpha, cmap=cmap, norm=norm, clip=clip,
                   estimator=estimator, preset=preset, frames_in_steps=frames_in_steps, threshold=threshold,
                   frame=frame, time=time, colorbar=colorbar, rgba=rgba, progress=True)
    per_word = kind == "matte" and (out is None or matte_target(out) == "folder")  # one matte per word
    if kind in MULTI_WORD or len(words) == 1:
        chosen = [words if len(words) > 1 else words[0]]
    elif per_word:
        chosen = words
    elif word:
        chosen = [words]  # render() says this kind shows one word
    elif out is not None:
        raise SelectionError(f"--kind {kind} shows one word and -o names one file; pick the word with -w "
                             f"(this run's default words: {', '.join(words)})")
    else:
        chosen = words  # one file per default word
    path = out
    for target in chosen:
        path = render(opened, target, kind, **options)
        typer.echo(str(path))
    return path
