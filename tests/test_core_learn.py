"""Classifiers on planted embeddings: accuracy against the planted classes, the methods'
definitions, the faiss and NumPy kNN paths, model files, and the real Wisconsin vectors."""

import math
import subprocess
import sys
import zipfile

import numpy as np
import pytest
from planted import draw, nuisance_directions, prototypes, real_vectors

from earth_embeddings.core import learn
from earth_embeddings.core.errors import EmbeddingsError
from earth_embeddings.core.learn import (
    fit_centroid,
    fit_classifier,
    fit_forest,
    fit_knn,
    fit_logistic,
    load_model,
    save_model,
)

CODES = np.array([0, 3, 7, 12, 40, 41])  # the user's own codes: 0 is a class like any other


@pytest.fixture(scope="module")
def wisconsin_vectors(wisconsin_raster):
    return real_vectors(wisconsin_raster)


def separated(seed, labels_per_class=4, test_per_class=500):
    """scripts/sample.py's land cover: six random prototypes (the last two at cosine 0.8), pixel
    noise of norm 0.2; labels are single points, test pixels fresh draws."""
    rng = np.random.default_rng(seed)
    protos = prototypes(6, rng, overlap=0.8)
    X, y, g = draw(protos, labels_per_class, 1, rng, noise=0.2, feature_noise=0.0, codes=CODES)
    Xt, yt, _ = draw(protos, test_per_class, 1, rng, noise=0.2, feature_noise=0.0, codes=CODES)
    return X, y, Xt, yt


@pytest.mark.parametrize("method", learn.METHODS)
def test_every_method_learns_the_planted_classes_from_four_points_each(method):
    X, y, Xt, yt = separated(seed=11)
    model = fit_classifier(method, X, y, seed=5)
    codes, conf = model.predict_block(Xt.T)
    accuracy = float(np.mean(codes == yt))
    assert set(np.unique(codes)) <= set(CODES)
    top = 2.0 if method == "centroid" else 1.0  # a cosine margin runs from 0 to 2, probabilities to 1
    assert np.all((conf >= 0) & (conf <= top)) and np.all(np.isfinite(conf))
    if method == "forest":
        # 24 points in 64 dimensions are few for trees; the forest must still be far above chance (1/6).
        assert accuracy >= 0.6, accuracy
    else:
        assert accuracy >= 0.95, accuracy


def overlapping(seed, labels_per_class=20, test_per_class=3000):
    """Two classes that overlap: prototypes at cosine 0.8 (the sample's cropland / cropland_b),
    isotropic pixel noise of norm 1.0, and variation shared by both classes along four
    directions that tell them apart not at all (s.d. 0.4 each: like season or moisture,
    which move every class's embeddings alike).

    Why the logistic regression must win: the class difference lies along one direction,
    and both the noise and the shared variation are larger than that difference. K nearest
    neighbours decide by distance in all 64 dimensions, where the nuisance dominates, so the
    few labels that happen to be near are near for the wrong reasons. The logistic
    regression fits one linear function: its weights average over all 40 labels (the noise
    cancels) and it learns to ignore the shared directions (they do not help the fit), so
    it approaches the best possible linear boundary. Nearest centroid averages too but
    measures the cosine in every direction, the nuisance included.
    """
    rng = np.random.default_rng(seed)
    protos = prototypes(6, rng, overlap=0.8)
    nuisance = nuisance_directions(protos, 4, rng)
    kw = dict(noise=1.0, feature_noise=0.0, classes=[4, 5], nuisance=nuisance, nuisance_sd=0.4)
    X, y, _ = draw(protos, labels_per_class, 1, rng, **kw)
    Xt, yt, _ = draw(protos, test_per_class, 1, rng, **kw)
    return X, y, Xt, yt


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_logistic_regression_beats_nearest_neighbours_on_overlapping_classes(seed):
    X, y, Xt, yt = overlapping(seed)
    logistic = np.mean(fit_logistic(X, y).predict(Xt) == yt)
    knn = np.mean(fit_knn(X, y, k=5).predict(Xt) == yt)
    nearest = np.mean(fit_knn(X, y, k=1).predict(Xt) == yt)
    centroid = np.mean(fit_centroid(X, y).predict(Xt) == yt)
    # Measured over seeds 0-4: logistic 0.956-0.981, 5-NN 0.867-0.895, 1-NN 0.818-0.852, centroid 0.872-0.969.
    assert logistic >= knn + 0.05, (logistic, knn)
    assert logistic > nearest + 0.05 and logistic > centroid, (logistic, nearest, centroid)


