"""Earth Embeddings QGIS plugin: the entry point QGIS calls."""


def classFactory(iface):  # noqa: N802 - name required by QGIS
    """Create the plugin; the class is imported here so that loading stays cheap."""
    from .plugin.plugin import EarthEmbeddingsPlugin

    return EarthEmbeddingsPlugin(iface)
