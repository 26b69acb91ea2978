"""Which optional and required Python packages are importable, and how to install them.

QGIS-free: the plugin shows the message; ``qgis_process`` logs it.
"""

from __future__ import annotations

import importlib
import os
import sys
import sysconfig
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Dependency:
    module: str
    pip_name: str
    needed_for: str
    required: bool


DEPENDENCIES = (
    Dependency("rasterio", "rasterio", "reading and writing embedding rasters (every algorithm)", True),
    Dependency("pyproj", "pyproj", "coordinate transformations (every algorithm)", True),
    Dependency("requests", "requests", "downloading remote collection indexes", True),
    Dependency("faiss", "faiss-cpu", "fast top-k search (a slower NumPy search is used without it)", False),
)


def importable(module: str) -> bool:
    if module in sys.modules and sys.modules[module] is None:
        return False
    try:
        importlib.import_module(module)
    except Exception:
        return False
    return True


def missing_dependencies() -> list[Dependency]:
    return [d for d in DEPENDENCIES if not importable(d.module)]


def numpy_version() -> str:
    try:
        import numpy

        return numpy.__version__
    except ImportError:
        return "unknown"


def faiss_requirement(numpy_ver: str | None = None) -> str:
    """A faiss-cpu version that accepts this NumPy (1.8.0.post1 is the last for NumPy < 1.25)."""
    ver = numpy_ver or numpy_version()
    try:
        major, minor = (int(p) for p in ver.split(".")[:2])
    except ValueError:
        return "faiss-cpu==1.8.0.post1"
    if (major, minor) < (1, 25):
        return "faiss-cpu==1.8.0.post1"
    return "faiss-cpu>=1.9"


def python_command() -> str:
    """The Python that QGIS itself runs (sys.executable is the QGIS binary inside QGIS)."""
    if os.name == "nt":
        return "python"  # in the OSGeo4W Shell
    candidates = [
        os.path.join(sys.exec_prefix, "bin", f"python{sys.version_info.major}.{sys.version_info.minor}"),
        os.path.join(sys.exec_prefix, "bin", "python3"),
    ]
    for c in candidates:
        if os.path.exists(c):
            return c
    return "python3"


def externally_managed(stdlib: str | None = None) -> bool:
    """True when this Python is marked as managed by the system's package manager (PEP 668)."""
    folder = Path(stdlib or sysconfig.get_path("stdlib"))
    return (folder / "EXTERNALLY-MANAGED").exists()


def install_message(missing: list[Dependency]) -> str:
    """One message: what is missing, the command for this QGIS's Python, and the NumPy rule."""
    if not missing:
        return ""
    names = ", ".join(d.pip_name for d in missing)
    specs = []
    for d in missing:
        specs.append(f'"{faiss_requirement()}"' if d.pip_name == "faiss-cpu" else d.pip_name)
    pip_args = " ".join(specs)
    uses = "; ".join(f"{d.pip_name}: {d.needed_for}" for d in missing)
    if os.name == "nt":
        cmd = f"in the OSGeo4W Shell: python -m pip install --no-deps {pip_args}"
    elif externally_managed():
        # Debian 12+ and Ubuntu 23.04+ refuse a plain pip install into the system Python
        # (PEP 668); into the user's own folder, with --no-deps, it cannot break the system's.
        cmd = f"{python_command()} -m pip install --user --break-system-packages --no-deps {pip_args}"
    else:
        cmd = f"{python_command()} -m pip install --user --no-deps {pip_args}"
    return (
        f"Earth Embeddings is missing the Python package(s) {names} ({uses}). Install with {cmd} "
        f"and restart QGIS. Keep QGIS's own NumPy {numpy_version()}: never let pip upgrade or replace it "
        "(--no-deps prevents that)."
    )
