import numpy as np
import rasterio
from rasterio.transform import from_origin

from earth_embeddings.core.geometry import geojson_to_wkt, polygon_area
from earth_embeddings.core.polygons import areas_above
from earth_embeddings.core.source import RasterSource


def write(path, arr, transform=None, nodata=-9999.0):
    transform = transform or from_origin(500000, 4900000, 10, 10)
    with rasterio.open(
        path,
        "w",
        driver="GTiff",
        width=arr.shape[1],
        height=arr.shape[0],
        count=1,
        dtype="float32",
        crs="EPSG:32616",
        transform=transform,
        nodata=nodata,
    ) as ds:
        ds.write(arr.astype("float32")[None])


def test_areas_above_threshold_with_statistics_largest_first(tmp_path):
    a = np.zeros((60, 80), "float32")
    a[5:15, 5:25] = 0.6  # 200 px
    a[5, 5] = 0.9
    a[30:34, 40:44] = 0.4  # 16 px
    a[50, 70] = 0.5  # 1 px speck
    a[40:45, 0:5] = -9999.0  # no-data is never an area
    write(tmp_path / "v.tif", a)
    areas = areas_above(str(tmp_path / "v.tif"), 0.25)
    assert [x.pixel_count for x in areas] == [200, 16, 1]
    assert areas[0].area_m2 == 200 * 100.0
    assert areas[0].max == np.float32(0.9) and abs(areas[0].mean - (199 * 0.6 + 0.9) / 200) < 1e-6
    big = areas_above(str(tmp_path / "v.tif"), 0.25, min_area_m2=1000)
    assert [x.pixel_count for x in big] == [200, 16]
    assert big[0].wkt.startswith("POLYGON ((")


def test_diagonal_neighbours_join_one_area(tmp_path):
    a = np.zeros((10, 10), "float32")
    a[2, 2] = a[3, 3] = a[4, 4] = 1.0
    write(tmp_path / "d.tif", a)
    areas = areas_above(str(tmp_path / "d.tif"), 0.5)
    assert len(areas) == 1 and areas[0].pixel_count == 3


def test_polygon_area_and_wkt():
    geom = {
        "type": "Polygon",
        "coordinates": [[(0, 0), (10, 0), (10, 10), (0, 10), (0, 0)], [(2, 2), (4, 2), (4, 4), (2, 4), (2, 2)]],
    }
    assert polygon_area(geom) == 96.0
    assert geojson_to_wkt(geom).startswith("POLYGON ((0 0, 10 0")


def test_the_native_grid_of_a_bottom_up_raster_is_north_up(tmp_path):
    from affine import Affine

    profile = dict(driver="GTiff", width=30, height=20, count=2, dtype="float32", crs="EPSG:32616")
    with rasterio.open(tmp_path / "bu.tif", "w", transform=Affine(10, 0, 500000, 0, 10, 4900000), **profile) as ds:
        ds.write(np.ones((2, 20, 30), "float32"))  # two bands: an embedding raster
    g = RasterSource(str(tmp_path / "bu.tif")).native_grid()
    assert g.transform.e == -10 and g.bounds == (500000, 4900000, 500300, 4900200)
    assert (g.width, g.height) == (30, 20)
