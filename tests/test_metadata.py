"""metadata.txt states a QGIS range that includes every QGIS the suite runs on, and no Qt 6 claim."""

import configparser

from qgis.core import Qgis
from qgis_cli import REPO


def version_tuple(text: str) -> tuple[int, int]:
    major, minor = text.strip().split(".")[:2]
    return int(major), int(minor)


def test_running_qgis_is_inside_the_declared_range():
    meta = configparser.ConfigParser()
    meta.read(REPO / "metadata.txt", encoding="utf-8")
    general = meta["general"]
    running = (Qgis.QGIS_VERSION_INT // 10000, Qgis.QGIS_VERSION_INT // 100 % 100)
    assert version_tuple(general["qgisMinimumVersion"]) <= running <= version_tuple(general["qgisMaximumVersion"])
    # No Qt 6 build has been tested; QGIS 4 loads only plugins that claim it.
    assert general.get("supportsQt6", "False").strip().lower() in ("false", "no", "0")
