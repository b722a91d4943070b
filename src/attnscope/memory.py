"""Hand freed heap memory back to the operating system after a bent generation.

Why: a bent cross-attention computes its softmax here, in float32, at every layer and step: many short-lived
buffers of a few to tens of MB, freed by several threads. glibc keeps such freed blocks in its arenas, so a
process's resident memory grows with every bent video although nothing is referenced any more: 0.6 GB of
live data showed 3.7 GB resident after one toy generation, and a sweep of bent toy videos ran out of 24 GB.
``malloc_trim`` returns those blocks. Elsewhere than glibc (macOS, Windows, musl) this does nothing.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools


@functools.cache
def _malloc_trim():
    name = ctypes.util.find_library("c")
    if name is None:
        return None
    return getattr(ctypes.CDLL(name), "malloc_trim", None)


def release_freed_memory() -> bool:
    """Return freed heap memory to the OS where the C library can (glibc); True when it could."""
    trim = _malloc_trim()
    if trim is None:
        return False
    trim(0)
    return True
