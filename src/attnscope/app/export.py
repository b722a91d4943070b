"""``attnscope export RUN -o report.html``: one self-contained page to share a finding.

Everything is inlined (videos and images as base64 data URIs, styles in the page), so the file opens from a mail
attachment or a chat with no server and no other files.
"""

from __future__ import annotations

import base64
import io
import tempfile
from collections.abc import Sequence
from datetime import datetime
from html import escape
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure

from ..render import heatmap_frames, latent_frame_index, overlay_frames, segmentation_frames
from ..render.geometry import geometry
from ..render.selection import Spec, describe
from ..render.view import View, resolve_view
from ..store import Run, open_run
from ..video import read_mp4, write_mp4
from .cards import STYLE, image_data_uri, meta_table
from .charts import plot_mass, word_mass

PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{title}</title>{style}
<style>body{{font-family:system-ui,sans-serif;max-width:1100px;margin:24px auto;padding:0 16px;background:#fafafa}}
h1{{font-size:22px}} h2{{font-size:17px;margin-top:28px}} video,img{{max-width:100%;border-radius:6px}}
.as-row{{display:flex;flex-wrap:wrap;gap:16px}} .as-row figure{{margin:0;flex:1 1 320px}}
figcaption{{font-size:13px;color:#555}}</style></head><body>
<h1>{title}</h1><p>{summary}</p>{body}
<p style="font-size:12px;color:#777">attnscope export · {when}</p></body></html>"""


def _video_tag(path: Path) -> str:
    data = base64.b64encode(path.read_bytes()).decode()
    return f'<video controls loop muted playsinline src="data:video/mp4;base64,{data}"></video>'


def _frames_tag(frames: np.ndarray, fps: float) -> str:
    with tempfile.TemporaryDirectory() as tmp:
        return _video_tag(write_mp4(Path(tmp) / "clip.mp4", frames, fps=fps))


def _figure_tag(fig: Figure) -> str:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=110)
    return f'<img alt="chart" src="data:image/png;base64,{base64.b64encode(buffer.getvalue()).decode()}">'


def _peak_frame(run: Run, maps, total: int) -> int:
    """The pixel frame where the word's map is strongest: the still most worth sharing."""
    geo = geometry(run)
    peak = int(maps.max(("y", "x")).argmax("frame"))
    frames = np.flatnonzero(latent_frame_index(total, geo.latent[0], geo.temporal) == peak)
    return int(frames[len(frames) // 2]) if len(frames) else total // 2


def word_frames(run: Run, view: View, word: str, video: np.ndarray | None) -> np.ndarray:
    """The word's overlay (heatmap without a video) in ``view``: uint8 [T, H, W, 3], the frames ``attnscope
    render`` draws for the same view."""
    common = dict(norm=view.norm, maps=view.map(run, word))
    if video is None:
        return heatmap_frames(run, word, **common)
    return overlay_frames(run, word, video=video, **common)


def _word_section(run: Run, view: View, word: str, video: np.ndarray | None, fps: float) -> str:
    frames = word_frames(run, view, word, video)
    maps = view.map(run, word)
    frame = _peak_frame(run, maps, len(frames))
    where = (f"steps {maps.attrs['step']} · layers {maps.attrs['layer']} · heads {maps.attrs['head']} · "
             f"{view.estimator} · {view.norm}")
    return (f'<h2>{escape(word)}</h2><div class="as-row"><figure><img alt="{escape(word)} frame {frame}" '
            f'src="{image_data_uri(frames[frame])}"><figcaption>frame {frame}, where the map is strongest · '
            f'{escape(where)}</figcaption></figure>'
            f'<figure>{_frames_tag(frames, fps)}<figcaption>overlay video</figcaption></figure></div>')


def export_report(run_path: str | Path, out: str | Path, *, words: Sequence[str] | None = None,
                  step: Spec = None, layer: Spec = None, head: Spec = None, estimator: str | None = None,
                  norm: str | None = None, preset: str = "recommended") -> Path:
    """Write the report for ``run_path`` to ``out`` and return its path.

    The view is :func:`attnscope.render.view.resolve_view`'s, as in ``attnscope render`` and the viewer: what is
    given wins, what is left as None comes from the preset (the recommended view of a measured model), and no
    ``words`` means the words marked or passed at capture, else the prompt's content words.
    """
    run = open_run(run_path)
    view = resolve_view(run, list(words) if words else None, step, layer, head, estimator, norm, preset)
    chosen = list(view.words)
    geo = geometry(run)
    video = read_mp4(run.video_path) if run.video_path is not None else None
    body = []
    if run.video_path is not None:
        body.append(f"<h2>Video</h2>{_video_tag(run.video_path)}")
    if (run.path / "compare.mp4").is_file():
        body.append(f"<h2>Baseline | bent | difference</h2>{_video_tag(run.path / 'compare.mp4')}")
    body.extend(_word_section(run, view, w, video, geo.fps) for w in chosen)
    if len(chosen) > 1:
        seg = segmentation_frames(run, chosen, threshold=view.threshold, norm=view.norm, video=video,
                                  frames=[geo.frames // 2], **view.selection())[0]
        body.append(f'<h2>Which word owns each pixel</h2><img alt="segmentation" src="{image_data_uri(seg)}">')
    chart = plot_mass(word_mass(run, view.layer, view.head), f"layers {describe_spec(view.layer)} · heads "
                      f"{describe_spec(view.head)}")
    body.append(f"<h2>Attention mass over denoising steps</h2>{_figure_tag(chart)}")
    body.append(f"<h2>Run</h2>{meta_table(run.meta)}")
    state = "complete" if run.complete else f"incomplete: {len(run.steps_done)}/{run.meta['num_steps']} steps"
    summary = (f"model {escape(str((run.meta.get('model') or {}).get('id', '')))} · seed "
               f"{escape(str(run.meta.get('seed')))} · {escape(state)}"
               + (" · <b>bent</b>" if run.meta.get("bends") else "") + f" · view: {escape(view.preset.source)}")
    page = PAGE.format(title=escape(run.meta.get("prompt") or run.path.name), style=STYLE, summary=summary,
                       body="\n".join(body), when=datetime.now().isoformat(timespec="seconds"))
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(page, encoding="utf-8")
    return out


def describe_spec(spec: Spec) -> str:
    """A selection spec as text for a caption: ``mean``, ``3``, ``1, 2``."""
    return spec if isinstance(spec, str) else describe(spec) if isinstance(spec, list) else str(spec)
