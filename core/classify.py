"""Classify embeddings from labelled places: fit, measure accuracy honestly, map block by block.

One call, ``classify_map(request)``:

1. the labelled places' pixels are read on the output grid's lattice (``labels.label_pixels``:
   points take their pixel, polygons their pixel centres, capped per polygon);
2. a classifier is fitted on them (``learn.fit_classifier``), or a saved model is loaded;
3. accuracy is measured on pixels not trained on: on the validation places when given (the
   model that writes the map, applied to the validation pixels, which are pixels of the same
   lattice: the accuracy of the written map at those places), else by grouped, stratified
   k-fold cross-validation (``accuracy``: k = min(5, places of the smallest class); the pixels
   of one place stay in one fold);
4. the map is written block by block: class codes (uint8 with no-data 255 when every code
   fits 0..254, else int16 with no-data -32768) and, optionally, the winner's confidence
   (float32, no-data -9999), each atomically.
"""

from __future__ import annotations

import contextlib
import csv
import html
import io
import json
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .accuracy import (
    Assessment,
    assess,
    confusion_text,
    cross_validated_predictions,
    fold_count,
    grouped_stratified_folds,
)
from .arrays import Array
from .deps import require
from .errors import EmbeddingsError
from .grid import DEFAULT_BLOCK, Grid, GridSpec, crs_name
from .labels import ClassCodes, LabelledPlace, LabelPixels, class_codes, label_pixels
from .learn import (
    CHUNK_PIXELS,
    DEFAULT_K_NEIGHBORS,
    METHODS,
    SAVABLE,
    Classifier,
    check_bands,
    describe,
    fit_classifier,
    load_model,
    save_model,
)
from .output import RasterWriter, atomic_path, open_class_output, open_float_output
from .palette import class_colours
from .pipeline import reading, stream, windows_for
from .progress import Progress
from .sampling import DEFAULT_CAP_PER_FEATURE
from .source import EmbeddingSource, SourceSpec, open_on_grid

NODATA_CONFIDENCE = -9999.0
VALIDATION_CAP = 5000  # pixels per validation polygon (seeded sample beyond)


@dataclass(frozen=True)
class ClassifyRequest:
    """Classify the grid's pixels from labelled places (or a saved model).

    ``training`` / ``validation``: places with the value of ``class_field``; ``model`` a model
    file to apply instead of training; ``model_output`` where to save the fitted model;
    ``confidence_output`` / ``report_output`` optional files (report: .html or .csv).
    """

    output: str
    source: SourceSpec = SourceSpec()
    grid: GridSpec = GridSpec()
    training: Sequence[LabelledPlace] = ()
    validation: Sequence[LabelledPlace] = ()
    class_field: str = "class"
    method: str = "logistic"
    k_neighbors: int = DEFAULT_K_NEIGHBORS
    seed: int = 0
    cap_per_feature: int = DEFAULT_CAP_PER_FEATURE
    model: str | None = None
    model_output: str | None = None
    confidence_output: str | None = None
    report_output: str | None = None
    use_faiss: bool | None = None
    block_size: int = DEFAULT_BLOCK


@dataclass
class MapClass:
    """A class of the written map: its code, name, colour and how many pixels it got."""

    code: int
    name: str
    colour: tuple[int, int, int]
    pixels: int = 0


@dataclass
class ClassifyResult:
    path: str
    grid: Grid
    dtype: str
    nodata: int
    classes: list[MapClass]
    model: str  # one line describing the model
    training_pixels: int = 0
    assessment: Assessment | None = None
    accuracy_basis: str = ""  # how the accuracy was measured, for the log
    confidence_path: str | None = None
    model_path: str | None = None
    report_path: str | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def overall_accuracy(self) -> float:
        return self.assessment.accuracy if self.assessment is not None else float("nan")

    @property
    def kappa(self) -> float:
        return self.assessment.kappa if self.assessment is not None else float("nan")

    def confusion(self) -> str:
        if self.assessment is None:
            return "No accuracy figures: " + (self.accuracy_basis or "nothing to assess against.")
        return confusion_text(self.assessment, f"Accuracy ({self.accuracy_basis})")


def class_raster_type(codes: Array) -> tuple[str, int]:
    """(dtype, no-data) of a class raster: uint8 / 255 when every code fits 0..254, else int16 / -32768."""
    codes = np.asarray(codes)
    if codes.size and codes.min() >= 0 and codes.max() <= 254:
        return "uint8", 255
    return "int16", -32768


# ----------------------------------------------------------------------------- training data


