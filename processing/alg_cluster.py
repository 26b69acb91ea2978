"""embeddings:cluster - Cluster embeddings (k-means)."""

from __future__ import annotations

from typing import Any

from qgis.core import (
    QgsCoordinateReferenceSystem,
    QgsFeature,
    QgsFeatureSink,
    QgsProcessingContext,
    QgsProcessingException,
    QgsProcessingFeedback,
    QgsProcessingOutputNumber,
    QgsProcessingParameterFeatureSink,
    QgsProcessingParameterNumber,
    QgsProcessingParameterRasterDestination,
)

from ..core.cluster import MAX_CLUSTERS, ClusterRequest, cluster_map
from ..core.kmeans import DEFAULT_CLUSTERS, K_RANGE
from ..core.palette import distinct_colours
from ..core.sampling import DEFAULT_SAMPLE_SIZE
from .base import EmbeddingsAlgorithm, FeedbackProgress, core_errors, make_fields, tr, with_help
from .compat import NUMBER_INTEGER, SOURCE_TABLE, WKB_NO_GEOMETRY
from .styles import PalettedStyle, save_paletted_style, style_on_load


class ClusterAlgorithm(EmbeddingsAlgorithm):
    icon_name = "embeddings.svg"
    help_text = (
        "Groups the pixels of an extent into clusters of similar embeddings, without labels "
        "(unsupervised k-means), to see the main kinds of place at a glance.\n\n"
        "Inputs: a collection, year and extent (or an embedding raster as INPUT), as in 'Load "
        "embeddings for extent'. CLUSTERS: how many (default 8); 0 chooses between "
        f"{K_RANGE[0]} and {K_RANGE[1]}: the number with the highest mean silhouette (cosine distance) "
        "of a 3,000-pixel subsample, each candidate fitted on 20,000 sample pixels (it favours well "
        "separated groups; on data without clear groups it prefers few, broad clusters). "
        "SAMPLE_SIZE: k-means is fitted on this many valid pixels (default 200,000) drawn uniformly "
        "over the whole extent in one streaming pass. Cosine (spherical) k-means, several seeded "
        "restarts (k-means++ starts), the best kept; the same SEED gives the same clusters.\n\n"
        "The extent is read twice: once to draw the sample, once to assign every pixel to its "
        "nearest centroid (cosine). Memory holds the sample and one block.\n\n"
        "Output: cluster ids 1..k (uint8, no-data 0), ordered by size in the map (1 = the largest; the ids "
        "are renumbered after the second pass), styled with one "
        "distinct colour per cluster (the style is saved beside the file as <name>.qml). "
        "OUTPUT_CENTROIDS (optional table): one row per cluster with its pixel count, its share of "
        "the map and its centroid (unit vector, one field per band).\n\n"
        "Keys: SOURCE, YEAR, EXTENT, TARGET_CRS, RESOLUTION, MAX_PIXELS or INPUT; CLUSTERS, SAMPLE_SIZE, "
        "SEED, OUTPUT, OUTPUT_CENTROIDS.\n\n"
        "Example (qgis_process): qgis_process run embeddings:cluster -- SOURCE=/data/aef/aef_index.csv "
        'YEAR=2024 EXTENT="-90.02,-89.98,44.44,44.46 [EPSG:4326]" CLUSTERS=8 OUTPUT=/tmp/clusters.tif'
    )

    def name(self) -> str:
        return "cluster"

    def displayName(self) -> str:
        return tr("Cluster embeddings (k-means)")

    def initAlgorithm(self, config: dict[str, Any] | None = None) -> None:
        self.add_source_parameters(optional_extent=True)
        self.add_input_raster(
            "INPUT",
            "Embedding raster (instead of a collection)",
            "An embedding raster (for example from 'Load embeddings for extent'); when given, the "
            "collection, year, target CRS and resolution are not used.",
        )
        self.addParameter(
            with_help(
                QgsProcessingParameterNumber(
                    "CLUSTERS",
                    tr("Number of clusters (0 = choose)"),
                    NUMBER_INTEGER,
                    DEFAULT_CLUSTERS,
                    False,
                    0,
                    MAX_CLUSTERS,
                ),
                f"How many clusters; 0 picks between {K_RANGE[0]} and {K_RANGE[1]} by the highest mean "
                "cosine silhouette on a subsample.",
            )
        )
        self.addParameter(
            with_help(
                QgsProcessingParameterNumber(
                    "SAMPLE_SIZE", tr("Sample size (pixels)"), NUMBER_INTEGER, DEFAULT_SAMPLE_SIZE, False, 100
                ),
                "Valid pixels drawn uniformly over the extent to fit k-means on (the map itself covers every pixel).",
            )
        )
        self.addParameter(
            with_help(
                QgsProcessingParameterNumber("SEED", tr("Random seed"), NUMBER_INTEGER, 0, False, 0),
                "Seeds the sample and the k-means starts: the same inputs and seed give the same clusters.",
            )
        )
        self.addParameter(
            with_help(
                QgsProcessingParameterRasterDestination("OUTPUT", tr("Clusters")),
                "Cluster ids 1..k (.tif, uint8, no-data 0), 1 = the largest.",
            )
        )
        self.addParameter(
            with_help(
                QgsProcessingParameterFeatureSink(
                    "OUTPUT_CENTROIDS",
                    tr("Cluster centroids"),
                    SOURCE_TABLE,
                    optional=True,
                    createByDefault=False,
                ),
                "Optional table: cluster, pixels, share (0-1) and the centroid's value per band.",
            )
        )
        self.addOutput(QgsProcessingOutputNumber("CLUSTERS_USED", tr("Number of clusters")))
        self.addOutput(QgsProcessingOutputNumber("VALID_PIXELS", tr("Pixels with data")))

    def processAlgorithm(
        self, parameters: dict[str, Any], context: QgsProcessingContext, feedback: QgsProcessingFeedback
    ) -> dict[str, Any]:
        source = self.source_spec(parameters, context)
        grid = self.grid_spec(parameters, context)
        if not source.raster and grid.extent is None:
            raise QgsProcessingException(
                tr("Choose an extent to cluster (for example the map canvas extent), or an embedding raster as input.")
            )
        output = self.geotiff_output(parameters, context)
        request = ClusterRequest(
            output=output,
            source=source,
            grid=grid,
            clusters=self.parameterAsInt(parameters, "CLUSTERS", context),
            sample_size=self.parameterAsInt(parameters, "SAMPLE_SIZE", context),
            seed=self.parameterAsInt(parameters, "SEED", context),
        )
        with core_errors():
            result = cluster_map(request, FeedbackProgress(feedback))
        total = max(1, result.valid_pixels)
        colours = distinct_colours(result.k)
        classes = [
            (i + 1, f"cluster {i + 1} ({100.0 * int(n) / total:.1f} %)", colours[i])
            for i, n in enumerate(result.pixels)
        ]
        if save_paletted_style(output, classes) is None:
            feedback.pushWarning(tr("The cluster style could not be saved beside {output}.").format(output=output))
        style_on_load(context, output, tr("Clusters"), PalettedStyle(classes))
        results: dict[str, Any] = {
            "OUTPUT": output,
            "OUTPUT_CENTROIDS": None,
            "CLUSTERS_USED": result.k,
            "VALID_PIXELS": result.valid_pixels,
        }
        if parameters.get("OUTPUT_CENTROIDS") not in (None, ""):
            spec = [("cluster", int), ("pixels", int), ("share", float)] + [(b, float) for b in result.band_names]
            fields = make_fields(spec)
            sink, dest = self.parameterAsSink(
                parameters, "OUTPUT_CENTROIDS", context, fields, WKB_NO_GEOMETRY, QgsCoordinateReferenceSystem()
            )
            if sink is not None:
                for i in range(result.k):
                    feat = QgsFeature(fields)
                    n = int(result.pixels[i])
                    feat.setAttributes([i + 1, n, n / total] + [float(v) for v in result.centroids[i]])
                    if not sink.addFeature(feat, QgsFeatureSink.Flag.FastInsert):
                        raise QgsProcessingException(tr("A feature could not be written to the centroids table."))
                results["OUTPUT_CENTROIDS"] = dest
        return results
