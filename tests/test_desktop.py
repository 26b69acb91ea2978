"""The real QGIS desktop under Xvfb, with the plugin installed by make install."""

import json
import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pytest
from qgis_cli import make_profile


def run_desktop(tmp_path, drive_script, extra_env=None, timeout=240, install=True, profile=None):
    """Start QGIS under xvfb-run with ``drive_script``; stop early on a Python error.

    With ``install``, the plugin is installed first by ``make install`` into a throwaway
    profile. Returns (log lines, report dict or None, stdout+stderr tail).
    """
    root = profile or tmp_path / "qgis-profile"
    if install:
        env = make_profile(root)
    else:
        root.mkdir(parents=True, exist_ok=True)
        env = dict(os.environ, QGIS_CUSTOM_CONFIG_PATH=str(root))
    env.pop("QT_QPA_PLATFORM", None)  # a real (virtual) screen
    log_path = tmp_path / "messages.log"
    report_path = tmp_path / "report.json"
    env["EE_DESKTOP_LOG"] = str(log_path)
    env["EE_DESKTOP_REPORT"] = str(report_path)
    env["PYQGIS_STARTUP"] = os.path.join(os.path.dirname(__file__), "desktop_startup.py")
    env.update(extra_env or {})
    cmd = [
        "xvfb-run",
        "-a",
        "-s",
        "-screen 0 1280x1024x24",
        shutil.which("qgis"),
        "--nologo",
        "--noversioncheck",
        "--nocustomization",
        "--profiles-path",
        str(root),
        "--code",
        drive_script,
    ]
    out_path = tmp_path / "qgis-output.txt"
    with open(out_path, "w") as out:
        proc = subprocess.Popen(cmd, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + timeout
        try:
            while proc.poll() is None and time.monotonic() < deadline:
                time.sleep(0.5)
                if log_path.exists() and "Python error" in log_path.read_text():
                    time.sleep(1.0)  # let the traceback reach the log
                    break
        finally:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
                try:
                    proc.wait(10)
                except subprocess.TimeoutExpired:
                    os.killpg(proc.pid, signal.SIGKILL)
    log = log_path.read_text() if log_path.exists() else ""
    report = json.loads(report_path.read_text()) if report_path.exists() else None
    return log.splitlines(), report, out_path.read_text()[-3000:]


def test_desktop_starts_with_the_plugin_and_logs_no_python_error(tmp_path):
    drive = os.path.join(os.path.dirname(__file__), "desktop_drive.py")
    log, report, output = run_desktop(tmp_path, drive)
    python_errors = [line for line in log if line.startswith("Python error")]
    assert not python_errors, "\n".join(python_errors)
    assert report is not None, f"QGIS did not run the drive script:\n{output}"
    assert report["loaded"] and report["active"] and report["provider"]
    assert report["actions"], "no menu or toolbar actions"
    ours = [line for line in log if "earth embeddings" in line.lower() and "\t2\t" in line]
    assert not ours, "\n".join(ours)
    # A fresh profile: the panel waits until the tool is chosen.
    assert not report["dock_visible"]
    # The optional faiss notice is information, shown once; the next start keeps it in the log.
    first = [m for m in report["bar"] if "faiss" in m[1]]
    assert all(level == 0 for level, _ in first), first  # Qgis.MessageLevel.Info
    again = tmp_path / "second start"
    again.mkdir()
    log, report, output = run_desktop(again, drive, install=False, profile=tmp_path / "qgis-profile")
    assert report is not None, output
    assert not [m for m in report["bar"] if "faiss" in m[1]], report["bar"]
    if first:
        assert any("faiss" in line and "\t0\t" in line for line in log)


def test_package_zip_installs_through_install_from_zip(tmp_path):
    import zipfile

    from qgis_cli import REPO

    proc = subprocess.run(["make", "-s", "-C", str(REPO), "package"], capture_output=True, text=True, check=True)
    zip_path = proc.stdout.strip().splitlines()[-1]
    names = zipfile.ZipFile(zip_path).namelist()
    assert "earth_embeddings/metadata.txt" in names and "earth_embeddings/__init__.py" in names
    assert all(n.startswith("earth_embeddings/") for n in names)
    assert not [n for n in names if "/tests/" in n or "__pycache__" in n or n.endswith(".pyc") or "/scripts/" in n]
    drive = os.path.join(os.path.dirname(__file__), "desktop_install_zip.py")
    log, report, output = run_desktop(tmp_path, drive, extra_env={"EE_PLUGIN_ZIP": zip_path}, install=False)
    python_errors = [line for line in log if line.startswith("Python error")]
    assert not python_errors, "\n".join(python_errors)
    assert report is not None, f"QGIS did not run the drive script:\n{output}"
    assert report["installed_dir"] and report["loaded"] and report["active"] and report["provider"]
    assert "embeddings:load" in report["algorithms"]


def test_click_to_search_in_the_desktop(tmp_path, sample_dir, sample_index, truth, outputs):
    """Click through the tool's own event handling in the real desktop; the search runs as a task."""
    from earth_embeddings.scripts.sample import CLASSES, class_interior_points

    year = 2024
    forest = CLASSES.index("forest")
    click = class_interior_points(truth, forest, year, 1, margin_m=150, seed=21)[0]
    probes = {c: class_interior_points(truth, i, year, 4, seed=22) for i, c in enumerate(CLASSES)}
    screenshot = outputs / "click_to_search_desktop.png"
    screenshot.unlink(missing_ok=True)
    setup = {
        "index": sample_index,
        "year": year,
        "bbox": truth.notes["bbox_wgs84"],
        "click": click,
        "probes": probes,
        "screenshot": str(screenshot),
        "window_screenshot": str(outputs / "click_to_search_window.png"),
        "context_layer": str(sample_dir / "aef_index.gpkg"),
        "project": str(tmp_path / "analysis.qgz"),
    }
    drive = os.path.join(os.path.dirname(__file__), "desktop_click_search.py")
    log, report, output = run_desktop(tmp_path, drive, extra_env={"EE_CLICK_SEARCH": json.dumps(setup)})
    python_errors = [line for line in log if line.startswith("Python error")]
    assert not python_errors, "\n".join(python_errors)
    assert report is not None, f"QGIS did not run the drive script:\n{output}"
    assert "failed_at" not in report, report
    assert report["tool_active"] and report["dock_visible"] and report["context_layer"]
    # The click reached the tool: one exemplar at the clicked place (within a screen pixel).
    assert len(report["exemplars"]) == 1
    (lon, lat) = report["exemplars"][0]
    assert truth.class_at(lon, lat, year) == forest
    assert report["busy_after_click"] and report["finished"] == [[1, True]]
    assert report["ticks_while_searching"] > 0  # the GUI thread ran while the task worked
    # The view the user searched stays put (centre and scale).
    assert report["canvas_crs"] == "EPSG:4326"
    # (QGIS itself refits the extent when its panels resize the canvas: the scale may change a little.)
    assert report["view_after"][:2] == pytest.approx(report["view_before"][:2], abs=1e-9)
    assert 0.8 < report["view_after"][2] / report["view_before"][2] < 1.25
    layer = report["layer"]
    assert layer["valid"] and layer["name"] == "Similarity 2024 (1 place)" and layer["in_group"]
    assert layer["renderer"] == "singlebandpseudocolor"
    assert layer["group_layers"] == ["Search exemplars", "Top places", "Similarity 2024 (1 place)"]  # points on top
    assert layer["expanded"] == [True, True, True, True]  # the group and each legend
    assert report["top_places"] == 5
    values = {c: v for c, v in layer["probes"].items()}
    assert all(v is not None and -1.0 <= v <= 1.0 for vs in values.values() for v in vs)  # valid where data
    others = [v for c, vs in values.items() if c != "forest" for v in vs]
    assert min(values["forest"]) > 0.9 and min(values["forest"]) > max(others)
    assert screenshot.exists() and screenshot.stat().st_size > 10_000
    # Saved and reopened: the results are files beside the project, and they come back.
    assert report["project_written"] and report["project_read"]
    beside = str(tmp_path / "analysis_embeddings")
    assert all(s.startswith(beside) for s in report["sources_saved"].values()), report["sources_saved"]
    reopened = report["reopened"]
    assert all(r is not None and r["valid"] and r["source"].startswith(beside) for r in reopened.values()), reopened
    assert reopened["top_places"]["features"] == 5 and reopened["exemplars"]["features"] == 1


def test_no_internet_answers_with_one_sentence_in_front(tmp_path):
    """Empty Collection = the public product, here at a closed local port: the panel and the
    message bar's front message name the Collection field; no HTTP client text."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    drive = os.path.join(os.path.dirname(__file__), "desktop_no_internet.py")
    env = {"EARTH_EMBEDDINGS_PUBLIC_URL": f"http://127.0.0.1:{port}/aef/v1/annual/"}
    log, report, output = run_desktop(tmp_path, drive, extra_env=env)
    python_errors = [line for line in log if line.startswith("Python error")]
    assert not python_errors, "\n".join(python_errors)
    assert report is not None and report["stage"] == "done", f"{report}\n{output}"
    assert report["finished"] == [[1, False]]
    sentence = (
        "No connection to the public AEF product (127.0.0.1); choose a local collection or index URL in Collection"
    )
    assert report["status"].startswith(sentence), report["status"]
    assert report["front"].startswith(sentence) and report["front_title"] == "Click-to-search", report["bar"]
    assert not any("urllib3" in m or "Max retries" in m for m in report["bar"] + [report["status"]])


def test_dialogs_open_with_the_canvas_extent_and_a_collection_picker(tmp_path, sample_index, truth, outputs):
    setup = {
        "index": sample_index,
        "year": 2024,
        "bbox": truth.notes["bbox_wgs84"],
        "context_layer": str(Path(sample_index).parent / "aef_index.gpkg"),
        "toolbox_picture": str(outputs / "dialog_similarity_toolbox.png"),
        "toolbar_picture": str(outputs / "dialog_load_toolbar.png"),
    }
    drive = os.path.join(os.path.dirname(__file__), "desktop_dialogs.py")
    log, report, output = run_desktop(tmp_path, drive, extra_env={"EE_DIALOGS": json.dumps(setup)})
    python_errors = [line for line in log if line.startswith("Python error")]
    assert not python_errors, "\n".join(python_errors)
    assert report is not None and report.get("stage") == "done", f"{report}\n{output}"
    west, east = report["canvas_extent"]
    for which in ("toolbox", "toolbar"):
        dialog = report[which]
        assert dialog["source_wrapper"] == "SourceWidgetWrapper" and dialog["source_has_browse"], dialog
        extent = dialog["values"]["EXTENT"]
        assert extent and extent.endswith("[EPSG:4326]"), dialog
        xmin, xmax = (float(v) for v in extent.split(" [")[0].split(",")[:2])
        assert xmin == pytest.approx(west) and xmax == pytest.approx(east)
        assert dialog["order"][:3] == ["SOURCE", "YEAR", "EXTENT"], dialog["order"]
    # From the toolbar, the panel's collection and year.
    assert report["toolbar"]["values"]["SOURCE"] == sample_index
    assert report["toolbar"]["values"]["YEAR"] == "2024"
    assert report["year_range"] == [2017, 2024]  # the panel's Year: the sample's years
    assert report["coverage"] == 8, report  # Show coverage: the sample's 8 tiles of 2024