@dataclass
class _Labelled:
    X: Array
    y: Array
    groups: Array
    codes: ClassCodes


def _with_class(places: Sequence[LabelledPlace], field_name: str, what: str, progress: Progress) -> list[LabelledPlace]:
    kept = [p for p in places if p.value is not None and not (isinstance(p.value, str) and not p.value.strip())]
    if not kept:
        raise EmbeddingsError(
            f"The field '{field_name}' is empty in every one of the {what}; fill in a class for each place."
        )
    if len(kept) < len(places):
        progress.warning(f"{len(places) - len(kept)} of the {what} have no class in '{field_name}' and are skipped.")
    return kept


def _read_labelled(
    src: EmbeddingSource,
    grid: Grid,
    places: Sequence[LabelledPlace],
    field_name: str,
    what: str,
    cap: int,
    seed: int,
    progress: Progress,
) -> tuple[list[LabelledPlace], ClassCodes, LabelPixels]:
    kept = _with_class(places, field_name, what, progress)
    codes = class_codes([p.value for p in kept], field_name, what)
    pixels = label_pixels(src, grid, kept, what, cap, seed, progress)
    empty = np.flatnonzero(pixels.valid == 0)
    per_class_valid = {int(c): 0 for c in np.unique(codes.codes)}
    for i, c in enumerate(codes.codes):
        per_class_valid[int(c)] += int(pixels.valid[i])
    for c, count in per_class_valid.items():
        if count == 0:
            n = int(np.count_nonzero(codes.codes == c))
            raise EmbeddingsError(
                f"All {n} of the {what} of class '{codes.name(c)}' fall on no-data or outside the coverage of "
                f"{src.label}; move them onto the embeddings or remove that class."
            )
    if empty.size:
        names = ", ".join(kept[i].label for i in empty[:5]) + (" ..." if empty.size > 5 else "")
        progress.warning(f"{empty.size} of the {what} fall on no-data and are not used: {names}.")
    return kept, codes, pixels


def _training(src: EmbeddingSource, grid: Grid, request: ClassifyRequest, progress: Progress) -> _Labelled:
    _, codes, pixels = _read_labelled(
        src,
        grid,
        request.training,
        request.class_field,
        "training places",
        request.cap_per_feature,
        request.seed,
        progress,
    )
    y = codes.codes[pixels.place]
    if np.unique(y).size < 2:
        raise EmbeddingsError(
            f"Every usable training place is of class '{codes.name(int(y[0]))}'; label places of at least two classes."
        )
    if pixels.capped:
        progress.info(
            f"{pixels.capped} training polygon(s) hold more than {request.cap_per_feature} pixels; "
            f"{request.cap_per_feature} of each, drawn at random (seed {request.seed}), are used."
        )
    return _Labelled(pixels.vectors, y, pixels.place, codes)


def _validation(
    src: EmbeddingSource, grid: Grid, request: ClassifyRequest, model: Classifier, progress: Progress
) -> tuple[Array, Array]:
    """(vectors, reference codes) of the validation places; codes the model does not know are -1."""
    kept, codes, pixels = _read_labelled(
        src, grid, request.validation, request.class_field, "validation places", VALIDATION_CAP, request.seed, progress
    )
    ref = codes.codes[pixels.place]
    if codes.text:
        by_name = {str(n): int(c) for c, n in zip(model.codes, model.names)}
        lookup = np.array([by_name.get(codes.name(int(c)), -1) for c in sorted(codes.names)], dtype=np.int64)
        ref = lookup[np.searchsorted(np.array(sorted(codes.names)), ref)]
    unknown = ~np.isin(ref, model.codes)
    if unknown.all():
        raise EmbeddingsError(
            "None of the validation places has a class the model knows "
            f"({', '.join(model.names)}); use the same class field and values as for training."
        )
    if unknown.any():
        progress.warning(f"{int(unknown.sum())} validation pixel(s) have a class the model does not know; not counted.")
    return pixels.vectors[~unknown], ref[~unknown]


# ----------------------------------------------------------------------------- model and accuracy


def _check(request: ClassifyRequest) -> None:
    if request.method not in METHODS:
        raise EmbeddingsError(f"Unknown classification method {request.method!r}; choose one of {', '.join(METHODS)}.")
    if request.model is None and request.method == "forest":
        require("sklearn", "The random forest")  # before reading anything
    if request.model is None and not request.training:
        raise EmbeddingsError("Give training places (points or polygons with a class field), or a saved model file.")
    if request.model is None and request.model_output and request.method not in SAVABLE:
        raise EmbeddingsError(
            "A random forest cannot be saved as plain arrays; leave the model output empty or choose "
            "logistic regression, nearest neighbours or nearest centroid."
        )
    if request.k_neighbors < 1:
        raise EmbeddingsError("The number of neighbours K must be at least 1.")
    if int(request.cap_per_feature) < 1:
        raise EmbeddingsError("The cap of pixels per polygon must be at least 1.")


