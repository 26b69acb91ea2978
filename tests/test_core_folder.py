"""Issue 16: a folder of embedding GeoTIFFs without an index is a collection.

Ground truth: the sample collection's planted land cover and changes, written again as other
products store them (tests/folders.py): 128-band float32 UTM tiles, north-up, NaN no-data,
vectors of any length, one folder per year, 2017 striped; an EPSG:4326 float export; the AEF
int8 tiles themselves without their index.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import rasterio
from affine import Affine
from core_calls import change, load, similarity
from folders import float_folder, geographic_export, int8_folder

from earth_embeddings.core.collection import open_collection
from earth_embeddings.core.errors import EmbeddingsError
from earth_embeddings.core.folder import year_of
from earth_embeddings.core.grid import transformer
from earth_embeddings.core.progress import Progress
from earth_embeddings.core.remote import cache_dir
from earth_embeddings.core.similarity import Exemplar
from earth_embeddings.core.source import open_years
from earth_embeddings.core.tile import Tile
from earth_embeddings.scripts.sample import CLASSES, class_interior_points

NODATA_MAP = -9999.0


class Log(Progress):
    def __init__(self) -> None:
        self.lines: list[str] = []

    def info(self, message: str) -> None:
        self.lines.append(message)

    def warning(self, message: str) -> None:
        self.lines.append(message)

    @property
    def text(self) -> str:
        return "\n".join(self.lines)


@pytest.fixture(scope="module")
def folders(sample_dir, truth, tmp_path_factory):
    root = tmp_path_factory.mktemp("folders")
    out = {
        "tessera": float_folder(sample_dir, root / "tessera"),
        "int8": int8_folder(sample_dir, root / "int8"),
        "ee": root / "ee",
        "ee_up": root / "ee_up",
    }
    for year in truth.years:
        geographic_export(truth, out["ee"], year)
        geographic_export(truth, out["ee_up"], year, bottom_up=True)
    return out


def read_map(path):
    with rasterio.open(path) as ds:
        return ds.read(1), ds.transform, ds.crs.to_string()


def change_of(source, truth, path, **kw):
    change(
        path,
        source=str(source),
        year_a=2017,
        year_b=2024,
        extent=truth.notes["bbox_wgs84"],
        extent_crs="EPSG:4326",
        target_crs="EPSG:32616",
        min_area_m2=None,
        **kw,
    )
    return read_map(path)


def centres_lonlat(transform, crs, shape):
    rows, cols = np.indices(shape)
    x = transform.c + (cols + 0.5) * transform.a
    y = transform.f + (rows + 0.5) * transform.e
    return transformer(crs, "EPSG:4326").transform(x, y)


@pytest.fixture(scope="module")
def index_change(sample_index, truth, tmp_path_factory):
    return change_of(sample_index, truth, tmp_path_factory.mktemp("idx") / "change.tif")


# --------------------------------------------------------------------------- years


@pytest.mark.parametrize(
    "path, folder, year",
    [
        ("2024/32N/tile.tif", "", 2024),
        ("tiles/tile_2024_x.tif", "", 2024),
        ("aef-2017-berlin-0000000000-0000002048.tif", "", 2017),  # long pixel offsets are not years
        ("grid_-0.05_51.55_2021.tiff", "", 2021),
        ("utm_32632_tile.tif", "", None),  # an EPSG code is not a year
        ("t2024.tif", "", None),  # not delimited
        ("x_1999_y.tif", "", None),  # outside 2000-2099
        ("2024/tile_2017.tif", "", 2024),  # the year folder wins
        ("a/b.tif", "2020", 2020),  # the chosen folder's own name counts
        ("2017/2024/tile.tif", "", None),
        ("tile_2017_2024.tif", "", None),
    ],
)
def test_year_rules(path, folder, year):
    got, why = year_of(path, folder)
    assert got == year
    assert bool(why) == (path in ("2017/2024/tile.tif", "tile_2017_2024.tif"))


# --------------------------------------------------------------------------- reading


def test_128_band_float_folder_change_across_the_seam_matches_the_truth(folders, truth, index_change, tmp_path):
    log = Log()
    values, t, crs = change_of(folders["tessera"], truth, tmp_path / "c.tif", progress=log)
    ref, rt, rcrs = index_change
    assert (t, crs) == (rt, rcrs)
    valid = values != NODATA_MAP
    assert np.array_equal(valid, ref != NODATA_MAP)  # NaN no-data exactly where the int8 tiles have -128
    assert np.abs(values[valid] - ref[valid]).max() < 1e-4  # lengths of 0.3-3 renormalised away
    lon, lat = centres_lonlat(t, crs, values.shape)
    planted = truth.change_at(lon, lat)
    assert ((values > 0.25) == planted)[valid].mean() > 0.98
    west = lon < truth.lon0
    assert valid[west].mean() > 0.8 and valid[~west].mean() > 0.8  # both zones read, no wedge at the seam
    assert "16 embedding raster(s) of 128 bands (float32 values), years 2017, 2024" in log.text
    assert "Skipped 1 image(s)" in log.text and "1 file(s) that are not GeoTIFFs" in log.text


def test_the_aef_tiles_without_their_index_give_the_same_map(folders, truth, index_change, tmp_path):
    values, t, _ = change_of(folders["int8"], truth, tmp_path / "c.tif")
    assert t == index_change[1] and np.array_equal(values, index_change[0])


def test_similarity_across_the_seam_from_the_float_folder(folders, sample_index, truth, tmp_path):
    forest = CLASSES.index("forest")
    points = class_interior_points(truth, forest, 2024, 3, seed=8)
    exemplars = [
        Exemplar({"type": "Point", "coordinates": [lon, lat]}, "EPSG:4326", f"forest {i}")
        for i, (lon, lat) in enumerate(points)
    ]
    maps = {}
    for name, source in (("index", sample_index), ("folder", str(folders["tessera"]))):
        similarity(
            exemplars,
            tmp_path / f"{name}.tif",
            source=source,
            year=2024,
            extent=truth.notes["bbox_wgs84"],
            extent_crs="EPSG:4326",
            target_crs="EPSG:32616",
        )
        maps[name] = read_map(tmp_path / f"{name}.tif")
    ref, got = maps["index"][0], maps["folder"][0]
    valid = ref != NODATA_MAP
    assert np.array_equal(valid, got != NODATA_MAP)
    assert np.abs(ref[valid] - got[valid]).max() < 1e-4
    lon, lat = centres_lonlat(maps["folder"][1], maps["folder"][2], got.shape)
    is_forest = truth.class_at(lon, lat, 2024) == forest
    assert got[valid & is_forest].mean() > 0.8 > 0.3 > got[valid & ~is_forest].mean()


def test_an_epsg_4326_float_export_top_down_or_bottom_up(folders, truth, tmp_path):
    values, t, crs = change_of(folders["ee"], truth, tmp_path / "c.tif")
    valid = values != NODATA_MAP
    lon, lat = centres_lonlat(t, crs, values.shape)
    with rasterio.open(next(folders["ee"].glob("*2017*.tif"))) as ds:
        w, s, e, n = ds.bounds
    inside = (lon > w + 1e-4) & (lon < e - 1e-4) & (lat > s + 1e-4) & (lat < n - 1e-4)
    hole = truth.hole_at(lon, lat, 2024)
    outside = (lon < w - 2e-4) | (lon > e + 2e-4) | (lat < s - 2e-4) | (lat > n + 2e-4)
    assert valid[inside & ~hole].mean() > 0.99 and not valid[outside].any()
    planted = truth.change_at(lon, lat)
    assert ((values > 0.25) == planted)[valid].mean() > 0.97
    assert planted[valid].any() and (lon[valid] < truth.lon0).any() and (lon[valid] > truth.lon0).any()
    flipped, t2, _ = change_of(folders["ee_up"], truth, tmp_path / "up.tif")
    assert t2 == t and np.array_equal(flipped, values)


def test_a_geographic_tile_has_its_resolution_in_metres(folders):
    tile = Tile(str(next(folders["ee"].glob("*2017*.tif"))), "ee")
    lat = (tile.bounds[1] + tile.bounds[3]) / 2
    across = 111_320 * np.cos(np.radians(lat)) / 11132.0  # about 7.1 m at 44.5 N
    assert tile.meta.native_res == pytest.approx(np.sqrt(across * 110_540 / 11132.0), rel=0.01)
    tile.close()


def test_load_from_the_float_folder_writes_unit_aef_codes(folders, sample_index, truth, tmp_path):
    w, s, e, n = truth.notes["bbox_wgs84"]
    box = (w + 0.3 * (e - w), s + 0.3 * (n - s), w + 0.7 * (e - w), s + 0.7 * (n - s))
    codes = {}
    for name, source in (("index", sample_index), ("folder", str(folders["tessera"]))):
        load(source, 2017, box, "EPSG:4326", tmp_path / f"{name}.tif", target_crs="EPSG:32616")
        with rasterio.open(tmp_path / f"{name}.tif") as ds:
            codes[name] = ds.read().astype(np.int16)
    # The folder's vectors live in 128 dimensions: compare lengths, not codes.
    with rasterio.open(tmp_path / "folder.tif") as ds:
        assert ds.count == 128 and ds.dtypes[0] == "int8"
    from earth_embeddings.core.quant import LUT

    v = LUT[codes["folder"].astype(np.int8).view(np.uint8)]
    ok = ~np.isnan(v).any(axis=0)
    norms = np.sqrt((v[:, ok] ** 2).sum(axis=0))
    assert ok.mean() > 0.9 and np.abs(norms - 1).max() < 0.05  # renormalised, not clipped


# --------------------------------------------------------------------------- the index


def folder_dbs() -> set[Path]:
    return set((cache_dir() / "indexes").glob("folder-*.sqlite"))


def test_the_index_is_reused_and_rebuilt_after_a_file_changes(sample_dir, tmp_path):
    folder = int8_folder(sample_dir, tmp_path / "f")
    before = folder_dbs()
    log = Log()
    open_collection(str(folder), log).close()
    assert "Scanning the 16 GeoTIFF(s)" in log.text
    built = folder_dbs() - before
    assert len(built) == 1
    log = Log()
    c = open_collection(str(folder), log)
    assert "Scanning" not in log.text and c.db_path in built and len(c) == 16
    c.close()
    victim = sorted(folder.glob("2024/*/*.tiff"))[0]
    st = victim.stat()
    os.utime(victim, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))
    log = Log()
    c = open_collection(str(folder), log)
    assert "Scanning the 16 GeoTIFF(s)" in log.text
    assert c.db_path not in built and (folder_dbs() - before) == {c.db_path}  # the stale scan is gone
    c.close()
    victim.unlink()
    log = Log()
    c = open_collection(str(folder), log)
    assert "Scanning the 15 GeoTIFF(s)" in log.text and len(c) == 15
    c.close()


def write_raster(path: Path, count: int, dtype: str = "float32", crs: str = "EPSG:32616", value: float = 0.5):
    path.parent.mkdir(parents=True, exist_ok=True)
    with rasterio.open(
        path,
        "w",
        driver="GTiff",
        width=16,
        height=16,
        count=count,
        dtype=dtype,
        crs=crs,
        transform=Affine(10.0, 0, 262000, 0, -10.0, 4926000),
    ) as ds:
        ds.write(np.full((count, 16, 16), value, dtype=dtype))


def test_mixed_band_counts_are_refused_naming_two_files(tmp_path):
    write_raster(tmp_path / "2024" / "a.tif", 64)
    write_raster(tmp_path / "2024" / "b.tif", 128)
    with pytest.raises(EmbeddingsError, match=r"2024/a\.tif has 64 bands and 2024/b\.tif has 128"):
        open_collection(str(tmp_path))


def test_a_folder_without_rasters_says_so(tmp_path):
    (tmp_path / "notes.txt").write_text("nothing here")
    with pytest.raises(EmbeddingsError, match=r"no collection index .* and no embedding rasters.*no GeoTIFF"):
        open_collection(str(tmp_path))
    write_raster(tmp_path / "rgb.tif", 3, "uint8", value=200)
    write_raster(tmp_path / "dem.tif", 1)
    with pytest.raises(EmbeddingsError, match=r"no embedding rasters.*2 GeoTIFF.*1 image.*1 one-band"):
        open_collection(str(tmp_path))


def test_files_without_a_year_are_one_collection_for_any_year(tmp_path):
    write_raster(tmp_path / "tiles" / "a.tif", 8)
    write_raster(tmp_path / "tiles" / "utm_32616_b.tif", 8)
    log = Log()
    sources = open_years(str(tmp_path), [2019], log)
    assert len(sources[0].collection) == 2
    assert log.text.count("carry no year") == 1
    open_years(str(tmp_path), [2031, 2031])  # one year asked twice is fine
    with pytest.raises(EmbeddingsError, match=r"carry no year.*2017 and 2024 would read the same embeddings"):
        open_years(str(tmp_path), [2017, 2024])


def test_ambiguous_years_broken_files_and_missing_years_are_named(tmp_path):
    write_raster(tmp_path / "2017" / "a.tif", 8)
    write_raster(tmp_path / "2024" / "a.tif", 8)
    write_raster(tmp_path / "tile_2017_2024.tif", 8)
    write_raster(tmp_path / "undated.tif", 8)
    (tmp_path / "2024" / "broken.tif").write_bytes(b"II*\x00 not really a TIFF" * 20)
    log = Log()
    sources = open_years(str(tmp_path), [2017, 2024], log)
    assert [len(s.collection.query(y, -180, -90, 180, 90)) for s, y in zip(sources, (2017, 2024))] == [1, 1]
    assert "tile_2017_2024.tif (its name holds two different years (2017, 2024))" in log.text
    assert "carries no year, beside others that do: undated.tif" in log.text
    assert "Could not read 1 GeoTIFF(s): 2024/broken.tif" in log.text
    with pytest.raises(EmbeddingsError, match=r"no embeddings for 2020; it has these years: 2017, 2024"):
        open_years(str(tmp_path), [2020])


def test_scanning_reports_progress_and_can_be_cancelled(tmp_path):
    for i in range(12):
        write_raster(tmp_path / "2024" / f"t{i:02d}.tif", 4, "float32")

    class Stop(Log):
        def __init__(self) -> None:
            super().__init__()
            self.percents: list[float] = []

        def set_progress(self, percent: float) -> None:
            self.percents.append(percent)

        def is_cancelled(self) -> bool:
            return len(self.percents) >= 5

    stop = Stop()
    from earth_embeddings.core.errors import Cancelled

    with pytest.raises(Cancelled):
        open_collection(str(tmp_path), stop)
    assert stop.percents == sorted(stop.percents) and 0 < stop.percents[-1] < 100
    done = Log()
    assert len(open_collection(str(tmp_path), done)) == 12  # nothing half-written was kept


def test_the_plan_counts_the_bytes_of_a_geographic_tile(folders, truth):
    from earth_embeddings.core.grid import grid_for_extent

    w, s, e, n = truth.notes["bbox_wgs84"]
    inner = (w + 0.4 * (e - w), s + 0.4 * (n - s), w + 0.6 * (e - w), s + 0.6 * (n - s))
    grid = grid_for_extent(inner, "EPSG:4326", "EPSG:32616", 10.0)
    (src,) = open_years(str(folders["ee"]), [2017])
    with src, src.reader(grid) as reader:
        native = reader.plan.tiles[0].meta.native_res
        expected = grid.pixels * (10.0 / native) ** 2 * 64  # the tile's pixels under the grid, 64 bytes each
        assert reader.plan.read_bytes > 0.5 * expected
