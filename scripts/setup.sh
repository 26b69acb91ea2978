#!/bin/sh
# make setup: install what is missing, idempotently. Never replaces QGIS's NumPy.
# VENV (default .venv) and QGIS_PYTHON (default /usr/bin/python3) choose the venv and its Python.
set -eu
cd "$(dirname "$0")/.."
VENV=${VENV:-.venv}
PY=${QGIS_PYTHON:-/usr/bin/python3}
APT_PACKAGES="qgis python3-qgis qgis-providers python3-rasterio python3-pyproj python3-requests python3-venv python3-gdal gdal-bin xvfb xauth python3-sklearn python3-distributed python3-matplotlib"

if command -v dpkg >/dev/null 2>&1; then
    missing=""
    for p in $APT_PACKAGES; do
        dpkg -s "$p" >/dev/null 2>&1 || missing="$missing $p"
    done
    if [ -n "$missing" ]; then
        # Installs only on Debian 12 and 13, whose package names are tested; elsewhere it says
        # what is missing.
        if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1 \
            && grep -Eqs '^VERSION_CODENAME=(bookworm|trixie)$' /etc/os-release; then
            echo "setup: installing Debian packages:$missing"
            apt-get update -q
            DEBIAN_FRONTEND=noninteractive apt-get install -y -q $missing
        else
            echo "setup: missing Debian packages:$missing" >&2
            echo "setup: run: sudo apt-get install$missing" >&2
            exit 1
        fi
    fi
fi

"$PY" -c "import qgis.core" 2>/dev/null || { echo "setup: $PY cannot import qgis; install QGIS's Python bindings." >&2; exit 1; }

if [ ! -x "$VENV/bin/python" ]; then
    echo "setup: creating $VENV from $PY with --system-site-packages"
    "$PY" -m venv --system-site-packages "$VENV"
fi

NUMPY=$("$VENV/bin/python" -c 'import numpy; print(numpy.__version__)')
FAISS=$("$VENV/bin/python" -c 'import sys; sys.path.insert(0, "core"); import deps; print(deps.faiss_requirement())')
STAMP="$VENV/.earth-embeddings-setup"
WANT="$(cat requirements-dev.txt) numpy==$NUMPY $FAISS $($VENV/bin/python -V)"
if [ ! -f "$STAMP" ] || [ "$(cat "$STAMP")" != "$WANT" ]; then
    echo "numpy==$NUMPY" > "$VENV/constraints.txt"
    echo "setup: installing test tools and $FAISS (NumPy pinned to QGIS's $NUMPY)"
    "$VENV/bin/python" -m pip install -q --disable-pip-version-check -c "$VENV/constraints.txt" -r requirements-dev.txt "$FAISS"
    AFTER=$("$VENV/bin/python" -c 'import numpy; print(numpy.__version__)')
    if [ "$AFTER" != "$NUMPY" ]; then
        echo "setup: NumPy changed from $NUMPY to $AFTER; that would break QGIS. Aborting." >&2
        exit 1
    fi
    printf '%s' "$WANT" > "$STAMP"
fi

# Make the plugin importable as its install name (never put the repository root itself
# on sys.path: its processing/ would hide QGIS's own processing module).
mkdir -p build/pkgpath
ln -sfn ../.. build/pkgpath/earth_embeddings
SITE=$("$VENV/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
echo "$(pwd)/build/pkgpath" > "$SITE/earth_embeddings_dev.pth"
echo "setup: ready ($("$VENV/bin/python" -c 'import qgis.core, numpy, faiss; print("QGIS", qgis.core.Qgis.QGIS_VERSION, "NumPy", numpy.__version__, "faiss", faiss.__version__)'))"
