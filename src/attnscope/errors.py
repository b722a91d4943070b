"""Errors a user can act on.

Every error raised for bad input derives from :class:`AttnscopeError`; the CLI prints its message as one line on
stderr and exits with code 2. Anything else is a bug and keeps its traceback.
"""

from __future__ import annotations


class AttnscopeError(Exception):
    """Bad input or an unmet precondition; the message says what to do."""


class WordNotFoundError(AttnscopeError):
    """A requested word or phrase is not in the prompt (or lies beyond the text encoder's 512 tokens)."""


class PromptTooLongError(AttnscopeError):
    """The prompt needs more tokens than the text encoder accepts."""


class ShapeError(AttnscopeError):
    """Frames, height or width do not fit what the model needs."""


class RunExistsError(AttnscopeError):
    """The store path already holds a run."""


class DiskSpaceError(AttnscopeError):
    """The estimated store would not fit on the disk."""


class ModelNotFoundError(AttnscopeError):
    """Weights for the requested model are not available locally."""


class RunFormatError(AttnscopeError):
    """A folder is not a readable attnscope run."""


class SelectionError(AttnscopeError):
    """A step/layer/head/word selection names something the run does not have."""


class FootageError(AttnscopeError):
    """A video given to ``attnscope analyze`` cannot be read, or is too short for the model."""


class NoiseLevelError(AttnscopeError):
    """Noise levels for ``attnscope analyze`` are out of range, or the scheduler is not flow matching."""
