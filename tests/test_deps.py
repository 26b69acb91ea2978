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


def _run_without(modules, code):
    """Run ``code`` in a fresh Python in which importing any of ``modules`` fails."""
    import subprocess

    block = "".join(f"sys.modules[{m!r}] = None\n" for m in modules)
    script = f"import sys\n{block}{code}"
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_optional_learning_packages_are_reported_with_every_package_pip_needs():
    out = _run_without(
        ["sklearn", "scipy"],
        "from earth_embeddings.core import deps\n"
        "missing = deps.missing_dependencies()\n"
        "print([d.pip_name for d in missing])\n"
        "print(deps.install_message(missing))\n",
    )
    names, message = out.strip().split("\n", 1)
    assert names == "['scikit-learn']"
    # scipy is importable no more: pip --no-deps must fetch it, in a release that accepts this NumPy;
    # joblib and threadpoolctl are installed (Debian's) and new enough, so they are not named.
    assert "--no-deps" in message and np.__version__ in message
    assert "scikit-learn==" in message and "scipy==" in message
    assert "joblib" not in message.split("Install with", 1)[1] and "threadpoolctl" not in message
    assert "\n" not in message


def test_a_companion_older_than_the_pinned_release_needs_is_named(monkeypatch):
    from earth_embeddings.core import deps

    sk = next(d for d in deps.DEPENDENCIES if d.pip_name == "scikit-learn")
    assert deps.companions_needed(sk) == []  # Debian 12's scipy 1.10, joblib 1.2, threadpoolctl 3.1 suffice
    import joblib

    newer = tuple(int(p) for p in joblib.__version__.split(".")[:2])
    demanding = deps.Dependency(
        "sklearn",
        "scikit-learn",
        "test",
        False,
        (deps.Companion("joblib", "joblib", f"{newer[0]}.{newer[1] + 1}"), deps.Companion("scipy", "scipy", "1.0")),
    )
    assert [c.pip_name for c in deps.companions_needed(demanding)] == ["joblib"]
    assert deps.pip_packages([demanding]) == [deps.sklearn_requirement(), "joblib"]


def test_releases_chosen_for_the_numpy_and_python():
    from earth_embeddings.core import deps

    assert deps._version("2022.12.1+dfsg") == (2022, 12, 1) and deps._version("1.26.4") == (1, 26, 4)
    # From each release's published requirements: scikit-learn 1.7.2 needs Python 3.10 and NumPy 1.22.
    assert deps.sklearn_requirement("1.24.2", (3, 11)) == "scikit-learn==1.7.2"
    assert deps.sklearn_requirement("1.21.6", (3, 9)) == "scikit-learn==1.6.1"
    # SciPy 1.16 needs NumPy 1.25.2: QGIS 3.22's NumPy 1.24 gets 1.15.3; QGIS 3.40's NumPy 2 the newest.
    assert deps.scipy_requirement("1.24.2", (3, 11)) == "scipy==1.15.3"
    assert deps.scipy_requirement("2.2.4", (3, 13)) == "scipy==1.17.1"
    assert deps.scipy_requirement("1.22.4", (3, 9)) == "scipy==1.13.1"
