"""The AEF int8 quantisation.

Codes q in -127..127 stand for ``sign(q) * (q / 127.5) ** 2``; -128 is no-data in all
bands at once. The map is not linear, so codes must never be interpolated: resample
codes by nearest neighbour only, and average de-quantized values.
"""

from __future__ import annotations

import numpy as np

from .arrays import Array

NODATA = -128
FORMULA = "value = sign(q) * (q / 127.5) ** 2 for int8 code q in -127..127; -128 = no-data"


def _build_lut() -> Array:
    # Indexed by the code's bit pattern as uint8, so that ``LUT[codes.view(np.uint8)]``
    # de-quantizes a whole array in one gather. No-data maps to NaN: masking is explicit.
    codes = np.arange(256, dtype=np.int16)
    codes[codes >= 128] -= 256
    q = codes.astype(np.float64)
    lut = np.sign(q) * (q / 127.5) ** 2
    lut[codes == NODATA] = np.nan
    return np.asarray(lut, dtype=np.float32)


LUT = _build_lut()
LUT.setflags(write=False)

# Same table with no-data mapped to 0.0, for kernels that mask separately and must not
# let NaN leak into sums.
LUT_ZERO = np.nan_to_num(LUT, nan=0.0)
LUT_ZERO.setflags(write=False)


def dequantize(codes: Array, nodata_value: float = np.nan) -> Array:
    """float32 values for int8 codes; no-data becomes ``nodata_value`` (NaN by default)."""
    codes = np.asarray(codes)
    if codes.dtype != np.int8:
        raise TypeError(f"expected int8 codes, got {codes.dtype}")
    table = LUT if np.isnan(nodata_value) else np.where(np.isnan(LUT), nodata_value, LUT)
    return table[codes.view(np.uint8)]


def quantize(values: Array) -> Array:
    """int8 codes for values in [-1, 1]; NaN becomes no-data.

    The inverse of ``dequantize`` on exact code values: ``quantize(dequantize(q)) == q``.
    """
    values = np.asarray(values, dtype=np.float64)
    bad = ~np.isfinite(values)
    clean = np.where(bad, 0.0, values)
    q = np.sign(clean) * np.sqrt(np.abs(clean)) * 127.5
    q = np.clip(np.rint(q), -127, 127).astype(np.int8)
    q[bad] = NODATA
    return np.asarray(q)


def renormalise(vectors: Array, axis: int = 0) -> Array:
    """Unit-length vectors along ``axis``; zero or NaN vectors become NaN."""
    norm = np.sqrt(np.sum(vectors * vectors, axis=axis, keepdims=True))
    with np.errstate(invalid="ignore", divide="ignore"):
        out = vectors / norm
    out[~np.isfinite(out)] = np.nan
    return np.asarray(out)
