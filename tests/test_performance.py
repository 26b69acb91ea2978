"""The reading speed settings (Settings > Options > Earth Embeddings) reach the core."""

import pytest
from qgis.core import QgsSettings

import earth_embeddings
from earth_embeddings.core.blocks import decode_threads, http_concurrency
from earth_embeddings.plugin import performance


@pytest.fixture
def clean(monkeypatch):
    settings = QgsSettings()
    for name in performance.SETTINGS:
        settings.remove(performance.PREFIX + name)
    monkeypatch.delenv("EARTH_EMBEDDINGS_THREADS", raising=False)
    monkeypatch.delenv("EARTH_EMBEDDINGS_HTTP_CONCURRENCY", raising=False)
    monkeypatch.setattr(performance, "_FROM_START", {name: None for name in performance.SETTINGS})
    yield settings
    for name in performance.SETTINGS:
        settings.remove(performance.PREFIX + name)


def test_the_options_page_sets_what_the_core_reads(qgis_app, clean):
    from earth_embeddings.plugin.performance_page import PerformancePage

    page = PerformancePage()
    assert page.boxes["threads"].value() == 0  # default: one per core
    assert page.boxes["http_concurrency"].value() == 16
    page.boxes["threads"].setValue(3)
    page.boxes["http_concurrency"].setValue(5)
    page.apply()
    assert decode_threads() == 3 and http_concurrency() == 5
    assert int(clean.value(performance.PREFIX + "threads")) == 3
    page.boxes["threads"].setValue(0)
    page.apply()
    assert decode_threads() >= 1  # back to the number of cores


def test_stored_settings_apply_when_processing_starts_and_a_variable_set_at_start_wins(
    qgis_app, qgis_processing, clean, monkeypatch
):
    clean.setValue(performance.PREFIX + "threads", 2)
    clean.setValue(performance.PREFIX + "http_concurrency", 300)  # out of range: clamped
    plugin = earth_embeddings.classFactory(None)
    plugin.initProcessing()  # what qgis_process calls
    try:
        assert decode_threads() == 2 and http_concurrency() == 64
    finally:
        if plugin.provider is not None:
            from qgis.core import QgsApplication

            QgsApplication.processingRegistry().removeProvider(plugin.provider)
    monkeypatch.setattr(performance, "_FROM_START", {"threads": "7", "http_concurrency": None})
    monkeypatch.setenv("EARTH_EMBEDDINGS_THREADS", "7")
    performance.apply_settings()
    assert decode_threads() == 7


def test_the_page_is_registered_with_the_desktop(qgis_app, qgis_iface, qgis_processing, clean):
    plugin = earth_embeddings.classFactory(qgis_iface)
    plugin.initGui()
    try:
        factory = plugin.options_factory
        assert factory is not None and factory.title() == "Earth Embeddings"
        assert not factory.icon().isNull()
    finally:
        plugin.unload()
    assert plugin.options_factory is None
