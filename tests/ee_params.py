"""Parameter values as Processing and qgis_process take them."""


def extent_param(bounds, crs="EPSG:4326"):
    """(west, south, east, north) as a Processing extent: "xmin,xmax,ymin,ymax [CRS]"."""
    w, s, e, n = bounds
    return f"{w},{e},{s},{n} [{crs}]"
