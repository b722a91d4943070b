"""The viewer (Gradio) and the HTML export: browse runs by word, step, layer and head; compare; share."""

from .export import export_report
from .session import Viewer

__all__ = ["Viewer", "build_app", "export_report", "serve"]


def __getattr__(name: str):
    # gradio is the optional "viewer" extra and slow to import: load it only when the app is asked for
    if name == "build_app":
        from .ui import build_app

        return build_app
    if name == "serve":
        from .server import serve

        return serve
    raise AttributeError(name)
