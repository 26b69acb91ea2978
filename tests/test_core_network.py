"""Flaky stores: retries, timeouts, broken downloads, missing tiles - and nothing half-written."""

import time

import numpy as np
import pytest
import rasterio
from core_calls import load as load_embeddings
from httpserver import RangeServer

from earth_embeddings.core.errors import EmbeddingsError
from earth_embeddings.core.remote import cache_dir, fetch_cached


@pytest.fixture(scope="module")
def reference(sample_index, truth, tmp_path_factory):
    out = tmp_path_factory.mktemp("ref") / "ref.tif"
    load_embeddings(sample_index, 2024, truth.notes["bbox_wgs84"], "EPSG:4326", str(out))
    with rasterio.open(out) as ds:
        return ds.read()


@pytest.mark.parametrize(
    "flaw", [{"fail_every": 3, "fail_status": 503}, {"fail_every": 4, "fail_status": 500}, {"drop_every": 4}]
)
def test_a_flaky_store_still_gives_the_correct_result(
    flaw, sample_dir, truth, reference, fresh_cache, tmp_path, monkeypatch
):
    # This store fails every 3rd or 4th request it receives. With 16 requests in flight a
    # retried request can land on a failing count again and again, so allow more retries
    # than the default (a real store fails far less often than this).
    monkeypatch.setenv("EARTH_EMBEDDINGS_HTTP_RETRIES", "14")
    with RangeServer(sample_dir, **flaw) as server:
        out = tmp_path / "flaky.tif"
        load_embeddings(server.url + "aef_index.csv", 2024, truth.notes["bbox_wgs84"], "EPSG:4326", str(out))
        failures = sum(v for k, v in server.stats.status_counts.items() if k in (0, 500, 503))
    assert failures > 0  # the server really failed some requests
    with rasterio.open(out) as ds:
        assert np.array_equal(ds.read(), reference)


def test_a_download_that_breaks_off_is_retried_and_never_cached_half(sample_dir, fresh_cache):
    with RangeServer(sample_dir, truncate_every=2) as server:
        # Every second answer breaks off mid-body: request 1 (the CSV) arrives whole, request 2
        # (the GeoPackage) breaks off and is retried as request 3.
        fetch_cached(server.url + "aef_index.csv")
        got = fetch_cached(server.url + "aef_index.gpkg")
        assert server.stats.requests == 3
    assert got.path.read_bytes() == (sample_dir / "aef_index.gpkg").read_bytes()
    assert not list((fresh_cache / "downloads").glob("*.part"))


def test_a_download_that_always_breaks_off_fails_clearly_and_leaves_no_partial_file(
    sample_dir, fresh_cache, monkeypatch
):
    monkeypatch.setenv("EARTH_EMBEDDINGS_HTTP_RETRIES", "2")
    with RangeServer(sample_dir, truncate_every=1) as server:
        with pytest.raises(EmbeddingsError, match="kept breaking off"):
            fetch_cached(server.url + "aef_index.gpkg")
    assert not [p for p in (fresh_cache / "downloads").iterdir() if p.suffix != ".json"]


def test_a_stalled_server_times_out_with_a_clear_message(sample_dir, fresh_cache, monkeypatch):
    monkeypatch.setenv("EARTH_EMBEDDINGS_HTTP_TIMEOUT", "1")
    monkeypatch.setenv("EARTH_EMBEDDINGS_HTTP_RETRIES", "1")
    with RangeServer(sample_dir, stall_s=4) as server:
        start = time.monotonic()
        with pytest.raises(EmbeddingsError, match="Could not download .*aef_index.csv"):
            fetch_cached(server.url + "aef_index.csv")
        assert time.monotonic() - start < 15


def test_a_missing_tile_names_its_url_and_writes_nothing(sample_dir, truth, fresh_cache, tmp_path):
    import shutil

    mirror = tmp_path / "mirror"
    shutil.copytree(sample_dir, mirror)
    victim = next((mirror / "2024" / "16N").glob("*.tiff"))
    victim.unlink()
    with RangeServer(mirror) as server:
        out = tmp_path / "out.tif"
        with pytest.raises(EmbeddingsError) as err:
            load_embeddings(server.url + "aef_index.csv", 2024, truth.notes["bbox_wgs84"], "EPSG:4326", str(out))
    assert victim.name in str(err.value) and server.url in str(err.value)
    assert not out.exists() and not list(tmp_path.glob(".out*"))


def test_a_truncated_tile_is_named_and_nothing_is_written(sample_dir, truth, tmp_path):
    import shutil

    mirror = tmp_path / "collection"
    shutil.copytree(sample_dir, mirror)
    victim = sorted((mirror / "2024" / "15N").glob("*.tiff"))[0]
    data = victim.read_bytes()
    victim.write_bytes(data[: len(data) // 3])
    out = tmp_path / "out.tif"
    with pytest.raises(EmbeddingsError) as err:
        load_embeddings(str(mirror / "aef_index.csv"), 2024, truth.notes["bbox_wgs84"], "EPSG:4326", str(out))
    assert victim.name in str(err.value)
    assert not out.exists() and not list(tmp_path.glob(".out*"))


def test_the_cache_folder_is_the_throwaway_one(fresh_cache):
    assert cache_dir() == fresh_cache
