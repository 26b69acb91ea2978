"""The core's request-based calls in the keyword style the core tests read best.

Each helper builds the request an algorithm would build and makes the same core call.
"""

from __future__ import annotations

from earth_embeddings.core.change import DEFAULT_MIN_AREA_M2, DEFAULT_THRESHOLD, ChangeRequest, change_map
from earth_embeddings.core.grid import DEFAULT_BLOCK, DEFAULT_MAX_PIXELS, GridSpec
from earth_embeddings.core.load import LoadRequest, load_embeddings
from earth_embeddings.core.similarity import SimilarityRequest, similarity_map
from earth_embeddings.core.source import SourceSpec, open_source
from earth_embeddings.core.trajectory import TrajectoryRequest, trajectory_map
from earth_embeddings.core.zonal import ZonalRequest, zonal_statistics


def source(collection=None, year=None, raster=None):
    """An open source: a collection year, or a raster."""
    return open_source(SourceSpec(collection, year, raster))


def load(
    collection, year, extent, extent_crs, output, target_crs=None, resolution_m=10.0, max_pixels=DEFAULT_MAX_PIXELS
):
    grid = GridSpec(extent, extent_crs, target_crs, resolution_m, max_pixels)
    return load_embeddings(LoadRequest(SourceSpec(collection, year), grid, str(output)))


def change(
    output,
    source=None,
    year_a=None,
    year_b=None,
    extent=None,
    extent_crs=None,
    target_crs=None,
    resolution_m=10.0,
    input_a=None,
    input_b=None,
    threshold=DEFAULT_THRESHOLD,
    min_area_m2=DEFAULT_MIN_AREA_M2,
    max_pixels=DEFAULT_MAX_PIXELS,
    progress=None,
    block_size=DEFAULT_BLOCK,
):
    grid = GridSpec(extent, extent_crs, target_crs, resolution_m, max_pixels)
    request = ChangeRequest(
        str(output), grid, source, year_a, year_b, input_a, input_b, threshold, min_area_m2, block_size
    )
    return change_map(request, progress)


def similarity(
    exemplars,
    output,
    source=None,
    year=None,
    input_path=None,
    extent=None,
    extent_crs=None,
    target_crs=None,
    resolution_m=10.0,
    negatives=(),
    aggregate="mean",
    top_k=0,
    min_separation_m=100.0,
    threshold=None,
    max_pixels=DEFAULT_MAX_PIXELS,
    use_faiss=None,
    block_size=DEFAULT_BLOCK,
    progress=None,
):
    request = SimilarityRequest(
        exemplars=list(exemplars),
        output=str(output),
        source=SourceSpec(source, year, input_path),
        grid=GridSpec(extent, extent_crs, target_crs, resolution_m, max_pixels),
        negatives=list(negatives or ()),
        aggregate=aggregate,
        top_k=top_k,
        min_separation_m=min_separation_m,
        threshold=threshold,
        use_faiss=use_faiss,
        block_size=block_size,
    )
    return similarity_map(request, progress)


def zonal(
    collection,
    year,
    input_path,
    zones,
    crs,
    resolution_m=10.0,
    max_pixels=DEFAULT_MAX_PIXELS,
    pca_components=0,
    progress=None,
):
    """Zones given in ``crs`` and computed in ``crs`` (on an input raster's lattice in its CRS)."""
    request = ZonalRequest(
        SourceSpec(collection, year, input_path), list(zones), crs, crs, resolution_m, max_pixels, pca_components
    )
    return zonal_statistics(request, progress)


def trajectory(
    output,
    output_year,
    source=None,
    years=None,
    baseline_years=None,
    extent=None,
    extent_crs=None,
    target_crs=None,
    resolution_m=10.0,
    inputs=(),
    threshold=DEFAULT_THRESHOLD,
    max_pixels=DEFAULT_MAX_PIXELS,
    progress=None,
    block_size=DEFAULT_BLOCK,
    **outputs,
):
    """``outputs``: output_magnitude, output_step_year, output_anomaly, report (paths)."""
    request = TrajectoryRequest(
        output=str(output),
        output_year=str(output_year),
        grid=GridSpec(extent, extent_crs, target_crs, resolution_m, max_pixels),
        collection=source,
        years=years,
        baseline_years=baseline_years,
        inputs=tuple(str(p) for p in inputs),
        threshold=threshold,
        block_size=block_size,
        **{k: (str(v) if v else None) for k, v in outputs.items()},
    )
    return trajectory_map(request, progress)
