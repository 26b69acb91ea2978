"""core.zonal against an independent numpy computation, the planted truth and real vectors."""

import math

import numpy as np
import pytest
import rasterio
from core_calls import load as load_embeddings
from core_calls import source as open_source
from core_calls import zonal as zonal_statistics
from zonal_check import centres_inside, expected_stats, sample_zones, to_crs

from earth_embeddings.core.errors import Cancelled, EmbeddingsError
from earth_embeddings.core.geometry import polygon_centroid
from earth_embeddings.core.grid import centre_utm, transformer
from earth_embeddings.core.progress import Progress
from earth_embeddings.core.quant import LUT, NODATA
from earth_embeddings.core.source import RasterSource
from earth_embeddings.core.zonal import compute_zonal, zones_frame
from earth_embeddings.scripts.sample import CLASSES, class_interior_points


class Log(Progress):
    def __init__(self):
        self.infos, self.warnings, self.percent = [], [], []

    def info(self, message):
        self.infos.append(message)

    def warning(self, message):
        self.warnings.append(message)

    def set_progress(self, percent):
        self.percent.append(percent)


# ----------------------------------------------------------------------------- sample collection


@pytest.fixture(scope="module")
def loaded(sample_dir, sample_index, tmp_path_factory):
    """The sample's zones in their UTM zone and the 10 m rasters of both years over them."""
    feats, bbox = sample_zones(sample_dir)
    crs, anchor = centre_utm(bbox, "EPSG:4326"), (0.0, 0.0)
    folder = tmp_path_factory.mktemp("zonal")
    rasters = {}
    for year in (2017, 2024):
        rasters[year] = str(folder / f"emb_{year}.tif")
        load_embeddings(sample_index, year, bbox, "EPSG:4326", rasters[year], target_crs=crs)
    zones = [to_crs(f["geometry"], crs) for f in feats]
    return {"feats": feats, "crs": crs, "anchor": anchor, "zones": zones, "rasters": rasters}


@pytest.mark.parametrize("year,block_px,chunk_blocks", [(2024, 512, 4), (2017, 64, 2), (2024, 40, 3)])
def test_means_and_stds_match_an_independent_computation(sample_index, loaded, year, block_px, chunk_blocks):
    # Small blocks make every zone cross block and chunk boundaries.
    log = Log()
    zones = loaded["zones"]
    src_result = zonal_statistics(sample_index, year, None, zones, loaded["crs"], progress=log)
    src = open_source(sample_index, year)
    res = compute_zonal(src, zones, loaded["crs"], block_px=block_px, chunk_blocks=chunk_blocks)
    src.close()
    assert res.band_names == [f"A{i:02d}" for i in range(64)]
    for r in (src_result, res):
        for i, (feat, zone) in enumerate(zip(loaded["feats"], zones)):
            count, mean, std = expected_stats(loaded["rasters"][year], zone)
            assert count > 0, feat["properties"]["name"]
            assert r.pixel_count[i] == count, feat["properties"]["name"]
            np.testing.assert_allclose(r.mean[i], mean, atol=1e-4, rtol=0)
            np.testing.assert_allclose(r.std[i], std, atol=1e-4, rtol=0)
    names = [f["properties"]["name"] for f in loaded["feats"]]
    assert res.pixel_count[names.index("smaller than a pixel")] == 1
    assert res.std[names.index("smaller than a pixel")].max() == 0
    assert res.centroid_zones == 1 and res.empty_zones == 0
    assert log.percent[-1] == 100.0


def test_the_zone_across_the_seam_pools_pixels_of_both_utm_zones(loaded, sample_index):
    i = [f["properties"]["name"] for f in loaded["feats"]].index("across the seam")
    zone = loaded["zones"][i]
    res = zonal_statistics(sample_index, 2017, None, [zone], loaded["crs"])
    # Independently: which side of 90 W each counted pixel centre lies on.
    with rasterio.open(loaded["rasters"][2017]) as ds:
        t, h, w = ds.transform, ds.height, ds.width
        valid = (ds.read() != NODATA).all(axis=0)
    rows, cols = np.mgrid[0:h, 0:w]
    px, py = t.c + (cols + 0.5) * t.a, t.f + (rows + 0.5) * t.e
    sel = centres_inside(px, py, zone["coordinates"]) & valid
    lon, _ = transformer(loaded["crs"], "EPSG:4326").transform(px[sel], py[sel])
    west, east = int((lon < -90).sum()), int((lon > -90).sum())
    assert west > 1000 and east > 1000
    assert res.pixel_count[0] == west + east  # each pixel once, though tiles overlap at the seam
    ring = np.asarray(zone["coordinates"][0])[:-1]
    area = abs(np.dot(ring[:, 0], np.roll(ring[:, 1], -1)) - np.dot(ring[:, 1], np.roll(ring[:, 0], -1))) / 2
    assert abs(res.pixel_count[0] - area / 100.0) < 0.01 * area / 100.0


