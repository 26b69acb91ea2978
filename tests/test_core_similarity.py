"""Similarity to exemplars against the sample's planted land cover and the real Wisconsin vectors."""

import sys

import numpy as np
import pytest
import rasterio
from core_calls import similarity as similarity_map
from core_calls import source as open_source

from earth_embeddings.core.errors import Cancelled, EmbeddingsError
from earth_embeddings.core.grid import transformer
from earth_embeddings.core.progress import Progress
from earth_embeddings.core.quant import LUT
from earth_embeddings.core.similarity import NODATA_SCORE, Exemplar, exemplar_vector
from earth_embeddings.scripts.sample import CLASSES, class_interior_points

YEAR = 2017


class Log(Progress):
    def __init__(self, cancel_after=None):
        self.lines = []
        self.cancel_after = cancel_after
        self.percent = 0.0

    def info(self, message):
        self.lines.append(message)

    def warning(self, message):
        self.lines.append(message)

    def set_progress(self, percent):
        self.percent = percent

    def is_cancelled(self):
        return self.cancel_after is not None and self.percent > self.cancel_after


def points(truth, cls_name, n=3, seed=0, bounds=None, year=YEAR):
    pts = class_interior_points(truth, CLASSES.index(cls_name), year, n, seed=seed, rng_bounds=bounds)
    return [
        Exemplar({"type": "Point", "coordinates": [lon, lat]}, "EPSG:4326", f"{cls_name} {i}")
        for i, (lon, lat) in enumerate(pts)
    ]


def heat(path):
    """(scores, valid, lon, lat) of a written heatmap, at pixel centres."""
    with rasterio.open(path) as ds:
        s = ds.read(1)
        t = ds.transform
        crs = ds.crs.to_string()
        assert ds.nodata == NODATA_SCORE and ds.dtypes[0] == "float32"
    rows, cols = np.indices(s.shape)
    xs = t.c + (cols + 0.5) * t.a
    ys = t.f + (rows + 0.5) * t.e
    lon, lat = transformer(crs, "EPSG:4326").transform(xs, ys)
    return s, s != NODATA_SCORE, np.asarray(lon), np.asarray(lat)


def auc(scores, positive):
    pos = np.sort(scores[positive])
    neg = np.sort(scores[~positive])
    less = np.searchsorted(neg, pos, side="left")
    leq = np.searchsorted(neg, pos, side="right")
    return float((less + 0.5 * (leq - less)).sum() / (pos.size * neg.size))


def brute_force_places(scores, valid, k, separation_px):
    h, w = scores.shape
    ids = np.flatnonzero(valid.ravel())
    s = scores.ravel()[ids]
    order = np.lexsort((ids, -s.astype(np.float64)))
    kept = []
    for i in order:
        r, c = divmod(int(ids[i]), w)
        if all((r - r2) ** 2 + (c - c2) ** 2 >= separation_px**2 for r2, c2 in kept):
            kept.append((r, c))
            if len(kept) == k:
                break
    return kept


def run(sample_index, truth, out, exemplars, **kw):
    kw.setdefault("year", YEAR)
    return similarity_map(
        exemplars, str(out), source=sample_index, extent=truth.notes["bbox_wgs84"], extent_crs="EPSG:4326", **kw
    )


