import numpy as np
import pytest

from earth_embeddings.core.quant import LUT, NODATA, dequantize, quantize, renormalise


def test_dequantize_matches_formula_for_every_code():
    codes = np.arange(-127, 128, dtype=np.int16).astype(np.int8)
    expected = np.sign(codes.astype(float)) * (codes.astype(float) / 127.5) ** 2
    assert np.allclose(dequantize(codes), expected, atol=1e-7)


def test_nodata_is_nan_not_minus_one():
    # The formula would map -128 to about -1.008, which looks like a valid value.
    assert np.isnan(dequantize(np.array([NODATA], dtype=np.int8))[0])
    assert np.isnan(LUT[np.array([NODATA], np.int8).view(np.uint8)][0])


def test_quantize_inverts_dequantize_exactly():
    codes = np.arange(-127, 128, dtype=np.int16).astype(np.int8)
    assert np.array_equal(quantize(dequantize(codes)), codes)
    assert quantize(np.array([np.nan]))[0] == NODATA


def test_dequantize_refuses_other_types():
    with pytest.raises(TypeError):
        dequantize(np.zeros(3, dtype=np.int16))


def test_renormalise_unit_length_and_zero_vectors():
    v = np.array([[3.0, 0.0], [4.0, 0.0]])
    out = renormalise(v, axis=0)
    assert np.allclose(out[:, 0], [0.6, 0.8])
    assert np.isnan(out[:, 1]).all()
