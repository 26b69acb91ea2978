"""Everything that computes, with no ``qgis`` import.

The modules here use numpy, rasterio, pyproj, requests and (optionally) faiss only,
so they run under a plain Python as well as inside QGIS:

- ``collection``: the tile index of an AEF-style collection (local, mirror, public).
- ``remote``: cached, revalidated downloads over HTTP.
- ``grid``: the target grid for an extent (CRS, snapped transform, blocks).
- ``reader``: windowed, mosaicking reads of embeddings onto a target grid.
- ``quant``: the AEF int8 quantisation.
- ``output``: GeoTIFF writers that only ever leave complete files behind.
- ``load``: the "load embeddings for an extent" operation.
- ``zonal``: embedding statistics per polygon (mean, std, pixel count) and PCA of the means.
"""
