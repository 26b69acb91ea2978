"""Class and cluster colours: distinct (CIELAB distance), readable, stable per index."""

import numpy as np

from earth_embeddings.core.palette import class_colours, distinct_colours, hex_colour


def lab(rgb):
    """CIELAB (D65) of sRGB colours, 0-255."""
    c = np.asarray(rgb, dtype=np.float64) / 255.0
    c = np.where(c > 0.04045, ((c + 0.055) / 1.055) ** 2.4, c / 12.92)
    m = np.array([[0.4124, 0.3576, 0.1805], [0.2126, 0.7152, 0.0722], [0.0193, 0.1192, 0.9505]])
    xyz = c @ m.T / np.array([0.95047, 1.0, 1.08883])
    f = np.where(xyz > 0.008856, np.cbrt(xyz), 7.787 * xyz + 16 / 116)
    return np.stack([116 * f[..., 1] - 16, 500 * (f[..., 0] - f[..., 1]), 200 * (f[..., 1] - f[..., 2])], axis=-1)


def test_first_twenty_colours_are_far_apart_and_readable():
    colours = distinct_colours(20)
    assert len(colours) == 20 and len(set(colours)) == 20
    L = lab(colours)
    d = np.linalg.norm(L[:, None] - L[None], axis=-1) + np.eye(20) * 1e9
    assert d.min() > 20  # CIELAB distance: 2.3 is just noticeable, 20 is plainly another colour
    assert np.all((L[:, 0] >= 25) & (L[:, 0] <= 90))  # neither near-black nor near-white


def test_many_colours_stay_distinct_and_colour_i_never_depends_on_n():
    many = distinct_colours(60)
    assert many[:7] == distinct_colours(7) and many[:20] == distinct_colours(20)
    assert len(set(many)) == 60
    assert all(isinstance(v, int) and 0 <= v <= 255 for c in many for v in c)
    L = lab(many)
    assert np.all(np.linalg.norm(np.diff(L, axis=0), axis=1) > 15)  # neighbouring ids never alike
    assert np.all((L[:, 0] >= 25) & (L[:, 0] <= 90))
    assert distinct_colours(0) == []
    assert hex_colour((78, 121, 167)) == "#4e79a7"


def test_land_cover_names_get_their_conventional_colours_and_the_rest_stay_distinct():
    names = ["Water", "forest", "cropland", "cropland_b", "urban", "class 7", "grassland"]
    colours = class_colours(names)
    r, g, b = colours[0]
    assert b > 150 and b > r and b > g  # water is blue
    r, g, b = colours[1]
    assert g > r and g > b  # forest is green
    assert colours[2] != colours[3]  # two croplands: the second gets a darker shade of the first
    assert all(b <= a for a, b in zip(colours[2], colours[3]))
    assert len(set(colours)) == len(names)  # all distinct
    assert class_colours(["a", "b", "c"]) == distinct_colours(3)  # no names known: as before
