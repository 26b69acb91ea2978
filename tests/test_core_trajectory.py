"""core.trajectory against planted trajectories and a slow per-pixel reference of the definitions."""

import math

import numpy as np
import pytest
import rasterio
from rasterio.transform import from_origin

from earth_embeddings.core.errors import EmbeddingsError
from earth_embeddings.core.quant import LUT, NODATA, quantize
from earth_embeddings.core.trajectory import (
    NODATA_YEAR,
    TrajectoryTotals,
    choose_years,
    parse_years,
    raster_year,
    rasters_by_year,
    trajectory_of_block,
)

YEARS = list(range(2017, 2024))  # 7 years, baseline 2017
BANDS = 64
THR = 0.25


def unit(rng, n=BANDS):
    v = rng.standard_normal(n)
    return v / np.linalg.norm(v)


def at_distance(a, d, rng):
    """A unit vector u with 1 - cos(a, u) = d exactly."""
    e = rng.standard_normal(a.size)
    e -= e.dot(a) * a
    e /= np.linalg.norm(e)
    c = 1.0 - d
    return c * a + math.sqrt(max(0.0, 1.0 - c * c)) * e


# ----------------------------------------------------------------------------- the reference


def reference(values, years, baseline, thr=THR):
    """The definitions, one pixel at a time, in float64. ``values``: (Y, bands), NaN rows = no data."""
    n_years = len(years)
    norms = np.linalg.norm(values, axis=1)
    valid = np.isfinite(norms) & (norms > 0)
    u = np.where(valid[:, None], values / np.where(valid, norms, 1.0)[:, None], np.nan)
    b_idx = [years.index(y) for y in baseline]
    cmp_idx = [i for i in range(n_years) if i not in b_idx]
    with_data = [k for k in b_idx if valid[k]]
    fallback = None
    if with_data:
        b = u[with_data].sum(axis=0)
        b /= np.linalg.norm(b)
    elif valid.any():
        fallback = int(np.argmax(valid))
        b = u[fallback]
    else:
        b = None
    change = {}
    for i in cmp_idx:
        change[years[i]] = 1.0 - u[i].dot(b) if (b is not None and valid[i] and i != fallback) else math.nan
    seen = [y for y in change if not math.isnan(change[y])]
    if not seen:
        yoc = NODATA_YEAR
    else:
        yoc = 0
        for j, y in enumerate(seen):
            if all(change[z] >= thr for z in seen[j:]):
                yoc = y
                break
    have = [i for i in range(n_years) if valid[i]]
    if len(have) < 2:
        mag, step_year = math.nan, NODATA_YEAR
    else:
        steps = [1.0 - u[p].dot(u[q]) for p, q in zip(have[:-1], have[1:])]
        j = int(np.argmax(steps))
        mag = steps[j]
        step_year = years[have[j + 1]] if mag >= thr else 0
    anomaly = []
    for i in range(n_years):
        others = [k for k in have if k != i]
        if not valid[i] or not others:
            anomaly.append(math.nan)
        else:
            m = u[others].sum(axis=0)
            anomaly.append(1.0 - u[i].dot(m) / np.linalg.norm(m))
    return change, yoc, mag, step_year, anomaly


def dequantised(codes):
    """float64 (Y, bands) values of int8 codes, NaN rows where any band is -128."""
    v = LUT[codes.view(np.uint8)].astype(np.float64)
    v[(codes == NODATA).any(axis=1)] = np.nan
    return v


# ----------------------------------------------------------------------------- planted block


