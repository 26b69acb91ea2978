"""Shared fixtures: a throwaway cache, sample collections, the plugin's provider."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import pytest

# A throwaway cache for every test session (never the user's).
_CACHE = tempfile.mkdtemp(prefix="ee-test-cache-")
os.environ["EARTH_EMBEDDINGS_CACHE"] = _CACHE
os.environ.setdefault("PROJ_DATA", "/usr/share/proj")

REPO = Path(__file__).resolve().parent.parent
DATA = Path(__file__).resolve().parent / "data"
OUTPUTS = REPO / "test-output"
WISCONSIN = DATA / "aef_wisconsin_2024_10m.tif"


def pytest_sessionfinish(session, exitstatus):
    shutil.rmtree(_CACHE, ignore_errors=True)


@pytest.fixture
def fresh_cache(tmp_path, monkeypatch):
    """An empty cache folder of the plugin's own for one test."""
    monkeypatch.setenv("EARTH_EMBEDDINGS_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache"


@pytest.fixture(scope="session")
def sample_dir(tmp_path_factory) -> Path:
    """The generated sample collection (two years, two UTM zones, planted truth)."""
    from earth_embeddings.scripts.sample import make_sample_collection

    folder = tmp_path_factory.mktemp("sample") / "annual"
    make_sample_collection(folder)
    return folder


@pytest.fixture(scope="session")
def sample_index(sample_dir) -> str:
    return str(sample_dir / "aef_index.csv")


@pytest.fixture(scope="session")
def truth(sample_dir):
    from earth_embeddings.scripts.sample import SampleTruth

    return SampleTruth.load(sample_dir)


@pytest.fixture(scope="session")
def series_dir(tmp_path_factory) -> Path:
    """The time-series sample collection (2017-2022: changes from different years, one-year
    disturbances, a one-year hole; see scripts/sample.py plant_series)."""
    from earth_embeddings.scripts.sample import make_series_collection

    folder = tmp_path_factory.mktemp("series") / "annual"
    make_series_collection(folder)
    return folder


@pytest.fixture(scope="session")
def series_truth(series_dir):
    from earth_embeddings.scripts.sample import SampleTruth

    return SampleTruth.load(series_dir)


@pytest.fixture(scope="session")
def south_dir(tmp_path_factory) -> Path:
    """A two-year sample collection in the southern hemisphere: zones 33S and 34S (EPSG:32733,
    EPSG:32734), seam at 18 E."""
    from earth_embeddings.scripts.sample import make_sample_collection

    folder = tmp_path_factory.mktemp("south") / "annual"
    make_sample_collection(folder, lon_seam=18.0, lat0=-33.9)
    return folder


@pytest.fixture(scope="session")
def wisconsin_raster() -> str:
    """Real AEF vectors (CC-BY 4.0, see tests/data/README.md)."""
    return str(WISCONSIN)


@pytest.fixture(scope="session")
def wisconsin_collection(tmp_path_factory) -> str:
    """The real Wisconsin sample wrapped as a one-tile collection in the product's layout."""
    from earth_embeddings.scripts.sample import make_collection_from_raster

    folder = tmp_path_factory.mktemp("wisconsin") / "annual"
    return str(make_collection_from_raster(WISCONSIN, folder, 2024))


@pytest.fixture(scope="session")
def outputs() -> Path:
    """A folder for artefacts worth looking at after a run (screenshots, maps)."""
    OUTPUTS.mkdir(exist_ok=True)
    return OUTPUTS


@pytest.fixture(scope="module")
def plugin_processing(qgis_app, qgis_processing):
    """QGIS Processing with the plugin's provider registered through initProcessing()."""
    from qgis.core import QgsApplication

    import earth_embeddings

    plugin = earth_embeddings.classFactory(None)
    plugin.initProcessing()
    assert QgsApplication.processingRegistry().providerById("embeddings") is not None
    yield plugin
    plugin.unload()


@pytest.fixture
def run_alg(plugin_processing):
    """processing.run with a fresh context and feedback; returns the result dict."""
    from qgis.core import QgsProcessingContext, QgsProcessingFeedback, QgsProject

    import processing

    def run(alg_id, params, feedback=None, context=None):
        ctx = context or QgsProcessingContext()
        ctx.setProject(QgsProject.instance())
        return processing.run(alg_id, params, context=ctx, feedback=feedback or QgsProcessingFeedback())

    return run