@pytest.mark.parametrize("cls_name,aggregate", [("forest", "mean"), ("urban", "mean"), ("forest", "max")])
def test_three_exemplars_find_their_class(sample_index, truth, tmp_path, cls_name, aggregate):
    out = tmp_path / "sim.tif"
    res = run(
        sample_index,
        truth,
        out,
        points(truth, cls_name),
        aggregate=aggregate,
        top_k=10,
        min_separation_m=100,
        block_size=128,
    )
    s, valid, lon, lat = heat(out)
    cls = truth.class_at(lon, lat, YEAR)
    target = cls == CLASSES.index(cls_name)
    assert res.valid_pixels == valid.sum() > 100_000
    assert np.all(np.abs(s[valid]) <= 1.0 + 1e-5)
    a = auc(s[valid], target[valid])
    k = int(target[valid].sum())
    top = np.argsort(-s[valid], kind="stable")[:k]
    precision = float(target[valid][top].mean())
    print(f"{cls_name}/{aggregate}: AUC {a:.4f}, precision at k={k}: {precision:.4f}")
    assert a >= 0.97 and precision >= 0.85
    # Top places: in the class, 100 m apart, scores = heatmap values, = the greedy definition.
    assert [p.rank for p in res.top] == list(range(1, 11))
    grid = res.grid
    rc = [grid.index_of(p.x, p.y) for p in res.top]
    assert all(s[r, c] == np.float32(p.score) for (r, c), p in zip(rc, res.top))
    assert all(truth.class_at(p.lon, p.lat, YEAR) == CLASSES.index(cls_name) for p in res.top)
    xy = np.array([(p.x, p.y) for p in res.top])
    d = np.sqrt(((xy[:, None] - xy[None]) ** 2).sum(-1))
    assert d[~np.eye(10, dtype=bool)].min() >= 100.0
    assert rc == brute_force_places(s, valid, 10, 100.0 / grid.resolution)


def test_negatives_of_a_confusable_class_lower_its_scores(sample_index, truth, tmp_path):
    crop = points(truth, "cropland")
    crop_b = points(truth, "cropland_b", seed=1)
    s0, valid, lon, lat = heat(run(sample_index, truth, tmp_path / "a.tif", crop).path)
    s1, _, _, _ = heat(run(sample_index, truth, tmp_path / "b.tif", crop, negatives=crop_b).path)
    s2, _, _, _ = heat(run(sample_index, truth, tmp_path / "c.tif", crop, negatives=crop_b, aggregate="max").path)
    cls = truth.class_at(lon, lat, YEAR)
    is_b = (cls == CLASSES.index("cropland_b")) & valid
    is_a = (cls == CLASSES.index("cropland")) & valid
    print(f"cropland_b mean score: {s0[is_b].mean():.3f} -> {s1[is_b].mean():.3f} (mean), {s2[is_b].mean():.3f} (max)")
    assert s0[is_b].mean() > 0.6  # confusable: without negatives cropland_b scores high
    for s in (s1, s2):
        assert s[is_b].mean() < s0[is_b].mean() - 0.5
        assert np.median(s[is_a]) > np.percentile(s[is_b], 99)  # cropland now above all of cropland_b
    both = is_a | is_b
    print(f"AUC cropland vs cropland_b: {auc(s0[both], is_a[both]):.4f} -> {auc(s1[both], is_a[both]):.4f}")
    assert auc(s1[both], is_a[both]) > auc(s0[both], is_a[both])


