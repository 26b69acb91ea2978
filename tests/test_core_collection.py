import csv

import pytest

from earth_embeddings.core.collection import open_collection, resolve_tile_path
from earth_embeddings.core.errors import EmbeddingsError
from earth_embeddings.scripts.sample import INDEX_COLUMNS

OFFICIAL = "https://data.source.coop/tge-labs/aef/v1/annual/"


def test_official_s3_paths_map_to_source_coop_https():
    p = "s3://us-west-2.opendata.source.coop/tge-labs/aef/v1/annual/2024/16N/xabc-0000000000-0000008192.tiff"
    assert resolve_tile_path(p, OFFICIAL, official=True) == (
        "https://data.source.coop/tge-labs/aef/v1/annual/2024/16N/xabc-0000000000-0000008192.tiff"
    )


def test_mirror_joins_the_part_after_v1_annual_to_the_index_folder(tmp_path):
    s3 = "s3://us-west-2.opendata.source.coop/tge-labs/aef/v1/annual/2024/16N/t.tiff"
    gs = "gs://alphaearth_foundations/satellite_embedding/v1/annual/2024/16N/t.tiff"
    assert resolve_tile_path(s3, "http://mirror.example/aef/", False) == "http://mirror.example/aef/2024/16N/t.tiff"
    assert resolve_tile_path(gs, "http://mirror.example/aef/", False) == "http://mirror.example/aef/2024/16N/t.tiff"
    assert resolve_tile_path(s3, str(tmp_path), False) == str(tmp_path / "2024" / "16N" / "t.tiff")
    assert resolve_tile_path("2024/16N/t.tiff", str(tmp_path), False) == str(tmp_path / "2024" / "16N" / "t.tiff")
    assert (
        resolve_tile_path("https://elsewhere.example/t.tiff", str(tmp_path), False)
        == "https://elsewhere.example/t.tiff"
    )


@pytest.mark.parametrize(
    "bad",
    [
        "../outside.tiff",
        "2024/../../x.tiff",
        "/vsicurl/http://x/t.tif",
        "file:///etc/passwd",
        "/etc/passwd",
        "/vsizip//tmp/a.zip/t.tif",
    ],
)
def test_paths_escaping_the_collection_are_refused(tmp_path, bad):
    with pytest.raises(EmbeddingsError, match="not allowed|outside"):
        resolve_tile_path(bad, str(tmp_path), False)
    if not bad.startswith(("/vsi", "file:", "/etc")):
        with pytest.raises(EmbeddingsError):
            resolve_tile_path(bad, "http://mirror.example/aef/", False)


def test_csv_and_gpkg_index_give_the_same_tiles(sample_dir):
    a = open_collection(str(sample_dir / "aef_index.csv"))
    b = open_collection(str(sample_dir / "aef_index.gpkg"))
    assert a.years() == b.years() == [2017, 2024]
    box = (-90.05, 44.40, -89.95, 44.50)
    ta = a.query(2024, *box)
    tb = b.query(2024, *box)
    assert [t.location for t in ta] == [t.location for t in tb]
    assert len(ta) == 8
    assert all(t.location.startswith(str(sample_dir)) for t in ta)
    assert {t.crs for t in ta} == {"EPSG:32615", "EPSG:32616"}
    # A folder works as SOURCE too.
    assert len(open_collection(str(sample_dir)).query(2017, *box)) == 8


def test_query_filters_by_year_and_space(sample_dir):
    c = open_collection(str(sample_dir / "aef_index.csv"))
    assert c.query(2024, 10.0, 10.0, 11.0, 11.0) == []
    east = c.query(2024, -89.99, 44.40, -89.95, 44.50)
    assert east and all(t.crs == "EPSG:32616" for t in east)
    with pytest.raises(EmbeddingsError, match="2017, 2024"):
        c.check_year(2019)


def test_missing_columns_are_named(tmp_path):
    index = tmp_path / "aef_index.csv"
    index.write_text("path,year,utm_zone\n2024/16N/a.tiff,2024,16N\n")
    with pytest.raises(EmbeddingsError, match="crs.*wgs84_west"):
        open_collection(str(index))


