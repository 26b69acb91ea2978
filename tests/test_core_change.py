"""core.change against the planted truth and against real AEF vectors."""

import numpy as np
import pytest
import rasterio
from core_calls import change as change_map
from rasterio import features
from rasterio.transform import Affine

from earth_embeddings.core import change as change_mod
from earth_embeddings.core.change import NODATA_CHANGE
from earth_embeddings.core.errors import Cancelled, EmbeddingsError
from earth_embeddings.core.grid import transformer
from earth_embeddings.core.progress import Progress
from earth_embeddings.core.quant import LUT, NODATA
from earth_embeddings.core.stats import StreamingHistogram


def roc_auc(scores, labels):
    """Rank-based (Mann-Whitney) ROC AUC with ties at their mean rank."""
    scores = np.asarray(scores, dtype=np.float64)
    labels = np.asarray(labels, dtype=bool)
    _, inverse, counts = np.unique(scores, return_inverse=True, return_counts=True)
    ends = np.cumsum(counts)
    mean_rank = ends - (counts - 1) / 2.0  # 1-based average rank of each distinct value
    ranks = mean_rank[inverse]
    n_pos = labels.sum()
    n_neg = labels.size - n_pos
    return (ranks[labels].sum() - n_pos * (n_pos + 1) / 2.0) / (n_pos * n_neg)


def test_roc_auc_helper_on_known_cases():
    assert roc_auc([0.1, 0.2, 0.8, 0.9], [0, 0, 1, 1]) == 1.0
    assert roc_auc([0.9, 0.8, 0.2, 0.1], [0, 0, 1, 1]) == 0.0
    assert roc_auc([0.5, 0.5, 0.5, 0.5], [0, 1, 0, 1]) == 0.5
    assert roc_auc([0.1, 0.4, 0.35, 0.8], [0, 0, 1, 1]) == 0.75


def read_change(path):
    with rasterio.open(path) as ds:
        return ds.read(1), ds.transform, ds.crs.to_string(), ds.nodata


def pixel_lonlat(transform, crs, shape):
    rows, cols = np.indices(shape)
    xs = transform.c + (cols.ravel() + 0.5) * transform.a
    ys = transform.f + (rows.ravel() + 0.5) * transform.e
    lon, lat = transformer(crs, "EPSG:4326").transform(xs, ys)
    return xs, ys, np.asarray(lon).reshape(shape), np.asarray(lat).reshape(shape)


def expected_valid(truth, crs, xs, ys, year):
    """Where the mosaic of ``year`` has data at grid points: the first zone (target CRS first)
    whose tile covers the point and whose pixel there is not in the planted hole."""
    valid = np.zeros(len(xs), bool)
    for zone in sorted(truth.zones, key=lambda z: truth.zones[z]["crs"] != crs):
        zx, zy = transformer(crs, truth.zones[zone]["crs"]).transform(xs, ys)
        zx, zy = np.asarray(zx), np.asarray(zy)
        todo = truth.covered(zone, zx, zy) & ~valid
        codes = truth.expected_codes(zone, zx[todo], zy[todo], year)
        idx = np.nonzero(todo)[0][~(codes == NODATA).any(axis=0)]
        valid[idx] = True
    return valid


@pytest.fixture(scope="module")
def sample_change(sample_index, truth, tmp_path_factory):
    """The change 2017 -> 2024 over the whole sample, in zone 16N (so 15N is reprojected)."""
    out = tmp_path_factory.mktemp("change") / "change.tif"
    summary = change_map(
        str(out),
        source=sample_index,
        year_a=2017,
        year_b=2024,
        extent=truth.notes["bbox_wgs84"],
        extent_crs="EPSG:4326",
        target_crs="EPSG:32616",
    )
    return summary, read_change(out)