def test_polygon_exemplar_is_the_mean_of_its_pixels(sample_index, truth):
    # A triangle in zone 16N, inside a tile; expected pixels computed from the generator's
    # formula with an independent point-in-triangle test.
    w, s_, e, n = truth.zones["16N"]["tiles"][0]
    cx, cy = (w + e) / 2 + 3.3, (s_ + n) / 2 + 1.7
    tri = [(cx - 95.2, cy - 61.1), (cx + 88.9, cy - 40.3), (cx - 7.4, cy + 103.6)]
    ix = np.arange(int((cx - 120) // 10), int((cx + 120) // 10))
    iy = np.arange(int((cy - 120) // 10), int((cy + 120) // 10))
    gx, gy = np.meshgrid(ix, iy)
    px, py = (gx.ravel() + 0.5) * 10, (gy.ravel() + 0.5) * 10

    def side(a, b):
        return (b[0] - a[0]) * (py - a[1]) - (b[1] - a[1]) * (px - a[0])

    inside = (side(tri[0], tri[1]) > 0) & (side(tri[1], tri[2]) > 0) & (side(tri[2], tri[0]) > 0)
    codes = truth.codes_for_pixels("16N", gx.ravel()[inside], gy.ravel()[inside], YEAR)
    mean = LUT[codes.view(np.uint8)].astype(np.float64).mean(axis=1)
    expected = mean / np.linalg.norm(mean)
    assert inside.sum() > 50
    src = open_source(sample_index, YEAR)
    ring = [list(p) for p in tri + [tri[0]]]
    got = exemplar_vector(src, Exemplar({"type": "Polygon", "coordinates": [ring]}, "EPSG:32616", "triangle"))
    assert np.allclose(got, expected, atol=1e-6)
    # The same triangle given in degrees covers the same pixels.
    lon, lat = transformer("EPSG:32616", "EPSG:4326").transform([p[0] for p in ring], [p[1] for p in ring])
    ring_ll = [[float(a), float(b)] for a, b in zip(lon, lat)]
    got_ll = exemplar_vector(src, Exemplar({"type": "Polygon", "coordinates": [ring_ll]}, "EPSG:4326", "tri"))
    assert np.allclose(got_ll, expected, atol=1e-6)
    # A polygon holding no pixel centre takes the pixel under its centroid.
    x0, y0 = (int(cx // 10) * 10), (int(cy // 10) * 10)
    tiny = [[x0 + 1, y0 + 1], [x0 + 3, y0 + 1], [x0 + 3, y0 + 3], [x0 + 1, y0 + 3], [x0 + 1, y0 + 1]]
    v = LUT[truth.codes_for_pixels("16N", np.array([x0 // 10]), np.array([y0 // 10]), YEAR).view(np.uint8)][:, 0]
    got_tiny = exemplar_vector(src, Exemplar({"type": "Polygon", "coordinates": [tiny]}, "EPSG:32616", "tiny"))
    assert np.allclose(got_tiny, v / np.linalg.norm(v), atol=1e-6)
    src.close()


def test_exemplars_outside_the_extent_are_read_where_they_are(sample_index, truth, tmp_path):
    w, s, e, n = truth.notes["bbox_wgs84"]
    west = (w, s, w + 0.45 * (e - w), n)
    east = (w + 0.55 * (e - w), s + 0.1 * (n - s), e, n - 0.1 * (n - s))
    ex = points(truth, "water", bounds=west)
    out = tmp_path / "east.tif"
    similarity_map(ex, str(out), source=sample_index, year=YEAR, extent=east, extent_crs="EPSG:4326")
    sc, valid, lon, lat = heat(out)
    assert lon[valid].min() > max(p.geometry["coordinates"][0] for p in ex)
    target = truth.class_at(lon, lat, YEAR) == CLASSES.index("water")
    assert target[valid].sum() > 100
    assert auc(sc[valid], target[valid]) >= 0.97


def test_an_exemplar_off_the_coverage_or_on_no_data_is_named(sample_index, truth, tmp_path):
    good = points(truth, "forest", n=1)
    w, s, e, n = truth.notes["bbox_wgs84"]
    far = Exemplar({"type": "Point", "coordinates": [e + 0.5, n]}, "EPSG:4326", "feature 7 ('far away')")
    with pytest.raises(EmbeddingsError, match=r"feature 7 \('far away'\) lies outside the coverage"):
        run(sample_index, truth, tmp_path / "x.tif", good + [far])
    hole = truth.holes[0]
    lon, lat = truth.lonlat_of_local(hole["x"], hole["y"])
    in_hole = Exemplar({"type": "Point", "coordinates": [float(lon), float(lat)]}, "EPSG:4326", "feature 2")
    with pytest.raises(EmbeddingsError, match="feature 2 falls on no-data"):
        run(sample_index, truth, tmp_path / "x.tif", good, negatives=[in_hole], year=hole["year"])
    poly = [
        [float(lon) - 1e-4, float(lat) - 1e-4],
        [float(lon) + 1e-4, float(lat) - 1e-4],
        [float(lon), float(lat) + 1e-4],
    ]
    in_hole_poly = Exemplar({"type": "Polygon", "coordinates": [poly + [poly[0]]]}, "EPSG:4326", "feature 3")
    with pytest.raises(EmbeddingsError, match="feature 3 falls on no-data"):
        run(sample_index, truth, tmp_path / "x.tif", [in_hole_poly], year=hole["year"])
    assert not list(tmp_path.iterdir())


def test_areas_above_the_threshold_match_the_heatmap(sample_index, truth, tmp_path):
    res = run(sample_index, truth, tmp_path / "t.tif", points(truth, "forest"), threshold=0.9)
    s, valid, lon, lat = heat(res.path)
    above = valid & (s > 0.9)
    assert sum(a.pixel_count for a in res.areas) == above.sum() > 1000
    assert all(a.mean > 0.9 and a.area_m2 == a.pixel_count * 100.0 for a in res.areas)
    assert (truth.class_at(lon[above], lat[above], YEAR) == CLASSES.index("forest")).mean() > 0.95


def test_faiss_and_numpy_paths_agree_end_to_end(sample_index, truth, tmp_path, monkeypatch):
    ex = points(truth, "grassland")
    log_a = Log()
    a = run(sample_index, truth, tmp_path / "a.tif", ex, top_k=20, min_separation_m=150, progress=log_a)
    monkeypatch.setitem(sys.modules, "faiss", None)
    log_b = Log()
    b = run(sample_index, truth, tmp_path / "b.tif", ex, top_k=20, min_separation_m=150, progress=log_b)
    assert a.search_method == "faiss" and b.search_method == "numpy"
    assert [(p.x, p.y, p.score) for p in a.top] == [(p.x, p.y, p.score) for p in b.top]
    assert len(a.top) == 20
    assert any("faiss is not installed" in line for line in log_b.lines)
    assert not any("faiss is not installed" in line for line in log_a.lines)


def test_embedding_raster_input_scores_its_own_pixel_one(wisconsin_raster, tmp_path):
    with rasterio.open(wisconsin_raster) as ds:
        codes = ds.read()
        t = ds.transform
        crs = ds.crs.to_string()
    values = LUT[codes.view(np.uint8)]
    ok = np.isfinite(values).all(axis=0)
    r, c = 50, 61
    assert ok[r, c]
    x, y = t * (c + 0.5, r + 0.5)
    ex = [Exemplar({"type": "Point", "coordinates": [x, y]}, crs, "pixel")]
    out = tmp_path / "wi.tif"
    res = similarity_map(ex, str(out), input_path=wisconsin_raster, top_k=3, min_separation_m=50)
    with rasterio.open(out) as ds:
        s = ds.read(1)
        assert ds.transform == t and ds.crs.to_string() == crs
    assert np.array_equal(s != NODATA_SCORE, ok) and np.isfinite(s).all()
    assert s[r, c] == pytest.approx(1.0, abs=1e-5)
    # Independent: cosine of renormalised de-quantized vectors.
    u = values / np.linalg.norm(values, axis=0, keepdims=True)
    assert np.allclose(s[ok], np.einsum("bhw,b->hw", u, u[:, r, c])[ok], atol=1e-5)
    assert res.grid.index_of(res.top[0].x, res.top[0].y) == (r, c)
    # Cropped by an extent: the same pixels, the same values.
    ext = (t.c + 20 * 10 + 3, t.f - 70 * 10 + 4, t.c + 60 * 10 - 1, t.f - 30 * 10 - 2)
    out2 = tmp_path / "wi_crop.tif"
    similarity_map(ex, str(out2), input_path=wisconsin_raster, extent=ext, extent_crs=crs)
    with rasterio.open(out2) as ds:
        s2 = ds.read(1)
        t2 = ds.transform
    c0, r0 = ~t * (t2.c, t2.f)
    assert (c0, r0) == (20, 30) and s2.shape == (40, 40)
    assert np.array_equal(s2 == NODATA_SCORE, s[30:70, 20:60] == NODATA_SCORE)
    assert np.allclose(s2, s[30:70, 20:60], atol=1e-6)


def test_cancelling_leaves_no_output(sample_index, truth, tmp_path):
    with pytest.raises(Cancelled):
        run(sample_index, truth, tmp_path / "c.tif", points(truth, "forest"), block_size=64, progress=Log(30))
    assert not list(tmp_path.iterdir())


def test_no_exemplars_is_an_error(sample_index, truth, tmp_path):
    with pytest.raises(EmbeddingsError, match="at least one exemplar"):
        run(sample_index, truth, tmp_path / "n.tif", [])


@pytest.mark.parametrize("quantised", [True, False])
@pytest.mark.parametrize("aggregate,n_neg", [("mean", 0), ("mean", 1), ("max", 0), ("max", 2)])
def test_block_scores_equal_the_scores_of_the_unit_vectors(wisconsin_raster, quantised, aggregate, n_neg):
    from earth_embeddings.core.block import CHUNK_PIXELS, Block
    from earth_embeddings.core.grid import Window
    from earth_embeddings.core.similarity import Scorer

    with rasterio.open(wisconsin_raster) as ds:
        codes = ds.read()
    # Real vectors tiled past one run of the kernel (with a run that has no data at all),
    # holes, and a zero vector (no direction: scored 0 both ways).
    codes = np.tile(codes, (1, 3, 2))[:, :, :150]
    h, w = codes.shape[1:]
    assert h * w > 2 * CHUNK_PIXELS
    valid = ~(codes == -128).any(axis=0)
    valid[:120, :] = False  # the first run of pixels has no data
    valid[150:160, 20:90] = False
    codes[:, ~valid] = -128
    codes[:, 170, 7] = 0
    data = codes if quantised else np.where(valid[None], LUT[codes.view(np.uint8)], np.nan).astype(np.float32)
    block = Block(Window(0, 0, w, h), data, valid, quantised)
    vectors = block.unit_vectors()
    rng = np.random.default_rng(4)
    pos = vectors[rng.choice(len(vectors), 3, replace=False)]
    neg = vectors[rng.choice(len(vectors), n_neg, replace=False)] if n_neg else None
    scorer = Scorer(pos, neg, aggregate)
    got = scorer.block_scores(block)
    assert np.isnan(got[~valid]).all() and np.isfinite(got[valid]).all()
    np.testing.assert_allclose(got[valid], scorer.scores(vectors), atol=2e-6)
    assert got[170, 7] == 0.0


def test_exclude_radius_keeps_top_places_away_from_the_exemplars(sample_index, truth, tmp_path):
    """EXCLUDE_RADIUS_M: places like the exemplar, elsewhere; 0 (the default) keeps the old result."""
    from earth_embeddings.core.grid import GridSpec, transformer
    from earth_embeddings.core.similarity import Exemplar, SimilarityRequest, similarity_map
    from earth_embeddings.core.source import SourceSpec
    from earth_embeddings.scripts.sample import CLASSES, class_interior_points

    lon, lat = class_interior_points(truth, CLASSES.index("forest"), 2024, 1, margin_m=150, seed=3)[0]
    exemplar = Exemplar({"type": "Point", "coordinates": [lon, lat]}, "EPSG:4326", "clicked place 1")
    common = dict(
        exemplars=[exemplar],
        source=SourceSpec(sample_index, 2024),
        grid=GridSpec(tuple(truth.notes["bbox_wgs84"]), "EPSG:4326"),
        top_k=5,
        min_separation_m=100.0,
    )
    plain = similarity_map(SimilarityRequest(output=str(tmp_path / "a.tif"), **common))
    away = similarity_map(SimilarityRequest(output=str(tmp_path / "b.tif"), exclude_radius_m=300.0, **common))
    x, y = transformer("EPSG:4326", plain.grid.crs).transform(lon, lat)
    assert min(np.hypot(p.x - x, p.y - y) for p in plain.top) < 10  # the clicked pixel itself ranks first
    assert plain.top[0].score > 0.999
    assert all(np.hypot(p.x - x, p.y - y) >= 300.0 for p in away.top)
    assert len(away.top) == 5 and all(truth.class_at(p.lon, p.lat, 2024) == CLASSES.index("forest") for p in away.top)
