"""make demo: the plugin end to end through qgis_process, with maps and a summary.

Without options: builds the sample collection (demo-output/collection: two years, two UTM
zones, planted change), then runs through ``qgis_process.bin --json``, in a throwaway QGIS
profile with the plugin installed by ``make install``: load, change (with polygons), the
"Change hotspots" model, similarity (the sample's exemplars, top-k), zonal statistics (the
sample's zones, PCA), similarity on the real Wisconsin excerpt (tests/data), and (sample only)
the change read from the sample rewritten as a folder of 128-band float32 GeoTIFFs without an
index (tests/folders.py: another product's layout). Then renders
PNG maps with QGIS's map renderer and the plugin's own styles and writes summary.txt.

Options (``make demo VAR=...`` passes them): --source (given but empty = the public product),
--extent ("xmin,xmax,ymin,ymax [EPSG:xxxx]", needed with --source), --year-a, --year-b, --year
(similarity and zones; default year B), --exemplars (default: the centre of the extent),
--zones (default: a 4 x 3 grid of polygons over the extent), --out (default demo-output).
"""

from __future__ import annotations

import argparse
import json
import math
import re
import shutil
import socket
import sys
import tempfile
import time
from pathlib import Path
from urllib.parse import urlparse

from qgis_profile import QGIS_PROCESS, REPO, make_profile, run_algorithm