def test_change_separates_planted_changes_auc(sample_change, truth):
    summary, (values, transform, crs, nodata) = sample_change
    assert nodata == NODATA_CHANGE and crs == "EPSG:32616"
    _, _, lon, lat = pixel_lonlat(transform, crs, values.shape)
    valid = values != NODATA_CHANGE
    changed = truth.change_at(lon, lat)
    assert changed[valid].sum() > 1000 and (~changed[valid]).sum() > 1000
    auc = roc_auc(values[valid], changed[valid])
    print(f"ROC AUC of 1 - cosine against the planted changes: {auc:.4f}")
    assert auc >= 0.97
    assert values[valid].min() >= 0.0 and values[valid].max() <= 2.0
    # Stable land sits near the product's typical 0.04, planted change far above.
    assert np.median(values[valid & ~changed]) < 0.1 < 0.25 < np.median(values[valid & changed])


def test_nodata_exactly_where_either_year_has_none(sample_change, truth):
    _, (values, transform, crs, _) = sample_change
    xs, ys, lon, lat = pixel_lonlat(transform, crs, values.shape)
    nodata = (values == NODATA_CHANGE).ravel()
    expected = ~(expected_valid(truth, crs, xs, ys, 2017) & expected_valid(truth, crs, xs, ys, 2024))
    hole = truth.hole_at(lon, lat, 2024).ravel()
    assert hole.sum() > 100 and not truth.hole_at(lon, lat, 2017).any()
    assert np.array_equal(nodata, expected), f"{(nodata != expected).sum()} pixels differ"
    # The hole (one pixel in from its edge, where the zones may differ) is no-data ...
    x, y = truth.local_xy(lon.ravel(), lat.ravel())
    h = truth.holes[0]
    interior = (x - h["x"]) ** 2 + (y - h["y"]) ** 2 <= (h["r"] - 15.0) ** 2
    assert interior.sum() > 100 and nodata[interior].all()
    # ... and inside the coverage of both years nothing else is.
    assert not nodata[~hole & ~expected].any()
    assert np.isfinite(values).all()


def test_change_areas_overlap_planted_changes_iou(sample_change, truth):
    summary, (values, transform, crs, _) = sample_change
    _, _, lon, lat = pixel_lonlat(transform, crs, values.shape)
    valid = values != NODATA_CHANGE
    changed = truth.change_at(lon, lat) & valid
    areas = summary.areas
    assert areas, "no change areas found"
    assert [a.area_m2 for a in areas] == sorted((a.area_m2 for a in areas), reverse=True)
    assert all(a.area_m2 >= 500.0 for a in areas)
    mask = features.rasterize([(a.geometry, 1) for a in areas], out_shape=values.shape, transform=transform).astype(
        bool
    )
    iou = (mask & changed).sum() / (mask | changed).sum()
    print(f"IoU of the change polygons with the planted changes: {iou:.3f} ({len(areas)} areas)")
    assert iou >= 0.6
    for a in areas:
        inside = features.geometry_mask([a.geometry], values.shape, transform, invert=True)
        assert a.pixel_count == inside.sum()
        assert a.max == pytest.approx(values[inside].max()) and a.mean == pytest.approx(values[inside].mean(), 1e-5)
        assert (values[inside] > summary.threshold).all()


def test_summary_matches_the_written_raster(sample_change):
    summary, (values, _, _, _) = sample_change
    v = values[values != NODATA_CHANGE].astype(np.float64)
    assert summary.valid_pixels == v.size
    assert summary.above_pixels == (v > 0.25).sum()
    assert summary.above_m2 == summary.above_pixels * 100.0
    for q, got in ((50, summary.p50), (90, summary.p90), (99, summary.p99)):
        assert abs(got - np.percentile(v, q)) < 2e-4, q
    text = summary.describe()
    assert f"{v.size:,} valid pixels" in text and "p50 " in text and "p99 " in text and "km2" in text


