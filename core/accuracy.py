"""How well a classifier does, measured on pixels it was not trained on.

- ``grouped_stratified_folds``: k-fold cross-validation folds grouped by feature (all the
  pixels of one point or polygon fall in one fold, so neighbouring pixels of the same polygon
  never sit on both sides of a split) and stratified by class (every fold holds features of
  every class, in proportion as far as feature sizes allow); k = min(5, features of the
  smallest class).
- ``cross_validated_predictions``: each pixel predicted by a model fitted without its fold.
- ``assess``: confusion matrix, overall accuracy, Cohen's kappa, per-class precision and
  recall; ``confusion_text`` renders them as plain text for the log.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike

from .arrays import Array
from .errors import EmbeddingsError
from .learn import Classifier
from .progress import Progress

MAX_FOLDS = 5


def _units(y: Array, groups: Array) -> tuple[Array, Array, Array, Array]:
    """Feature ids, per-pixel feature index, each feature's class and pixel count."""
    y = np.asarray(y)
    groups = np.asarray(groups)
    if y.shape != groups.shape or y.ndim != 1:
        raise EmbeddingsError("Give one class label and one feature id per labelled pixel.")
    ids, inverse = np.unique(groups, return_inverse=True)
    first = np.zeros(ids.size, dtype=np.int64)
    first[inverse[::-1]] = np.arange(y.size)[::-1]
    unit_class = y[first]
    if np.any(y != unit_class[inverse]):
        bad = ids[np.flatnonzero(np.bincount(inverse, weights=(y != unit_class[inverse]), minlength=ids.size))[0]]
        raise EmbeddingsError(f"Feature {bad} has pixels of more than one class; give every feature one class.")
    return ids, inverse, unit_class, np.bincount(inverse, minlength=ids.size)


def fold_count(y: Array, groups: Array, names: dict[int, str] | None = None) -> int:
    """k = min(5, features of the smallest class); refused below 2 (one sentence naming the class)."""
    _, _, unit_class, _ = _units(y, groups)
    classes, per_class = np.unique(unit_class, return_counts=True)
    if classes.size < 2:
        raise EmbeddingsError("Accuracy needs labelled places of at least two classes.")
    k = int(min(MAX_FOLDS, per_class.min()))
    if k < 2:
        c = classes[int(np.argmin(per_class))]
        name = (names or {}).get(int(c), int(c))
        raise EmbeddingsError(
            f"Cross-validation needs at least two labelled features of every class, and class {name} has one; "
            "label more places of it or give a validation layer."
        )
    return k


def grouped_stratified_folds(y: Array, groups: Array, k: int | None = None, seed: int = 0) -> Array:
    """Fold number (0..k-1) of every pixel: whole features per fold, every class in every fold.

    Class by class, features are placed largest first (equal sizes in a seeded random order):
    while some fold has no feature of the class, into such a fold; then into the fold with
    the fewest pixels of the class (ties: fewest pixels in all, then the lowest fold). Every
    fold thus holds at least one feature of every class (k is at most the smallest class's
    feature count), and per-class pixel counts are as even as whole features allow.
    """
    ids, inverse, unit_class, sizes = _units(y, groups)
    if k is None:
        k = fold_count(y, groups)
    k = int(k)
    classes = np.unique(unit_class)
    if k < 2:
        raise EmbeddingsError("Cross-validation needs at least two folds.")
    rng = np.random.default_rng(seed)
    tiebreak = rng.permutation(ids.size)
    fold_of_unit = np.full(ids.size, -1, dtype=np.int64)
    total = np.zeros(k, dtype=np.int64)
    for c in classes:
        units = np.flatnonzero(unit_class == c)
        if units.size < k:
            raise EmbeddingsError(
                f"Class {c} has {units.size} labelled features, fewer than the {k} cross-validation folds."
            )
        units = units[np.lexsort((tiebreak[units], -sizes[units]))]
        px = np.zeros(k, dtype=np.int64)
        count = np.zeros(k, dtype=np.int64)
        for u in units:
            cand = np.flatnonzero(count == 0) if count.min() == 0 else np.arange(k)
            best = cand[np.lexsort((cand, total[cand], px[cand]))[0]]
            fold_of_unit[u] = best
            px[best] += sizes[u]
            total[best] += sizes[u]
            count[best] += 1
    return fold_of_unit[inverse]


def cross_validated_predictions(
    fit: Callable[[Array, Array], Classifier], X: Array, y: Array, folds: Array, progress: Progress | None = None
) -> Array:
    """Predicted class code of every pixel by a model fitted on the other folds.

    ``fit(X_train, y_train)`` returns a classifier with ``predict_block``.
    """
    progress = progress or Progress()
    X = np.asarray(X, dtype=np.float32)
    y = np.asarray(y)
    folds = np.asarray(folds)
    pred = np.empty(y.shape, dtype=np.int64)
    n_folds = int(folds.max()) + 1
    for f in range(n_folds):
        progress.check_cancelled()
        test = folds == f
        model = fit(X[~test], y[~test])
        pred[test] = model.predict_block(X[test].T)[0]
        progress.set_progress(100.0 * (f + 1) / n_folds)
    return pred