def test_a_zone_pools_pixels_weighted_by_count_not_a_mean_of_part_means(loaded, sample_index):
    # A rectangle split into a narrow and a wide part: whole = count-weighted pool of the parts.
    seam = loaded["zones"][[f["properties"]["name"] for f in loaded["feats"]].index("across the seam")]
    xs = [p[0] for p in seam["coordinates"][0]]
    ys = [p[1] for p in seam["coordinates"][0]]
    x0, x1, y0, y1 = min(xs) + 3, max(xs) - 3, min(ys) + 3, max(ys) - 3
    xm = x0 + 0.2 * (x1 - x0)

    def box(a, b):
        return {"type": "Polygon", "coordinates": [[[a, y0], [b, y0], [b, y1], [a, y1], [a, y0]]]}

    res = zonal_statistics(sample_index, 2017, None, [box(x0, x1), box(x0, xm), box(xm, x1)], loaded["crs"])
    n, m, s = res.pixel_count, res.mean.astype(np.float64), res.std.astype(np.float64)
    assert n[0] == n[1] + n[2] and n[2] > 3 * n[1]
    pooled = (n[1] * m[1] + n[2] * m[2]) / n[0]
    np.testing.assert_allclose(m[0], pooled, atol=1e-5)
    assert np.abs(m[0] - (m[1] + m[2]) / 2).max() > 1e-3  # the mean of means would be wrong
    pooled_var = (n[1] * (s[1] ** 2 + m[1] ** 2) + n[2] * (s[2] ** 2 + m[2] ** 2)) / n[0] - pooled**2
    np.testing.assert_allclose(s[0], np.sqrt(pooled_var), atol=1e-4)


def test_overlapping_zones_do_not_steal_pixels_from_each_other(loaded, sample_index):
    z = loaded["zones"][0]
    xs = [p[0] for p in z["coordinates"][0]]
    ys = [p[1] for p in z["coordinates"][0]]
    cx, cy = (min(xs) + max(xs)) / 2, (min(ys) + max(ys)) / 2
    inner = {
        "type": "Polygon",
        "coordinates": [
            [
                [cx - 200, cy - 200],
                [cx + 200, cy - 200],
                [cx + 200, cy + 200],
                [cx - 200, cy + 200],
                [cx - 200, cy - 200],
            ]
        ],
    }
    res = zonal_statistics(sample_index, 2024, None, [z, inner, z], loaded["crs"])
    assert res.pixel_count[1] == 40 * 40
    assert res.pixel_count[0] == res.pixel_count[2] > res.pixel_count[1]
    np.testing.assert_array_equal(res.mean[0], res.mean[2])


def test_zones_in_the_planted_hole_get_no_statistics_and_a_warning(sample_index, truth):
    year = max(truth.years)
    hole = next(h for h in truth.holes if h["year"] == year)
    lon, lat = truth.lonlat_of_local(hole["x"], hole["y"])
    crs = "EPSG:32615" if lon < -90 else "EPSG:32616"
    x, y = transformer("EPSG:4326", crs).transform(float(lon), float(lat))
    d = hole["r"] * 0.4
    in_hole = {
        "type": "Polygon",
        "coordinates": [[[x - d, y - d], [x + d, y - d], [x + d, y + d], [x - d, y + d], [x - d, y - d]]],
    }
    ok = {
        "type": "Polygon",
        "coordinates": [
            [
                [x - d, y + 3 * hole["r"]],
                [x + d, y + 3 * hole["r"]],
                [x, y + 3 * hole["r"] + d],
                [x - d, y + 3 * hole["r"]],
            ]
        ],
    }
    log = Log()
    res = zonal_statistics(sample_index, year, None, [in_hole, ok], crs, progress=log)
    assert res.pixel_count[0] == 0 and np.isnan(res.mean[0]).all() and np.isnan(res.std[0]).all()
    assert res.pixel_count[1] > 0 and np.isfinite(res.mean[1]).all()
    assert res.empty_zones == 1
    assert any("1 of 2 zone(s) have no valid pixel" in w for w in log.warnings)
    before = zonal_statistics(sample_index, min(truth.years), None, [in_hole], crs)
    assert before.pixel_count[0] > 0  # the first year has data there


