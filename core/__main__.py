"""The maps from a plain command line, outside QGIS, on this computer or a Dask cluster:

    python3 -m earth_embeddings.core change --source INDEX --year-a 2017 --year-b 2024 \\
        --extent "xmin,xmax,ymin,ymax [EPSG:4326]" --output change.tif [--scheduler tcp://host:8786]
    python3 -m earth_embeddings.core similarity --source INDEX --year 2024 --extent "..." \\
        --exemplar LON,LAT [--exemplar LON,LAT ...] --output similarity.tif [--scheduler ...]

(the plugin's parent folder on PYTHONPATH, as after ``make install``). Each command builds the
request the Processing algorithm builds and makes the same core call. Errors are one sentence
on stderr (exit status 1); Ctrl+C cancels and leaves no output (exit status 130).
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
from collections.abc import Sequence
from types import FrameType

from .change import DEFAULT_MIN_AREA_M2, DEFAULT_THRESHOLD, ChangeRequest, change_map
from .errors import Cancelled, EmbeddingsError
from .grid import DEFAULT_MAX_PIXELS, GridSpec
from .polygons import Area
from .progress import Progress
from .similarity import AGGREGATES, Exemplar, SimilarityRequest, similarity_map
from .source import SourceSpec


class ConsoleProgress(Progress):
    """Percentages and log lines on stderr; Ctrl+C asks to cancel."""

    def __init__(self) -> None:
        self.cancelled = False
        self.shown = -1

    def set_progress(self, percent: float) -> None:
        step = int(percent) // 10 * 10
        if step > self.shown:
            self.shown = step
            print(f"{step} %", file=sys.stderr, flush=True)

    def is_cancelled(self) -> bool:
        return self.cancelled

    def info(self, message: str) -> None:
        print(message, file=sys.stderr, flush=True)

    def warning(self, message: str) -> None:
        print(f"Warning: {message}", file=sys.stderr, flush=True)


def parse_extent(text: str) -> tuple[tuple[float, float, float, float], str]:
    """ "xmin,xmax,ymin,ymax [EPSG:xxxx]" (QGIS's extent text) -> ((xmin, ymin, xmax, ymax), CRS)."""
    coords, _, rest = text.strip().partition("[")
    crs = rest.rstrip("] ").strip() or "EPSG:4326"
    try:
        xmin, xmax, ymin, ymax = (float(v) for v in coords.split(","))
    except ValueError:
        raise EmbeddingsError(
            f'The extent "{text}" is not "xmin,xmax,ymin,ymax [EPSG:xxxx]"; for example "-90.02,-89.98,44.44,44.46 '
            '[EPSG:4326]".'
        ) from None
    return (xmin, ymin, xmax, ymax), crs


def parse_point(text: str, crs: str, label: str, kind: str) -> Exemplar:
    try:
        x, y = (float(v) for v in text.split(","))
    except ValueError:
        raise EmbeddingsError(f'The {kind} "{text}" is not "x,y" (longitude,latitude in {crs}).') from None
    return Exemplar({"type": "Point", "coordinates": [x, y]}, crs, label, kind)


def write_areas(path: str, areas: Sequence[Area], crs: str, value: str) -> None:
    """Areas as a GeoJSON FeatureCollection in the map's CRS (named in its "crs" member)."""
    features = [
        {
            "type": "Feature",
            "geometry": a.geometry,
            "properties": {
                "area_m2": a.area_m2,
                "pixels": a.pixel_count,
                f"mean_{value}": a.mean,
                f"max_{value}": a.max,
            },
        }
        for a in areas
    ]
    doc = {"type": "FeatureCollection", "crs": {"type": "name", "properties": {"name": crs}}, "features": features}
    with open(path, "w", encoding="utf-8") as f:
        json.dump(doc, f)


def _grid(args: argparse.Namespace) -> GridSpec:
    extent, extent_crs = parse_extent(args.extent) if args.extent else (None, None)
    return GridSpec(extent, extent_crs, args.target_crs, args.resolution, args.max_pixels)


def run_change(args: argparse.Namespace, progress: Progress) -> None:
    request = ChangeRequest(
        output=args.output,
        grid=_grid(args),
        collection=args.source,
        year_a=args.year_a,
        year_b=args.year_b,
        input_a=args.input_a,
        input_b=args.input_b,
        threshold=args.threshold,
        min_area_m2=args.min_area if args.polygons else None,
        report=args.report,
        scheduler=args.scheduler,
    )
    summary = change_map(request, progress)
    if args.polygons:
        write_areas(args.polygons, summary.areas, summary.grid.crs, "change")
    print(summary.describe())


def run_similarity(args: argparse.Namespace, progress: Progress) -> None:
    request = SimilarityRequest(
        exemplars=[parse_point(p, args.exemplar_crs, f"{i + 1}", "exemplar") for i, p in enumerate(args.exemplar)],
        negatives=[parse_point(p, args.exemplar_crs, f"{i + 1}", "negative") for i, p in enumerate(args.negative)],
        output=args.output,
        source=SourceSpec(args.source, args.year, args.input),
        grid=_grid(args),
        aggregate=args.aggregate,
        top_k=args.top_k,
        min_separation_m=args.separation,
        threshold=args.threshold,
        scheduler=args.scheduler,
    )
    result = similarity_map(request, progress)
    if args.areas:
        write_areas(args.areas, result.areas, result.grid.crs, "score")
    print(f"Wrote {result.path}: {result.valid_pixels:,} pixels with a score, highest {result.score_max:.3f}.")
    for p in result.top:
        print(f"top {p.rank}: score {p.score:.4f} at {p.lon:.6f}, {p.lat:.6f}")


def parser() -> argparse.ArgumentParser:
    main = argparse.ArgumentParser(prog="python3 -m earth_embeddings.core", description=__doc__.split("\n\n")[0])
    sub = main.add_subparsers(dest="command", required=True)
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--source", help="collection: index file, folder or http(s) URL (empty = the public product)")
    common.add_argument("--extent", help='"xmin,xmax,ymin,ymax [EPSG:xxxx]"')
    common.add_argument("--target-crs", help="CRS of the map (default: the UTM zone of the extent)")
    common.add_argument("--resolution", type=float, default=10.0, help="pixel size in metres (10)")
    common.add_argument("--max-pixels", type=int, default=DEFAULT_MAX_PIXELS, help="largest map computed here")
    common.add_argument("--output", required=True, help="the GeoTIFF to write (.tif)")
    common.add_argument("--scheduler", help="a Dask scheduler, tcp://host:8786 (default: this computer)")
    change = sub.add_parser("change", parents=[common], help="change map (1 - cosine) between two years")
    change.add_argument("--year-a", type=int)
    change.add_argument("--year-b", type=int)
    change.add_argument("--input-a", help="an embedding raster instead of year A")
    change.add_argument("--input-b", help="an embedding raster instead of year B")
    change.add_argument("--threshold", type=float, default=DEFAULT_THRESHOLD)
    change.add_argument("--polygons", help="write the change areas to this GeoJSON file")
    change.add_argument("--min-area", type=float, default=DEFAULT_MIN_AREA_M2, help="smallest area kept (m2)")
    change.add_argument("--report", help="write an HTML change report")
    sim = sub.add_parser("similarity", parents=[common], help="similarity heatmap to exemplar points")
    sim.add_argument("--year", type=int)
    sim.add_argument("--input", help="an embedding raster instead of a collection year")
    sim.add_argument("--exemplar", action="append", default=[], help="x,y of an exemplar point (repeat)")
    sim.add_argument("--negative", action="append", default=[], help="x,y of a place that must score low")
    sim.add_argument("--exemplar-crs", default="EPSG:4326", help="CRS of the points (EPSG:4326)")
    sim.add_argument("--aggregate", choices=AGGREGATES, default="mean")
    sim.add_argument("--top-k", type=int, default=0, help="how many top places to print")
    sim.add_argument("--separation", type=float, default=100.0, help="minimum distance between places (m)")
    sim.add_argument("--threshold", type=float, help="areas above this score")
    sim.add_argument("--areas", help="write the areas above the threshold to this GeoJSON file")
    return main


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    progress = ConsoleProgress()

    def cancel(signum: int, frame: FrameType | None) -> None:
        progress.cancelled = True

    signal.signal(signal.SIGINT, cancel)
    try:
        (run_change if args.command == "change" else run_similarity)(args, progress)
    except Cancelled as exc:
        print(str(exc), file=sys.stderr)
        return 130
    except EmbeddingsError as exc:
        print(str(exc), file=sys.stderr)
        return 1
    except OSError as exc:
        print(f"A file could not be read or written: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
