"""The plugin through classFactory, initGui/initProcessing/unload, dependency messages."""

import sys

from qgis.core import QgsApplication

import earth_embeddings


def provider():
    return QgsApplication.processingRegistry().providerById("embeddings")


def test_init_gui_registers_provider_actions_and_unload_removes_them(qgis_app, qgis_iface, qgis_processing):
    plugin = earth_embeddings.classFactory(qgis_iface)
    plugin.initGui()
    try:
        p = provider()
        assert p is not None and p.name() == "Earth Embeddings"
        ids = {a.id() for a in p.algorithms()}
        assert "embeddings:load" in ids
        assert plugin.actions and all(a.parent() is not None for a in plugin.actions)
        assert plugin.toolbar is not None and plugin.toolbar.actions()
        assert not p.icon().isNull()
    finally:
        plugin.unload()
    assert provider() is None
    assert plugin.actions == [] and plugin.toolbar is None


def test_init_processing_alone_needs_no_gui(qgis_app, qgis_processing):
    plugin = earth_embeddings.classFactory(None)  # qgis_process passes no usable iface
    plugin.initProcessing()
    try:
        assert provider() is not None
        alg = QgsApplication.processingRegistry().algorithmById("embeddings:load")
        assert alg is not None
        for param in alg.parameterDefinitions():
            assert param.help(), f"{param.name()} has no help text"
        assert "Example" in alg.shortHelpString()
    finally:
        plugin.unload()
    assert provider() is None


def test_missing_faiss_gives_one_clear_message_and_keeps_algorithms(qgis_app, qgis_iface, qgis_processing, monkeypatch):
    monkeypatch.setitem(sys.modules, "faiss", None)  # makes "import faiss" fail
    plugin = earth_embeddings.classFactory(qgis_iface)
    plugin.initGui()
    try:
        message = plugin.dependency_message
        assert "faiss-cpu" in message and "NumPy" in message and "pip install" in message
        assert "faiss-cpu==1.8.0.post1" in message or "faiss-cpu>=1.9" in message
        assert "rasterio" not in message.split("(")[0]
        assert provider().algorithm("load") is not None
    finally:
        plugin.unload()


def test_missing_rasterio_skips_only_what_needs_it(qgis_app, qgis_processing, monkeypatch):
    monkeypatch.setitem(sys.modules, "rasterio", None)
    plugin = earth_embeddings.classFactory(None)
    plugin.initProcessing()
    try:
        p = provider()
        assert p is not None  # the provider still registers
        assert p.algorithm("load") is None
        assert any("rasterio" in s for s in p.skipped)
    finally:
        plugin.unload()
