"""A PCA RGB view of an embedding raster: its first three principal components, stretched.

Embeddings have no natural colours; the usual way to look at them is to project every pixel
on the three directions along which the extent's embeddings vary most and show those as red,
green and blue. The components are the extent's own (computed from its pixels), so colours
compare places within one view, not between views.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .arrays import Array
from .errors import EmbeddingsError
from .grid import Window, north_up_grid
from .output import open_rgb_output
from .progress import Progress
from .quant import LUT, NODATA

SAMPLE_PIXELS = 200_000  # pixels kept for the stretch percentiles
LOW, HIGH = 2.0, 98.0  # percentiles mapped to 1 and 255
PCA_NODATA = 0


@dataclass
class PcaResult:
    path: str
    explained: list[float]  # share of the variance of each of the three components


def _vectors(codes: Array, quantised: bool) -> tuple[Array, Array]:
    """(valid mask (h, w), de-quantized vectors (n_valid, bands)) of a block of codes."""
    if quantised:
        valid = codes[0] != NODATA
        values = LUT[codes[:, valid].view(np.uint8)].T
    else:
        values = codes.astype(np.float64)
        valid = np.isfinite(values).all(axis=0)
        values = values[:, valid].T
    return valid, np.asarray(values, dtype=np.float64)


def write_pca_rgb(embeddings: str, output: str, progress: Progress | None = None) -> PcaResult:
    """Write ``output``: a 3-band uint8 GeoTIFF (0 = no-data) of the first three principal
    components of the embedding raster ``embeddings``, each stretched from its 2nd to its 98th
    percentile over the raster. Two passes over the raster, one block of memory."""
    import rasterio

    progress = progress or Progress()
    with rasterio.open(embeddings) as ds:
        if ds.count < 3:
            raise EmbeddingsError(
                f"The raster {embeddings} has {ds.count} bands; a PCA view needs an embedding raster."
            )
        grid = north_up_grid(ds.crs.to_string(), ds.transform, ds.width, ds.height, embeddings)
        quantised = ds.dtypes[0] == "int8"
        bands = ds.count
        blocks = list(grid.blocks())
        total = np.zeros(bands)
        outer = np.zeros((bands, bands))
        count = 0
        samples: list[Array] = []
        step = max(1, grid.pixels // SAMPLE_PIXELS)
        for i, w in enumerate(blocks):
            progress.check_cancelled()
            _, v = _vectors(
                ds.read(window=((w.row_off, w.row_off + w.height), (w.col_off, w.col_off + w.width))), quantised
            )
            total += v.sum(axis=0)
            outer += v.T @ v
            count += len(v)
            samples.append(v[::step])
            progress.set_progress(50.0 * (i + 1) / len(blocks))
        if count < 3:
            raise EmbeddingsError(
                "The embeddings have too few pixels with data for a PCA view; choose a larger extent."
            )
        mean = total / count
        cov = outer / count - np.outer(mean, mean)
        eigenvalues, eigenvectors = np.linalg.eigh(cov)
        order = np.argsort(eigenvalues)[::-1][:3]
        components = eigenvectors[:, order]
        # A component's sign is arbitrary: fix it so that the same data gives the same colours.
        components *= np.sign(components[np.argmax(np.abs(components), axis=0), range(3)])
        explained = [float(e) for e in eigenvalues[order] / max(float(eigenvalues.sum()), 1e-12)]
        projected = (np.concatenate(samples) - mean) @ components
        low = np.percentile(projected, LOW, axis=0)
        high = np.percentile(projected, HIGH, axis=0)
        span = np.where(high > low, high - low, 1.0)
        tags = {"PCA_EXPLAINED": ",".join(f"{e:.4f}" for e in explained), "PCA_SOURCE": str(embeddings)}
        names = [f"PC{i + 1} ({100 * e:.0f} % of the variance)" for i, e in enumerate(explained)]
        with open_rgb_output(output, grid, names, PCA_NODATA, tags) as out:
            for i, w in enumerate(blocks):
                progress.check_cancelled()
                window = ((w.row_off, w.row_off + w.height), (w.col_off, w.col_off + w.width))
                valid, v = _vectors(ds.read(window=window), quantised)
                rgb = np.zeros((3, w.height, w.width), dtype=np.uint8)
                scaled = np.clip(((v - mean) @ components - low) / span, 0.0, 1.0) * 254.0 + 1.0
                rgb[:, valid] = np.round(scaled.T).astype(np.uint8)
                out.write(rgb, Window(w.col_off, w.row_off, w.width, w.height))
                progress.set_progress(50.0 + 50.0 * (i + 1) / len(blocks))
    progress.info(
        "PCA view: the three components explain "
        + ", ".join(f"{100 * e:.0f} %" for e in explained)
        + " of the variance of the extent's embeddings."
    )
    return PcaResult(str(output), explained)
