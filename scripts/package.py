"""Build dist/earth_embeddings-<version>.zip for Plugins > Install from ZIP."""

from __future__ import annotations

import configparser
import sys
import zipfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
NAME = "earth_embeddings"
INCLUDE = ["metadata.txt", "__init__.py", "LICENSE", "README.md", "core", "plugin", "processing", "resources"]
SKIP_PARTS = {"__pycache__", ".pytest_cache", ".ruff_cache"}
SKIP_SUFFIXES = {".pyc", ".pyo", ".orig", ".rej", ".aux.xml"}


def files():
    for entry in INCLUDE:
        path = REPO / entry
        if path.is_file():
            yield path
        else:
            for p in sorted(path.rglob("*")):
                if (
                    p.is_file()
                    and not SKIP_PARTS & set(p.parts)
                    and p.suffix not in SKIP_SUFFIXES
                    and not p.name.startswith(".")
                ):
                    yield p


def main() -> int:
    meta = configparser.ConfigParser()
    meta.read(REPO / "metadata.txt")
    version = meta["general"]["version"]
    out = REPO / "dist" / f"{NAME}-{version}.zip"
    out.parent.mkdir(exist_ok=True)
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as z:
        for p in files():
            z.write(p, f"{NAME}/{p.relative_to(REPO).as_posix()}")
    print(out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