def test_missing_index_is_a_clear_error(tmp_path):
    with pytest.raises(EmbeddingsError, match="does not exist"):
        open_collection(str(tmp_path / "nope.csv"))
    with pytest.raises(EmbeddingsError, match="holds no collection index"):
        open_collection(str(tmp_path))


def test_bbox_year_query_on_300000_rows_is_exact_and_cached(tmp_path):
    index = tmp_path / "aef_index.csv"
    cols = INDEX_COLUMNS
    with open(index, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(cols)
        fid = 0
        for year in range(2017, 2026):
            for i in range(33334):
                lon = -180 + (i % 360) + 0.1
                lat = -60 + (i // 360) * 1.2
                fid += 1
                w.writerow(
                    [
                        f"POLYGON (({lon} {lat}, {lon + 0.7} {lat}, {lon + 0.7} {lat + 0.7}, {lon} {lat + 0.7}, {lon} {lat}))",
                        "EPSG:32616",
                        year,
                        "16N",
                        0,
                        0,
                        81920,
                        81920,
                        lon,
                        lat,
                        lon + 0.7,
                        lat + 0.7,
                        f"s3://us-west-2.opendata.source.coop/tge-labs/aef/v1/annual/{year}/16N/t{fid}.tiff",
                        fid,
                    ]
                )
    c = open_collection(str(index))  # builds the SQLite copy once
    assert len(c) == 9 * 33334
    c2 = open_collection(str(index))  # cached: reuses the SQLite copy (timed in make bench)
    assert c2.db_path == c.db_path
    hits = c2.query(2020, -88.0, 30.0, -86.0, 32.0)
    assert hits and all(t.year == 2020 for t in hits)
    # Correct: every hit intersects, and a brute-force count agrees.
    brute = 0
    for i in range(33334):
        lon = -180 + (i % 360) + 0.1
        lat = -60 + (i // 360) * 1.2
        if lon <= -86.0 and lon + 0.7 >= -88.0 and lat <= 32.0 and lat + 0.7 >= 30.0:
            brute += 1
    assert len(hits) == brute


def test_sample_tiles_have_the_real_products_internal_layout(sample_dir, tmp_path):
    """Band interleave (one compressed block = one band), internal tiles, ZSTD, bottom-up,
    overviews; the pixel-interleaved variant stays available for tests that need it."""
    import numpy as np
    import rasterio

    from earth_embeddings.scripts.sample import _write_tile

    tile = next(sample_dir.glob("*/*/*.tiff"))
    with rasterio.open(tile) as ds:
        assert ds.interleaving == rasterio.enums.Interleaving.band
        assert ds.block_shapes[0] == (64, 64) and ds.profile["tiled"]
        assert ds.compression == rasterio.enums.Compression.zstd
        assert ds.transform.e > 0  # bottom-up
        assert ds.overviews(1) == [2, 4, 8]
        assert ds.descriptions[0] == "A00" and ds.nodata == -128
    codes = np.random.default_rng(0).integers(-127, 128, (64, 128, 128), dtype=np.int8)
    _write_tile(tmp_path / "p.tif", codes, "EPSG:32616", 0.0, 0.0, 10.0, 64, interleave="pixel")
    with rasterio.open(tmp_path / "p.tif") as ds:
        assert ds.interleaving == rasterio.enums.Interleaving.pixel
        assert (ds.read()[:, ::-1] == codes).all()
    with pytest.raises(ValueError, match="interleave"):
        _write_tile(tmp_path / "x.tif", codes, "EPSG:32616", 0.0, 0.0, 10.0, 64, interleave="line")


def test_no_connection_to_the_public_product_is_one_sentence_naming_the_collection_field(monkeypatch, fresh_cache):
    import socket

    from earth_embeddings.core.collection import PUBLIC_URL_ENV, open_collection
    from earth_embeddings.core.errors import EmbeddingsError

    with socket.socket() as s:  # a local port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    monkeypatch.setenv(PUBLIC_URL_ENV, f"http://127.0.0.1:{port}/aef/v1/annual/")
    with pytest.raises(EmbeddingsError) as err:
        open_collection("")
    text = str(err.value)
    assert text.startswith("No connection to the public AEF product") and "in Collection" in text
    assert "urllib3" not in text and "\n" not in text
