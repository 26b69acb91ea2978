"""Planted embeddings for the learning tests: class prototypes plus noise, renormalised.

Like scripts/sample.py's land cover: random unit prototypes in 64 dimensions (nearly
orthogonal), and one pair made confusable (cosine ``overlap`` between their prototypes).
Pixels come in features (a polygon's pixels share the feature's own offset from the class
prototype), so that grouping by feature matters as it does with real polygons.
"""

from __future__ import annotations

import numpy as np

BANDS = 64


def prototypes(classes: int, rng: np.random.Generator, overlap: float = 0.8, bands: int = BANDS) -> np.ndarray:
    """Unit prototypes (classes, bands); the last two have cosine ``overlap``."""
    protos = rng.normal(size=(classes, bands))
    protos /= np.linalg.norm(protos, axis=1, keepdims=True)
    a, r = protos[-2], protos[-1]
    r = r - (r @ a) * a
    r /= np.linalg.norm(r)
    protos[-1] = overlap * a + np.sqrt(1 - overlap**2) * r
    return protos


def draw(
    protos: np.ndarray,
    features_per_class: int,
    pixels_per_feature: int,
    rng: np.random.Generator,
    noise: float = 0.2,
    feature_noise: float = 0.1,
    classes=None,
    codes=None,
    nuisance: np.ndarray | None = None,
    nuisance_sd: float = 0.0,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(X float32 (n, bands) unit rows, class codes (n,), feature ids (n,)).

    ``noise`` and ``feature_noise`` are the expected norms of the pixel's and the feature's
    isotropic Gaussian offsets; ``nuisance`` (m, bands) orthonormal directions along which
    every pixel also varies with standard deviation ``nuisance_sd``. ``codes`` maps class index to code (default 1..C).
    """
    c, bands = protos.shape
    classes = range(c) if classes is None else classes
    codes = np.arange(1, c + 1) if codes is None else np.asarray(codes)
    xs, ys, gs = [], [], []
    gid = 0
    for k in classes:
        for _ in range(features_per_class):
            centre = protos[k] + rng.normal(0.0, feature_noise / np.sqrt(bands), size=bands)
            v = centre + rng.normal(0.0, noise / np.sqrt(bands), size=(pixels_per_feature, bands))
            if nuisance is not None:
                v += rng.normal(0.0, nuisance_sd, size=(pixels_per_feature, nuisance.shape[0])) @ nuisance
            xs.append(v)
            ys.append(np.full(pixels_per_feature, codes[k]))
            gs.append(np.full(pixels_per_feature, gid))
            gid += 1
    X = np.concatenate(xs)
    X /= np.linalg.norm(X, axis=1, keepdims=True)
    return X.astype(np.float32), np.concatenate(ys).astype(np.int64), np.concatenate(gs)


def nuisance_directions(protos: np.ndarray, m: int, rng: np.random.Generator) -> np.ndarray:
    """m orthonormal directions orthogonal to every prototype (variation that tells no class apart)."""
    c, bands = protos.shape
    basis = np.linalg.qr(np.concatenate([protos.T, rng.normal(size=(bands, m))], axis=1))[0]
    return basis[:, c : c + m].T


def real_vectors(path: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A real AEF raster's valid pixels: de-quantized vectors (n, bands) via core.quant.LUT,
    and their rows and columns."""
    import rasterio

    from earth_embeddings.core.quant import LUT, NODATA

    with rasterio.open(path) as ds:
        codes = ds.read()
    valid = ~(codes == NODATA).any(axis=0)
    rows, cols = np.nonzero(valid)
    return LUT[codes[:, rows, cols].view(np.uint8)].T.copy(), rows, cols
