"""The optional faiss-cpu matches this QGIS's NumPy, which stays QGIS's own (scripts/setup.sh)."""

import sys
from pathlib import Path

import numpy as np
from packaging.requirements import Requirement

from earth_embeddings.core.deps import faiss_requirement


def test_numpy_is_qgis_own_not_a_copy_in_the_venv():
    # The venv is made with --system-site-packages; a NumPy inside it would shadow QGIS's.
    assert not Path(np.__file__).resolve().is_relative_to(Path(sys.prefix).resolve()), np.__file__


def test_installed_faiss_is_the_release_chosen_for_this_numpy_and_searches_exactly():
    from importlib.metadata import version

    import faiss

    wanted = Requirement(faiss_requirement(np.__version__))
    assert wanted.specifier.contains(version("faiss-cpu"), prereleases=True), (wanted, version("faiss-cpu"))
    rng = np.random.default_rng(3)
    base = rng.normal(size=(500, 64)).astype(np.float32)
    base /= np.linalg.norm(base, axis=1, keepdims=True)
    queries = base[[7, 123, 400]] + np.float32(0.01) * rng.normal(size=(3, 64)).astype(np.float32)
    index = faiss.IndexFlatIP(64)
    index.add(base)
    _, ids = index.search(queries, 5)
    expected = np.argsort(-(queries @ base.T), axis=1)[:, :5]
    assert np.array_equal(ids, expected)
    assert list(ids[:, 0]) == [7, 123, 400]


def test_install_command_suits_a_system_managed_python(tmp_path, monkeypatch):
    from earth_embeddings.core import deps

    missing = [d for d in deps.DEPENDENCIES if d.pip_name == "faiss-cpu"]
    managed = tmp_path / "managed"
    managed.mkdir()
    (managed / "EXTERNALLY-MANAGED").write_text("[externally-managed]\n")
    plain = tmp_path / "plain"
    plain.mkdir()
    assert deps.externally_managed(str(managed)) and not deps.externally_managed(str(plain))

    monkeypatch.setattr(deps, "externally_managed", lambda: True)
    message = deps.install_message(missing)
    # Debian 12/13's pip refuses a --user install without the flag (PEP 668).
    assert "--user --break-system-packages --no-deps" in message
    monkeypatch.setattr(deps, "externally_managed", lambda: False)
    assert "--break-system-packages" not in deps.install_message(missing)
    assert "--user --no-deps" in deps.install_message(missing)
