"""Accuracy figures against hand-computed examples; cross-validation folds that keep features
whole and every class in every fold; out-of-fold predictions never trained on their pixels."""

import numpy as np
import pytest
from planted import draw, prototypes

from earth_embeddings.core.accuracy import (
    assess,
    confusion_matrix,
    confusion_text,
    cross_validated_predictions,
    fold_count,
    grouped_stratified_folds,
)
from earth_embeddings.core.errors import EmbeddingsError
from earth_embeddings.core.learn import fit_logistic


def test_figures_of_a_small_example_computed_by_hand():
    # 10 pixels, classes 1 and 2 and 5:
    #            pred 1  pred 2  pred 5
    # ref 1         3       1       0
    # ref 2         0       2       1
    # ref 5         1       0       2
    truth = [1, 1, 1, 1, 2, 2, 2, 5, 5, 5]
    pred = [1, 1, 1, 2, 2, 2, 5, 1, 5, 5]
    a = assess(truth, pred, codes=[1, 2, 5], names=["water", "forest", "urban"])
    assert a.confusion.tolist() == [[3, 1, 0], [0, 2, 1], [1, 0, 2]]
    assert a.n == 10 and a.accuracy == pytest.approx(0.7)
    # p_e = (4*4 + 3*3 + 3*3) / 100 = 0.34; kappa = (0.7 - 0.34) / 0.66
    assert a.kappa == pytest.approx(0.36 / 0.66)
    assert a.precision == pytest.approx([3 / 4, 2 / 3, 2 / 3])
    assert a.recall == pytest.approx([3 / 4, 2 / 3, 2 / 3])


def test_kappa_is_zero_for_agreement_by_chance_and_one_for_perfect():
    # Prediction independent of the reference: margins 50/50 each, agreement 0.5 = chance.
    truth = [1, 1, 2, 2]
    assert assess(truth, [1, 2, 1, 2]).kappa == pytest.approx(0.0)
    assert assess(truth, truth).kappa == pytest.approx(1.0)
    # Worse than chance is negative: always wrong with balanced margins gives -1.
    assert assess(truth, [2, 2, 1, 1]).kappa == pytest.approx(-1.0)
    # One class everywhere: kappa undefined.
    assert np.isnan(assess([3, 3], [3, 3]).kappa)


def test_classes_never_predicted_have_no_precision_and_codes_outside_are_not_counted():
    a = assess([1, 2, 3, 3], [1, 1, 1, 9], codes=[1, 2, 3])
    assert a.n == 3  # the pixel predicted as 9 is outside the classes
    assert a.confusion.tolist() == [[1, 0, 0], [1, 0, 0], [1, 0, 0]]
    assert np.isnan(a.precision[1]) and np.isnan(a.precision[2]) and a.precision[0] == pytest.approx(1 / 3)
    assert confusion_matrix([0, 0], [0, 7], codes=[7, 0]).tolist() == [[0, 0], [1, 1]]


def test_confusion_text_for_the_log():
    a = assess([1, 1, 2, 2, 2], [1, 2, 2, 2, 2], codes=[1, 2], names=["water", "forest"])
    text = confusion_text(a)
    lines = text.splitlines()
    assert "rows: reference" in lines[0]
    assert lines[2].split() == ["1", "water", "1", "1", "0.500"]
    assert lines[3].split() == ["2", "forest", "0", "3", "1.000"]
    assert lines[4].split() == ["precision", "1.000", "0.750"]
    assert lines[5] == "Overall accuracy 0.800, kappa 0.545 (5 pixels)"


def labelled_polygons(seed=0):
    """Features of very different sizes (1 to 80 pixels), 3 to 9 features per class."""
    rng = np.random.default_rng(seed)
    y, g = [], []
    gid = 0
    for code, n_features in [(1, 9), (2, 3), (5, 6), (8, 4)]:
        for _ in range(n_features):
            size = int(rng.choice([1, 3, 10, 80]))
            y += [code] * size
            g += [gid] * size
            gid += 1
    order = rng.permutation(len(y))  # pixels of a feature need not be contiguous
    return np.array(y)[order], np.array(g)[order]