def test_class_means_match_the_planted_prototypes_and_pc1_separates_classes(sample_index, truth):
    year = min(truth.years)
    protos = np.asarray(truth.prototypes)
    crs = "EPSG:32616"
    to_utm = transformer("EPSG:4326", crs)
    zones, labels = [], []
    for cls in ("water", "urban"):
        c = CLASSES.index(cls)
        for lon, lat in class_interior_points(truth, c, year, 6, margin_m=90, seed=3):
            x, y = to_utm.transform(lon, lat)
            d = 55.0
            zones.append(
                {
                    "type": "Polygon",
                    "coordinates": [[[x - d, y - d], [x + d, y - d], [x + d, y + d], [x - d, y + d], [x - d, y - d]]],
                }
            )
            labels.append(c)
    log = Log()
    res = zonal_statistics(sample_index, year, None, zones, crs, pca_components=2, progress=log)
    labels = np.array(labels)
    for i, c in enumerate(labels):
        m = res.mean[i].astype(np.float64)
        cos = m @ protos[c] / np.linalg.norm(m) / np.linalg.norm(protos[c])
        assert cos > 0.99
        assert 100 <= res.pixel_count[i] <= 121
    pc1 = res.pcs[:, 0]
    water, urban = pc1[labels == CLASSES.index("water")], pc1[labels == CLASSES.index("urban")]
    assert water.max() < urban.min() or urban.max() < water.min()
    assert res.explained[0] > 0.8 and res.explained[0] >= res.explained[1]
    assert any("pc1 explains" in line for line in log.infos)


def test_the_pixel_limit_counts_pixels_read_not_the_zones_bounding_box(sample_index, truth):
    crs = "EPSG:32616"
    w, s, e, n = truth.notes["bbox_wgs84"]
    t = transformer("EPSG:4326", crs)
    corners = [t.transform(w + 0.1 * (e - w), s + 0.1 * (n - s)), t.transform(e - 0.1 * (e - w), n - 0.1 * (n - s))]
    small = [
        {"type": "Polygon", "coordinates": [[[x, y], [x + 30, y], [x + 30, y + 30], [x, y + 30], [x, y]]]}
        for x, y in corners
    ]
    res = zonal_statistics(sample_index, 2017, None, small, crs, max_pixels=100)
    assert res.grid.pixels > 100_000 and res.pixels_read <= 100
    assert (res.pixel_count == 9).all()
    big = [
        {
            "type": "Polygon",
            "coordinates": [
                [
                    [corners[0][0], corners[0][1]],
                    [corners[1][0], corners[0][1]],
                    [corners[1][0], corners[1][1]],
                    [corners[0][0], corners[0][1]],
                ]
            ],
        }
    ]
    with pytest.raises(EmbeddingsError, match="pixels read at 10 m, above the limit of 100 pixels"):
        zonal_statistics(sample_index, 2017, None, big, crs, max_pixels=100)


def test_zones_off_the_coverage_are_a_clear_error(sample_index):
    far = {"type": "Polygon", "coordinates": [[[500000, 100000], [500100, 100000], [500100, 100100], [500000, 100000]]]}
    with pytest.raises(EmbeddingsError, match="None of the zones lies on the coverage"):
        zonal_statistics(sample_index, 2017, None, [far], "EPSG:32616")


def test_bad_zones_are_clear_errors(sample_index):
    with pytest.raises(EmbeddingsError, match="no zones"):
        zonal_statistics(sample_index, 2017, None, [], "EPSG:32616")
    with pytest.raises(EmbeddingsError, match="Zone 1 is a LineString, not a polygon"):
        zonal_statistics(
            sample_index, 2017, None, [{"type": "LineString", "coordinates": [[0, 0], [1, 1]]}], "EPSG:32616"
        )
    sq = {"type": "Polygon", "coordinates": [[[0, 0], [10, 0], [10, 10], [0, 0]]]}
    with pytest.raises(EmbeddingsError, match="geographic"):
        zonal_statistics(sample_index, 2017, None, [sq], "EPSG:4326")


