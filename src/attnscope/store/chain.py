"""Step chains: a compact run's per-head arrays stored as each step's difference from the step before.

Consecutive denoising steps attend alike, so a map's uint8 codes minus the previous step's codes carry much less
information than the codes themselves: on Wan2.1-1.3B (20 steps, ``scripts/bench_step_delta.py``) the per-head
maps compress 2.1x smaller chained than plain, on the trained toy 1.3x. The difference is taken modulo 256 (uint8
wrap-around), so nothing is lost: ``codes[t] = stored[t0] + ... + stored[t]`` (mod 256) from the chain's first
written step ``t0``. An unwritten step's chunk reads as zeros and so adds nothing.

Chains restart every :data:`GROUP` steps, so reading one step decodes at most that many chunks; the reader keeps
the slabs it summed, so a walk through the steps either way (a slider, a timeline) decodes each chunk once.
The head-mean summaries, which the viewer reads most, are never chained.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Iterable

import numpy as np

GROUP = 10  # steps per chain: a step's read decodes at most this many chunks
ATTR = "step_chain"  # zarr attribute of a chained array: its GROUP
CACHE_BYTES = 128 << 20  # summed slabs a reader keeps (per array)
CHAINED = ("maps", "prompt_mass", "value_norm", "self_prop")  # a compact run's per-(step, layer) uint8 arrays


class ChainEncoder:
    """The writer's side: remembers each (array, layer)'s last written codes and returns what to store."""

    def __init__(self, group: int = GROUP) -> None:
        self.group = group
        self._last: dict[tuple[str, int], tuple[int, np.ndarray]] = {}

    def encode(self, name: str, step: int, layer: int, codes: np.ndarray) -> np.ndarray:
        """The chunk to store for ``codes`` (uint8) of array ``name`` at ``step`` and layer position ``layer``:
        the codes themselves at a chain's start, else their difference from the last step written."""
        last = self._last.get((name, layer))
        if last is not None and step <= last[0]:
            raise RuntimeError(f"{name}: step {step} written after step {last[0]}; a compact run's steps are "
                               "chained and must be written in order")
        if last is None or last[1].shape != codes.shape:
            buffer = np.empty_like(codes)
            stored = codes
        else:
            buffer = last[1]
            stored = np.subtract(codes, buffer) if last[0] // self.group == step // self.group else codes
        np.copyto(buffer, codes)  # a copy: the caller may hand the same (pinned) buffer back for the next step
        self._last[(name, layer)] = (step, buffer)
        return stored


