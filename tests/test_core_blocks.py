"""The reader's own block reading (core/tiff.py, core/blocks.py): the same values whatever the
threads and requests in flight, local or remote; each block fetched and decoded once; requests
in flight together; the plugin's User-Agent on every thread; a damaged block names its tile."""

import shutil
import threading

import numpy as np
import pytest
import rasterio
from core_calls import change, load
from httpserver import RangeServer

from earth_embeddings.core.blocks import COUNTERS
from earth_embeddings.core.errors import EmbeddingsError
from earth_embeddings.core.remote import USER_AGENT
from earth_embeddings.core.tiff import parse


def read(path):
    with rasterio.open(path) as ds:
        return ds.read()


def _change_both(source, bbox, out, **kw):
    change(str(out), source=source, year_a=2017, year_b=2024, extent=bbox, extent_crs="EPSG:4326", **kw)
    return read(out)


@pytest.mark.parametrize("crs", ["EPSG:32616", "EPSG:3857"])
def test_outputs_are_identical_for_any_thread_or_request_setting_local_or_remote(
    sample_dir, sample_index, truth, tmp_path, monkeypatch, fresh_cache, crs
):
    bbox = truth.notes["bbox_wgs84"]
    results = {}
    with RangeServer(sample_dir) as server:
        for threads, requests in ((1, 1), (2, 16), (5, 3)):
            monkeypatch.setenv("EARTH_EMBEDDINGS_THREADS", str(threads))
            monkeypatch.setenv("EARTH_EMBEDDINGS_HTTP_CONCURRENCY", str(requests))
            for where, source in (("local", sample_index), ("remote", server.url + "aef_index.csv")):
                out = tmp_path / f"{where}_{threads}_{requests}.tif"
                change(str(out), source=source, year_a=2017, year_b=2024, extent=bbox, extent_crs="EPSG:4326",
                       target_crs=crs)  # fmt: skip
                results[(where, threads, requests)] = read(out)
    first = next(iter(results.values()))
    assert np.isfinite(first[first != -9999]).all() and (first != -9999).sum() > 10_000
    for key, value in results.items():
        assert np.array_equal(value, first), key  # bit for bit


def test_each_needed_block_is_fetched_once_and_decoded_once(sample_dir, truth, tmp_path, fresh_cache):
    bbox = truth.notes["bbox_wgs84"]
    with RangeServer(sample_dir) as server:
        COUNTERS.reset()
        change(str(tmp_path / "c.tif"), source=server.url + "aef_index.csv", year_a=2017, year_b=2024,
               extent=bbox, extent_crs="EPSG:4326", target_crs="EPSG:32616")  # fmt: skip
        fetches = [f for f in server.stats.fetches if f[0].endswith(".tiff")]
    assert len(fetches) > 20
    assert len(fetches) == len(set(fetches))  # no (file, byte range) asked twice
    # Every block decoded exactly once, and some of them lie under two or more windows.
    assert COUNTERS.decoded and set(COUNTERS.decoded.values()) == {1}
    # The ranges asked for never overlap within a file: no byte travelled twice.
    by_file = {}
    for path, rng in fetches:
        a, b = map(int, rng[len("bytes=") :].split("-"))
        by_file.setdefault(path, []).append((a, b))
    for spans in by_file.values():
        spans.sort()
        assert all(b1 < a2 for (_, b1), (a2, _) in zip(spans, spans[1:]))


def test_under_latency_requests_are_in_flight_together(sample_dir, truth, tmp_path, fresh_cache, monkeypatch):
    # An object store across the internet answers each request late; the reader must not wait
    # for one answer before asking the next (no timing assertion: the server counts how many
    # requests it is answering at once).
    monkeypatch.setenv("EARTH_EMBEDDINGS_HTTP_CONCURRENCY", "8")
    with RangeServer(sample_dir, stall_s=0.05) as server:
        load(server.url + "aef_index.csv", 2024, truth.notes["bbox_wgs84"], "EPSG:4326", tmp_path / "l.tif")
        assert server.stats.max_in_flight >= 6


def _rewrite_with_predictor(folder):
    """Rewrite every tile with a horizontal predictor, which core.tiff leaves to GDAL."""
    for path in sorted(folder.glob("*/*/*.tiff")):
        with rasterio.open(path) as ds:
            profile, data, tags = ds.profile, ds.read(), ds.tags()
            descriptions = ds.descriptions
        profile.update(predictor=2, compress="deflate", interleave="band")
        tmp = path.with_suffix(".tmp.tif")
        with rasterio.open(tmp, "w", **profile) as out:
            out.write(data)
            out.update_tags(**tags)
            out.descriptions = descriptions
        tmp.replace(path)
        with open(path, "rb") as f:
            raw = f.read()
        assert parse(lambda off, n, raw=raw: raw[off : off + n], len(raw)) is None  # so GDAL reads it


@pytest.mark.parametrize("gdal_tiles", [False, True])
def test_a_worker_thread_reads_with_the_plugins_user_agent(
    sample_dir, truth, tmp_path, fresh_cache, gdal_tiles, sample_index
):
    # The public store answers 403 to other User-Agents. Processing runs algorithms off the main
    # thread, and the reader fans out to threads of its own: every request must carry it, both
    # from the reader's own HTTP client and from GDAL (tiles it cannot decode itself).
    folder = sample_dir
    if gdal_tiles:
        folder = tmp_path / "annual"
        shutil.copytree(sample_dir, folder)
        _rewrite_with_predictor(folder)
    out = tmp_path / "thread.tif"
    failures = []

    def run():
        try:
            load(server.url + "aef_index.csv", 2024, truth.notes["bbox_wgs84"], "EPSG:4326", out)
        except Exception as exc:  # noqa: BLE001 - reported by the assertion below
            failures.append(exc)

    with RangeServer(folder, require_agent=USER_AGENT) as server:
        worker = threading.Thread(target=run)
        worker.start()
        worker.join(300)
        agents = set(server.stats.user_agents)
        forbidden = server.stats.status_counts.get(403, 0)
    assert not failures, failures
    assert agents == {USER_AGENT} and forbidden == 0
    reference = tmp_path / "reference.tif"
    load(sample_index, 2024, truth.notes["bbox_wgs84"], "EPSG:4326", reference)
    assert np.array_equal(read(out), read(reference))


def test_a_damaged_block_names_its_tile_and_nothing_is_written(sample_dir, truth, tmp_path):
    folder = tmp_path / "annual"
    shutil.copytree(sample_dir, folder)
    tile = sorted((folder / "2024" / "16N").glob("*.tiff"))[0]
    raw = bytearray(tile.read_bytes())
    lv = parse(lambda off, n: bytes(raw[off : off + n]), len(raw)).levels[0]
    offset, size = lv.byte_range(5, 0, 0)
    raw[offset : offset + size] = b"\x00" * size  # one band of one block is garbage now
    tile.write_bytes(bytes(raw))
    out = tmp_path / "damaged.tif"
    with pytest.raises(EmbeddingsError, match=tile.stem):
        load(str(folder / "aef_index.csv"), 2024, truth.notes["bbox_wgs84"], "EPSG:4326", out)
    assert not out.exists()
