"""Run qgis_process.bin against a throwaway QGIS profile with the plugin installed.

Shared by ``make demo`` (scripts/demo.py) and the tests (tests/qgis_cli.py), so that both
exercise the plugin exactly as ``make install`` puts it into a user's profile.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
QGIS_PROCESS = shutil.which("qgis_process.bin") or shutil.which("qgis_process")


def make_profile(root: Path) -> dict:
    """``make install`` into ``root``/profiles/default; returns the environment to use it."""
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    subprocess.run(
        ["make", "-s", "-C", str(REPO), "install", f"PROFILE_DIR={root / 'profiles' / 'default'}"],
        check=True,
        capture_output=True,
        text=True,
    )
    env = dict(os.environ)
    env.update(
        {
            "QGIS_CUSTOM_CONFIG_PATH": str(root),
            "QT_QPA_PLATFORM": "offscreen",
            "PROJ_DATA": env.get("PROJ_DATA", "/usr/share/proj"),
        }
    )
    # The venv's .pth would not apply anyway; a PYTHONPATH could put another copy of the plugin
    # ahead of the installed one.
    env.pop("PYTHONPATH", None)
    return env


def qgis_process(args, env, timeout=600, json_output=False):
    """Run ``qgis_process.bin [--json] args``; with json_output the parsed answer is ``.json``."""
    if QGIS_PROCESS is None:
        raise FileNotFoundError("qgis_process.bin is not installed (Debian: apt-get install qgis)")
    cmd = [QGIS_PROCESS, *(["--json"] if json_output else []), *[str(a) for a in args]]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=timeout)
    proc.json = None
    if json_output and proc.returncode == 0:
        # QGIS 3.22 may print warnings before the JSON document.
        start = proc.stdout.find("{")
        proc.json = json.loads(proc.stdout[start:])
    return proc


def run_algorithm(alg_id: str, params: dict, env, json_output=True, timeout=600):
    """``qgis_process.bin run alg_id -- KEY=value ...``; a list value repeats its key (KEY=a KEY=b),
    as qgis_process takes multiple layers."""
    args = ["run", alg_id, "--"] + [
        f"{k}={item}" for k, v in params.items() for item in (v if isinstance(v, (list, tuple)) else [v])
    ]
    return qgis_process(args, env, timeout=timeout, json_output=json_output)