class StepChained:
    """Read view of a chained array: indexing (basic, and ``.oindex`` orthogonal; with integers and slices the
    two agree) returns the codes as a plain array would hold them. ``shape``, ``chunks``, ``ndim``, ``dtype``
    are the stored array's.

    A chunk holds a whole (step, layer) slab and is decoded whole whatever part of it is asked for, so the view
    sums whole slabs of the layers asked for and selects the rest in memory. It keeps the slabs it summed (up to
    :data:`CACHE_BYTES`) for the steps in ``finished`` (steps whose chunks are final: a live run's later steps
    are always read afresh), so a slider moving either way through a chain, or across heads and words, decodes
    each chunk once.
    """

    def __init__(self, stored, group: int, finished: Iterable[int] = ()) -> None:
        self.stored, self.group = stored, int(group)
        self.shape, self.chunks, self.ndim, self.dtype = stored.shape, stored.chunks, stored.ndim, stored.dtype
        self.oindex = _Orthogonal(self)
        self._finished = frozenset(int(s) for s in finished)
        self._lock = threading.Lock()
        self._cache: OrderedDict[tuple[str, int], np.ndarray] = OrderedDict()  # (layers, step) -> summed slabs
        self._cached_bytes = 0

    def __getitem__(self, selection) -> np.ndarray:
        return self._read(selection)

    def __array__(self, dtype=None, copy=None) -> np.ndarray:
        values = self[...]
        return values if dtype is None else values.astype(dtype)

    def _read(self, selection) -> np.ndarray:
        sel = full_selection(selection, self.ndim)
        steps = np.arange(self.shape[0])[sel[0]]
        layers = np.arange(self.shape[1])[sel[1]]
        wanted, kept = np.atleast_1d(steps), np.atleast_1d(layers)
        key = repr(kept.tolist())
        summed: dict[int, np.ndarray] = {}
        for chain in np.unique(wanted // self.group):
            mine = wanted[wanted // self.group == chain]
            summed.update(self._sum(key, kept, int(chain) * self.group, int(mine.min()), int(mine.max())))
        if len(wanted) == 1:  # one step: select from the summed slab itself, then copy only what was asked for
            out = summed[int(wanted[0])][None]
        else:
            out = (np.stack([summed[int(s)] for s in wanted]) if len(wanted)
                   else np.empty((0, len(kept), *self.shape[2:]), self.dtype))
        for axis in range(self.ndim - 1, 1, -1):  # the last axis first, so the earlier ones keep their places
            out = _take(out, sel[axis], axis)
        if np.ndim(layers) == 0:
            out = out[:, 0]
        out = out[0] if np.ndim(steps) == 0 else out
        return np.array(out) if len(wanted) == 1 else out  # never a view of the kept slabs

    def _sum(self, key: str, layers: np.ndarray, start: int, first: int, last: int) -> dict[int, np.ndarray]:
        """Whole slabs of ``layers`` at each step from ``first`` to ``last`` of the chain that begins at
        ``start``: running sums of the stored chunks, continued from the latest kept slab before ``first``."""
        with self._lock:
            kept = {s: self._cache[(key, s)] for s in range(start, last + 1) if (key, s) in self._cache}
            for s in kept:
                self._cache.move_to_end((key, s))
        if all(s in kept for s in range(first, last + 1)):
            return {s: kept[s] for s in range(first, last + 1)}
        base = max((s for s in kept if s < first), default=None)
        begin = start if base is None else base + 1
        chunks = self._chunks(slice(begin, last + 1), layers)
        if base is not None:
            chunks[0] += kept[base]  # uint8: wraps modulo 256, as the writer's difference did
        for i in range(1, len(chunks)):  # slab by slab: numpy's cumsum over a leading axis is 20x slower here
            np.add(chunks[i], chunks[i - 1], out=chunks[i])
        out = {begin + i: chunks[i] for i in range(len(chunks))}
        self._keep(key, out)
        return out

    def _chunks(self, steps: slice, layers: np.ndarray) -> np.ndarray:
        """The stored chunks of ``steps`` x ``layers``; a contiguous run of layers as a slice, since zarr's
        orthogonal indexing with an index list costs about 5x its basic indexing for the same chunks."""
        if len(layers) and np.array_equal(layers, np.arange(layers[0], layers[0] + len(layers))):
            chunks = np.asarray(self.stored[steps, int(layers[0]):int(layers[0]) + len(layers)])
        else:
            chunks = np.asarray(self.stored.oindex[steps, layers])
        return chunks if chunks.flags.writeable else chunks.copy()  # summed in place

    def _keep(self, key: str, slabs: dict[int, np.ndarray]) -> None:
        with self._lock:
            for step, slab in slabs.items():
                if step not in self._finished or (key, step) in self._cache or slab.nbytes > CACHE_BYTES:
                    continue
                self._cache[(key, step)] = slab  # a view of the block just summed, which nothing else writes to
                self._cached_bytes += slab.nbytes
                while self._cached_bytes > CACHE_BYTES:
                    self._cached_bytes -= self._cache.popitem(last=False)[1].nbytes


def _take(values: np.ndarray, index, axis: int) -> np.ndarray:
    """One axis's part of an orthogonal selection: an integer drops the axis, a slice or index list keeps it."""
    if isinstance(index, slice):
        return values[(slice(None),) * axis + (index,)]
    return np.take(values, np.asarray(index), axis=axis)


def full_selection(selection, ndim: int) -> tuple:
    """``selection`` as one entry per dimension (an ellipsis expanded, missing trailing dims as full slices)."""
    sel = selection if isinstance(selection, tuple) else (selection,)
    if any(s is Ellipsis for s in sel):
        i = next(i for i, s in enumerate(sel) if s is Ellipsis)
        sel = sel[:i] + (slice(None),) * (ndim - len(sel) + 1) + sel[i + 1:]
    return sel + (slice(None),) * (ndim - len(sel))


class _Orthogonal:
    def __init__(self, parent: StepChained) -> None:
        self.parent = parent

    def __getitem__(self, selection) -> np.ndarray:
        return self.parent._read(selection)