def planted_block(seed=3):
    """int8 codes (Y, 64, h, w) with named cases, each a column of 4 pixels with its own vectors."""
    rng = np.random.default_rng(seed)
    cases = {}

    def stable(a):
        return [at_distance(a, 0.01, rng) for _ in YEARS]

    def persistent(a, year, d=0.5):
        b = at_distance(a, d, rng)
        return [at_distance(a, 0.01, rng) if y < year else at_distance(b, 0.01, rng) for y in YEARS]

    def add(name, make, holes=()):
        cols = []
        for _ in range(4):
            a = unit(rng)
            vecs = np.array(make(a), dtype=np.float64)
            for y in holes:
                vecs[YEARS.index(y)] = np.nan
            cols.append(vecs)
        cases[name] = (np.stack(cols, axis=-1), holes)

    add("stable", stable)
    for year in (2018, 2019, 2021, 2023):
        add(f"persistent_{year}", lambda a, year=year: persistent(a, year))

    def temporary(a, year=2020):
        c = at_distance(a, 0.6, rng)
        return [at_distance(c, 0.01, rng) if y == year else at_distance(a, 0.01, rng) for y in YEARS]

    add("temporary_2020", temporary)

    def persistent_then_larger_temporary(a):
        b = at_distance(a, 0.4, rng)
        c = at_distance(a, 0.95, rng)
        out = []
        for y in YEARS:
            out.append(at_distance(a, 0.01, rng) if y < 2019 else c if y == 2021 else at_distance(b, 0.01, rng))
        return out

    add("persistent_2019_then_larger_temporary_2021", persistent_then_larger_temporary)
    # One-year holes: before the change (the step spans it), inside the changed years, at the change year.
    add("persistent_2021_hole_2020", lambda a: persistent(a, 2021), holes=(2020,))
    add("persistent_2021_hole_2022", lambda a: persistent(a, 2021), holes=(2022,))
    add("persistent_2021_hole_2021", lambda a: persistent(a, 2021), holes=(2021,))
    add("stable_hole_2019", stable, holes=(2019,))
    add("stable_no_baseline", stable, holes=(2017,))
    add("persistent_2020_no_baseline", lambda a: persistent(a, 2020), holes=(2017,))
    add("one_year_only", stable, holes=tuple(YEARS[1:]))
    add("no_data", stable, holes=tuple(YEARS))
    values = np.concatenate([v for v, _ in cases.values()], axis=-1)  # (Y, 64, w)
    values = values[:, :, None, :]  # (Y, 64, 1, w)
    columns, start = {}, 0
    for name, (v, _) in cases.items():
        columns[name] = slice(start, start + v.shape[-1])
        start += v.shape[-1]
    return quantize(values), columns


@pytest.fixture(scope="module")
def planted():
    codes, columns = planted_block()
    return codes, columns, trajectory_of_block(codes, YEARS, [2017], THR)


EXPECTED_YEAR = {
    "stable": 0,
    "persistent_2018": 2018,
    "persistent_2019": 2019,
    "persistent_2021": 2021,
    "persistent_2023": 2023,
    "temporary_2020": 0,
    "persistent_2019_then_larger_temporary_2021": 2019,
    "persistent_2021_hole_2020": 2021,
    "persistent_2021_hole_2022": 2021,
    "persistent_2021_hole_2021": 2022,  # the first year with data from which it stays changed
    "stable_hole_2019": 0,
    "stable_no_baseline": 0,
    "persistent_2020_no_baseline": 2020,
    "one_year_only": NODATA_YEAR,
    "no_data": NODATA_YEAR,
}


def test_year_of_change_is_the_planted_year(planted):
    codes, columns, r = planted
    got = {name: sorted(set(r.year_of_change[0, sl].tolist())) for name, sl in columns.items()}
    assert got == {name: [y] for name, y in EXPECTED_YEAR.items()}
    assert r.year_of_change.dtype == np.int16
    assert r.change_years == tuple(YEARS[1:]) and r.change.shape == (len(YEARS) - 1, 1, codes.shape[-1])


def test_change_bands_are_one_minus_cosine_to_the_baseline(planted):
    _, columns, r = planted
    band = {y: r.change[i, 0] for i, y in enumerate(r.change_years)}
    stable = columns["stable"]
    for y in r.change_years:
        assert np.all(band[y][stable] < 0.05)
    changed = columns["persistent_2021"]
    assert np.all(band[2020][changed] < 0.05)
    assert np.all(np.abs(band[2021][changed] - 0.5) < 0.05) and np.all(np.abs(band[2023][changed] - 0.5) < 0.05)
    # No data in the year -> NaN; the first year with data stands in for a missing baseline and
    # has no change value itself.
    assert np.all(np.isnan(band[2020][columns["persistent_2021_hole_2020"]]))
    nb = columns["stable_no_baseline"]
    assert np.all(np.isnan(band[2018][nb])) and np.all(band[2019][nb] < 0.05)
    assert np.all(np.isnan(r.change[:, 0, columns["no_data"]]))


