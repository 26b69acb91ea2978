"""Install or uninstall the plugin into a QGIS profile (symlink + enable in QGIS3.ini).

Usage: python3 scripts/install_plugin.py [--uninstall] [--profile-dir DIR]
The default profile is ~/.local/share/QGIS/QGIS3/profiles/default (Linux).
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

NAME = "earth_embeddings"
REPO = Path(__file__).resolve().parent.parent


def default_profile() -> Path:
    if sys.platform == "win32":
        return Path(os.environ["APPDATA"]) / "QGIS" / "QGIS3" / "profiles" / "default"
    if sys.platform == "darwin":
        return Path.home() / "Library" / "Application Support" / "QGIS" / "QGIS3" / "profiles" / "default"
    return Path.home() / ".local" / "share" / "QGIS" / "QGIS3" / "profiles" / "default"


def set_enabled(ini: Path, enabled: bool | None) -> None:
    """Set (or with None remove) ``[PythonPlugins] earth_embeddings`` without touching the rest."""
    ini.parent.mkdir(parents=True, exist_ok=True)
    lines = ini.read_text(encoding="utf-8").splitlines() if ini.exists() else []
    out, in_section, found, section_seen = [], False, False, False
    for line in lines:
        stripped = line.strip()
        if stripped.startswith("[") and stripped.endswith("]"):
            if in_section and not found and enabled is not None:
                out.append(f"{NAME}={'true' if enabled else 'false'}")
                found = True
            in_section = stripped == "[PythonPlugins]"
            section_seen = section_seen or in_section
        elif in_section and stripped.split("=", 1)[0].strip() == NAME:
            found = True
            if enabled is None:
                continue
            line = f"{NAME}={'true' if enabled else 'false'}"
        out.append(line)
    if enabled is not None and not found:
        if not section_seen:
            if out and out[-1].strip():
                out.append("")
            out.append("[PythonPlugins]")
        out.append(f"{NAME}={'true' if enabled else 'false'}")
    ini.write_text("\n".join(out) + "\n", encoding="utf-8")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--profile-dir", type=Path, default=None)
    parser.add_argument("--uninstall", action="store_true")
    args = parser.parse_args()
    profile = args.profile_dir or default_profile()
    plugins = profile / "python" / "plugins"
    link = plugins / NAME
    ini = profile / "QGIS" / "QGIS3.ini"
    if args.uninstall:
        if link.is_symlink():
            link.unlink()
            print(f"Removed {link}")
        elif link.exists():
            print(f"{link} is not a link made by 'make install'; remove it from QGIS's plugin manager.")
        set_enabled(ini, None)
        print(f"Disabled {NAME} in {ini}")
        return 0
    plugins.mkdir(parents=True, exist_ok=True)
    if link.is_symlink() or link.exists():
        if not link.is_symlink():
            print(f"{link} exists and is not a symlink (an installed copy?); uninstall it first.", file=sys.stderr)
            return 1
        link.unlink()
    link.symlink_to(REPO, target_is_directory=True)
    set_enabled(ini, True)
    print(f"Linked {link} -> {REPO}\nEnabled {NAME} in {ini}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
