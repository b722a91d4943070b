"""attnscope.footage: the cross-attention of existing videos, read by re-noising them (see :mod:`.run`).

Named ``footage``, not ``analyze``: a subpackage ``attnscope.analyze`` would shadow the function
``attnscope.analyze`` as soon as it was imported.
"""

from .run import analyze

__all__ = ["analyze"]
