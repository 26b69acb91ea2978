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
class Companion:
    """A package pip must fetch together with a dependency, because pip runs with --no-deps
    (which keeps QGIS's NumPy): named in the command only when absent or older than ``min_version``."""

    module: str
    pip_name: str
    min_version: str = ""


@dataclass(frozen=True)
class Dependency:
    module: str
    pip_name: str
    needed_for: str
    required: bool
    companions: tuple[Companion, ...] = ()


# Minimum versions are those the pinned releases below declare (scikit-learn 1.7.2, matplotlib 3.10).
_SKLEARN_NEEDS = (
    Companion("scipy", "scipy", "1.8.0"),
    Companion("joblib", "joblib", "1.2.0"),
    Companion("threadpoolctl", "threadpoolctl", "3.1.0"),
)
_MATPLOTLIB_NEEDS = (
    Companion("contourpy", "contourpy", "1.0.1"),
    Companion("cycler", "cycler", "0.10"),
    Companion("fontTools", "fonttools", "4.22.0"),
    Companion("kiwisolver", "kiwisolver", "1.3.1"),
    Companion("packaging", "packaging", "20.0"),
    Companion("PIL", "pillow", "8"),
    Companion("pyparsing", "pyparsing", "3"),
    Companion("dateutil", "python-dateutil", "2.7"),
    Companion("six", "six", "1.5"),
)
# distributed is pinned to the dask already installed (they are released in lockstep), so its
# companions are named only when absent: minimum versions of the newest release would not fit it.
_DISTRIBUTED_NEEDS = (
    Companion("dask", "dask"),
    Companion("click", "click"),
    Companion("cloudpickle", "cloudpickle"),
    Companion("fsspec", "fsspec"),
    Companion("jinja2", "jinja2"),
    Companion("markupsafe", "markupsafe"),
    Companion("locket", "locket"),
    Companion("msgpack", "msgpack"),
    Companion("packaging", "packaging"),
    Companion("partd", "partd"),
    Companion("psutil", "psutil"),
    Companion("yaml", "pyyaml"),
    Companion("sortedcontainers", "sortedcontainers"),
    Companion("tblib", "tblib"),
    Companion("toolz", "toolz"),
    Companion("tornado", "tornado"),
    Companion("zict", "zict"),
)

