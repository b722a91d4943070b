"""Whole chunks written past zarr's write path: the bytes zarr would write, for about a third less CPU time.

A capture's slab is exactly one chunk, so none of zarr's chunk assembly is needed, yet ``Array.__setitem__`` still
pays for it: per chunk a task on its event loop, a fresh chunk buffer, the codec on a pool thread, the store's write
from another. On the H200 those threads took 12.9 s of CPU for the 3.85 GB of a 20-step Wan2.1-1.3B capture, half
the whole generation's CPU time again (docs/benchmarks.md, run 9); encoding with the array's own blosc settings and
writing the file from the writer thread does the same work for 31 % less CPU time on the CPU box (run 11). The chunk is
encoded with numcodecs' Blosc (the library zarr's ``BloscCodec`` calls), named by the array's own chunk key
encoding, and written where the array's ``LocalStore`` keeps it, so zarr reads it back as its own; an array that
is not that simple (another store, another codec chain, a big-endian host) is written through zarr.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import zarr
from numcodecs import Blosc
from zarr.codecs import BloscCodec, BytesCodec
from zarr.storage import LocalStore

_SHUFFLE = {"noshuffle": Blosc.NOSHUFFLE, "shuffle": Blosc.SHUFFLE, "bitshuffle": Blosc.BITSHUFFLE}


class ChunkWriter:
    """Writes blocks of one zarr array: ``write(start, block)`` stores ``block`` at ``start`` (one index per axis).

    A block that covers whole chunks is encoded and written chunk by chunk past zarr; any other block (or any
    array :attr:`direct` is false for) goes through ``Array.__setitem__``, which reads, merges and rewrites.
    """

    def __init__(self, array: zarr.Array) -> None:
        self.array = array
        self.codec = self._blosc(array)
        self.chunks = tuple(array.chunks)
        self.root = Path(array.store.root).resolve() / array.path if isinstance(array.store, LocalStore) else None

    @staticmethod
    def _blosc(array: zarr.Array) -> Blosc | None:
        """The array's codec chain as one numcodecs Blosc, or None when it is anything but bytes -> blosc."""
        codecs = getattr(array.metadata, "codecs", ())
        if len(codecs) != 2 or sys.byteorder != "little":
            return None
        raw, comp = codecs
        if not (isinstance(raw, BytesCodec) and isinstance(comp, BloscCodec)):
            return None
        if raw.endian is not None and raw.endian.value != "little":  # one-byte types have no byte order
            return None
        return Blosc(cname=comp.cname.value, clevel=comp.clevel, shuffle=_SHUFFLE[comp.shuffle.value],
                     blocksize=comp.blocksize, typesize=comp.typesize)

    @property
    def direct(self) -> bool:
        """Whether whole chunks bypass zarr (a local store and a plain bytes -> blosc chain)."""
        return self.codec is not None and self.root is not None

    def _whole_chunks(self, start: tuple[int, ...], block: np.ndarray) -> bool:
        return (self.direct and block.dtype == np.dtype(self.array.dtype) and block.ndim == len(self.chunks)
                and all(s % c == 0 and b % c == 0 and s + b <= n
                        for s, b, c, n in zip(start, block.shape, self.chunks, self.array.shape, strict=True)))

    def write(self, start: tuple[int, ...], block: np.ndarray) -> None:
        """Store ``block`` (with the array's number of axes) at index ``start``."""
        if not self._whole_chunks(start, block):
            self.array[tuple(slice(s, s + b) for s, b in zip(start, block.shape, strict=True))] = block
            return
        for grid in np.ndindex(*(b // c for b, c in zip(block.shape, self.chunks, strict=True))):
            part = block[tuple(slice(i * c, (i + 1) * c) for i, c in zip(grid, self.chunks, strict=True))]
            coords = tuple(s // c + i for s, c, i in zip(start, self.chunks, grid, strict=True))
            path = self.root / self.array.metadata.encode_chunk_key(coords)
            path.parent.mkdir(parents=True, exist_ok=True)  # zarr's nested keys: a folder per (step, layer)
            path.write_bytes(self.codec.encode(np.ascontiguousarray(part)))