def test_one_year_hole_is_spanned_by_the_step(planted):
    _, columns, r = planted
    sl = columns["persistent_2021_hole_2020"]
    assert np.all(r.years_with_data[0, sl] == len(YEARS) - 1)
    # The largest step is 2019 -> 2021 (across the hole), 1 - cos about 0.5, dated 2021.
    assert np.all(r.step_year[0, sl] == 2021)
    assert np.all(np.abs(r.magnitude[0, sl] - 0.5) < 0.05)
    # Without a hole the step year is the change year too.
    assert np.all(r.step_year[0, columns["persistent_2019"]] == 2019)


def test_magnitude_and_step_year_conventions(planted):
    _, columns, r = planted
    stable = columns["stable"]
    assert np.all(r.magnitude[0, stable] < 0.05) and np.all(r.step_year[0, stable] == 0)
    # The larger temporary disturbance is the largest step (into 2021 or out of it: the first on ties).
    big = columns["persistent_2019_then_larger_temporary_2021"]
    assert np.all(r.step_year[0, big] >= 2021) and np.all(r.magnitude[0, big] > 0.5)
    for name in ("one_year_only", "no_data"):
        assert np.all(np.isnan(r.magnitude[0, columns[name]]))
        assert np.all(r.step_year[0, columns[name]] == NODATA_YEAR)


def test_step_year_is_the_first_of_equal_steps():
    rng = np.random.default_rng(6)
    a = unit(rng)
    b = at_distance(a, 0.5, rng)
    values = np.stack([a, b, a, a])[:, :, None, None].astype(np.float32)  # 2018 and 2019: the same step
    r = trajectory_of_block(values, [2017, 2018, 2019, 2020], [2017])
    assert r.step_year[0, 0] == 2018 and abs(r.magnitude[0, 0] - 0.5) < 1e-6
    assert r.year_of_change[0, 0] == 0


def test_anomaly_peaks_in_the_disturbed_year(planted):
    _, columns, r = planted
    sl = columns["temporary_2020"]
    assert np.all(np.argmax(r.anomaly[:, 0, sl], axis=0) == YEARS.index(2020))
    assert np.all(r.anomaly[YEARS.index(2020), 0, sl] > 0.4)
    assert np.all(np.delete(r.anomaly[:, 0, sl], YEARS.index(2020), axis=0) < 0.15)
    # A year without data has no anomaly; neither has a pixel with one year of data.
    assert np.all(np.isnan(r.anomaly[YEARS.index(2019), 0, columns["stable_hole_2019"]]))
    assert np.all(np.isnan(r.anomaly[:, 0, columns["one_year_only"]]))


def test_every_output_matches_the_reference_on_the_planted_block(planted):
    codes, _, r = planted
    check_against_reference(codes, r, YEARS, [2017])


def check_against_reference(codes, r, years, baseline, thr=THR):
    h, w = codes.shape[2:]
    for row in range(h):
        for col in range(w):
            change, yoc, mag, step_year, anomaly = reference(dequantised(codes[:, :, row, col]), years, baseline, thr)
            where = f"pixel {row},{col}"
            got = r.change[:, row, col]
            want = np.array([change[y] for y in r.change_years])
            assert np.array_equal(np.isnan(got), np.isnan(want)), where
            assert np.allclose(got[~np.isnan(got)], want[~np.isnan(want)], atol=2e-6), where
            assert r.year_of_change[row, col] == yoc, where
            assert r.step_year[row, col] == step_year, where
            if math.isnan(mag):
                assert math.isnan(r.magnitude[row, col]), where
            else:
                assert abs(r.magnitude[row, col] - mag) < 2e-6, where
            got_a, want_a = r.anomaly[:, row, col], np.array(anomaly)
            assert np.array_equal(np.isnan(got_a), np.isnan(want_a)), where
            assert np.allclose(got_a[~np.isnan(got_a)], want_a[~np.isnan(want_a)], atol=5e-6), where


