"""The reader against the generator's truth: flips, seams, no-data, reprojection."""

import numpy as np
import pytest
import rasterio
from core_calls import load as load_embeddings
from core_calls import source as open_source

from earth_embeddings.core.errors import EmbeddingsError
from earth_embeddings.core.grid import grid_for_extent, transformer
from earth_embeddings.core.pipeline import stream, windows_for
from earth_embeddings.core.progress import Progress
from earth_embeddings.core.quant import LUT, NODATA
from earth_embeddings.core.source import RasterSource


def expected_on_grid(truth, crs, xs, ys, year):
    """Codes the mosaic must give at points: the target zone's pixel where it has one,
    else the other zone's (computed from the generator's formula, not from the files)."""
    exp = np.full((64, len(xs)), NODATA, np.int8)
    done = np.zeros(len(xs), bool)
    for zone in sorted(truth.zones, key=lambda z: truth.zones[z]["crs"] != crs):
        zcrs = truth.zones[zone]["crs"]
        zx, zy = transformer(crs, zcrs).transform(xs, ys)
        zx, zy = np.asarray(zx), np.asarray(zy)
        cov = truth.covered(zone, zx, zy) & ~done
        codes = truth.expected_codes(zone, zx[cov], zy[cov], year)
        ok = ~(codes == NODATA).any(axis=0)
        idx = np.nonzero(cov)[0][ok]
        exp[:, idx] = codes[:, ok]
        done[idx] = True
    return exp


def read_all(path):
    with rasterio.open(path) as ds:
        return ds.read(), ds.transform, ds.crs.to_string(), ds


def centres(transform, shape):
    rows, cols = np.indices(shape)
    return (transform.c + (cols.ravel() + 0.5) * transform.a, transform.f + (rows.ravel() + 0.5) * transform.e)


@pytest.mark.parametrize("crs", ["EPSG:32616", "EPSG:32615", "EPSG:3857"])
def test_values_equal_truth_everywhere_in_any_crs(sample_index, truth, tmp_path, crs):
    out = tmp_path / "emb.tif"
    load_embeddings(sample_index, 2024, truth.notes["bbox_wgs84"], "EPSG:4326", str(out), target_crs=crs)
    codes, transform, _, _ = read_all(out)
    xs, ys = centres(transform, codes.shape[1:])
    exp = expected_on_grid(truth, crs, xs, ys, 2024)
    got = codes.reshape(64, -1)
    assert np.array_equal(got, exp), f"{(got != exp).any(axis=0).sum()} pixels differ"


def test_classes_at_known_points_catch_flipped_rows(sample_index, truth, tmp_path):
    # A flipped read would put the north's land cover in the south.
    out = tmp_path / "emb.tif"
    load_embeddings(sample_index, 2017, truth.notes["bbox_wgs84"], "EPSG:4326", str(out))
    codes, transform, crs, _ = read_all(out)
    values = LUT[codes.view(np.uint8)].reshape(64, -1)
    xs, ys = centres(transform, codes.shape[1:])
    lon, lat = transformer(crs, "EPSG:4326").transform(xs, ys)
    cls = truth.class_at(lon, lat, 2017)
    valid = np.isfinite(values).all(axis=0)
    protos = np.asarray(truth.prototypes)
    best = np.argmax(protos @ np.nan_to_num(values), axis=0)
    # cropland and cropland_b are confusable by design: compare with 0.8-cos tolerance.
    assert (best == cls)[valid].mean() > 0.97
    flipped = codes[:, ::-1, :]
    fvalues = LUT[flipped.view(np.uint8)].reshape(64, -1)
    fbest = np.argmax(protos @ np.nan_to_num(fvalues), axis=0)
    fvalid = np.isfinite(fvalues).all(axis=0) & valid
    assert (fbest == cls)[fvalid].mean() < 0.7


