"""The click-to-search map tool with synthetic canvas events: it only emits signals, and the
controller turns them into exemplar and negative lists."""

import pytest
from qgis.core import QgsCoordinateReferenceSystem, QgsPointXY, QgsRectangle
from qgis.gui import QgsMapMouseEvent
from qgis.PyQt.QtCore import QEvent, QPoint, Qt
from qgis.PyQt.QtGui import QKeyEvent

from earth_embeddings.plugin.maptool import ADD_EXEMPLAR, ADD_NEGATIVE, REPLACE, SearchMapTool, click_mode
from earth_embeddings.plugin.search import SearchController

NO_MOD = Qt.KeyboardModifier.NoModifier
SHIFT = Qt.KeyboardModifier.ShiftModifier
CTRL = Qt.KeyboardModifier.ControlModifier


@pytest.fixture
def canvas(qgis_canvas):
    qgis_canvas.resize(400, 300)
    qgis_canvas.setDestinationCrs(QgsCoordinateReferenceSystem("EPSG:4326"))
    qgis_canvas.setExtent(QgsRectangle(-91.0, 44.0, -89.0, 45.5))
    qgis_canvas.refresh()
    return qgis_canvas


@pytest.fixture
def tool(canvas):
    tool = SearchMapTool(canvas)
    canvas.setMapTool(tool)
    yield tool
    canvas.unsetMapTool(tool)


def release(canvas, x, y, modifiers=NO_MOD, button=Qt.MouseButton.LeftButton):
    return QgsMapMouseEvent(canvas, QEvent.Type.MouseButtonRelease, QPoint(x, y), button, button, modifiers)


def record(tool):
    clicks, cleared = [], []
    tool.clicked.connect(lambda point, mode: clicks.append((QgsPointXY(point), mode)))
    tool.cleared.connect(lambda: cleared.append(True))
    return clicks, cleared


def test_click_modes_from_modifiers():
    assert click_mode(NO_MOD) == REPLACE
    assert click_mode(SHIFT) == ADD_EXEMPLAR
    assert click_mode(CTRL) == ADD_NEGATIVE
    assert click_mode(CTRL | SHIFT) == ADD_NEGATIVE


def test_plain_shift_and_ctrl_clicks_emit_point_and_mode(canvas, tool):
    clicks, cleared = record(tool)
    for x, y, mod in ((100, 80, NO_MOD), (250, 150, SHIFT), (300, 200, CTRL)):
        tool.canvasReleaseEvent(release(canvas, x, y, mod))
    assert [m for _, m in clicks] == [REPLACE, ADD_EXEMPLAR, ADD_NEGATIVE]
    for (point, _), (x, y) in zip(clicks, ((100, 80), (250, 150), (300, 200))):
        expected = canvas.getCoordinateTransform().toMapCoordinates(x, y)
        assert point.x() == pytest.approx(expected.x()) and point.y() == pytest.approx(expected.y())
    assert clicks[0][0].x() < clicks[1][0].x() < clicks[2][0].x()  # left to right on screen
    assert clicks[0][0].y() > clicks[1][0].y() > clicks[2][0].y()  # screen y grows downwards
    assert not cleared


def test_right_click_and_other_keys_do_nothing_escape_clears(canvas, tool):
    clicks, cleared = record(tool)
    tool.canvasReleaseEvent(release(canvas, 10, 10, button=Qt.MouseButton.RightButton))
    other = QKeyEvent(QEvent.Type.KeyPress, Qt.Key.Key_Left, NO_MOD)
    tool.keyPressEvent(other)
    assert not clicks and not cleared and not other.isAccepted()  # the canvas still pans
    esc = QKeyEvent(QEvent.Type.KeyPress, Qt.Key.Key_Escape, NO_MOD)
    tool.keyPressEvent(esc)
    assert cleared == [True] and esc.isAccepted()


class Iface:
    """Just what the controller reads for clicks; searches are stubbed out in this test."""

    def __init__(self, canvas):
        self.canvas = canvas

    def mapCanvas(self):  # noqa: N802
        return self.canvas

    def messageBar(self):  # noqa: N802
        return None


def test_controller_turns_clicks_into_exemplar_and_negative_lists(canvas, tool, qgis_new_project):
    controller = SearchController(Iface(canvas), lambda: None)
    searches = []
    controller.search = lambda: searches.append((list(controller.exemplars), list(controller.negatives)))
    changes = []
    controller.exemplars_changed.connect(lambda p, n: changes.append((p, n)))
    tool.clicked.connect(controller.handle_click)
    tool.cleared.connect(controller.clear)

    tool.canvasReleaseEvent(release(canvas, 100, 80))
    tool.canvasReleaseEvent(release(canvas, 150, 90, SHIFT))
    tool.canvasReleaseEvent(release(canvas, 300, 200, CTRL))
    assert changes == [(1, 0), (2, 0), (2, 1)]
    assert [(len(p), len(n)) for p, n in searches] == [(1, 0), (2, 0), (2, 1)]
    first = canvas.getCoordinateTransform().toMapCoordinates(100, 80)
    assert controller.exemplars[0].x() == pytest.approx(first.x())  # canvas CRS is lon/lat here
    layer = controller.layer("exemplars")
    assert layer is not None and sorted(f["kind"] for f in layer.getFeatures()) == ["exemplar"] * 2 + ["negative"]

    tool.canvasReleaseEvent(release(canvas, 200, 100))  # a plain click starts over
    assert (len(controller.exemplars), len(controller.negatives)) == (1, 0)
    assert layer.featureCount() == 1

    tool.keyPressEvent(QKeyEvent(QEvent.Type.KeyPress, Qt.Key.Key_Escape, NO_MOD))
    assert controller.exemplars == [] and controller.negatives == [] and changes[-1] == (0, 0)
    assert layer.featureCount() == 0 and len(searches) == 4

    tool.canvasReleaseEvent(release(canvas, 300, 200, CTRL))  # a negative alone does not search
    assert len(searches) == 4 and len(controller.negatives) == 1