def random_trajectories(rng, years, h, w, hole_fraction=0.15):
    """Pixels hopping at random between three states (near, mid, far from the first), with holes."""
    values = np.empty((len(years), BANDS, h, w))
    for row in range(h):
        for col in range(w):
            a = unit(rng)
            states = [a, at_distance(a, rng.uniform(0.32, 0.6), rng), at_distance(a, rng.uniform(0.7, 1.2), rng)]
            state = 0
            for i in range(len(years)):
                if rng.random() < 0.35:
                    state = int(rng.integers(0, 3))
                values[i, :, row, col] = at_distance(states[state], 0.005, rng)
    values[rng.random((len(years), 1, h, w)).repeat(BANDS, axis=1) < hole_fraction] = np.nan
    return quantize(values)


@pytest.mark.parametrize(
    "years,baseline",
    [(list(range(2017, 2026)), [2017]), (list(range(2017, 2022)), [2017, 2018]), ([2017, 2019, 2024], [2017])],
)
def test_random_trajectories_match_the_reference(years, baseline):
    rng = np.random.default_rng(len(years) * 10 + len(baseline))
    # 40 x 41 pixels: more than one run of the kernel, and a last run that is not full.
    codes = random_trajectories(rng, years, 40, 41)
    r = trajectory_of_block(codes, years, baseline, THR)
    check_against_reference(codes, r, years, baseline)
    assert (r.year_of_change > 0).any() and (r.year_of_change == 0).any()


def test_runs_of_pixels_do_not_change_the_result(monkeypatch):
    from earth_embeddings.core import trajectory as t

    rng = np.random.default_rng(11)
    codes = random_trajectories(rng, YEARS, 30, 30)
    whole = trajectory_of_block(codes, YEARS, [2017])
    monkeypatch.setattr(t, "CHUNK_VALUES", 1)  # the smallest runs: 256 pixels
    monkeypatch.setattr(t, "RUN_PIXELS", 1)
    small = trajectory_of_block(codes, YEARS, [2017])
    for name in ("change", "year_of_change", "magnitude", "step_year", "anomaly", "years_with_data"):
        assert np.array_equal(getattr(whole, name), getattr(small, name), equal_nan=True), name


def test_several_baseline_years_are_their_renormalised_mean():
    rng = np.random.default_rng(5)
    a = unit(rng)
    b17, b18 = at_distance(a, 0.3, rng), at_distance(a, 0.3, rng)
    mean = (b17 + b18) / np.linalg.norm(b17 + b18)
    later = at_distance(mean, 0.2, rng)
    values = np.stack([b17, b18, later, later])[:, :, None, None]
    r = trajectory_of_block(values.astype(np.float32), [2017, 2018, 2019, 2020], [2017, 2018])
    assert r.change_years == (2019, 2020)
    assert abs(r.change[0, 0, 0] - 0.2) < 1e-5
    # Each baseline year alone is further from the later years than their mean is.
    assert 1 - later.dot(b17) > 0.25
    # Where one baseline year has no data, the other is the baseline.
    values[1] = np.nan
    r = trajectory_of_block(values.astype(np.float32), [2017, 2018, 2019, 2020], [2017, 2018])
    assert abs(r.change[0, 0, 0] - (1 - later.dot(b17))) < 1e-5
    # Data only in the baseline years: nothing to compare, so no year of change.
    values[2:] = np.nan
    values[1, :, 0, 0] = b18
    r = trajectory_of_block(values.astype(np.float32), [2017, 2018, 2019, 2020], [2017, 2018])
    assert r.year_of_change[0, 0] == NODATA_YEAR and r.years_with_data[0, 0] == 2


def test_float_input_with_nan_behaves_like_int8_with_minus_128():
    rng = np.random.default_rng(8)
    codes = random_trajectories(rng, YEARS, 12, 13)
    floats = LUT[codes.view(np.uint8)]  # NaN where -128
    ri = trajectory_of_block(codes, YEARS, [2017])
    rf = trajectory_of_block(floats, YEARS, [2017])
    assert np.isnan(floats).any()
    assert np.array_equal(ri.year_of_change, rf.year_of_change)
    assert np.array_equal(ri.step_year, rf.step_year)
    assert np.array_equal(ri.years_with_data, rf.years_with_data)
    for name in ("change", "magnitude", "anomaly"):
        x, y = getattr(ri, name), getattr(rf, name)
        assert np.array_equal(np.isnan(x), np.isnan(y)), name
        assert np.nanmax(np.abs(x - y)) < 2e-6, name
    # A list of years mixing int8 and float32 arrays gives the same.
    mixed = [codes[i] if i % 2 else floats[i] for i in range(len(YEARS))]
    rm = trajectory_of_block(mixed, YEARS, [2017])
    assert np.array_equal(rm.year_of_change, ri.year_of_change)