def test_no_gaps_along_the_zone_seam(sample_index, truth, tmp_path):
    # A strip 600 m wide centred on the seam, read in both zones' CRS: every pixel has data
    # (the planted hole is elsewhere).
    lat0 = truth.lat0
    extent = (-90.003, lat0 - 0.005, -89.997, lat0 + 0.005)
    for crs in ("EPSG:32615", "EPSG:32616"):
        out = tmp_path / f"seam_{crs[5:]}.tif"
        load_embeddings(sample_index, 2024, extent, "EPSG:4326", str(out), target_crs=crs)
        codes, transform, _, _ = read_all(out)
        xs, ys = centres(transform, codes.shape[1:])
        lon, lat = transformer(crs, "EPSG:4326").transform(xs, ys)
        assert not truth.hole_at(lon, lat, 2024).any()
        valid = ~(codes == NODATA).any(axis=0)
        assert valid.all(), f"{(~valid).sum()} empty pixels along the seam in {crs}"


def test_nodata_hole_stays_nodata_and_nothing_else_is(sample_index, truth, tmp_path):
    out = tmp_path / "emb.tif"
    load_embeddings(sample_index, 2024, truth.notes["bbox_wgs84"], "EPSG:4326", str(out), target_crs="EPSG:32616")
    codes, transform, crs, _ = read_all(out)
    xs, ys = centres(transform, codes.shape[1:])
    lon, lat = transformer(crs, "EPSG:4326").transform(xs, ys)
    nodata = (codes == NODATA).all(axis=0).ravel()
    partial = ((codes == NODATA).any(axis=0) & ~(codes == NODATA).all(axis=0)).ravel()
    expected_nodata = (expected_on_grid(truth, crs, xs, ys, 2024) == NODATA).all(axis=0)
    hole = truth.hole_at(lon, lat, 2024)
    assert hole.sum() > 100
    assert np.array_equal(nodata, expected_nodata)
    # The hole's interior (one pixel in from its edge, where zones may differ) is no-data.
    x, y = truth.local_xy(lon, lat)
    h = truth.holes[0]
    interior = (x - h["x"]) ** 2 + (y - h["y"]) ** 2 <= (h["r"] - 15.0) ** 2
    assert interior.sum() > 100 and nodata[interior].all()
    assert not partial.any()
    # Outside coverage is no-data too, and never the valid code 0 in all bands.
    assert not (codes == 0).all(axis=0).any()


def test_reprojection_never_turns_nodata_into_zero(sample_index, truth, tmp_path):
    # The int8 warp trap: GDAL 3.6 fills outside the source with 0, a valid code.
    w, s, e, n = truth.notes["bbox_wgs84"]
    extent = (w - 0.01, s - 0.01, e + 0.01, n + 0.01)  # past the coverage on every side
    out = tmp_path / "emb3857.tif"
    load_embeddings(sample_index, 2024, extent, "EPSG:4326", str(out), target_crs="EPSG:3857")
    codes, _, _, _ = read_all(out)
    outside = (codes == NODATA).all(axis=0)
    assert outside[0, :].all() and outside[-1, :].all() and outside[:, 0].all() and outside[:, -1].all()
    zeros = (codes == 0).sum(axis=0)
    assert zeros.max() < 20  # a valid vector has a few zero codes at most, never 64


def test_output_format(sample_index, truth, tmp_path):
    out = tmp_path / "emb.tif"
    load_embeddings(sample_index, 2024, truth.notes["bbox_wgs84"], "EPSG:4326", str(out))
    with rasterio.open(out) as ds:
        assert ds.count == 64 and ds.dtypes[0] == "int8" and ds.nodata == NODATA
        assert ds.descriptions == tuple(f"A{i:02d}" for i in range(64))
        assert ds.transform.e < 0  # north-up
        assert "sign(q)" in ds.tags()["AEF_QUANTIZATION"]
        assert ds.profile.get("tiled") and ds.profile.get("compress", "").lower() in ("zstd", "deflate")
    assert not list(tmp_path.glob(".*partial*"))


