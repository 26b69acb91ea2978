"""The Processing provider "Earth Embeddings" (id ``embeddings``)."""

from __future__ import annotations

import importlib
import os

from qgis.core import (
    Qgis,
    QgsApplication,
    QgsMessageLog,
    QgsProcessingModelAlgorithm,
    QgsProcessingProvider,
)
from qgis.PyQt.QtGui import QIcon

from ..core.deps import importable, install_message, missing_dependencies
from .compat import FROM_MODEL_PARAMETER
from .resources import LOG_TAG, MODELS, icon_path

ICON = icon_path("embeddings.svg")

# (module, class, Python packages the algorithm cannot run without)
ALGORITHMS = (
    ("alg_load", "LoadEmbeddingsAlgorithm", ("rasterio", "pyproj")),
    ("alg_zonal", "ZonalStatsAlgorithm", ("rasterio", "pyproj")),
    ("alg_similarity", "SimilarityAlgorithm", ("rasterio", "pyproj")),
    ("alg_change", "ChangeMapAlgorithm", ("rasterio", "pyproj")),
    ("alg_classify", "ClassifyAlgorithm", ("rasterio", "pyproj")),
    ("alg_cluster", "ClusterAlgorithm", ("rasterio", "pyproj")),
    ("alg_trajectory", "TrajectoryAlgorithm", ("rasterio", "pyproj")),
)


class ShippedModel(QgsProcessingModelAlgorithm):
    """A model from resources/models, named after its file (``embeddings:change_hotspots``).

    A plain QgsProcessingModelAlgorithm is named after its title ("Change hotspots"), which
    would give an id with a space in it, awkward on the qgis_process command line.
    """

    def __init__(self, path: str):
        super().__init__()
        self.path = path
        self.stem = os.path.splitext(os.path.basename(path))[0]
        if not self.fromFile(path):
            raise ValueError(f"{path} is not a Processing model")
        self.attach_children()

    def name(self) -> str:
        return self.stem

    def displayName(self) -> str:
        return super().name()

    def createInstance(self):
        return ShippedModel(self.path)

    def attach_children(self) -> None:
        """Resolve the child algorithms again and rebuild the model's outputs from them.

        A model read while its own provider is still loading cannot find the provider's
        algorithms, and QGIS then silently leaves out the outputs of those steps.
        """
        for child_id in self.childAlgorithms():
            self.childAlgorithm(child_id).reattach()
        self.updateDestinationParameters()
        self.order_parameters()
        # The rebuilt outputs carry no help; the model's help page has it, keyed by name.
        help_content = self.helpContent()
        for param in self.destinationParameterDefinitions():
            if not param.help() and help_content.get(param.name()):
                param.setHelp(help_content[param.name()])

    def order_parameters(self) -> None:
        """List the inputs in the order of the algorithm they feed (the collection first), not
        in the alphabetical order QGIS 3.22 reads them from the .model3 file."""
        position: dict[str, tuple[int, int]] = {}
        for child_id in self.childAlgorithms():
            child = self.childAlgorithm(child_id)
            algorithm = child.algorithm()
            if algorithm is None:
                continue
            rank = 0 if child.algorithmId().startswith("embeddings:") else 1
            names = [d.name() for d in algorithm.parameterDefinitions()]
            for name, sources in child.parameterSources().items():
                for source in sources:
                    if source.source() == FROM_MODEL_PARAMETER and name in names:
                        key = (rank, names.index(name))
                        position[source.parameterName()] = min(position.get(source.parameterName(), key), key)
        inputs = [d for d in self.parameterDefinitions() if not d.isDestination()]
        ordered = sorted(inputs, key=lambda d: (*position.get(d.name(), (2, 0)), inputs.index(d)))
        if [d.name() for d in ordered] == [d.name() for d in inputs]:
            return
        clones = [d.clone() for d in ordered]
        outputs = [d.clone() for d in self.parameterDefinitions() if d.isDestination()]
        for definition in inputs + outputs:
            self.removeParameter(definition.name())
        for definition in clones + outputs:
            self.addParameter(definition)


def shipped_models() -> list[str]:
    """The .model3 files shipped in resources/models, sorted."""
    if not os.path.isdir(MODELS):
        return []
    return sorted(os.path.join(MODELS, n) for n in os.listdir(MODELS) if n.endswith(".model3"))


class EmbeddingsProvider(QgsProcessingProvider):
    def __init__(self):
        super().__init__()
        self.skipped: list[str] = []
        self._watching = False

    def id(self) -> str:
        return "embeddings"

    def name(self) -> str:
        return "Earth Embeddings"

    def longName(self) -> str:
        return "Earth Embeddings (satellite embedding similarity and change)"

    def icon(self) -> QIcon:
        return QIcon(ICON)

    def svgIconPath(self) -> str:
        return ICON

    def supportedOutputRasterLayerExtensions(self):
        return ["tif"]

    def defaultRasterFileExtension(self) -> str:
        return "tif"

    def load(self) -> bool:
        registry = QgsApplication.processingRegistry()
        if registry is not None and not self._watching:
            registry.providerAdded.connect(self._provider_added)
            self._watching = True
        return super().load()

    def unload(self) -> None:
        if self._watching:
            try:
                QgsApplication.processingRegistry().providerAdded.disconnect(self._provider_added)
            except (TypeError, RuntimeError):
                pass
            self._watching = False
        super().unload()

    def _provider_added(self, provider_id: str) -> None:
        if provider_id == self.id():
            for alg in self.algorithms():
                if isinstance(alg, ShippedModel):
                    alg.attach_children()

    def loadAlgorithms(self):
        self.skipped = []
        for module_name, class_name, requires in ALGORITHMS:
            missing = [m for m in requires if not importable(m)]
            if missing:
                self.skipped.append(f"{module_name} (needs {', '.join(missing)})")
                continue
            module = importlib.import_module(f"{__package__}.{module_name}")
            self.addAlgorithm(getattr(module, class_name)())
        if not self.skipped:
            # The models chain the algorithms above; without them they could not run.
            for path in shipped_models():
                try:
                    self.addAlgorithm(ShippedModel(path))
                except ValueError as err:
                    QgsMessageLog.logMessage(str(err), LOG_TAG, Qgis.MessageLevel.Warning)
        missing = missing_dependencies()
        if missing:
            # Optional packages only (faiss): information; the algorithms all work without them.
            level = Qgis.MessageLevel.Warning if any(d.required for d in missing) else Qgis.MessageLevel.Info
            QgsMessageLog.logMessage(install_message(missing), LOG_TAG, level)