def test_partial_nodata_and_zero_vectors_count_as_no_data():
    rng = np.random.default_rng(9)
    codes = random_trajectories(rng, [2017, 2018, 2019], 1, 3, hole_fraction=0.0)
    codes[1, 5, 0, 0] = NODATA  # one band only, like the reader: the pixel has no data that year
    codes[1, :, 0, 1] = 0  # a zero vector has no direction
    r = trajectory_of_block(codes, [2017, 2018, 2019], [2017])
    assert r.years_with_data[0].tolist() == [2, 2, 3]
    assert np.isnan(r.change[0, 0, 0]) and np.isnan(r.change[0, 0, 1]) and not np.isnan(r.change[0, 0, 2])


def test_real_vectors_planted_changes(wisconsin_raster):
    """Real AEF vectors: a pixel takes another real pixel's vector from its change year on."""
    with rasterio.open(wisconsin_raster) as ds:
        codes = ds.read()
    flat = codes.reshape(BANDS, -1)
    flat = flat[:, (flat != NODATA).all(axis=0)][:, :2000]
    rng = np.random.default_rng(1)
    v = LUT[flat.view(np.uint8)].astype(np.float64)
    u = v / np.linalg.norm(v, axis=0)
    years = list(range(2017, 2026))
    n = flat.shape[1]
    partner = rng.permutation(n)
    far = 1 - np.einsum("bn,bn->n", u, u[:, partner]) >= 0.4
    idx = np.nonzero(far)[0][:300]
    change_year = rng.choice([0, 2019, 2020, 2022, 2025], size=idx.size)
    block = np.repeat(flat[None, :, idx], len(years), axis=0)  # (Y, 64, k): stable = the same codes
    for j, (i, y) in enumerate(zip(idx, change_year)):
        if y:
            block[years.index(y) :, :, j] = flat[:, partner[i]][None]
    r = trajectory_of_block(block[:, :, None, :], years, [2017])
    assert np.array_equal(r.year_of_change[0], change_year)
    assert np.array_equal(r.step_year[0], change_year)
    assert np.all(r.change[:, 0][:, change_year == 0] < 1e-6)


def test_totals_count_persistent_and_temporary_hectares(planted):
    codes, columns, r = planted
    totals = TrajectoryTotals(r.change_years, pixel_area_m2=100.0, threshold=THR)
    # Two halves of the block add up like the whole.
    half = codes.shape[-1] // 2
    for part in (codes[..., :half], codes[..., half:]):
        totals.add(trajectory_of_block(part, YEARS, [2017], THR))
    rows = {row["year"]: row for row in totals.rows()}
    px_ha = 100.0 / 1e4
    persistent = {y: 0 for y in YEARS[1:]}
    for year in EXPECTED_YEAR.values():
        if year > 0:
            persistent[year] += 4
    assert {y: round(rows[y]["persistent_ha"] / px_ha) for y in YEARS[1:]} == persistent
    # Temporary: the 2020 disturbance (4 px); the larger 2021 one is inside a persistent change.
    assert {y: round(rows[y]["temporary_ha"] / px_ha) for y in YEARS[1:]} == {
        y: (4 if y == 2020 else 0) for y in YEARS[1:]
    }
    assert totals.changed_pixels == sum(persistent.values())
    assert totals.valid_pixels == 4 * (len(EXPECTED_YEAR) - 2)
    assert abs(totals.changed_ha - sum(persistent.values()) * px_ha) < 1e-9
    assert rows[2020]["valid_ha"] == pytest.approx((4 * (len(EXPECTED_YEAR) - 2) - 4) * px_ha)
    # The histogram holds the last year's change of every pixel with a value there.
    assert totals.histogram.total == int(np.isfinite(r.change[-1]).sum())
    text = totals.describe()
    assert "2020: became persistently changed 0.04 ha, disturbed only temporarily 0.04 ha." in text