def test_cancel_stops_the_run(sample_index, loaded):
    class CancelAfterStart(Progress):
        started = False

        def set_progress(self, percent):
            self.started = self.started or percent > 3  # the first block is done

        def is_cancelled(self):
            return self.started

    src = open_source(sample_index, 2024)
    progress = CancelAfterStart()
    with pytest.raises(Cancelled):
        compute_zonal(src, loaded["zones"], loaded["crs"], progress=progress, block_px=64)
    assert progress.started


def test_centroid_of_polygons_with_holes_and_parts():
    outer = [[0, 0], [10, 0], [10, 10], [0, 10], [0, 0]]
    hole = [[0, 0], [5, 0], [5, 10], [0, 10], [0, 0]]
    poly = [[np.array(outer, float), np.array(hole, float)]]
    assert polygon_centroid(poly) == pytest.approx((7.5, 5.0))
    two = [[np.array(outer, float)], [np.array([[20, 0], [30, 0], [30, 10], [20, 10], [20, 0]], float)]]
    assert polygon_centroid(two) == pytest.approx((15.0, 5.0))


# ----------------------------------------------------------------------------- real vectors


def wisconsin_zones(raster):
    with rasterio.open(raster) as ds:
        b = ds.bounds
    # Off the pixel lattice, so that no pixel centre lies exactly on an edge (a tie).
    cx, cy = (b.left + b.right) / 2 + 1.37, (b.bottom + b.top) / 2 + 2.71

    def pt(dx, dy):
        return [cx + dx, cy + dy]

    pentagon = [pt(-300, -200), pt(120, -330), pt(410, 10), pt(90, 380), pt(-270, 150), pt(-300, -200)]
    triangle = [pt(-480, -480), pt(-100, -470), pt(-460, -90), pt(-480, -480)]
    outer = [pt(100, -480), pt(490, -480), pt(490, -100), pt(100, -100), pt(100, -480)]
    hole = [pt(200, -380), pt(380, -380), pt(380, -200), pt(200, -200), pt(200, -380)]
    sliver = [pt(-7, 300), pt(7, 300), pt(7, 302), pt(-7, 302), pt(-7, 300)]
    return [
        {"type": "Polygon", "coordinates": [pentagon]},
        {"type": "Polygon", "coordinates": [triangle]},
        {"type": "Polygon", "coordinates": [outer, hole]},
        {"type": "MultiPolygon", "coordinates": [[triangle], [pentagon]]},
        {"type": "Polygon", "coordinates": [sliver]},
    ]


def test_real_wisconsin_vectors_match_the_independent_computation(wisconsin_raster):
    zones = wisconsin_zones(wisconsin_raster)
    with rasterio.open(wisconsin_raster) as ds:
        b = ds.bounds
        crs = ds.crs.to_string()
    got_crs, _ = zones_frame(RasterSource(wisconsin_raster), (b.left, b.bottom, b.right, b.top), crs)
    assert got_crs == crs
    res = zonal_statistics(None, None, wisconsin_raster, zones, crs, pca_components=2)
    for i, zone in enumerate(zones):
        count, mean, std = expected_stats(wisconsin_raster, zone)
        assert res.pixel_count[i] == count and count > 0
        np.testing.assert_allclose(res.mean[i], mean, atol=1e-4, rtol=0)
        np.testing.assert_allclose(res.std[i], std, atol=1e-4, rtol=0)
    # The multipolygon holds the triangle's and the pentagon's pixels (they do not overlap).
    assert res.pixel_count[3] == res.pixel_count[0] + res.pixel_count[1]
    assert res.pixel_count[4] == 1  # a 14 x 2 m sliver with no centre inside
    # Real AEF means are close to, but shorter than, unit vectors.
    norms = np.linalg.norm(res.mean[:4].astype(np.float64), axis=1)
    assert ((norms > 0.3) & (norms < 1.01)).all()


