"""Helpers for tests that run qgis_process.bin or the QGIS desktop in a throwaway profile."""

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
    env.pop("PYTHONPATH", None)
    return env


def qgis_process(args, env, timeout=600, json_output=False):
    cmd = [QGIS_PROCESS, *(["--json"] if json_output else []), *args]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=timeout)
    if json_output and proc.returncode == 0:
        start = proc.stdout.find("{")
        proc.json = json.loads(proc.stdout[start:])
    return proc


def run_algorithm(alg_id: str, params: dict, env, json_output=True, timeout=600):
    args = ["run", alg_id, "--"] + [f"{k}={v}" for k, v in params.items()]
    return qgis_process(args, env, timeout=timeout, json_output=json_output)