def test_folds_keep_features_whole_and_every_class_in_every_fold():
    y, g = labelled_polygons()
    k = fold_count(y, g)
    assert k == 3  # the smallest class has 3 features
    folds = grouped_stratified_folds(y, g, seed=1)
    assert set(folds) == {0, 1, 2}
    for feature in np.unique(g):
        assert np.unique(folds[g == feature]).size == 1
    for f in range(k):
        assert set(y[folds == f]) == {1, 2, 5, 8}
    # Pixels of each class as even as whole features allow: folds differ by at most the largest feature.
    for c in (1, 2, 5, 8):
        px = [np.sum((folds == f) & (y == c)) for f in range(k)]
        largest = np.bincount(g[y == c]).max()
        assert max(px) - min(px) <= largest, (c, px)


def test_fold_count_is_at_most_five_and_folds_are_seeded():
    rng = np.random.default_rng(2)
    y = np.repeat([1, 2, 3], 40)
    g = np.arange(120)  # points: one pixel a feature
    assert fold_count(y, g) == 5
    a = grouped_stratified_folds(y, g, seed=7)
    assert np.array_equal(a, grouped_stratified_folds(y, g, seed=7))
    assert not np.array_equal(a, grouped_stratified_folds(y, g, seed=8))
    # Points: exactly 8 of each class per fold.
    assert all(np.sum((a == f) & (y == c)) == 8 for f in range(5) for c in (1, 2, 3))
    shuffled = rng.permutation(120)
    assert set(grouped_stratified_folds(y[shuffled], g[shuffled], seed=7)) == set(range(5))


def test_too_few_features_for_cross_validation_names_the_class():
    y = np.array([1, 1, 1, 2, 2])
    g = np.array([0, 0, 1, 2, 2])  # class 2 is one polygon
    with pytest.raises(EmbeddingsError, match="class grassland has one") as err:
        fold_count(y, g, names={2: "grassland"})
    assert "\n" not in str(err.value)
    with pytest.raises(EmbeddingsError, match="at least two classes"):
        fold_count(np.array([1, 1]), np.array([0, 1]))
    with pytest.raises(EmbeddingsError, match="more than one class"):
        fold_count(np.array([1, 2, 2]), np.array([0, 0, 1]))


def test_cross_validated_predictions_never_see_their_own_pixels():
    rng = np.random.default_rng(5)
    protos = prototypes(4, rng)
    X, y, g = draw(protos, 6, 12, rng, noise=0.3, feature_noise=0.2)
    folds = grouped_stratified_folds(y, g, seed=0)
    seen = []

    def fit(Xtr, ytr):
        seen.append({r.tobytes() for r in Xtr})
        return fit_logistic(Xtr, ytr)

    pred = cross_validated_predictions(fit, X, y, folds)
    assert len(seen) == 5
    for f in range(5):
        assert not any(r.tobytes() in seen[f] for r in X[folds == f])
    assert assess(y, pred).accuracy >= 0.95


def test_grouping_matters_when_polygons_differ():
    """Features with a strong feature-specific offset: grouped cross-validation must report a
    lower accuracy than splitting pixels at random, which puts pixels of the same polygon on
    both sides (the leak the grouping prevents)."""
    rng = np.random.default_rng(3)
    protos = prototypes(6, rng, overlap=0.8)
    X, y, g = draw(protos, 6, 30, rng, noise=0.3, feature_noise=1.2)
    grouped = cross_validated_predictions(fit_logistic, X, y, grouped_stratified_folds(y, g, seed=0))
    random_folds = np.random.default_rng(0).integers(0, 5, size=y.size)
    leaky = cross_validated_predictions(fit_logistic, X, y, random_folds)
    assert assess(y, grouped).accuracy < assess(y, leaky).accuracy - 0.05