def test_a_float_raster_off_the_10_m_lattice_is_read_on_its_own_pixels(wisconsin_raster, tmp_path):
    # De-quantized values as float32, origin shifted by 3 m, a NaN patch: zones_frame anchors the
    # grid on the raster's lattice, so every pixel is its own (no resampling).
    with rasterio.open(wisconsin_raster) as ds:
        codes = ds.read()
        profile = ds.profile
        t = ds.transform
    values = LUT[codes.view(np.uint8)]
    values[:, 40:50, 40:50] = np.nan
    profile.update(dtype="float32", nodata=float("nan"), transform=t * t.translation(0.3, 0.0))
    path = tmp_path / "float.tif"
    with rasterio.open(path, "w", **profile) as ds:
        ds.write(values)
    zones = wisconsin_zones(str(path))
    with rasterio.open(path) as ds:
        b, crs = ds.bounds, ds.crs.to_string()
    src = RasterSource(str(path))
    _, anchor = zones_frame(src, (b.left, b.bottom, b.right, b.top), crs)
    assert anchor[0] % 10 == pytest.approx(3.0)
    res = compute_zonal(src, zones, crs, anchor=anchor, block_px=32, chunk_blocks=2)
    src.close()
    for i, zone in enumerate(zones):
        count, mean, std = expected_stats(str(path), zone)
        assert res.pixel_count[i] == count
        np.testing.assert_allclose(res.mean[i], mean, atol=1e-4, rtol=0)
        np.testing.assert_allclose(res.std[i], std, atol=1e-4, rtol=0)
    assert math.isfinite(float(res.mean[0, 0]))


def test_a_tessellation_gives_every_pixel_to_exactly_one_zone(wisconsin_raster):
    # Jittered quadrilaterals sharing edges (like census blocks): their boxes overlap, their
    # pixels must not; mixed with one zone overlapping several others.
    with rasterio.open(wisconsin_raster) as ds:
        b, crs = ds.bounds, ds.crs.to_string()
    rng = np.random.default_rng(5)
    k = 7
    xs, ys = np.meshgrid(
        np.linspace(b.left + 3.3, b.right - 4.1, k + 1), np.linspace(b.top - 2.2, b.bottom + 3.7, k + 1)
    )
    xs[1:-1, 1:-1] += rng.uniform(-40, 40, (k - 1, k - 1))
    ys[1:-1, 1:-1] += rng.uniform(-40, 40, (k - 1, k - 1))
    zones = []
    for j in range(k):
        for i in range(k):
            ring = [(xs[j, i], ys[j, i]), (xs[j, i + 1], ys[j, i + 1]), (xs[j + 1, i + 1], ys[j + 1, i + 1])]
            ring += [(xs[j + 1, i], ys[j + 1, i]), (xs[j, i], ys[j, i])]
            zones.append({"type": "Polygon", "coordinates": [[list(map(float, p)) for p in ring]]})
    cx, cy = (b.left + b.right) / 2 + 0.7, (b.bottom + b.top) / 2 + 0.9
    zones.append(
        {
            "type": "Polygon",
            "coordinates": [[[cx - 260, cy - 260], [cx + 260, cy - 260], [cx, cy + 300], [cx - 260, cy - 260]]],
        }
    )
    src = RasterSource(wisconsin_raster)
    anchor = zones_frame(src, (b.left, b.bottom, b.right, b.top), crs)[1]
    res = compute_zonal(src, zones, crs, anchor=anchor, block_px=32, chunk_blocks=2)
    src.close()
    outline = {
        "type": "Polygon",
        "coordinates": [
            [
                [xs[0, 0], ys[0, 0]],
                [xs[0, -1], ys[0, -1]],
                [xs[-1, -1], ys[-1, -1]],
                [xs[-1, 0], ys[-1, 0]],
                [xs[0, 0], ys[0, 0]],
            ]
        ],
    }
    assert res.pixel_count[:-1].sum() == expected_stats(wisconsin_raster, outline)[0]
    for i, zone in enumerate(zones):
        count, mean, std = expected_stats(wisconsin_raster, zone)
        assert res.pixel_count[i] == count
        np.testing.assert_allclose(res.mean[i], mean, atol=1e-4, rtol=0)
        np.testing.assert_allclose(res.std[i], std, atol=1e-4, rtol=0)