def _tests_helper(name: str):
    """A helper module of tests/ (loaded by path: tests/ is not a package)."""
    import importlib.util

    spec = importlib.util.spec_from_file_location(f"earth_embeddings_tests_{name}", REPO / "tests" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


WISCONSIN = REPO / "tests" / "data" / "aef_wisconsin_2024_10m.tif"
ATTRIBUTION = (
    "The AlphaEarth Foundations Satellite Embedding dataset is produced by Google and Google DeepMind, "
    "licensed CC-BY 4.0 (tests/data/aef_wisconsin_2024_10m.tif is an excerpt of it)."
)
PUBLIC_INDEX_HOST = "data.source.coop"


class DemoError(Exception):
    """A one-sentence reason the demo cannot go on."""


# Inputs ----------------------------------------------------------------------------------------
def parse_extent(text: str) -> tuple[tuple[float, float, float, float], str]:
    """ "xmin,xmax,ymin,ymax [EPSG:4326]" (qgis_process's extent syntax) -> (w, s, e, n), crs."""
    match = re.fullmatch(r"\s*([^,\[]+),([^,]+),([^,]+),([^,\[]+?)\s*(?:\[(.+)\])?\s*", text or "")
    try:
        xmin, xmax, ymin, ymax = (float(match.group(i)) for i in range(1, 5))
    except (AttributeError, ValueError):
        raise DemoError(
            f'EXTENT "{text}" is not "xmin,xmax,ymin,ymax [EPSG:4326]"; give it in that form, for example '
            'EXTENT="-90.02,-89.98,44.44,44.46 [EPSG:4326]".'
        ) from None
    if xmax <= xmin or ymax <= ymin:
        raise DemoError(f'EXTENT "{text}" is empty: it must be xmin,xmax,ymin,ymax with xmin < xmax and ymin < ymax.')
    return (xmin, ymin, xmax, ymax), (match.group(5) or "EPSG:4326").strip()


def check_network(source: str) -> None:
    """Fail early, in one sentence, when a remote collection cannot be reached."""
    if source == "":
        host, what = PUBLIC_INDEX_HOST, "the public AlphaEarth Foundations product (Source Cooperative)"
    elif source.startswith(("http://", "https://")):
        host, what = urlparse(source).hostname, source
    else:
        return
    port = 80 if source.startswith("http://") else 443
    try:
        socket.create_connection((host, port), timeout=10).close()
    except OSError:
        raise DemoError(
            f"cannot reach {what} ({host}): this machine seems to have no network access; "
            "run make demo without SOURCE to use the sample collection."
        ) from None


def write_geojson(path: Path, features: list) -> str:
    path.write_text(json.dumps({"type": "FeatureCollection", "features": features}))
    return str(path)


def centre_exemplar(bounds, crs: str, path: Path) -> str:
    """One exemplar point at the centre of the extent (the default for a custom SOURCE)."""
    from earth_embeddings.core.grid import transformer

    w, s, e, n = bounds
    lon, lat = transformer(crs, "EPSG:4326").transform((w + e) / 2, (s + n) / 2)
    point = {"type": "Point", "coordinates": [lon, lat]}
    return write_geojson(path, [{"type": "Feature", "properties": {"name": "centre of the extent"}, "geometry": point}])


def grid_zones(bounds, crs: str, path: Path, nx: int = 4, ny: int = 3) -> str:
    """A grid of nx x ny polygons over the extent (the default zones for a custom SOURCE)."""
    from earth_embeddings.core.grid import transformer

    to_ll = transformer(crs, "EPSG:4326")
    w, s, e, n = bounds
    dx, dy = (e - w) / nx, (n - s) / ny
    features = []
    for j in range(ny):
        for i in range(nx):
            x0, y0 = w + i * dx, s + j * dy
            # 5 points per side so the cells stay close to rectangles in the extent's CRS.
            ring = [(x0 + dx * t / 4, y0) for t in range(4)] + [(x0 + dx, y0 + dy * t / 4) for t in range(4)]
            ring += [(x0 + dx - dx * t / 4, y0 + dy) for t in range(4)] + [(x0, y0 + dy - dy * t / 4) for t in range(4)]
            lon, lat = to_ll.transform([p[0] for p in ring], [p[1] for p in ring])
            coords = [[a, b] for a, b in zip(lon, lat)] + [[lon[0], lat[0]]]
            zid = j * nx + i + 1
            features.append(
                {
                    "type": "Feature",
                    "properties": {"zone_id": zid, "name": f"cell {zid}"},
                    "geometry": {"type": "Polygon", "coordinates": [coords]},
                }
            )
    return write_geojson(path, features)


# Running ---------------------------------------------------------------------------------------
class Runner:
    """Runs algorithms through qgis_process.bin --json and keeps their results and timings."""

    def __init__(self, env: dict):
        self.env = env
        self.timings: list[tuple[str, float]] = []

    def run(self, alg_id: str, params: dict, label: str) -> dict:
        shown = {k: v for k, v in params.items() if v not in (None, "")}
        print(f"demo: {label}: qgis_process.bin run {alg_id} -- " + " ".join(f"{k}={v}" for k, v in shown.items()))
        start = time.perf_counter()
        proc = run_algorithm(alg_id, params, self.env)
        seconds = time.perf_counter() - start
        if proc.returncode != 0 or proc.json is None:
            lines = [ln for ln in (proc.stdout + proc.stderr).splitlines() if ln.strip()]
            reason = next((ln for ln in reversed(lines) if "rror" in ln), lines[-1] if lines else "no output")
            raise DemoError(f"{alg_id} failed: {reason.strip()}")
        self.timings.append((label, seconds))
        print(f"demo:   done in {seconds:.1f} s")
        return proc.json["results"]


# Rendering -------------------------------------------------------------------------------------
def start_qgis():
    from qgis.core import QgsApplication

    app = QgsApplication([], False)
    app.initQgis()
    return app


def raster(path: str, name: str, style):
    from qgis.core import QgsRasterLayer

    layer = QgsRasterLayer(path, name)
    if not layer.isValid():
        raise DemoError(f"QGIS cannot open {path}.")
    # The post-processor the algorithm attaches when it loads the layer in the desktop.
    style.postProcessLayer(layer, None, None)
    return layer


def vector(path: str, name: str, style=None):
    from qgis.core import QgsVectorLayer

    layer = QgsVectorLayer(path, name, "ogr")
    if not layer.isValid():
        raise DemoError(f"QGIS cannot open {path}.")
    if style is not None:
        style.postProcessLayer(layer, None, None)
    return layer


def exemplar_layer(path: str):
    """Exemplars as white stars: inputs have no style of their own in the plugin."""
    from qgis.core import QgsMarkerSymbol

    layer = vector(path, "exemplars")
    symbol = QgsMarkerSymbol.createSimple(
        {"name": "star", "color": "#ffffff", "outline_color": "#000000", "size": "6", "outline_width": "0.5"}
    )
    layer.renderer().setSymbol(symbol)
    return layer


def ramp_stops(layer):
    """(value, QColor) stops of a single-band pseudocolor layer, for the colour bar."""
    from qgis.core import QgsSingleBandPseudoColorRenderer

    renderer = layer.renderer()
    if not isinstance(renderer, QgsSingleBandPseudoColorRenderer):
        return []
    return [(item.value, item.color) for item in renderer.shader().rasterShaderFunction().colorRampItemList()]


def render(path: Path, layers, extent_layer, title: str, legend=None, width: int = 900, categories=None) -> None:
    """Render ``layers`` (top first) over ``extent_layer``'s extent to a PNG with a title and a
    colour bar (legend = (label, stops)) or a legend of classes (categories = [(name, QColor)])."""
    from qgis.core import QgsMapRendererParallelJob, QgsMapSettings
    from qgis.PyQt.QtCore import QPointF, QRectF, QSize, Qt
    from qgis.PyQt.QtGui import QColor, QFont, QImage, QLinearGradient, QPainter, QPen

    extent = extent_layer.extent()
    extent.scale(1.02)
    height = max(200, round(width * extent.height() / extent.width()))
    settings = QgsMapSettings()
    settings.setLayers(layers)
    settings.setDestinationCrs(extent_layer.crs())
    settings.setExtent(extent)
    settings.setOutputSize(QSize(width, height))
    settings.setBackgroundColor(QColor("#ffffff"))
    job = QgsMapRendererParallelJob(settings)
    job.start()
    job.waitForFinished()
    per_row = 4
    rows = math.ceil(len(categories) / per_row) if categories else 0
    title_px, footer_px = 34, (52 if legend and legend[1] else 0) + (12 + 22 * rows if rows else 0)
    image = QImage(width, height + title_px + footer_px, QImage.Format_ARGB32)
    image.fill(QColor("#ffffff"))
    painter = QPainter(image)
    painter.setRenderHint(QPainter.Antialiasing)
    painter.drawImage(0, title_px, job.renderedImage())
    painter.setPen(QPen(QColor("#888888")))
    painter.drawRect(QRectF(0, title_px, width - 1, height))
    font = QFont()
    font.setPixelSize(16)
    font.setBold(True)
    painter.setFont(font)
    painter.setPen(QPen(QColor("#000000")))
    painter.drawText(QRectF(10, 0, width - 20, title_px), Qt.AlignVCenter | Qt.AlignLeft, title)
    if legend and legend[1]:
        label, stops = legend
        lo, hi = stops[0][0], stops[-1][0]
        top = title_px + height + 6
        bar = QRectF(width - 330, top + 4, 260, 14)
        gradient = QLinearGradient(QPointF(bar.left(), 0), QPointF(bar.right(), 0))
        for value, color in stops:
            gradient.setColorAt(0.0 if hi == lo else (value - lo) / (hi - lo), color)
        painter.fillRect(bar, gradient)
        font.setPixelSize(13)
        font.setBold(False)
        painter.setFont(font)
        painter.drawText(QRectF(10, top, bar.left() - 60, 22), Qt.AlignVCenter | Qt.AlignRight, label)
        painter.drawText(QRectF(bar.left() - 50, top, 45, 22), Qt.AlignVCenter | Qt.AlignRight, f"{lo:.2f}")
        painter.drawText(QRectF(bar.right() + 5, top, 60, 22), Qt.AlignVCenter | Qt.AlignLeft, f"{hi:.2f}")
    if rows:
        font.setPixelSize(13)
        font.setBold(False)
        painter.setFont(font)
        cell = (width - 20) / per_row
        for i, (name, color) in enumerate(categories):
            x = 10 + cell * (i % per_row)
            y = title_px + height + 8 + 22 * (i // per_row)
            painter.fillRect(QRectF(x, y + 3, 16, 14), color)
            painter.setPen(QPen(QColor("#444444")))
            painter.drawRect(QRectF(x, y + 3, 16, 14))
            painter.setPen(QPen(QColor("#000000")))
            painter.drawText(QRectF(x + 22, y, cell - 26, 20), Qt.AlignVCenter | Qt.AlignLeft, name)
    painter.end()
    if not image.save(str(path)):
        raise DemoError(f"could not write {path}")
    print(f"demo: wrote {path}")


# Summary ---------------------------------------------------------------------------------------
def features(path: str, fields, order=None, limit=None):
    """Rows of (lon, lat, {field: value}) with the point on surface in WGS84."""
    from qgis.core import QgsCoordinateReferenceSystem, QgsCoordinateTransform, QgsProject

    layer = vector(path, "rows")
    to_ll = QgsCoordinateTransform(layer.crs(), QgsCoordinateReferenceSystem("EPSG:4326"), QgsProject.instance())
    rows = []
    for f in layer.getFeatures():
        p = to_ll.transform(f.geometry().pointOnSurface().asPoint())
        rows.append((p.x(), p.y(), {k: f[k] for k in fields}))
    if order:
        key, reverse = order
        rows.sort(key=lambda r: r[2][key], reverse=reverse)
    return rows[:limit] if limit else rows


def fmt(value, spec):
    return "NULL" if value is None or (isinstance(value, float) and math.isnan(value)) else format(value, spec)


# Main ------------------------------------------------------------------------------------------
def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description="make demo: the plugin end to end through qgis_process")
    parser.add_argument("--source", default=None, help="collection; given but empty = the public product")
    parser.add_argument("--extent", default=None)
    parser.add_argument("--year-a", type=int, default=None)
    parser.add_argument("--year-b", type=int, default=None)
    parser.add_argument("--year", type=int, default=None)
    parser.add_argument("--exemplars", default=None)
    parser.add_argument("--zones", default=None)
    parser.add_argument("--training", default=None, help="labelled points/polygons with a 'class' field")
    parser.add_argument("--out", default=str(REPO / "demo-output"))
    args = parser.parse_args(argv)
    try:
        return demo(args)
    except DemoError as err:
        print(f"demo: {err}", file=sys.stderr)
        return 1


def demo(args) -> int:
    t0 = time.perf_counter()
    if QGIS_PROCESS is None:
        raise DemoError("qgis_process.bin is not installed; run make setup (Debian: apt-get install qgis).")
    out = Path(args.out).resolve()
    out.mkdir(parents=True, exist_ok=True)
    for stale in out.glob("*"):
        if stale.is_file():
            stale.unlink()
    sample = args.source is None
    if sample:
        if args.extent:
            raise DemoError("EXTENT needs SOURCE: the sample collection has its own extent (leave EXTENT out).")
        from earth_embeddings.scripts.sample import make_sample_collection

        collection = out / "collection"
        shutil.rmtree(collection, ignore_errors=True)
        print(f"demo: building the sample collection in {collection}")
        truth = make_sample_collection(collection)
        source = str(collection / "aef_index.csv")
        w, s, e, n = truth.notes["bbox_wgs84"]
        bounds, extent_crs = (w, s, e, n), "EPSG:4326"
        year_a, year_b = args.year_a or min(truth.years), args.year_b or max(truth.years)
        # The sample's exemplars are forest in the first year.
        year = args.year or min(truth.years)
        exemplars = args.exemplars or str(collection / "exemplars.geojson")
        zones = args.zones or str(collection / "zones.geojson")
        training = args.training or sample_training(truth, year, out / "training.geojson")
        source_label = f"the sample collection ({collection})"
    else:
        if not args.extent:
            raise DemoError('SOURCE needs EXTENT, for example EXTENT="-90.02,-89.98,44.44,44.46 [EPSG:4326]".')
        source = args.source
        check_network(source)
        bounds, extent_crs = parse_extent(args.extent)
        year_a, year_b = args.year_a or 2017, args.year_b or 2024
        year = args.year or year_b
        exemplars = args.exemplars or centre_exemplar(bounds, extent_crs, out / "exemplars.geojson")
        zones = args.zones or grid_zones(bounds, extent_crs, out / "zones.geojson")
        training = args.training  # classification needs labels of the user's own
        source_label = source or "the public AlphaEarth Foundations product (Source Cooperative)"
    w, s, e, n = bounds
    extent = f"{w},{e},{s},{n} [{extent_crs}]"

    with tempfile.TemporaryDirectory(prefix="ee-demo-profile-") as profile:
        print("demo: make install into a throwaway QGIS profile")
        runner = Runner(make_profile(Path(profile)))
        common = {"SOURCE": source, "EXTENT": extent}
        load = runner.run(
            "embeddings:load",
            {**common, "YEAR": year_b, "OUTPUT": out / f"embeddings_{year_b}.tif"},
            f"load {year_b}",
        )
        change = runner.run(
            "embeddings:change",
            {
                **common,
                "YEAR_A": year_a,
                "YEAR_B": year_b,
                "THRESHOLD": 0.25,
                "OUTPUT": out / f"change_{year_a}_{year_b}.tif",
                "OUTPUT_POLYGONS": out / "change_areas.gpkg",
            },
            f"change {year_a}-{year_b}",
        )
        hotspots = runner.run(
            "embeddings:change_hotspots",
            {
                **common,
                "YEAR_A": year_a,
                "YEAR_B": year_b,
                "MAX_AREAS": 3,
                "change:CHANGE_MAP": out / "hotspots_change.tif",
                "largest:HOTSPOTS": out / "hotspots.gpkg",
            },
            "model Change hotspots",
        )
        similarity = runner.run(
            "embeddings:similarity",
            {
                **common,
                "YEAR": year,
                "EXEMPLARS": exemplars,
                "TOP_K": 5,
                "MIN_SEPARATION_M": 300,
                "OUTPUT": out / f"similarity_{year}.tif",
                "OUTPUT_TOP_K": out / "top_places.gpkg",
            },
            f"similarity {year}",
        )
        zonal = runner.run(
            "embeddings:zonalstats",
            {"SOURCE": source, "YEAR": year, "ZONES": zones, "PCA_COMPONENTS": 3, "OUTPUT": out / "zone_stats.gpkg"},
            f"zonal statistics {year}",
        )
        classify = None
        if training:
            classify = runner.run(
                "embeddings:classify",
                {
                    **common,
                    "YEAR": year,
                    "TRAINING": training,
                    "CLASS_FIELD": "class",
                    "OUTPUT": out / f"classes_{year}.tif",
                    "OUTPUT_CONFIDENCE": out / f"confidence_{year}.tif",
                    "OUTPUT_REPORT": out / "accuracy.html",
                    "OUTPUT_MODEL": out / "landcover.npz",
                },
                f"classify {year}",
            )
        cluster = runner.run(
            "embeddings:cluster",
            {
                **common,
                "YEAR": year,
                "CLUSTERS": 0,
                "OUTPUT": out / f"clusters_{year}.tif",
                "OUTPUT_CENTROIDS": out / "cluster_centroids.csv",
            },
            f"cluster {year}",
        )
        if sample:
            from earth_embeddings.scripts.sample import make_series_collection

            series = out / "series"
            shutil.rmtree(series, ignore_errors=True)
            print(f"demo: building the time-series sample in {series}")
            series_truth = make_series_collection(series)
            sw, ss, se, sn = series_truth.notes["bbox_wgs84"]
            series_source, series_extent = str(series / "aef_index.csv"), f"{sw},{se},{ss},{sn} [EPSG:4326]"
            span = f"{min(series_truth.years)}-{max(series_truth.years)}"
        else:
            series_source, series_extent, span = source, extent, f"{year_a}-{year_b}"
        trajectory = runner.run(
            "embeddings:trajectory",
            {
                "SOURCE": series_source,
                "EXTENT": series_extent,
                "YEARS": span,
                "THRESHOLD": 0.25,
                "OUTPUT": out / "change_by_year.tif",
                "OUTPUT_YEAR": out / "year_of_change.tif",
                "OUTPUT_ANOMALY": out / "anomaly.tif",
                "OUTPUT_TABLE": out / "per_year.gpkg",
                "OUTPUT_REPORT": out / "trajectory_report.html",
            },
            f"change over years {span}",
        )
        wisconsin_exemplar = wisconsin_centre(out / "wisconsin_exemplar.geojson")
        wisconsin = runner.run(
            "embeddings:similarity",
            {
                "INPUT": WISCONSIN,
                "EXEMPLARS": wisconsin_exemplar,
                "TOP_K": 5,
                "MIN_SEPARATION_M": 150,
                "OUTPUT": out / "wisconsin_similarity.tif",
                "OUTPUT_TOP_K": out / "wisconsin_top_places.gpkg",
            },
            "similarity on the real Wisconsin excerpt",
        )
        folder_change = None
        if sample:
            other = out / "other_product"
            shutil.rmtree(other, ignore_errors=True)
            print(f"demo: writing the sample as a folder of 128-band float32 GeoTIFFs (no index) in {other}")
            _tests_helper("folders").float_folder(collection, other)
            folder_change = runner.run(
                "embeddings:change",
                {**common, "SOURCE": other, "YEAR_A": year_a, "YEAR_B": year_b, "OUTPUT": out / "folder_change.tif"},
                "change from a folder of float tiles",
            )

    app = start_qgis()
    from earth_embeddings.processing.styles import (
        EmbeddingsRgbStyle,
        GraduatedStyle,
        PseudocolorStyle,
        QmlStyle,
        YearStyle,
    )

    change_layer = raster(change["OUTPUT"], "change", QmlStyle("change.qml"))
    areas_layer = vector(change["OUTPUT_POLYGONS"], "change areas", QmlStyle("change_areas.qml"))
    render(
        out / "change.png",
        [areas_layer, change_layer],
        change_layer,
        f"Change {year_a} → {year_b} (1 − cosine), change areas above 0.25 outlined",
        ("1 − cosine", ramp_stops(change_layer)),
    )
    sim_layer = raster(
        similarity["OUTPUT"],
        "similarity",
        PseudocolorStyle("similarity.qml", similarity["SCORE_LOW"], similarity["SCORE_MAX"]),
    )
    top_layer = vector(similarity["OUTPUT_TOP_K"], "top places", QmlStyle("similarity_top_k.qml"))
    render(
        out / "similarity.png",
        [exemplar_layer(exemplars), top_layer, sim_layer],
        sim_layer,
        f"Similarity to the exemplars ({year}): stars = exemplars, numbered = top 5",
        ("cosine similarity", ramp_stops(sim_layer)),
    )
    import rasterio

    with rasterio.open(trajectory["OUTPUT_YEAR"]) as ds:
        change_years = [int(y) for y in ds.tags()["EMBEDDINGS_YEARS"].split(",")][1:]
    year_style = YearStyle(change_years, "not persistently changed", "since {year}")
    year_layer = raster(trajectory["OUTPUT_YEAR"], "year of change", year_style)
    render(
        out / "year_of_change.png",
        [year_layer],
        year_layer,
        f"Year of change {span}: since when each pixel has stayed changed (1 − cos ≥ 0.25)",
        categories=legend_of(year_layer),
    )
    rgb = raster(load["OUTPUT"], "embeddings", EmbeddingsRgbStyle())
    zones_layer = vector(zonal["OUTPUT"], "zones", GraduatedStyle("pc1"))
    zones_layer.setOpacity(0.85)
    render(
        out / "zones.png",
        [zones_layer, rgb],
        rgb,
        f"Zones coloured by pc1 ({year}), over the embeddings as RGB (A01/A16/A09)",
    )
    if classify is not None:
        classes_layer = sidecar_styled(classify["OUTPUT"], "classes")
        points = labelled_layer(training)
        accuracy = classify["OVERALL_ACCURACY"]
        render(
            out / "classes.png",
            [points, classes_layer],
            classes_layer,
            f"Classes {year} from {points.featureCount()} labelled points (dots), logistic regression; "
            f"cross-validated accuracy {accuracy:.2f}",
            categories=legend_of(classes_layer),
        )
    clusters_layer = sidecar_styled(cluster["OUTPUT"], "clusters")
    render(
        out / "clusters.png",
        [clusters_layer],
        clusters_layer,
        f"{cluster['CLUSTERS_USED']} clusters of the {year} embeddings (cosine k-means, k chosen by the silhouette), "
        "1 = largest",
        categories=legend_of(clusters_layer),
    )
    wis_layer = raster(
        wisconsin["OUTPUT"],
        "wisconsin",
        PseudocolorStyle("similarity.qml", wisconsin["SCORE_LOW"], wisconsin["SCORE_MAX"]),
    )
    wis_top = vector(wisconsin["OUTPUT_TOP_K"], "wisconsin top places", QmlStyle("similarity_top_k.qml"))
    render(
        out / "wisconsin_similarity.png",
        [exemplar_layer(wisconsin_exemplar), wis_top, wis_layer],
        wis_layer,
        "Real AEF 2024, Wisconsin: like the centre pixel (star)",
        ("cosine similarity", ramp_stops(wis_layer)),
        width=600,
    )

    if folder_change is not None:
        folder_layer = raster(folder_change["OUTPUT"], "folder change", QmlStyle("change.qml"))
        render(
            out / "folder_change.png",
            [folder_layer],
            folder_layer,
            f"Change {year_a} → {year_b} (1 − cosine) read from a folder of 128-band float32 GeoTIFFs, no index",
            ("1 − cosine", ramp_stops(folder_layer)),
        )

    lines = summary_lines(
        source_label, extent, year_a, year_b, year, load, change, hotspots, similarity, zonal, wisconsin
    )
    if folder_change is not None:
        lines += [
            "",
            f"Change {year_a}-{year_b} from a folder of 128-band float32 tiles (other_product/, TESSERA-like: "
            f"no index, NaN no-data, vectors not unit length): {folder_change['VALID_PIXELS']:,} valid pixels; "
            f"p50 {folder_change['CHANGE_P50']:.3f}, p90 {folder_change['CHANGE_P90']:.3f}, "
            f"p99 {folder_change['CHANGE_P99']:.3f} (folder_change.png)",
        ]
    lines += learning_lines(year, classify, cluster)
    lines += trajectory_lines(trajectory, span)
    total = time.perf_counter() - t0
    lines += ["", "Timings (qgis_process, each including QGIS start-up):"]
    lines += [f"  {label:<42} {seconds:6.1f} s" for label, seconds in runner.timings]
    lines += [f"  {'whole demo':<42} {total:6.1f} s", "", ATTRIBUTION]
    (out / "summary.txt").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    print(f"demo: outputs in {out}")
    del app
    return 0


def wisconsin_centre(path: Path) -> str:
    """The centre pixel of the Wisconsin excerpt, as a GeoJSON point."""
    import rasterio

    from earth_embeddings.core.grid import transformer

    with rasterio.open(WISCONSIN) as ds:
        x, y = ds.xy(ds.height // 2, ds.width // 2)
        lon, lat = transformer(ds.crs.to_string(), "EPSG:4326").transform(x, y)
    point = {"type": "Point", "coordinates": [lon, lat]}
    return write_geojson(path, [{"type": "Feature", "properties": {"name": "centre pixel"}, "geometry": point}])


def sample_training(truth, year: int, path: Path) -> str:
    """Four labelled points inside each planted class of the sample (a 'class' text field)."""
    from earth_embeddings.scripts.sample import CLASSES, class_interior_points

    features = [
        {"type": "Feature", "properties": {"class": name}, "geometry": {"type": "Point", "coordinates": p}}
        for c, name in enumerate(CLASSES)
        for p in class_interior_points(truth, c, year, 4, seed=100 + c)
    ]
    return write_geojson(path, features)


def labelled_layer(path: str):
    """Training places as black-outlined white dots."""
    from qgis.core import QgsMarkerSymbol

    layer = vector(path, "training")
    symbol = QgsMarkerSymbol.createSimple(
        {"name": "circle", "color": "#ffffff", "outline_color": "#000000", "size": "2.6", "outline_width": "0.5"}
    )
    layer.renderer().setSymbol(symbol)
    return layer


def sidecar_styled(path: str, name: str):
    """A class raster as QGIS opens it: styled by the .qml the algorithm saved beside it."""
    from qgis.core import QgsPalettedRasterRenderer, QgsRasterLayer

    layer = QgsRasterLayer(path, name)
    if not isinstance(layer.renderer(), QgsPalettedRasterRenderer):
        raise DemoError(f"{path} opened without the class style saved beside it.")
    return layer


def legend_of(layer):
    """(name, colour) of each class of a paletted layer, as the layers panel shows them."""
    return [(c.label, c.color) for c in layer.renderer().classes()]


def learning_lines(year, classify, cluster):
    lines = [""]
    if classify is not None:
        per_class = json.loads(classify["CLASS_ACCURACY"])
        lines += [
            f"Classes {year} (classes_{year}.tif, accuracy.html): overall accuracy "
            f"{classify['OVERALL_ACCURACY']:.3f}, kappa {fmt(classify['KAPPA'], '.3f')} (grouped cross-validation)",
            "  class          precision  recall",
        ]
        for name, v in per_class.items():
            lines.append(f"  {name:<14} {fmt(v['precision'], '9.3f')}  {fmt(v['recall'], '6.3f')}")
    lines.append(
        f"Clusters {year} (clusters_{year}.tif, cluster_centroids.csv): {cluster['CLUSTERS_USED']} clusters "
        f"over {cluster['VALID_PIXELS']:,} pixels"
    )
    return lines


def trajectory_lines(trajectory, span: str) -> list:
    lines = [
        "",
        f"Change over years {span}: {trajectory['VALID_PIXELS']:,} pixels with two or more years; "
        f"{trajectory['CHANGED_HA']:,.1f} ha persistently changed (per_year.gpkg, trajectory_report.html):",
        "  year  became persistently changed (ha)  disturbed only temporarily (ha)",
    ]
    for r in sorted(vector(trajectory["OUTPUT_TABLE"], "per year").getFeatures(), key=lambda f: f["year"]):
        lines.append(f"  {r['year']}  {r['persistent_ha']:>32,.2f}  {r['temporary_ha']:>31,.2f}")
    return lines


def summary_lines(source_label, extent, year_a, year_b, year, load, change, hotspots, similarity, zonal, wisconsin):
    lines = [
        "Earth Embeddings demo",
        f"Collection: {source_label}",
        f"Extent: {extent}",
        "",
        f"Load {year_b}: {load['VALID_PIXELS']:,} pixels with embeddings -> {Path(load['OUTPUT']).name}",
        f"Change {year_a}-{year_b}: {change['VALID_PIXELS']:,} valid pixels; 1 - cosine p50 "
        f"{change['CHANGE_P50']:.3f}, p90 {change['CHANGE_P90']:.3f}, p99 {change['CHANGE_P99']:.3f}; "
        f"{change['AREA_ABOVE_M2'] / 1e4:,.1f} ha above 0.25",
        "",
        "Largest change areas (change_areas.gpkg):",
        "  area_m2      mean   max    lon        lat",
    ]
    for lon, lat, r in features(
        change["OUTPUT_POLYGONS"], ["area_m2", "mean_change", "max_change"], ("area_m2", True), 5
    ):
        lines.append(f"  {r['area_m2']:>10,.0f}  {r['mean_change']:.3f}  {r['max_change']:.3f}  {lon:.5f}  {lat:.5f}")
    hot = features(hotspots["largest:HOTSPOTS"], ["rank", "area_m2"], ("rank", False))
    lines += [
        "",
        "Model 'Change hotspots' (hotspots.gpkg): "
        + ", ".join(f"#{r['rank']} {r['area_m2']:,.0f} m²" for _, _, r in hot),
        "",
        f"Top places like the exemplars in {year} (top_places.gpkg; score = cosine similarity):",
        "  rank  score   lon        lat",
    ]
    for lon, lat, r in features(similarity["OUTPUT_TOP_K"], ["rank", "score"], ("rank", False)):
        lines.append(f"  {r['rank']:>4}  {r['score']:.4f}  {lon:.5f}  {lat:.5f}")
    zone_fields = ["name", "pixel_count", "pc1", "pc2", "pc3"]
    rows = features(zonal["OUTPUT"], zone_fields)
    lines += [
        "",
        f"Zones (zone_stats.gpkg: A00_mean..A63_mean, A00_std..A63_std, pixel_count, pc1..pc3), first 5 of {len(rows)}:",
        "  name                  pixels      pc1      pc2      pc3",
    ]
    for _, _, r in rows[:5]:
        lines.append(
            f"  {str(r['name'])[:20]:<20} {r['pixel_count']:>7}  {fmt(r['pc1'], '7.3f')}  "
            f"{fmt(r['pc2'], '7.3f')}  {fmt(r['pc3'], '7.3f')}"
        )
    lines += [
        "",
        "Real AEF 2024 (Wisconsin excerpt): top places like its centre pixel (wisconsin_top_places.gpkg):",
        "  rank  score   lon        lat",
    ]
    for lon, lat, r in features(wisconsin["OUTPUT_TOP_K"], ["rank", "score"], ("rank", False)):
        lines.append(f"  {r['rank']:>4}  {r['score']:.4f}  {lon:.5f}  {lat:.5f}")
    lines += [
        "",
        "Maps: change.png, year_of_change.png, similarity.png, zones.png, wisconsin_similarity.png, "
        "classes.png (with a training layer), clusters.png",
    ]
    return lines


if __name__ == "__main__":
    sys.exit(main())