def test_streaming_histogram_percentiles():
    rng = np.random.default_rng(3)
    values = rng.gamma(2.0, 0.03, 200_000).clip(0, 2).astype(np.float32)
    hist = StreamingHistogram()
    for part in np.array_split(values, 7):
        hist.add(part)
    assert hist.total == values.size
    width = 2.0 / hist.bins
    for q in (1, 50, 90, 99, 99.9):
        # Between the two order statistics around the rank, to within a bin; in the dense
        # part, that is within 1e-4 of numpy's interpolated percentile.
        # numpy 2 computes the rank of a float32 array in float32, where 0.999 * 199999 rounds
        # to a whole number; the reference ranks in float64.
        got = hist.percentile(q)
        ref = values.astype(np.float64)
        lo, hi = np.percentile(ref, q, method="lower"), np.percentile(ref, q, method="higher")
        assert lo - width <= got <= hi + width, q
        if q <= 99:
            assert abs(got - np.percentile(ref, q)) < 1e-4, q
    assert np.isnan(StreamingHistogram().percentile(50))


def test_small_blocks_and_chunks_give_the_same_map(sample_change, sample_index, truth, tmp_path, monkeypatch):
    # Many blocks (and several kernel chunks per block) must stitch to the same raster.
    monkeypatch.setattr(change_mod, "CHUNK_PIXELS", 1000)
    out = tmp_path / "small_blocks.tif"
    summary = change_map(
        str(out),
        source=sample_index,
        year_a=2017,
        year_b=2024,
        extent=truth.notes["bbox_wgs84"],
        extent_crs="EPSG:4326",
        target_crs="EPSG:32616",
        min_area_m2=None,
        block_size=96,
    )
    first, (values, *_) = sample_change
    assert np.array_equal(read_change(out)[0], values)
    assert summary.valid_pixels == first.valid_pixels and summary.areas == []


def write_like(src_path, dst_path, data, transform):
    with rasterio.open(src_path) as src:
        profile = src.profile
        names = src.descriptions
    profile.update(transform=transform, count=data.shape[0])
    with rasterio.open(dst_path, "w", **profile) as dst:
        dst.write(data)
        for i, name in enumerate(names[: data.shape[0]], start=1):
            dst.set_band_description(i, name)


def test_real_vectors_against_themselves_are_exactly_zero(wisconsin_raster, tmp_path):
    out = tmp_path / "self.tif"
    summary = change_map(str(out), input_a=wisconsin_raster, input_b=wisconsin_raster, min_area_m2=None)
    values, transform, _, _ = read_change(out)
    with rasterio.open(wisconsin_raster) as ds:
        codes = ds.read()
    valid = ~(codes == NODATA).any(axis=0)
    assert valid.sum() > 5000
    assert np.array_equal(values == NODATA_CHANGE, ~valid)
    assert (values[valid] == 0.0).all()
    assert summary.valid_pixels == valid.sum() and summary.p99 < 1e-4 and summary.above_pixels == 0


def test_real_vectors_against_a_shifted_copy(wisconsin_raster, tmp_path):
    # B is the same pixels moved 3 columns east and 2 rows north: on A's grid, pixel (r, c)
    # meets B's pixel (r + 2, c - 3), i.e. A's own pixel (r + 2, c - 3).
    with rasterio.open(wisconsin_raster) as ds:
        codes = ds.read()
        t = ds.transform
    shifted = tmp_path / "shifted.tif"
    write_like(wisconsin_raster, shifted, codes, Affine(t.a, 0, t.c + 3 * t.a, 0, t.e, t.f - 2 * t.e))
    out = tmp_path / "shift.tif"
    change_map(str(out), input_a=wisconsin_raster, input_b=str(shifted), min_area_m2=None)
    values, transform, _, _ = read_change(out)
    assert transform == t  # the map has A's grid

    v = LUT[codes.view(np.uint8)].astype(np.float64)  # (64, h, w), NaN no-data
    h, w = v.shape[1:]
    expected = np.full((h, w), np.nan)
    a = v[:, : h - 2, 3:]
    b = v[:, 2:, : w - 3]
    cos = (a * b).sum(axis=0) / np.sqrt((a * a).sum(axis=0) * (b * b).sum(axis=0))
    expected[: h - 2, 3:] = 1.0 - cos
    got = np.where(values == NODATA_CHANGE, np.nan, values)
    assert np.array_equal(np.isnan(got), np.isnan(expected))
    ok = np.isfinite(expected)
    assert ok.sum() > 5000
    assert np.abs(got[ok] - expected[ok]).max() < 2e-6
    assert np.median(got[ok]) > 0.01  # neighbours differ: a real, non-zero change