def test_default_regularisation_is_on_the_flat_part_of_the_accuracy_curve():
    """C = 1 (scikit-learn's convention, on standardised unit vectors) against C from 0.01 to
    100: within 0.02 of the best, both where shrinking hard helps (isotropic noise only: the
    class means are all there is to learn) and where it hurts (shared nuisance directions
    that the weights must learn to ignore)."""
    cs = (0.01, 0.1, 1.0, 10.0, 100.0)
    for make in ("isotropic", "nuisance"):
        acc = {c: [] for c in cs}
        for seed in range(3):
            if make == "nuisance":
                X, y, Xt, yt = overlapping(seed, test_per_class=1500)
            else:
                rng = np.random.default_rng(seed)
                protos = prototypes(2, rng, overlap=0.8)
                X, y, _ = draw(protos, 20, 1, rng, noise=1.5, feature_noise=0.0)
                Xt, yt, _ = draw(protos, 1500, 1, rng, noise=1.5, feature_noise=0.0)
            for c in cs:
                acc[c].append(np.mean(fit_logistic(X, y, c=c).predict(Xt) == yt))
        mean = {c: float(np.mean(v)) for c, v in acc.items()}
        assert mean[learn.DEFAULT_C] >= max(mean.values()) - 0.02, (make, mean)


def test_logistic_fit_is_the_penalised_optimum_scikit_learn_finds():
    """Same objective (sum of log-losses + |W|^2 / 2C on the standardised vectors, intercept
    free) solved by scikit-learn's own solver: the same probabilities."""
    from sklearn.linear_model import LogisticRegression

    rng = np.random.default_rng(4)
    protos = prototypes(9, rng)
    X, y, _ = draw(protos, 20, 3, rng, noise=0.8, feature_noise=0.3)
    model = fit_logistic(X, y, c=0.5)
    mu, scale = learn.standardisation(X.astype(np.float64))
    ref = LogisticRegression(C=0.5, multi_class="multinomial", tol=1e-12, max_iter=100_000).fit((X - mu) / scale, y)
    Xt, _, _ = draw(protos, 50, 1, rng, noise=0.8)
    assert np.abs(model.probabilities(Xt) - ref.predict_proba((Xt - mu) / scale)).max() < 1e-4
    assert np.array_equal(model.predict(Xt), ref.predict((Xt - mu) / scale))


