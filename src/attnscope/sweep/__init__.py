"""Sweeps on Ray: many prompts x seeds x bend recipes, one Run folder each, resumable, with an index and a
contact sheet. ``attnscope.sweep.run(spec, out)`` or ``attnscope sweep SWEEP.yaml --out DIR``.

Ray is imported only when jobs run, so validating a sweep file needs neither Ray nor a model.
"""

from .jobs import Job, expand
from .runner import SweepResult, run
from .spec import SweepSpec, SweepSpecError, load_spec

__all__ = ["Job", "SweepResult", "SweepSpec", "SweepSpecError", "expand", "load_spec", "run"]