def test_float_rasters_and_int8_rasters_agree(wisconsin_raster, tmp_path):
    # Tessera-like float embeddings go through the same kernel as AEF codes.
    with rasterio.open(wisconsin_raster) as ds:
        codes = ds.read()
        profile = ds.profile
    values = LUT[codes.view(np.uint8)]
    profile.update(dtype="float32", nodata=None)
    fpath = tmp_path / "float.tif"
    with rasterio.open(fpath, "w", **profile) as dst:
        dst.write(values)
    flipped = tmp_path / "flipped.tif"
    write_like(wisconsin_raster, flipped, codes[:, ::-1, :].copy(), profile["transform"])
    change_map(str(tmp_path / "q.tif"), input_a=wisconsin_raster, input_b=str(flipped), min_area_m2=None)
    change_map(str(tmp_path / "f.tif"), input_a=str(fpath), input_b=str(flipped), min_area_m2=None)
    q = read_change(tmp_path / "q.tif")[0]
    f = read_change(tmp_path / "f.tif")[0]
    assert np.array_equal(q == NODATA_CHANGE, f == NODATA_CHANGE)
    ok = q != NODATA_CHANGE
    assert np.abs(q[ok] - f[ok]).max() < 1e-6 and q[ok].max() > 0.25


def test_bad_inputs_are_refused_with_a_sentence_and_no_file(sample_index, truth, wisconsin_raster, tmp_path):
    out = tmp_path / "c.tif"
    common = dict(source=sample_index, extent=truth.notes["bbox_wgs84"], extent_crs="EPSG:4326")
    with pytest.raises(EmbeddingsError, match="both 2024"):
        change_map(str(out), year_a=2024, year_b=2024, **common)
    with pytest.raises(EmbeddingsError, match="no embeddings for 2019"):
        change_map(str(out), year_a=2019, year_b=2024, **common)
    with pytest.raises(EmbeddingsError, match="INPUT_A is set but INPUT_B is not"):
        change_map(str(out), input_a=wisconsin_raster)
    with pytest.raises(EmbeddingsError, match="INPUT_B is set but INPUT_A is not"):
        change_map(str(out), input_b=wisconsin_raster)
    with pytest.raises(EmbeddingsError, match="extent"):
        change_map(str(out), source=sample_index, year_a=2017, year_b=2024)
    with pytest.raises(EmbeddingsError, match="GeoTIFF"):
        change_map(str(tmp_path / "c.png"), year_a=2017, year_b=2024, **common)
    with pytest.raises(EmbeddingsError, match="threshold"):
        change_map(str(out), year_a=2017, year_b=2024, threshold=3.0, **common)
    with rasterio.open(wisconsin_raster) as ds:
        codes = ds.read()
        t = ds.transform
    half = tmp_path / "half.tif"
    write_like(wisconsin_raster, half, codes[:32], t)
    with pytest.raises(EmbeddingsError, match="64 bands .* 32"):
        change_map(str(out), input_a=wisconsin_raster, input_b=str(half))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["half.tif"]


def test_cancel_leaves_no_output(sample_index, truth, tmp_path):
    class CancelAfterFirstBlocks(Progress):
        def __init__(self):
            self.last = 0.0

        def set_progress(self, percent):
            self.last = percent

        def is_cancelled(self):
            return self.last > 20

    out = tmp_path / "c.tif"
    with pytest.raises(Cancelled):
        change_map(
            str(out),
            source=sample_index,
            year_a=2017,
            year_b=2024,
            extent=truth.notes["bbox_wgs84"],
            extent_crs="EPSG:4326",
            progress=CancelAfterFirstBlocks(),
            block_size=64,
        )
    assert not list(tmp_path.iterdir())