def test_temporary_before_a_later_persistent_change_counts_as_temporary():
    rng = np.random.default_rng(4)
    a = unit(rng)
    b, c = at_distance(a, 0.5, rng), at_distance(a, 0.6, rng)
    values = np.stack([a, c, a, b, b])[:, :, None, None].astype(np.float32)
    years = [2017, 2018, 2019, 2020, 2021]
    r = trajectory_of_block(values, years, [2017])
    assert r.year_of_change[0, 0] == 2020
    totals = TrajectoryTotals(r.change_years, 100.0)
    totals.add(r)
    assert [row["temporary_ha"] for row in totals.rows()] == [0.01, 0.0, 0.0, 0.0]
    assert [row["persistent_ha"] for row in totals.rows()] == [0.0, 0.0, 0.01, 0.0]


def test_kernel_refuses_inconsistent_blocks():
    rng = np.random.default_rng(2)
    codes = random_trajectories(rng, [2017, 2018], 2, 2)
    with pytest.raises(EmbeddingsError, match="different shapes"):
        trajectory_of_block([codes[0], codes[1][:32]], [2017, 2018], [2017])
    with pytest.raises(EmbeddingsError, match="no year after the baseline"):
        trajectory_of_block(codes, [2017, 2018], [2017, 2018])
    with pytest.raises(EmbeddingsError, match="2 years of embeddings for 3 years"):
        trajectory_of_block(codes, [2017, 2018, 2019], [2017])
    for bad in (-0.1, 2.5, float("nan")):
        with pytest.raises(EmbeddingsError, match="threshold must be between 0 and 2"):
            trajectory_of_block(codes, [2017, 2018], [2017], bad)


# ----------------------------------------------------------------------------- years


@pytest.mark.parametrize(
    "text,years",
    [
        ("2018-2024", list(range(2018, 2025))),
        ("2017,2019,2024", [2017, 2019, 2024]),
        (" 2017 , 2019-2021 ; 2024 ", [2017, 2019, 2020, 2021, 2024]),
        ("2018 - 2020, 2023", [2018, 2019, 2020, 2023]),
        ("2018\u20132019", [2018, 2019]),
        ("2019 2017", [2017, 2019]),
        ("2018, 2018-2019", [2018, 2019]),
        ("", None),
        ("   ", None),
        (None, None),
    ],
)
def test_parse_years_good(text, years):
    assert parse_years(text) == years


@pytest.mark.parametrize(
    "text,fragment",
    [
        ("2018-20x", "cannot be read at '2018-20x'"),
        ("18-24", "cannot be read at '18-24'"),
        ("2018..2020", "cannot be read at '2018..2020'"),
        ("last five years", "cannot be read at 'last'"),
        ("2024-2018", "runs backwards; write it as 2018-2024"),
        ("2017-2019-2021", "cannot be read"),
    ],
)
def test_parse_years_bad_is_one_sentence(text, fragment):
    with pytest.raises(EmbeddingsError) as err:
        parse_years(text, "YEARS")
    msg = str(err.value)
    assert fragment in msg and msg.startswith("YEARS") and msg.endswith(".") and "\n" not in msg


AVAILABLE = list(range(2017, 2026))


def test_choose_years():
    assert choose_years(AVAILABLE) == (AVAILABLE, [2017])
    assert choose_years(AVAILABLE, "2019-2021") == ([2019, 2020, 2021], [2019])
    assert choose_years(AVAILABLE, "2019-2024", "2017") == ([2017] + list(range(2019, 2025)), [2017])
    assert choose_years(AVAILABLE, "", "2017-2018") == (AVAILABLE, [2017, 2018])
    assert choose_years([2024, 2017, 2020], "") == ([2017, 2020, 2024], [2017])


