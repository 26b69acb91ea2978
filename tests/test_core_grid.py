import pytest

from earth_embeddings.core.errors import EmbeddingsError
from earth_embeddings.core.grid import Grid, check_size, crop_grid, grid_for_extent, utm_epsg


def test_utm_zone_of_centre():
    assert utm_epsg(-88.77, 44.29) == "EPSG:32616"
    assert utm_epsg(13.4, 52.5) == "EPSG:32633"
    assert utm_epsg(151.2, -33.9) == "EPSG:32756"


def test_default_crs_is_utm_of_centre_and_grid_is_snapped():
    g = grid_for_extent((-88.78, 44.28, -88.76, 44.30), "EPSG:4326", None, 10)
    assert g.crs == "EPSG:32616"
    assert g.transform.a == 10 and g.transform.e == -10
    assert g.transform.c % 10 == 0 and g.transform.f % 10 == 0
    g30 = grid_for_extent((-88.78, 44.28, -88.76, 44.30), "EPSG:4326", None, 30)
    assert g30.transform.c % 30 == 0 and g30.transform.f % 30 == 0


def test_extent_already_on_grid_keeps_its_size():
    g = grid_for_extent((500000, 4900000, 501000, 4900500), "EPSG:32616", "EPSG:32616", 10)
    assert (g.width, g.height) == (100, 50)
    assert g.bounds == (500000, 4900000, 501000, 4900500)


def test_geographic_target_crs_is_refused():
    with pytest.raises(EmbeddingsError, match="geographic"):
        grid_for_extent((0, 0, 1, 1), "EPSG:4326", "EPSG:4326", 10)


def test_size_limit_message_gives_size_and_limit():
    g = grid_for_extent((500000, 4900000, 520000, 4910000), "EPSG:32616", "EPSG:32616", 10)
    with pytest.raises(EmbeddingsError) as err:
        check_size(g, 1_000_000)
    assert "2,000,000" in str(err.value) and "1,000,000" in str(err.value)


def test_blocks_cover_grid_exactly_once():
    g = grid_for_extent((500000, 4900000, 513000, 4907000), "EPSG:32616", "EPSG:32616", 10)
    seen = 0
    for w in g.blocks(512):
        assert w.width <= 512 and w.height <= 512
        seen += w.width * w.height
    assert seen == g.pixels


def test_crop_grid_keeps_the_raster_pixels_and_refuses_a_missed_extent():
    from affine import Affine

    g = Grid("EPSG:32616", Affine(10, 0, 500000, 0, -10, 4900000), 100, 50)
    c = crop_grid(g, (500015, 4899500, 500101, 4899985), "EPSG:32616")
    assert (c.transform.c, c.transform.f, c.width, c.height) == (500010, 4899990, 10, 49)
    assert crop_grid(g, (0, 0, 1e7, 1e7), "EPSG:32616") == g
    with pytest.raises(EmbeddingsError, match="does not overlap"):
        crop_grid(g, (600000, 4900000, 600100, 4900100), "EPSG:32616")


def test_pyramid_resolution_rounds_a_screen_pixel_down_to_ten_times_a_power_of_two():
    from earth_embeddings.core.grid import pyramid_resolution

    assert pyramid_resolution(3.0) == 10.0 and pyramid_resolution(19.9) == 10.0
    assert pyramid_resolution(20.0) == 20.0 and pyramid_resolution(39.0) == 20.0
    assert pyramid_resolution(70.0) == 40.0 and pyramid_resolution(80.0) == 80.0
    assert pyramid_resolution(float("nan")) == 10.0