def confusion_matrix(truth: ArrayLike, predicted: ArrayLike, codes: ArrayLike) -> Array:
    """(classes, classes) int64 counts; rows = reference class, columns = predicted class.

    Pixels whose reference or prediction is not among ``codes`` are not counted.
    """
    codes = np.asarray(codes)
    truth = np.asarray(truth)
    predicted = np.asarray(predicted)
    order = np.argsort(codes)
    sorted_codes = codes[order]
    c = codes.size

    def index(v: Array) -> tuple[Array, Array]:
        pos = np.clip(np.searchsorted(sorted_codes, v), 0, c - 1)
        return order[pos], sorted_codes[pos] == v

    ti, tok = index(truth)
    pi, pok = index(predicted)
    ok = tok & pok
    return np.bincount(ti[ok] * c + pi[ok], minlength=c * c).reshape(c, c).astype(np.int64)


@dataclass
class Assessment:
    """Accuracy figures from a confusion matrix (rows: reference, columns: predicted)."""

    codes: Array
    names: tuple[str, ...]
    confusion: Array

    @property
    def n(self) -> int:
        return int(self.confusion.sum())

    @property
    def accuracy(self) -> float:
        """Share of the counted pixels whose prediction equals the reference (NaN when none)."""
        n = self.n
        return float(np.trace(self.confusion)) / n if n else float("nan")

    @property
    def kappa(self) -> float:
        """Cohen's kappa: (p_o - p_e) / (1 - p_e), p_e the agreement expected from the margins.

        NaN when p_e = 1 (reference and prediction both a single class): chance explains
        everything and kappa is undefined.
        """
        n = self.n
        if n == 0:
            return float("nan")
        m = self.confusion.astype(np.float64)
        po = np.trace(m) / n
        pe = float(m.sum(axis=1) @ m.sum(axis=0)) / (n * n)
        return float((po - pe) / (1 - pe)) if pe < 1 else float("nan")

    @property
    def precision(self) -> Array:
        """Per class: share of the pixels predicted as the class that are it (NaN if none predicted)."""
        col = self.confusion.sum(axis=0).astype(np.float64)
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(col > 0, np.diag(self.confusion) / col, np.nan)

    @property
    def recall(self) -> Array:
        """Per class: share of the class's reference pixels predicted as it (NaN if none)."""
        row = self.confusion.sum(axis=1).astype(np.float64)
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(row > 0, np.diag(self.confusion) / row, np.nan)


def assess(
    truth: ArrayLike, predicted: ArrayLike, codes: ArrayLike | None = None, names: Sequence[str] | None = None
) -> Assessment:
    """Confusion matrix and figures for reference and predicted codes (classes: ``codes``,
    by default every code seen in either)."""
    if codes is None:
        codes = np.unique(np.concatenate([np.asarray(truth).ravel(), np.asarray(predicted).ravel()]))
    codes = np.asarray(codes, dtype=np.int64)
    names = tuple(str(n) for n in names) if names is not None else tuple(str(int(c)) for c in codes)
    if len(names) != codes.size:
        raise ValueError("one name per class code")
    return Assessment(codes, names, confusion_matrix(truth, predicted, codes))


def _fmt(v: float) -> str:
    return "-" if not np.isfinite(v) else f"{v:.3f}"


def confusion_text(a: Assessment, title: str = "Confusion matrix") -> str:
    """The confusion matrix with per-class recall and precision, and the overall figures, as text."""
    labels = [f"{int(c)} {n}" if n != str(int(c)) else n for c, n in zip(a.codes, a.names)]
    first = max([len("precision")] + [len(s) for s in labels])
    width = max([6] + [len(str(v)) for v in a.confusion.ravel()] + [min(len(s), 12) for s in labels])
    head = [s[:12] for s in labels]
    lines = [f"{title} (rows: reference, columns: predicted; pixels)"]
    lines.append(" " * first + " " + " ".join(h.rjust(width) for h in head) + "  recall")
    for lab, row, rec in zip(labels, a.confusion, a.recall):
        lines.append(lab.ljust(first) + " " + " ".join(str(v).rjust(width) for v in row) + "  " + _fmt(rec))
    lines.append("precision".ljust(first) + " " + " ".join(_fmt(p).rjust(width) for p in a.precision))
    lines.append(f"Overall accuracy {_fmt(a.accuracy)}, kappa {_fmt(a.kappa)} ({a.n} pixels)")
    return "\n".join(lines)