def fine_average(fine_codes, f):
    fv = LUT[fine_codes.view(np.uint8)].astype(np.float64)
    b, h, w = fv.shape
    valid = np.isfinite(fv).all(axis=0).reshape(h // f, f, w // f, f).all(axis=(1, 3))
    mean = np.nan_to_num(fv).reshape(b, h // f, f, w // f, f).mean(axis=(2, 4))
    return mean / np.linalg.norm(mean, axis=0, keepdims=True), valid


def coarse_vs_fine(sample_index, tmp_path, ext, res):
    from earth_embeddings.core.grid import grid_for_extent

    fine, coarse = tmp_path / "fine.tif", tmp_path / f"coarse{res}.tif"
    load_embeddings(sample_index, 2017, ext, "EPSG:32615", str(fine), target_crs="EPSG:32615", resolution_m=10)
    load_embeddings(sample_index, 2017, ext, "EPSG:32615", str(coarse), target_crs="EPSG:32615", resolution_m=res)
    f = int(res // 10)
    fc, c = read_all(fine)[0], read_all(coarse)[0]
    assert c.shape[1:] == (fc.shape[1] // f, fc.shape[2] // f)
    mean, valid = fine_average(fc, f)
    cv = LUT[c.view(np.uint8)].astype(np.float64)
    cos = (mean * cv).sum(axis=0) / np.linalg.norm(cv, axis=0)
    g = grid_for_extent(ext, "EPSG:32615", "EPSG:32615", res)
    with open_source(sample_index, 2017).reader(g) as reader:
        level = reader.plan.level_factor
    return cos, valid, np.linalg.norm(cv, axis=0), level


def test_coarser_resolution_averages_native_pixels_across_unaligned_tiles(sample_index, tmp_path):
    # Spans all four 15N tiles; the overlapping ones are shifted by 1860 m, so their 1/4
    # overviews (40 m) do not line up with the grid; their 1/2 overviews (20 m) do.
    cos, valid, norms, level = coarse_vs_fine(sample_index, tmp_path, (735360, 4924400, 739040, 4928120), 40)
    assert level == 2
    assert valid.sum() > 1000
    assert cos[valid].min() > 0.99  # two int8 quantisations (overview, output)
    assert np.all(np.abs(norms[valid] - 1) < 0.02)


def test_coarser_resolution_uses_aligned_overviews(sample_index, truth, tmp_path):
    # Inside the first 15N tile, whose origin is on multiples of 80 m: overview 1/4 is used.
    w, s, _, _ = truth.zones["15N"]["tiles"][0]
    cos, valid, norms, level = coarse_vs_fine(sample_index, tmp_path, (w + 80, s + 80, w + 1680, s + 1680), 40)
    assert level == 4
    assert valid.sum() > 1000
    assert cos[valid].min() > 0.99
    assert np.all(np.abs(norms[valid] - 1) < 0.02)


def test_same_result_from_gpkg_index(sample_dir, truth, tmp_path):
    a = tmp_path / "a.tif"
    b = tmp_path / "b.tif"
    ext = truth.notes["bbox_wgs84"]
    load_embeddings(str(sample_dir / "aef_index.csv"), 2017, ext, "EPSG:4326", str(a))
    load_embeddings(str(sample_dir / "aef_index.gpkg"), 2017, ext, "EPSG:4326", str(b))
    assert np.array_equal(read_all(a)[0], read_all(b)[0])


def test_real_wisconsin_vectors_round_trip_through_a_collection(wisconsin_raster, wisconsin_collection, tmp_path):
    out = tmp_path / "wi.tif"
    with rasterio.open(wisconsin_raster) as ds:
        ref = ds.read()
        b = ds.bounds
        crs = ds.crs.to_string()
    # The collection crops to a multiple of 4 rows/cols from the north-west corner.
    ext = (b.left, b.top - 100 * 10, b.left + 100 * 10, b.top)
    load_embeddings(wisconsin_collection, 2024, ext, crs, str(out), target_crs=crs)
    got, _, _, _ = read_all(out)
    assert got.shape == (64, 100, 100)
    assert np.array_equal(got, ref[:, :100, :100])
    vals = LUT[got.view(np.uint8)]
    norms = np.sqrt(np.nansum(vals**2, axis=0))[np.isfinite(vals).all(axis=0)]
    assert 0.98 < norms.min() and norms.max() < 1.02


def test_raster_source_reads_a_plain_raster_and_resamples(wisconsin_raster, tmp_path):
    src = RasterSource(wisconsin_raster)
    with rasterio.open(wisconsin_raster) as ds:
        ref = ds.read()
        b = ds.bounds
    g = grid_for_extent((b.left, b.bottom, b.right, b.top), "EPSG:32616", "EPSG:32616", 10)
    with src.reader(g) as reader:
        blk = reader.read(next(iter(g.blocks(512))))
    assert np.array_equal(blk.data, ref)
    assert blk.valid.sum() == (~(ref == NODATA).any(axis=0)).sum()


def test_raster_with_one_band_is_refused(tmp_path):
    path = tmp_path / "one.tif"
    with rasterio.open(
        path,
        "w",
        driver="GTiff",
        width=4,
        height=4,
        count=1,
        dtype="float32",
        crs="EPSG:32616",
        transform=rasterio.transform.from_origin(0, 40, 10, 10),
    ) as ds:
        ds.write(np.zeros((1, 4, 4), "float32"))
    with pytest.raises(EmbeddingsError, match="1 band"):
        RasterSource(str(path))


def test_extent_without_coverage_is_a_clear_error(sample_index, tmp_path):
    with pytest.raises(EmbeddingsError, match="No embeddings cover"):
        load_embeddings(sample_index, 2024, (10.0, 10.0, 10.01, 10.01), "EPSG:4326", str(tmp_path / "x.tif"))
    assert not list(tmp_path.iterdir())


def test_point_reads_anywhere(sample_index, truth):
    src = open_source(sample_index, 2017)
    lon, lat = truth.notes["bbox_wgs84"][0] + 0.01, truth.lat0
    here, far = src.pixel_at(lon, lat, "EPSG:4326"), src.pixel_at(10.0, 10.0, "EPSG:4326")
    assert here is not None and here[1] and np.isfinite(here[0]).all() and far is None
    cls = truth.class_at(lon, lat, 2017)
    protos = np.asarray(truth.prototypes)
    assert np.argmax(protos @ here[0]) == cls


def test_reader_leaves_gdals_process_wide_block_cache_as_it_was(wisconsin_raster):
    # GDAL's cache is shared with QGIS's rendering: the reader holds its own decoded blocks.
    from osgeo import gdal

    before = gdal.GetCacheMax()
    src = RasterSource(wisconsin_raster)
    with src.reader(src.native_grid()) as reader:
        assert gdal.GetCacheMax() == before
        for _, (block,) in stream([reader], windows_for(reader.grid, [reader]), Progress()):
            assert block.valid.any()
        assert gdal.GetCacheMax() == before
    assert gdal.GetCacheMax() == before


def test_tiles_are_closed_after_the_last_block_that_needs_them(sample_index, truth):
    # Memory must not grow with the extent: a tile no later block touches is closed, and
    # reading it again afterwards still works (it reopens).
    g = grid_for_extent(truth.notes["bbox_wgs84"], "EPSG:4326", "EPSG:32615", 10)
    with open_source(sample_index, 2017).reader(g) as reader:
        tiles = reader.plan.tiles
        assert len(tiles) >= 4
        open_counts, blocks = [], []
        for _, (block,) in stream([reader], windows_for(g, [reader], 256), Progress()):
            open_counts.append(sum(1 for t in tiles if t.is_open()))
            blocks.append((block.window, block.data.copy(), block.valid.copy()))  # released after the loop body
        assert max(open_counts) < len(tiles)  # never all open at once
        assert open_counts[-1] == 0  # the last block closed what was left
        window, data, valid = blocks[0]
        again = reader.read(window)
        assert np.array_equal(again.data, data) and np.array_equal(again.valid, valid)
    assert all(not t.is_open() for t in tiles)
