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
        # Click-to-search: a checkable toolbar button that activates the tool and shows the dock.
        action = plugin.search_action
        assert action in plugin.actions and action.isCheckable() and action in plugin.toolbar.actions()
        assert not action.icon().isNull()
        assert "Click-to-search panel" in [a.text() for a in plugin.actions]
        canvas = qgis_iface.mapCanvas()
        action.trigger()
        assert action.isChecked() and canvas.mapTool() is plugin.search_tool
        assert not plugin.search_dock.isHidden()
        action.trigger()
        assert canvas.mapTool() is not plugin.search_tool
        action.trigger()  # left active: unload must take it away
        tool = plugin.search_tool
        assert canvas.mapTool() is tool
    finally:
        plugin.unload()
    assert provider() is None
    assert plugin.actions == [] and plugin.toolbar is None
    assert plugin.search_tool is None and plugin.search_dock is None and plugin.search is None
    assert qgis_iface.mapCanvas().mapTool() is not tool


def test_search_choices_persist_in_settings_and_project(
    qgis_app, qgis_iface, qgis_processing, qgis_new_project, tmp_path
):
    from qgis.core import QgsProject

    from earth_embeddings.plugin.options import SearchOptions, load_settings

    plugin = earth_embeddings.classFactory(qgis_iface)
    plugin.initGui()
    try:
        dock = plugin.search_dock
        dock.source.setText("/data/aef/aef_index.csv")
        dock.source.editingFinished.emit()
        dock.year.setValue(2019)
        dock.top_k.setValue(5)
        dock.use_threshold.setChecked(True)
        dock.threshold.setValue(0.85)
        chosen = SearchOptions("/data/aef/aef_index.csv", 2019, 5, dock.options().opacity, 0.85)
        assert dock.options() == chosen and load_settings() == chosen
        project_file = str(tmp_path / "search.qgs")
        assert QgsProject.instance().write(project_file)
        dock.year.setValue(2021)
        dock.use_threshold.setChecked(False)
        assert load_settings().year == 2021 and load_settings().threshold is None
        assert QgsProject.instance().read(project_file)
        assert dock.options() == chosen  # the project's choices win when it is opened
    finally:
        plugin.unload()


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


def test_a_failing_slot_reports_one_sentence_instead_of_raising(qgis_app):
    from earth_embeddings.plugin.slots import guarded

    class Slots:
        def __init__(self):
            self.errors = []

        def show_error(self, message):
            self.errors.append(message)

        @guarded("The search")
        def broken(self):
            raise ValueError("no such band")

        @guarded("The search")
        def fine(self):
            return 42

    s = Slots()
    assert s.broken() is None and s.fine() == 42
    assert s.errors == ["The search failed unexpectedly (no such band); the details are in the log (Earth Embeddings)."]