def _fitter(request: ClassifyRequest, names: dict[int, str]) -> Callable[[Array, Array], Classifier]:
    def fit(X: Array, y: Array) -> Classifier:
        return fit_classifier(
            request.method,
            X,
            y,
            names,
            seed=request.seed,
            k_neighbors=request.k_neighbors,
            use_faiss=request.use_faiss,
        )

    return fit


def _cross_validate(
    request: ClassifyRequest, data: _Labelled, model: Classifier, progress: Progress
) -> tuple[Assessment | None, str]:
    try:
        k = fold_count(data.y, data.groups, data.codes.names)
    except EmbeddingsError as exc:
        progress.warning(f"No accuracy figures: {exc}")
        return None, str(exc)
    folds = grouped_stratified_folds(data.y, data.groups, k, request.seed)
    pred = cross_validated_predictions(_fitter(request, data.codes.names), data.X, data.y, folds, progress)
    basis = f"{k}-fold cross-validation grouped by place, {data.y.size:,} labelled pixels"
    return assess(data.y, pred, model.codes, model.names), basis


# ----------------------------------------------------------------------------- the map


def _apply_block(
    model: Classifier, block_values: Callable[[slice], Array], valid: Array, dtype: str, nodata: int
) -> tuple[Array, Array]:
    n = valid.size
    cls = np.full(n, nodata, dtype=dtype)
    conf = np.full(n, NODATA_CONFIDENCE, dtype=np.float32)
    for start in range(0, n, CHUNK_PIXELS):
        sl = slice(start, min(n, start + CHUNK_PIXELS))
        ok = valid[sl]
        if not ok.any():
            continue
        codes, c = model.predict_block(block_values(sl), nodata=nodata)
        cls[sl] = np.where(ok, codes, nodata)
        conf[sl] = np.where(ok & np.isfinite(c), c, np.float32(NODATA_CONFIDENCE))
    return cls, conf


def _tags(src: EmbeddingSource, model: Classifier) -> dict[str, str]:
    return {
        "EMBEDDINGS_SOURCE": src.label,
        "CLASSIFY_METHOD": model.method,
        "CLASS_NAMES": json.dumps({str(int(c)): n for c, n in zip(model.codes, model.names)}),
    }


def _write_map(
    src: EmbeddingSource, grid: Grid, model: Classifier, request: ClassifyRequest, progress: Progress
) -> tuple[str, int, Array]:
    dtype, nodata = class_raster_type(model.codes)
    counts = np.zeros(model.n_classes, dtype=np.int64)
    codes = np.asarray(model.codes, dtype=np.int64)
    with reading([src], grid) as readers:
        check_bands(model.bands, readers[0].plan.bands)
        progress.info(readers[0].plan.describe())
        tags = _tags(src, model)
        with open_class_output(request.output, grid, dtype, nodata, tags) as out:
            with _maybe_float(request.confidence_output, grid, tags) as conf_out:
                for window, (block,) in stream(readers, windows_for(grid, readers, request.block_size), progress):
                    cls, conf = _apply_block(model, block.chunk_values, block.valid.ravel(), dtype, nodata)
                    got = cls[cls != nodata].astype(np.int64)
                    if got.size:
                        counts += np.bincount(np.searchsorted(codes, got), minlength=codes.size)
                    out.write(cls.reshape(window.shape)[None], window)
                    if conf_out is not None:
                        conf_out.write(conf.reshape(window.shape)[None], window)
                progress.check_cancelled()
                if counts.sum() == 0:
                    raise EmbeddingsError(
                        "The embeddings have no data anywhere in this extent; move the extent onto the coverage."
                    )
    return dtype, nodata, counts


def _maybe_float(
    path: str | None, grid: Grid, tags: dict[str, str]
) -> contextlib.AbstractContextManager[RasterWriter | None]:
    """The confidence raster when asked for, else nothing."""
    if not path:
        return contextlib.nullcontext()
    return open_float_output(path, grid, ("confidence",), NODATA_CONFIDENCE, tags)