@pytest.mark.parametrize(
    "years,baseline,fragment",
    [
        ("2015-2018", "", "YEARS asks for 2015, 2016, but the collection has these years: 2017, 2018, 2019"),
        ("2018-2020", "2016", "BASELINE_YEARS asks for 2016, but the collection has these years: 2017,"),
        ("2020", "", "needs at least two years, and only 2020 is chosen"),
        ("2017-2024", "2019", "but 2017, 2018 come(s) earlier"),
        ("2017-2018", "2017-2018", "choose at least one year after the baseline"),
        ("20-21", "", "YEARS '20-21' cannot be read"),
    ],
)
def test_choose_years_bad(years, baseline, fragment):
    with pytest.raises(EmbeddingsError) as err:
        choose_years(AVAILABLE, years, baseline)
    assert fragment in str(err.value) and "\n" not in str(err.value)


def test_choose_years_lists_all_the_years_the_collection_has():
    with pytest.raises(EmbeddingsError) as err:
        choose_years(AVAILABLE, "2016")
    assert str(err.value).endswith("these years: 2017, 2018, 2019, 2020, 2021, 2022, 2023, 2024, 2025.")


# ----------------------------------------------------------------------------- raster years


def write_raster(path, bands=4, tags=None):
    with rasterio.open(
        path,
        "w",
        driver="GTiff",
        width=8,
        height=8,
        count=bands,
        dtype="int8",
        crs="EPSG:32616",
        transform=from_origin(500000, 4900000, 10, 10),
        nodata=-128,
    ) as ds:
        ds.write(np.ones((bands, 8, 8), "int8"))
        if tags:
            ds.update_tags(**tags)
    return str(path)


def test_raster_year_from_the_load_tag(sample_index, truth, tmp_path):
    from core_calls import load as load_embeddings

    out = tmp_path / "loaded.tif"  # no year in the name: the tag must carry it
    west, south, east, north = truth.notes["bbox_wgs84"]
    small = (west, south, west + 0.1 * (east - west), south + 0.1 * (north - south))
    load_embeddings(sample_index, 2024, small, "EPSG:4326", str(out))
    assert raster_year(str(out)) == 2024


def test_raster_year_tag_wins_over_the_name(tmp_path):
    assert raster_year(write_raster(tmp_path / "aef_2019.tif", tags={"EMBEDDINGS_YEAR": "2021"})) == 2021


@pytest.mark.parametrize("name,year", [("aef_2020_10m.tif", 2020), ("2018.tif", 2018), ("x-2023-v2.tiff", 2023)])
def test_raster_year_from_the_name(tmp_path, name, year):
    assert raster_year(write_raster(tmp_path / name)) == year


@pytest.mark.parametrize(
    "name,fragment",
    [
        ("tile20201.tif", "has no EMBEDDINGS_YEAR tag (written by Load embeddings) and no four-digit year"),
        ("embeddings.tif", "rename it, for example to aef_2021.tif"),
        ("change_2017_2024.tif", "holds several years (2017, 2024)"),
        ("aef_1999.tif", "no four-digit year in its name"),
    ],
)
def test_raster_year_unknown(tmp_path, name, fragment):
    with pytest.raises(EmbeddingsError) as err:
        raster_year(write_raster(tmp_path / name))
    assert fragment in str(err.value) and "\n" not in str(err.value)


def test_raster_year_missing_or_not_a_raster(tmp_path):
    with pytest.raises(EmbeddingsError, match="does not exist"):
        raster_year(str(tmp_path / "aef_2020.tif"))
    (tmp_path / "notes_2020.tif").write_text("not a raster")
    with pytest.raises(EmbeddingsError, match="cannot be opened as a raster"):
        raster_year(str(tmp_path / "notes_2020.tif"))


def test_rasters_by_year(tmp_path):
    a = write_raster(tmp_path / "aef_2024.tif")
    b = write_raster(tmp_path / "aef_2017.tif")
    assert rasters_by_year([a, b]) == {2017: b, 2024: a}
    c = write_raster(tmp_path / "other.tif", tags={"EMBEDDINGS_YEAR": "2024"})
    with pytest.raises(EmbeddingsError, match="aef_2024.tif and other.tif are both of 2024; give one raster per year"):
        rasters_by_year([a, c])
    d = write_raster(tmp_path / "aef_2020.tif", bands=3)
    with pytest.raises(EmbeddingsError, match="has 3 bands and aef_2024.tif has 4"):
        rasters_by_year([a, d])
