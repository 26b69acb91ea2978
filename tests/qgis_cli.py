"""Helpers for tests that run qgis_process.bin or the QGIS desktop in a throwaway profile.

The logic lives in scripts/qgis_profile.py, which ``make demo`` uses too; loaded by path so
that neither scripts/ nor the repository root goes on sys.path.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

_SPEC = importlib.util.spec_from_file_location(
    "earth_embeddings_qgis_profile", Path(__file__).resolve().parent.parent / "scripts" / "qgis_profile.py"
)
_MODULE = importlib.util.module_from_spec(_SPEC)
_SPEC.loader.exec_module(_MODULE)

REPO = _MODULE.REPO
QGIS_PROCESS = _MODULE.QGIS_PROCESS
make_profile = _MODULE.make_profile
qgis_process = _MODULE.qgis_process
run_algorithm = _MODULE.run_algorithm