def classify_map(request: ClassifyRequest, progress: Progress | None = None) -> ClassifyResult:
    """Fit (or load) a classifier, assess it on pixels it was not trained on, write the map."""
    progress = progress or Progress()
    _check(request)
    src, grid = open_on_grid(request.source, request.grid, progress.sub(0, 2))
    with src:
        progress.info(
            f"Output grid: {grid.width} x {grid.height} pixels at {grid.resolution:g} m in {crs_name(grid.crs)}."
        )
        data = None
        if request.model:
            model = load_model(request.model, use_faiss=request.use_faiss)
            progress.info(f"Loaded the {describe(model)} from {request.model}.")
            if request.training:
                progress.warning("A model file is given: the training places are not used.")
        else:
            data = _training(src, grid, request, progress.sub(2, 12))
            model = _fitter(request, data.codes.names)(data.X, data.y)
            progress.info(f"Fitted a {describe(model)} on {data.y.size:,} labelled pixels.")
        assessment: Assessment | None = None
        basis = "no validation places given"
        if request.validation:
            Xv, ref = _validation(src, grid, request, model, progress.sub(12, 18))
            check_bands(model.bands, Xv.shape[1])
            pred = model.predict_block(Xv.T)[0]
            assessment = assess(ref, pred, model.codes, model.names)
            basis = f"validation places, {ref.size:,} pixels"
        elif data is not None:
            assessment, basis = _cross_validate(request, data, model, progress.sub(12, 25))
        dtype, nodata, counts = _write_map(src, grid, model, request, progress.sub(25, 98))
    colours = class_colours([str(n) for n in model.names])
    classes = [
        MapClass(int(c), str(n), colours[i], int(counts[i])) for i, (c, n) in enumerate(zip(model.codes, model.names))
    ]
    result = ClassifyResult(
        path=str(request.output),
        grid=grid,
        dtype=dtype,
        nodata=nodata,
        classes=classes,
        model=describe(model),
        training_pixels=0 if data is None else int(data.y.size),
        assessment=assessment,
        accuracy_basis=basis,
        confidence_path=request.confidence_output or None,
    )
    if request.model_output and request.model is None:
        save_model(model, request.model_output)
        result.model_path = str(request.model_output)
    if request.report_output:
        write_report(result, request.report_output)
        result.report_path = str(request.report_output)
    progress.info(result.confusion())
    progress.set_progress(100.0)
    return result


# ----------------------------------------------------------------------------- report


def _rows(result: ClassifyResult) -> list[list[str]]:
    a = result.assessment
    rows = [["code", "class", "map_pixels", "precision", "recall"]]
    for i, c in enumerate(result.classes):
        p = "" if a is None or not math.isfinite(a.precision[i]) else f"{a.precision[i]:.4f}"
        r = "" if a is None or not math.isfinite(a.recall[i]) else f"{a.recall[i]:.4f}"
        rows.append([str(c.code), c.name, str(c.pixels), p, r])
    return rows


def write_report(result: ClassifyResult, path: str) -> None:
    """The accuracy report: CSV (per-class table, then the confusion matrix) or one HTML file."""
    a = result.assessment
    if str(path).lower().endswith(".csv"):
        buf = io.StringIO()
        w = csv.writer(buf)
        w.writerow(["overall_accuracy", "" if a is None else f"{a.accuracy:.4f}"])
        w.writerow(["kappa", "" if a is None or not math.isfinite(a.kappa) else f"{a.kappa:.4f}"])
        w.writerow(["basis", result.accuracy_basis])
        w.writerows(_rows(result))
        if a is not None:
            w.writerow(["reference \\ predicted"] + list(a.names))
            for name, row in zip(a.names, a.confusion):
                w.writerow([name] + [str(v) for v in row])
        text = buf.getvalue()
    else:
        esc = html.escape
        table = "".join("<tr>" + "".join(f"<td>{esc(v)}</td>" for v in r) + "</tr>" for r in _rows(result))
        text = (
            "<!DOCTYPE html><html><head><meta charset='utf-8'><title>Classification accuracy</title></head><body>"
            f"<h1>Classification accuracy</h1><p>{esc(result.model)}</p>"
            f"<p>Overall accuracy <b>{'-' if a is None else f'{a.accuracy:.3f}'}</b>, kappa "
            f"<b>{'-' if a is None or not math.isfinite(a.kappa) else f'{a.kappa:.3f}'}</b> "
            f"({esc(result.accuracy_basis)}).</p><table border='1'>{table}</table>"
            f"<pre>{esc(result.confusion())}</pre></body></html>"
        )
    with atomic_path(path) as tmp:
        Path(tmp).write_text(text, encoding="utf-8")
