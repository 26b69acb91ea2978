"""A block of embeddings on the target grid, and the chunk size the block kernels share."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .arrays import Array
from .grid import Window
from .quant import LUT, quantize, renormalise

# Pixels per kernel step: 64 bands x 16384 px of float32 = 4 MB per temporary, cache-sized.
CHUNK_PIXELS = 16384


@dataclass
class Block:
    """Embeddings for one window of the target grid.

    ``data`` is (bands, h, w): int8 codes with -128 where invalid when ``quantised``,
    else float32 with NaN where invalid. ``valid`` is (h, w).
    """

    window: Window
    data: Array
    valid: Array
    quantised: bool

    def release(self) -> None:
        """Drop the arrays (the pipeline does so once the loop asks for the next window, so
        that at most the window being computed and the one read ahead are in memory)."""
        self.data = np.empty(self.data.shape[:1] + (0, 0), dtype=self.data.dtype)
        self.valid = np.zeros((0, 0), dtype=bool)

    def values(self) -> Array:
        """float32 (bands, h, w), NaN where invalid."""
        if self.quantised:
            return np.asarray(LUT[self.data.view(np.uint8)])
        return self.data

    def chunk_values(self, flat_slice: slice) -> Array:
        """float32 (bands, n) of a run of the block's pixels in row-major order: a copy, so that
        kernels may work on it in place (codes through the LUT, NaN for no-data)."""
        data = self.data.reshape(self.data.shape[0], -1)[:, flat_slice]
        if self.quantised:
            return np.take(LUT, data.view(np.uint8))
        return data.astype(np.float32)

    def chunk_directions(self, flat_slice: slice) -> Array:
        """float32 (bands, n) proportional to ``chunk_values`` pixel by pixel, for kernels that
        need only directions (cosines): codes q give q * |q| (the value times 127.5 squared,
        exact in float32, and cheaper than the table lookup), no-data codes give -16384
        (masked by ``valid``); float data is returned as it is."""
        data = self.data.reshape(self.data.shape[0], -1)[:, flat_slice]
        if not self.quantised:
            return data.astype(np.float32)
        v = data.astype(np.float32)
        v *= np.abs(v)
        return v

    def unit_vectors(self) -> Array:
        """float32 (n_valid, bands): the valid pixels' vectors renormalised to unit length."""
        if self.quantised:
            v = LUT[self.data[:, self.valid].view(np.uint8)].T
        else:
            v = self.data[:, self.valid].T
        v = np.ascontiguousarray(v, dtype=np.float32)
        norm = np.sqrt(np.einsum("ij,ij->i", v, v))
        norm[norm == 0] = 1.0
        v /= norm[:, None]
        return v

    def codes(self) -> Array:
        """int8 codes (bands, h, w), quantising float data if needed (renormalised first: codes
        stand for unit vectors, and other products' vectors need not be unit length)."""
        if self.quantised:
            return self.data
        return quantize(renormalise(self.data, axis=0))