def test_linear_models_apply_in_chunks_as_their_definition_says():
    """predict_block over more than one internal chunk, against float64 per-pixel definitions:
    logistic = argmax of softmax(W x/|x| + b), confidence its probability; centroid = argmax of
    the cosine, confidence the margin to the runner-up. Vectors need not be unit length."""
    rng = np.random.default_rng(8)
    protos = prototypes(6, rng)
    X, y, _ = draw(protos, 10, 5, rng, noise=0.5, feature_noise=0.2, codes=CODES)
    n = learn.CHUNK_PIXELS + 1000
    pix = draw(protos, n // 6 + 1, 1, rng, noise=0.6)[0][:n].T * rng.uniform(0.5, 2.0, size=n).astype(np.float32)
    p64 = pix.astype(np.float64) / np.linalg.norm(pix.astype(np.float64), axis=0)

    lr = fit_logistic(X, y)
    codes, conf = lr.predict_block(pix)
    logits = lr.weights.astype(np.float64) @ p64 + lr.bias.astype(np.float64)[:, None]
    prob = np.exp(logits - logits.max(axis=0))
    prob /= prob.sum(axis=0)
    assert np.mean(codes == CODES[prob.argmax(axis=0)]) > 0.9999
    assert np.abs(conf - prob.max(axis=0)).max() < 1e-5

    ce = fit_centroid(X, y)
    codes, conf = ce.predict_block(pix)
    cos = ce.centroids.astype(np.float64) @ p64
    top2 = np.sort(cos, axis=0)[-2:]
    assert np.mean(codes == CODES[cos.argmax(axis=0)]) > 0.9999
    assert np.abs(conf - (top2[1] - top2[0])).max() < 1e-5
    # The centroid is the renormalised mean of its class's unit vectors.
    mean = X[y == 12].astype(np.float64).mean(axis=0)
    assert np.allclose(ce.centroids[list(CODES).index(12)], mean / np.linalg.norm(mean), atol=1e-6)


@pytest.mark.parametrize("method", ["logistic", "centroid", "knn", "forest"])
def test_pixels_without_data_get_nodata(method):
    X, y, Xt, yt = separated(seed=2)
    model = fit_classifier(method, X, y)
    block = Xt[:10].T.copy()
    block[:, 2] = np.nan
    block[5, 4] = np.nan  # one band missing is no data
    block[:, 7] = 0.0
    codes, conf = model.predict_block(block, nodata=255)
    bad = [2, 4, 7]
    assert list(codes[bad]) == [255] * 3 and np.all(np.isnan(conf[bad]))
    good = np.setdiff1d(np.arange(10), bad)
    assert np.array_equal(codes[good], model.predict(Xt[good]))
    assert np.all(codes[good] != 255)


def knn_by_definition(model, q):
    """The K training rows of highest cosine (float64), ties to the lower row; the class with
    most votes, ties to the class of the nearest of the tied voters."""
    out = []
    rows = model.vectors.astype(np.float64)
    for v in q.astype(np.float64):
        v = v / np.linalg.norm(v)
        # Correctly rounded sums: equal rows give equal cosines (a BLAS product need not).
        cos = np.array([math.fsum(r * v) for r in rows])
        rank = sorted(range(cos.size), key=lambda i: (-cos[i], i))[: model.k]
        votes = {}
        for r, i in enumerate(rank):
            c = int(model.labels[i])
            count, first = votes.get(c, (0, r))
            votes[c] = (count + 1, first)
        best = max(votes, key=lambda c: (votes[c][0], -votes[c][1]))
        out.append((model.codes[best], votes[best][0] / model.k))
    return np.array([o[0] for o in out]), np.array([o[1] for o in out])


@pytest.mark.parametrize("k", [1, 4, 5])
def test_knn_follows_its_definition_on_both_paths(k):
    rng = np.random.default_rng(k)
    protos = prototypes(5, rng)
    X, y, _ = draw(protos, 6, 4, rng, noise=0.9, feature_noise=0.3)
    Xt = draw(protos, 40, 1, rng, noise=0.9)[0]
    # Exact duplicates of training rows of different classes force ties on the cosine.
    X = np.concatenate([X, X[:7]])
    y = np.concatenate([y, (y[:7] % 5) + 1])
    Xt = np.concatenate([Xt, X[:7]])
    want_codes, want_conf = knn_by_definition(fit_knn(X, y, k=k, use_faiss=False), Xt)
    for use_faiss in (False, True):
        model = fit_knn(X, y, k=k, use_faiss=use_faiss)
        assert model.search == ("faiss" if use_faiss else "numpy")
        codes, conf = model.predict_block(Xt.T)
        assert np.array_equal(codes, want_codes), use_faiss
        assert np.allclose(conf, want_conf), use_faiss


def test_knn_tied_vote_goes_to_the_class_of_the_nearest_voter():
    a = np.array([1.0, 0.0, 0.0], dtype=np.float32)
    b = np.array([0.0, 1.0, 0.0], dtype=np.float32)
    X = np.stack([a, b])
    q = np.array([[0.6, 0.8, 0.0], [0.8, 0.6, 0.0]], dtype=np.float32)  # nearer b, then nearer a
    for use_faiss in (False, True):
        model = fit_knn(X, np.array([3, 9]), k=2, use_faiss=use_faiss)
        codes, conf = model.predict_block(q.T)
        assert list(codes) == [9, 3] and np.allclose(conf, 0.5)


def test_knn_faiss_and_numpy_agree_on_real_embeddings(wisconsin_vectors):
    X, rows, cols = wisconsin_vectors
    rng = np.random.default_rng(0)
    # Labels: three bands of the image (north, middle, south), 60 pixels each.
    third = rows.max() // 3 + 1
    y = rows // third
    train = np.concatenate([rng.choice(np.flatnonzero(y == c), 60, replace=False) for c in range(3)])
    a = fit_knn(X[train], y[train], k=5, use_faiss=False).predict_block(X.T)
    b = fit_knn(X[train], y[train], k=5, use_faiss=True).predict_block(X.T)
    assert np.array_equal(a[0], b[0]) and np.array_equal(a[1], b[1])


def test_bad_training_input_is_refused_in_one_sentence():
    X, y, _, _ = separated(seed=3)
    cases = [
        (lambda: fit_logistic(X, np.full(len(y), 4)), "one class"),
        (lambda: fit_knn(X, y, k=len(y) + 1), "more than the"),
        (lambda: fit_knn(X, y, k=0), "at least 1"),
        (lambda: fit_centroid(np.where(np.arange(len(y))[:, None] == 3, np.nan, X), y), "no data"),
        (lambda: fit_logistic(X, y[:-1]), "one class label per"),
        (lambda: fit_logistic(X, y.astype(float) + 0.5), "integer"),
        (lambda: fit_logistic(X, np.char.add("class ", y.astype(str))), "integer"),
        (lambda: fit_classifier("svm", X, y), "Unknown"),
        (lambda: fit_logistic(X, y, c=0), "positive"),
    ]
    for call, words in cases:
        with pytest.raises(EmbeddingsError) as err:
            call()
        text = str(err.value)
        assert words in text and "\n" not in text and text.endswith("."), text


def test_labels_stored_as_reals_count_as_integers():
    X, y, Xt, yt = separated(seed=6)
    model = fit_logistic(X, y.astype(np.float64), names={0: "water", 3: "forest"})
    assert model.codes.dtype == np.int64 and list(model.codes) == list(CODES)
    assert model.names[:3] == ("water", "forest", "7")
    assert np.mean(model.predict(Xt) == yt) >= 0.95


def test_forest_is_seeded():
    X, y, Xt, _ = separated(seed=9, labels_per_class=10)
    a = fit_forest(X, y, seed=3).predict_block(Xt.T)
    b = fit_forest(X, y, seed=3).predict_block(Xt.T)
    c = fit_forest(X, y, seed=4).predict_block(Xt.T)
    assert np.array_equal(a[0], b[0]) and np.array_equal(a[1], b[1])
    assert not np.array_equal(a[1], c[1])


def test_forest_without_scikit_learn_is_refused_with_the_install_command():
    code = (
        "import sys\n"
        "sys.modules['sklearn'] = None\n"
        "import numpy as np\n"
        "from earth_embeddings.core.learn import fit_classifier\n"
        "from earth_embeddings.core.errors import EmbeddingsError\n"
        "X = np.eye(4, 8, dtype=np.float32) + 0.1\n"
        "print(fit_classifier('logistic', X, [1, 1, 2, 2]).method)\n"
        "try:\n"
        "    fit_classifier('forest', X, [1, 1, 2, 2])\n"
        "except EmbeddingsError as e:\n"
        "    print(e)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    method, message = done.stdout.strip().split("\n")
    assert method == "logistic"  # the other methods work without it
    assert message.startswith("The random forest needs scikit-learn")
    assert "pip install" in message and "--no-deps" in message and "scikit-learn==" in message
    assert np.__version__ in message and "Traceback" not in done.stderr


# ----------------------------------------------------------------------------- model files


@pytest.mark.parametrize("method", ["logistic", "centroid", "knn"])
def test_saved_model_predicts_the_same(method, tmp_path):
    X, y, Xt, _ = separated(seed=12, labels_per_class=8)
    names = {int(c): f"class {c}" for c in CODES}
    model = fit_classifier(method, X, y, names=names, k_neighbors=3)
    path = tmp_path / "model.npz"
    save_model(model, path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.npz"]  # no temporary left behind
    # Plain arrays only: every member is an .npy that loads without pickle.
    with zipfile.ZipFile(path) as z:
        assert all(n.endswith(".npy") for n in z.namelist())
    with np.load(path, allow_pickle=False) as z:
        assert str(z["format"]) == learn.MODEL_FORMAT and int(z["bands"]) == 64
    back = load_model(path)
    assert learn.describe(back).startswith(f"{method} model: 6 classes (class 0, class 3,")
    assert back.method == method and back.names == model.names and np.array_equal(back.codes, model.codes)
    a = model.predict_block(Xt.T)
    b = back.predict_block(Xt.T)
    assert np.array_equal(a[0], b[0]) and np.array_equal(a[1], b[1])


def test_model_files_that_are_not_models_are_refused(tmp_path):
    X, y, _, _ = separated(seed=1)
    good = tmp_path / "good.npz"
    save_model(fit_logistic(X, y), good)
    data = good.read_bytes()
    (tmp_path / "cut.npz").write_bytes(data[: len(data) // 2])
    (tmp_path / "text.npz").write_text("weights = 1, 2, 3\n")
    np.savez(tmp_path / "foreign.npz", weights=np.ones((2, 64)), bias=np.zeros(2))
    np.savez(tmp_path / "pickled.npz", format=np.array(learn.MODEL_FORMAT), version=np.array([{"a": 1}], dtype=object))
    with np.load(good) as z:
        parts = dict(z)
    parts["weights"] = parts["weights"][:, :10]
    np.savez(tmp_path / "damaged.npz", **parts)
    for name in ("cut.npz", "text.npz", "foreign.npz", "pickled.npz"):
        with pytest.raises(EmbeddingsError, match="is not an Earth Embeddings classifier model") as err:
            load_model(tmp_path / name)
        assert "\n" not in str(err.value)
    with pytest.raises(EmbeddingsError, match="damaged"):
        load_model(tmp_path / "damaged.npz")
    with pytest.raises(EmbeddingsError, match="does not exist"):
        load_model(tmp_path / "missing.npz")


def test_model_for_other_bands_is_refused(tmp_path):
    X, y, _, _ = separated(seed=1)
    path = tmp_path / "m.npz"
    save_model(fit_centroid(X, y), path)
    model = load_model(path)
    with pytest.raises(EmbeddingsError, match="trained on 64-band embeddings but the data has 128 bands"):
        model.predict_block(np.zeros((128, 5), dtype=np.float32))


def test_forest_is_not_saved(tmp_path):
    X, y, _, _ = separated(seed=1)
    with pytest.raises(EmbeddingsError, match="cannot be saved"):
        save_model(fit_forest(X, y), tmp_path / "f.npz")
    assert list(tmp_path.iterdir()) == []


# ----------------------------------------------------------------------------- real AEF vectors


def test_centroid_classification_of_real_embeddings_is_coherent(wisconsin_vectors):
    """Real Wisconsin AEF pixels: classes labelled at a few pixels each (the pixels nearest
    to five k-means centres of the scene, 8 per class) are found again over the scene, and
    the class map is spatially coherent (neighbouring pixels mostly share a class)."""
    from earth_embeddings.core.kmeans import spherical_kmeans

    X, rows, cols = wisconsin_vectors
    clusters = spherical_kmeans(X, 5, seed=0)
    cid = clusters.assign(X)
    rng = np.random.default_rng(1)
    train = np.concatenate([rng.choice(np.flatnonzero(cid == c), 8, replace=False) for c in range(1, 6)])
    for method in ("centroid", "logistic"):
        model = fit_classifier(method, X[train], cid[train])
        pred = model.predict(X)
        assert np.mean(pred == cid) >= 0.75, (method, np.mean(pred == cid))
        grid = np.full((rows.max() + 1, cols.max() + 1), -1)
        grid[rows, cols] = pred
        same = (grid[:, 1:] == grid[:, :-1]) & (grid[:, 1:] >= 0)
        pairs = (grid[:, 1:] >= 0) & (grid[:, :-1] >= 0)
        share = np.bincount(pred)[1:] / pred.size
        assert same.sum() / pairs.sum() > 2 * float(share @ share), method  # far above chance
