"""attnscope: see and bend what Wan text-to-video models attend to.

Public API (small on purpose): :func:`load_pipeline`, :func:`trace`, :func:`generate`, :func:`analyze`,
:func:`open_run`.
"""

__version__ = "0.1.0"

from .errors import AttnscopeError  # noqa: E402
from .store import Run, open_run  # noqa: E402


def __getattr__(name):
    # Heavy modules (diffusers, transformers) load on first use, so `attnscope --help` and the viewer stay fast.
    if name == "trace":
        from .tracing import trace

        return trace
    if name == "generate":
        from .generation import generate

        return generate
    if name == "analyze":
        from .footage import analyze

        return analyze
    if name == "load_pipeline":
        from .models.loading import load_pipeline

        return load_pipeline
    raise AttributeError(f"module 'attnscope' has no attribute {name!r}")


__all__ = ["AttnscopeError", "Run", "analyze", "generate", "load_pipeline", "open_run", "trace", "__version__"]