DEPENDENCIES = (
    Dependency("rasterio", "rasterio", "reading and writing embedding rasters (every algorithm)", True),
    Dependency("pyproj", "pyproj", "coordinate transformations (every algorithm)", True),
    Dependency("requests", "requests", "downloading remote collection indexes", True),
    Dependency("faiss", "faiss-cpu", "fast top-k search (a slower NumPy search is used without it)", False),
    Dependency(
        "sklearn",
        "scikit-learn",
        "the random-forest classifier (logistic regression, kNN and centroid work without it)",
        False,
        _SKLEARN_NEEDS,
    ),
    Dependency("matplotlib", "matplotlib", "charts in reports (every map works without it)", False, _MATPLOTLIB_NEEDS),
    Dependency(
        "dask.distributed",
        "distributed",
        "running on a Dask cluster (everything runs on this computer without it)",
        False,
        _DISTRIBUTED_NEEDS,
    ),
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


def _version(text: str) -> tuple[int, ...]:
    """Leading numeric parts of a version string: "1.24.2" -> (1, 24, 2), "2022.12.1+dfsg" -> (2022, 12, 1)."""
    parts = []
    for p in str(text).split("."):
        digits = ""
        for ch in p:
            if not ch.isdigit():
                break
            digits += ch
        if not digits:
            break
        parts.append(int(digits))
        if len(digits) != len(p):
            break
    return tuple(parts)


def _python() -> tuple[int, int]:
    return sys.version_info[:2]


def sklearn_requirement(numpy_ver: str | None = None, python: tuple[int, ...] | None = None) -> str:
    """A scikit-learn release whose requirements this NumPy and Python meet (1.7.2 needs
    Python 3.10 and NumPy 1.22; 1.6.1 runs on Python 3.9 and NumPy 1.19.5)."""
    npv = _version(numpy_ver or numpy_version())
    py = python or _python()
    if py >= (3, 10) and npv >= (1, 22):
        return "scikit-learn==1.7.2"
    return "scikit-learn==1.6.1"


def scipy_requirement(numpy_ver: str | None = None, python: tuple[int, ...] | None = None) -> str:
    """The newest SciPy release that accepts this NumPy and Python (from each release's metadata)."""
    npv = _version(numpy_ver or numpy_version())
    py = python or _python()
    if py >= (3, 11) and npv >= (1, 26, 4):
        return "scipy==1.17.1"
    if py >= (3, 11) and npv >= (1, 25, 2):
        return "scipy==1.16.3"
    if py >= (3, 10) and npv >= (1, 23, 5):
        return "scipy==1.15.3"
    if npv >= (1, 22, 4):
        return "scipy==1.13.1"
    return "scipy==1.10.1"


def matplotlib_requirement(numpy_ver: str | None = None, python: tuple[int, ...] | None = None) -> str:
    """A matplotlib release that accepts this NumPy and Python (3.9 and 3.10 need NumPy 1.23)."""
    npv = _version(numpy_ver or numpy_version())
    py = python or _python()
    if npv >= (1, 23):
        return "matplotlib==3.10.8" if py >= (3, 10) else "matplotlib==3.9.4"
    return "matplotlib==3.8.4"


def contourpy_requirement(numpy_ver: str | None = None, python: tuple[int, ...] | None = None) -> str:
    npv = _version(numpy_ver or numpy_version())
    py = python or _python()
    if py >= (3, 11) and npv >= (1, 25):
        return "contourpy==1.3.3"
    if npv >= (1, 23):
        return "contourpy==1.3.0"
    return "contourpy==1.2.1"


def _installed_version(module: str) -> str | None:
    mod = sys.modules.get(module) or importlib.import_module(module)
    return getattr(mod, "__version__", None)


def pip_spec(pip_name: str) -> str:
    """What to put on the pip command line for a package: a release chosen for this NumPy where it matters."""
    if pip_name == "faiss-cpu":
        return f'"{faiss_requirement()}"'
    if pip_name == "scikit-learn":
        return sklearn_requirement()
    if pip_name == "scipy":
        return scipy_requirement()
    if pip_name == "matplotlib":
        return matplotlib_requirement()
    if pip_name == "contourpy":
        return contourpy_requirement()
    if pip_name == "distributed" and importable("dask"):
        # dask and distributed are released in lockstep: match the dask that is there.
        ver = _installed_version("dask")
        if ver:
            return f"distributed=={'.'.join(str(p) for p in _version(ver))}"
    return pip_name


def companions_needed(dep: Dependency) -> list[Companion]:
    """The companions of ``dep`` that are not importable, or older than pip would accept."""
    out = []
    for c in dep.companions:
        if not importable(c.module):
            out.append(c)
            continue
        ver = _installed_version(c.module)
        if c.min_version and ver and _version(ver) < _version(c.min_version):
            out.append(c)
    return out


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


def pip_packages(missing: list[Dependency]) -> list[str]:
    """pip arguments for the missing dependencies and every companion they need, each once."""
    specs, seen = [], set()
    for d in missing:
        for name in [d.pip_name] + [c.pip_name for c in companions_needed(d)]:
            if name not in seen:
                seen.add(name)
                specs.append(pip_spec(name))
    return specs


def install_command(missing: list[Dependency]) -> str:
    """The command that installs the missing packages into this QGIS's Python, without touching its NumPy."""
    pip_args = " ".join(pip_packages(missing))
    if os.name == "nt":
        return f"in the OSGeo4W Shell: python -m pip install --no-deps {pip_args}"
    if externally_managed():
        # Debian 12+ and Ubuntu 23.04+ refuse a plain pip install into the system Python
        # (PEP 668); into the user's own folder, with --no-deps, it cannot break the system's.
        return f"{python_command()} -m pip install --user --break-system-packages --no-deps {pip_args}"
    return f"{python_command()} -m pip install --user --no-deps {pip_args}"


def install_message(missing: list[Dependency]) -> str:
    """One message: what is missing, the command for this QGIS's Python, and the NumPy rule."""
    if not missing:
        return ""
    names = ", ".join(d.pip_name for d in missing)
    uses = "; ".join(f"{d.pip_name}: {d.needed_for}" for d in missing)
    return (
        f"Earth Embeddings is missing the Python package(s) {names} ({uses}). Install with "
        f"{install_command(missing)} and restart QGIS. Keep QGIS's own NumPy {numpy_version()}: never let pip "
        "upgrade or replace it (--no-deps prevents that)."
    )


def require(module: str, purpose: str) -> None:
    """Raise an EmbeddingsError (one sentence with the install command) when an optional
    dependency is not importable; ``purpose`` says what needs it ("The random forest")."""
    from .errors import EmbeddingsError

    if importable(module):
        return
    raise EmbeddingsError(missing_sentence(module, purpose))


def missing_sentence(module: str, purpose: str) -> str:
    """The sentence ``require`` raises: what needs the package and the command that installs it."""
    dep = next(d for d in DEPENDENCIES if d.module == module)
    return (
        f"{purpose} needs {dep.pip_name}, which QGIS's Python lacks: install it with {install_command([dep])} "
        f"(--no-deps keeps QGIS's NumPy {numpy_version()}) and restart QGIS."
    )
