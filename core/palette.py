"""Distinct colours for paletted class and cluster rasters.

The first ten are Tableau 10 (designed to be told apart, also by most colour-blind readers,
and readable on white and on imagery); the next ten were picked one at a time from
ColorBrewer's Set1, Dark2, Set3 and Paired and Tableau 20's light tones, each the candidate
farthest (CIELAB distance) from all colours before it, among those of lightness 25-88.
Beyond twenty, hues step by the golden angle in CIELCh with alternating lightness, so
neighbouring ids never look alike. No near-white or near-black colour: the map background
and no-data must stay distinguishable from every class.
"""

from __future__ import annotations

import math

_TABLEAU10 = (
    (78, 121, 167),  # blue
    (242, 142, 43),  # orange
    (225, 87, 89),  # red
    (118, 183, 178),  # teal
    (89, 161, 79),  # green
    (237, 201, 72),  # yellow
    (176, 122, 161),  # purple
    (255, 157, 167),  # pink
    (156, 117, 95),  # brown
    (186, 176, 172),  # grey
)
_MORE = (
    (106, 61, 154),  # Paired dark violet
    (231, 41, 138),  # Dark2 magenta
    (228, 26, 28),  # Set1 red
    (255, 190, 125),  # Tableau 20 light orange
    (179, 222, 105),  # Set3 lime
    (166, 86, 40),  # Set1 brown
    (247, 129, 191),  # Set1 pink
    (27, 158, 119),  # Dark2 teal
    (252, 205, 229),  # Set3 light pink
    (102, 102, 102),  # Dark2 grey
)
BASE = _TABLEAU10 + _MORE
_GOLDEN_ANGLE = 0.381966011250105  # 1 - 1/phi, in turns


def _lch_to_rgb(lightness: float, chroma: float, hue_turns: float) -> tuple[int, int, int]:
    """sRGB (0-255, clipped to the gamut) of a CIE LCh(ab) colour, D65 white."""
    a = chroma * math.cos(2 * math.pi * hue_turns)
    b = chroma * math.sin(2 * math.pi * hue_turns)
    fy = (lightness + 16) / 116
    fx, fz = fy + a / 500, fy - b / 200

    def finv(t: float) -> float:
        return t**3 if t > 6 / 29 else 3 * (6 / 29) ** 2 * (t - 4 / 29)

    x, y, z = 0.95047 * finv(fx), finv(fy), 1.08883 * finv(fz)
    linear = (
        3.2406 * x - 1.5372 * y - 0.4986 * z,
        -0.9689 * x + 1.8758 * y + 0.0415 * z,
        0.0557 * x - 0.2040 * y + 1.0570 * z,
    )
    out = []
    for v in linear:
        v = min(max(v, 0.0), 1.0)
        v = 12.92 * v if v <= 0.0031308 else 1.055 * v ** (1 / 2.4) - 0.055
        out.append(round(v * 255))
    return out[0], out[1], out[2]


def distinct_colours(n: int) -> list[tuple[int, int, int]]:
    """``n`` distinct, readable RGB colours (0-255), the same list for the same ``n`` prefix:
    colour i never depends on how many are asked for."""
    n = int(n)
    if n < 0:
        raise ValueError("n must be >= 0")
    out = list(BASE[:n])
    for i in range(len(BASE), n):
        j = i - len(BASE)
        # Perceptual lightness and chroma (CIELCh), hue by the golden angle: evenly spread hues
        # whatever n is, and lightness alternating so that consecutive ids differ twice over.
        hue = (0.1 + j * _GOLDEN_ANGLE) % 1.0
        out.append(_lch_to_rgb((58.0, 74.0, 44.0)[j % 3], (45.0, 35.0, 40.0)[(j // 3) % 3], hue))
    return out


def hex_colour(rgb: tuple[int, int, int]) -> str:
    """'#rrggbb' of an RGB tuple (for QML styles)."""
    return "#{:02x}{:02x}{:02x}".format(*rgb)


# Conventional land-cover colours (close to ESA WorldCover's legend), for class names that say
# what they are: an analyst reads blue as water and green as forest before any legend. Matched
# on whole words of the name, first rule first.
_LAND_COVER = (
    (("water", "lake", "river", "sea", "ocean", "reservoir"), (0, 100, 200)),
    (("wetland", "marsh", "swamp", "mangrove", "bog"), (0, 150, 160)),
    (("forest", "tree", "trees", "woodland", "wood"), (0, 100, 0)),
    (("shrub", "shrubland", "scrub"), (255, 187, 34)),
    (("grass", "grassland", "pasture", "meadow", "rangeland"), (140, 200, 80)),
    (("crop", "cropland", "cropland_b", "agriculture", "farm", "field", "fields"), (240, 150, 255)),
    (("urban", "built", "building", "buildings", "city", "settlement", "impervious", "road"), (250, 0, 0)),
    (("bare", "sand", "desert", "rock", "soil"), (180, 180, 180)),
    (("snow", "ice", "glacier"), (240, 240, 240)),
)


def class_colours(names: list[str]) -> list[tuple[int, int, int]]:
    """A colour per class name: the conventional land-cover colour where a name says what it
    is (water, forest, cropland, urban ...; darker shades of it for further classes of that
    kind), distinct colours for the rest."""
    out: list[tuple[int, int, int] | None] = []
    used: set[tuple[int, int, int]] = set()
    for name in names:
        words = {w for w in "".join(ch if ch.isalnum() or ch == "_" else " " for ch in name.lower()).split()}
        words |= {w.split("_")[0] for w in words}
        rule = next((c for keys, c in _LAND_COVER if words & set(keys)), None)
        rgb = None
        if rule is not None:
            # A second class of the same kind (cropland, cropland_b) gets darker shades of it.
            shades = [rule] + [(int(rule[0] * f), int(rule[1] * f), int(rule[2] * f)) for f in (0.7, 0.5, 0.35)]
            rgb = next((c for c in shades if c not in used), None)
        if rgb is not None:
            used.add(rgb)
        out.append(rgb)
    spare = iter(c for c in distinct_colours(len(names) + len(_LAND_COVER) + len(used)) if c not in used)
    return [rgb if rgb is not None else next(spare) for rgb in out]
