"""The PCA RGB view of loaded embeddings (core.pca) against the sample's planted classes."""

import numpy as np
import rasterio

from earth_embeddings.core.grid import GridSpec, transformer
from earth_embeddings.core.load import LoadRequest, load_embeddings
from earth_embeddings.core.pca import write_pca_rgb
from earth_embeddings.core.source import SourceSpec
from earth_embeddings.scripts.sample import CLASSES, class_interior_points


def test_pca_rgb_gives_each_planted_class_its_own_colour_and_keeps_the_holes(sample_index, truth, tmp_path):
    emb, rgb = tmp_path / "emb.tif", tmp_path / "pca.tif"
    load_embeddings(
        LoadRequest(SourceSpec(sample_index, 2024), GridSpec(tuple(truth.notes["bbox_wgs84"]), "EPSG:4326"), str(emb))
    )
    result = write_pca_rgb(str(emb), str(rgb))
    assert len(result.explained) == 3 and result.explained[0] >= result.explained[1] >= result.explained[2] > 0
    with rasterio.open(rgb) as ds, rasterio.open(emb) as src:
        assert ds.count == 3 and ds.dtypes[0] == "uint8" and ds.nodata == 0
        assert ds.transform == src.transform and ds.crs == src.crs
        to_crs = transformer("EPSG:4326", ds.crs.to_string())

        def colours(points):
            xs, ys = to_crs.transform([p[0] for p in points], [p[1] for p in points])
            return np.array([v for v in ds.sample(list(zip(xs, ys)))], dtype=np.float64)

        means = {
            c: colours(class_interior_points(truth, i, 2024, 8, seed=4)).mean(axis=0) for i, c in enumerate(CLASSES)
        }
        hole = truth.holes[0]
        assert (colours([tuple(map(float, truth.lonlat_of_local(hole["x"], hole["y"])))]) == 0).all()
        codes = src.read(1)
        assert ((ds.read(1) == 0) == (codes == -128)).all()  # no-data exactly where the embeddings have none
    # Classes get visibly different colours; the sample's two confusable croplands, close ones.
    names = list(means)
    gaps = {(a, b): np.linalg.norm(means[a] - means[b]) for i, a in enumerate(names) for b in names[i + 1 :]}
    close = gaps.pop(("cropland", "cropland_b"))
    assert min(gaps.values()) > 60 and 5 < close < min(gaps.values()), gaps
