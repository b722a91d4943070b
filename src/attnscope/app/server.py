"""Launch the viewer: loopback by default, files served only from RUNS_DIR (plus the app's own renders)."""

from __future__ import annotations

import os
from pathlib import Path

import gradio as gr

from .safety import host_warning
from .session import Viewer
from .studio import Studio
from .ui import build_app

# System fonts only: the default theme would ask Google Fonts for Inter, a request to the internet from a tool
# that otherwise never leaves this machine.
THEME = gr.themes.Default(font=["ui-sans-serif", "system-ui", "sans-serif"],
                          font_mono=["ui-monospace", "monospace"])


def serve(runs_dir: str | Path, *, host: str = "127.0.0.1", port: int | None = 7860, block: bool = True,
          quiet: bool = False, studio: Studio | None = None) -> tuple[gr.Blocks, str]:
    """Start the viewer; returns (app, local URL). With ``block=False`` it runs in a background thread
    (tests, notebooks); stop it with ``app.close()``. The server owns one generation queue (``studio``, made
    over RUNS_DIR when not given): every browser's generations wait their turn in it."""
    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
    viewer = Viewer(runs_dir)
    warning = host_warning(host)
    if warning:
        print(warning)
    demo = build_app(viewer.root, viewer=viewer, studio=studio or Studio(viewer.root))
    demo.queue(default_concurrency_limit=2)
    _, url, _ = demo.launch(
        server_name=host, server_port=port, allowed_paths=[str(viewer.root)], prevent_thread_lock=not block,
        quiet=quiet, show_error=False, theme=THEME, inbrowser=False, share=False, ssr_mode=False,
        footer_links=[],
    )
    return demo, url
