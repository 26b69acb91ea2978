"""Remote collections through a real HTTP server on 127.0.0.1 (Range, ETag)."""

import numpy as np
import pytest
import rasterio
from core_calls import load as load_embeddings
from httpserver import RangeServer, total_size

from earth_embeddings.core.collection import open_collection
from earth_embeddings.core.errors import EmbeddingsError
from earth_embeddings.core.remote import USER_AGENT, fetch_cached


@pytest.fixture(scope="module")
def mirror(sample_dir):
    with RangeServer(sample_dir) as server:
        yield server


def read(path):
    with rasterio.open(path) as ds:
        return ds.read()


def test_http_mirror_gives_the_same_result_as_local(mirror, sample_index, truth, tmp_path):
    ext = truth.notes["bbox_wgs84"]
    local, remote = tmp_path / "local.tif", tmp_path / "remote.tif"
    load_embeddings(sample_index, 2024, ext, "EPSG:4326", str(local))
    load_embeddings(mirror.url + "aef_index.csv", 2024, ext, "EPSG:4326", str(remote))
    assert np.array_equal(read(local), read(remote))
    assert USER_AGENT in mirror.stats.user_agents
    assert any(r.startswith("bytes=") for r in mirror.stats.ranges)


def test_sub_extent_fetches_far_fewer_bytes_than_the_tiles(mirror, sample_dir, truth, tmp_path):
    # A 300 m box inside one tile: only the header and the few blocks under it travel.
    w, s, e, n = truth.zones["16N"]["tiles"][0]
    x, y = w + 500, s + 500
    load_embeddings(
        mirror.url + "aef_index.gpkg", 2017, (x, y, x + 10, y + 10), "EPSG:32616", str(tmp_path / "warm.tif")
    )  # fetch and index the index first
    mirror.stats.reset()
    out = tmp_path / "small.tif"
    load_embeddings(mirror.url + "aef_index.gpkg", 2017, (x, y, x + 300, y + 300), "EPSG:32616", str(out))
    tiles_total = total_size(sample_dir / "2017")
    fetched = mirror.stats.bytes_sent
    assert read(out).shape == (64, 30, 30)
    assert fetched < 0.06 * tiles_total, f"fetched {fetched} of {tiles_total} bytes"
    assert all("/2017/" in p or p.endswith(".gpkg") for p in mirror.stats.paths)
    # What travelled is the compressed blocks under the box (their size from the TIFF's own
    # block-size tags) plus one header read per tile opened, each block range once.
    tile = next((sample_dir / "2017" / "16N").glob("*-0000000000-0000000000.tiff"))
    needed = _block_bytes(tile, x, y, x + 300, y + 300)
    headers = sum(1 for r in mirror.stats.ranges if r == "bytes=0-65535")
    assert fetched <= 1.1 * needed + headers * 65536, (fetched, needed, headers)
    assert len(mirror.stats.fetches) == len(set(mirror.stats.fetches))


def _block_bytes(path, x0, y0, x1, y1):
    """Compressed bytes of the full-resolution blocks of ``path`` under a box in its CRS."""
    from earth_embeddings.core.tiff import parse

    with open(path, "rb") as f:
        data = f.read()
    lv = parse(lambda off, n: data[off : off + n], len(data)).levels[0]
    with rasterio.open(path) as ds:
        t = ds.transform
    cols = sorted(int((x - t.c) // t.a) for x in (x0 + 1, x1 - 1))
    rows = sorted(int((y - t.f) // t.e) for y in (y0 + 1, y1 - 1))
    return lv.bytes_under((rows[0], rows[1] + 1), (cols[0], cols[1] + 1))


def test_index_is_cached_and_revalidated_by_etag(mirror):
    url = mirror.url + "aef_index.csv"
    first = fetch_cached(url)
    mirror.stats.reset()
    second = fetch_cached(url)
    assert second.from_cache and second.path == first.path
    assert mirror.stats.status_counts.get(304) == 1 and mirror.stats.bytes_sent == 0
    assert not list(first.path.parent.glob("*.part"))


def test_remote_collection_years_and_paths(mirror):
    c = open_collection(mirror.url + "aef_index.csv")
    assert c.years() == [2017, 2024]
    tiles = c.query(2017, -90.05, 44.40, -89.95, 44.50)
    assert tiles and all(t.location.startswith(mirror.url + "2017/") for t in tiles)
    assert all(t.gdal_path.startswith("/vsicurl/http://127.0.0.1") for t in tiles)


def test_missing_remote_index_names_the_url(mirror):
    with pytest.raises(EmbeddingsError, match=r"404.*|Nothing was found at .*nope\.csv"):
        open_collection(mirror.url + "nope.csv")


def test_forbidden_names_the_url_and_the_user_agent_hint(sample_dir):
    with RangeServer(sample_dir, fail_every=1, fail_status=403) as server:
        with pytest.raises(EmbeddingsError) as err:
            open_collection(server.url + "aef_index.csv")
    assert "403" in str(err.value) and server.url in str(err.value) and "User-Agent" in str(err.value)
