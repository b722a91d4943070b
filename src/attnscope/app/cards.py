"""HTML pieces: run cards for the Runs tab, error cards, and a meta table (shared with the HTML export).

Thumbnails are inlined as data URIs, so the Runs tab needs no file route at all. Every string from a run is
escaped: a prompt is user text and must not become markup.
"""

from __future__ import annotations

import base64
import io
import json
from html import escape
from typing import Any

import numpy as np
from PIL import Image

from .runs import RunSummary

STYLE = """
<style>
.as-cards{display:flex;flex-wrap:wrap;gap:12px}
.as-card{width:230px;border:1px solid #8884;border-radius:8px;padding:8px;font-size:13px;line-height:1.35}
.as-card img{width:100%;border-radius:4px;background:#111;display:block}
.as-card .as-noimg{height:90px;background:#222;border-radius:4px;color:#aaa;display:flex;align-items:center;
 justify-content:center}
.as-prompt{font-weight:600;margin:6px 0 2px 0}
.as-badge{display:inline-block;border-radius:4px;padding:0 5px;font-size:12px;margin-right:4px}
.as-ok{background:#2e7d32;color:#fff}.as-warn{background:#ef6c00;color:#fff}.as-bad{background:#c62828;color:#fff}
.as-bent{background:#6a1b9a;color:#fff}
.as-error{border:1px solid #c62828;background:#c6282818;border-radius:8px;padding:10px 12px;margin:4px 0}
.as-meta{border-collapse:collapse;font-size:13px}.as-meta td{border:1px solid #8885;padding:3px 6px;
 vertical-align:top}.as-meta td:first-child{font-weight:600;white-space:nowrap}
</style>
"""


def image_data_uri(image: np.ndarray | Image.Image, fmt: str = "JPEG", quality: int = 85) -> str:
    """An image as a ``data:`` URI (JPEG for photos and maps, PNG for sheets with fine text)."""
    pil = image if isinstance(image, Image.Image) else Image.fromarray(np.ascontiguousarray(image))
    buffer = io.BytesIO()
    pil.convert("RGB").save(buffer, format=fmt, **({"quality": quality} if fmt == "JPEG" else {}))
    mime = "image/jpeg" if fmt == "JPEG" else "image/png"
    return f"data:{mime};base64,{base64.b64encode(buffer.getvalue()).decode()}"


def _badge(summary: RunSummary) -> str:
    kind = "as-bad" if summary.error else "as-ok" if summary.complete else "as-warn"
    bent = '<span class="as-badge as-bent">bent</span>' if summary.bent else ""
    return f'<span class="as-badge {kind}">{escape(summary.status)}</span>{bent}'


def run_card(summary: RunSummary, thumb: np.ndarray | None) -> str:
    picture = (f'<img src="{image_data_uri(thumb)}" alt="first frame">' if thumb is not None
               else '<div class="as-noimg">no video</div>')
    if summary.error:
        body = f'<div class="as-error">{escape(summary.error)}</div>'
    else:
        words = ", ".join(summary.words)
        body = (f'<div>{escape(summary.model)} · seed {escape(str(summary.seed))}</div>'
                f'<div>{escape(summary.created)}</div><div>words: {escape(words)}</div>')
    return (f'<div class="as-card" data-run="{escape(summary.rel)}">{picture}'
            f'<div class="as-prompt">{escape(summary.prompt or summary.rel)}</div>'
            f'<div>{_badge(summary)} <code>{escape(summary.rel)}</code></div>{body}</div>')


def run_cards(items: list[tuple[RunSummary, np.ndarray | None]], root: str) -> str:
    if not items:
        return STYLE + (f'<div class="as-error">No runs under <code>{escape(root)}</code> yet. Make one with '
                        '<code>attnscope generate "a red circle moving left" --out '
                        f'{escape(root)}/circle</code>, then press Refresh.</div>')
    return STYLE + '<div class="as-cards">' + "".join(run_card(s, t) for s, t in items) + "</div>"


def error_card(message: str, title: str = "Cannot show this") -> str:
    """What the app shows instead of a picture when a run or a selection cannot be drawn."""
    return STYLE + f'<div class="as-error"><b>{escape(title)}</b><br>{escape(message)}</div>'


def _cell(value: Any) -> str:
    if isinstance(value, dict | list):
        text = json.dumps(value, default=str)
        return f"<code>{escape(text if len(text) < 600 else text[:600] + ' ...')}</code>"
    return escape(str(value))


META_ROWS = ("prompt", "negative_prompt", "seed", "model", "pipeline", "num_steps", "guidance_scale", "grid",
             "pixel", "layers", "heads", "capture", "bends", "baseline", "created", "complete", "versions")


def meta_table(meta: dict[str, Any]) -> str:
    """The run's reproducibility facts as a two-column table (long values shortened)."""
    rows = [(k, meta[k]) for k in META_ROWS if k in meta]
    rows.append(("words", [w.get("label") for w in meta.get("words", [])]))
    return '<table class="as-meta">' + "".join(f"<tr><td>{escape(k)}</td><td>{_cell(v)}</td></tr>"
                                               for k, v in rows) + "</table>"
