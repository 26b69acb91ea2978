"""Downloads over HTTP: explicit User-Agent, timeouts, retries, a revalidated cache.

The index travels through here; tiles are read in place by core.blocks' own range requests
(or, for rasters it cannot decode, by GDAL's /vsicurl/ with the options from ``gdal_http_options``).
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .errors import EmbeddingsError
from .progress import Progress

USER_AGENT = "earth-embeddings-qgis-plugin/0.1 (+https://github.com/earth-embeddings/earth-embeddings)"
RETRY_STATUSES = (429, 500, 502, 503, 504)


def _env_number(name: str, default: float) -> float:
    try:
        return float(os.environ.get(name, default))
    except ValueError:
        return default


def http_limits() -> tuple[float, float, int]:
    """(connect timeout s, read timeout s, retries); the environment can override them
    (EARTH_EMBEDDINGS_HTTP_CONNECT_TIMEOUT, _HTTP_TIMEOUT, _HTTP_RETRIES) for slow links."""
    return (
        _env_number("EARTH_EMBEDDINGS_HTTP_CONNECT_TIMEOUT", 15),
        _env_number("EARTH_EMBEDDINGS_HTTP_TIMEOUT", 60),
        int(_env_number("EARTH_EMBEDDINGS_HTTP_RETRIES", 5)),
    )


def cache_dir() -> Path:
    """The per-user cache folder (``EARTH_EMBEDDINGS_CACHE`` overrides it)."""
    env = os.environ.get("EARTH_EMBEDDINGS_CACHE")
    if env:
        path = Path(env)
    elif os.name == "nt":
        path = Path(os.environ.get("LOCALAPPDATA", Path.home())) / "earth_embeddings" / "cache"
    elif os.uname().sysname == "Darwin":
        path = Path.home() / "Library" / "Caches" / "earth_embeddings"
    else:
        path = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "earth_embeddings"
    path.mkdir(parents=True, exist_ok=True)
    return path


def gdal_http_options() -> dict[str, str]:
    """GDAL configuration for reading COGs over HTTP: no directory listings, retries."""
    connect_s, read_s, retries = http_limits()
    return {
        "GDAL_DISABLE_READDIR_ON_OPEN": "EMPTY_DIR",
        "CPL_VSIL_CURL_ALLOWED_EXTENSIONS": ".tif,.tiff,.TIF,.TIFF",
        "GDAL_HTTP_USERAGENT": USER_AGENT,
        "GDAL_HTTP_MAX_RETRY": str(retries),
        "GDAL_HTTP_RETRY_DELAY": "0.5",
        "GDAL_HTTP_CONNECTTIMEOUT": str(max(1, int(connect_s))),
        "GDAL_HTTP_TIMEOUT": str(max(1, int(read_s))),
        "GDAL_HTTP_MULTIRANGE": "YES",
        "GDAL_HTTP_MERGE_CONSECUTIVE_RANGES": "YES",
        "CPL_VSIL_CURL_CHUNK_SIZE": "65536",
    }


def _session() -> Any:
    try:
        import requests
        from requests.adapters import HTTPAdapter
        from urllib3.util.retry import Retry
    except ImportError as exc:  # pragma: no cover - exercised by the dependency test
        raise EmbeddingsError(
            "Reading a remote collection needs the Python package 'requests', which is not "
            "installed in QGIS's Python; install it, or use a local copy of the collection."
        ) from exc
    retries = http_limits()[2]
    retry = Retry(
        total=retries,
        connect=retries,
        read=retries,
        status=retries,
        backoff_factor=0.5,
        status_forcelist=RETRY_STATUSES,
        allowed_methods=frozenset({"GET", "HEAD"}),
        raise_on_status=False,
    )
    session = requests.Session()
    session.headers["User-Agent"] = USER_AGENT
    adapter = HTTPAdapter(max_retries=retry)
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    return session


def http_error_message(url: str, status: int) -> str:
    """One sentence for an HTTP failure, naming the URL."""
    if status == 403:
        return (
            f"The server refused access (HTTP 403) to {url}. Check that the address is "
            "public; some stores refuse requests without a browser-like User-Agent."
        )
    if status == 404:
        return f"Nothing was found at {url} (HTTP 404): check the address of the collection."
    return f"The server answered HTTP {status} for {url}; try again later."


@dataclass
class CachedFile:
    path: Path
    etag: str | None
    last_modified: str | None
    from_cache: bool

    @property
    def identity(self) -> str:
        """A string that changes whenever the remote content does."""
        st = self.path.stat()
        return f"{self.etag}|{self.last_modified}|{st.st_size}"


def fetch_cached(url: str, progress: Progress | None = None, cache: Path | None = None) -> CachedFile:
    """Download ``url`` into the cache, or revalidate the cached copy (ETag/Last-Modified).

    The file is written under a temporary name and renamed into place, so the cache
    never holds a partial download. When the server cannot be reached but a cached copy
    exists, the cached copy is used with a warning.
    """
    progress = progress or Progress()
    cache = Path(cache or cache_dir()) / "downloads"
    cache.mkdir(parents=True, exist_ok=True)
    key = hashlib.sha1(url.encode("utf-8")).hexdigest()[:20]
    suffix = Path(url.split("?")[0]).suffix or ".bin"
    target = cache / f"{key}{suffix}"
    meta_path = cache / f"{key}.json"
    meta = {}
    if target.exists() and meta_path.exists():
        try:
            meta = json.loads(meta_path.read_text())
        except ValueError:
            meta = {}
    headers = {}
    if meta.get("etag"):
        headers["If-None-Match"] = meta["etag"]
    if meta.get("last_modified"):
        headers["If-Modified-Since"] = meta["last_modified"]

    session = _session()
    attempts = max(1, http_limits()[2])
    for attempt in range(1, attempts + 1):
        try:
            return _download(session, url, headers, meta, target, meta_path, cache, key, progress)
        except _BrokenDownload as exc:
            # The body broke off (connection dropped mid-way): urllib3 does not retry that.
            if attempt == attempts:
                raise EmbeddingsError(
                    f"The download of {url} kept breaking off ({exc}); check your connection and try again."
                ) from None
            progress.warning(f"The download of {url} broke off ({exc}); retrying ({attempt}/{attempts - 1}).")
            time.sleep(min(8.0, 0.5 * 2 ** (attempt - 1)))
    raise AssertionError("unreachable")


class _BrokenDownload(Exception):
    pass


def _download(
    session: Any,
    url: str,
    headers: dict[str, str],
    meta: dict[str, Any],
    target: Path,
    meta_path: Path,
    cache: Path,
    key: str,
    progress: Progress,
) -> CachedFile:
    import requests

    try:
        response = session.get(url, headers=headers, stream=True, timeout=http_limits()[:2])
    except requests.RequestException as exc:
        if meta:
            progress.warning(f"Could not reach {url} ({exc.__class__.__name__}); using the cached copy.")
            return CachedFile(target, meta.get("etag"), meta.get("last_modified"), True)
        raise EmbeddingsError(
            f"Could not download {url}: {_short(exc)}. Check the address and your network connection."
        ) from exc

    with response:
        if response.status_code == 304 and meta:
            progress.info(f"Index is up to date in the cache: {target}")
            return CachedFile(target, meta.get("etag"), meta.get("last_modified"), True)
        if response.status_code != 200:
            raise EmbeddingsError(http_error_message(url, response.status_code))
        total = int(response.headers.get("Content-Length") or 0)
        progress.info(f"Downloading {url}" + (f" ({total / 1e6:.1f} MB)" if total else ""))
        fd, tmp = tempfile.mkstemp(dir=cache, prefix=f".{key}.", suffix=".part")
        done = 0
        last_report = 0.0
        try:
            with os.fdopen(fd, "wb") as out:
                for chunk in response.iter_content(chunk_size=1 << 20):
                    progress.check_cancelled()
                    out.write(chunk)
                    done += len(chunk)
                    if total and time.monotonic() - last_report > 0.2:
                        progress.set_progress(100.0 * done / total)
                        last_report = time.monotonic()
            if total and done != total:
                raise _BrokenDownload(f"{done} of {total} bytes arrived")
            os.replace(tmp, target)
        except requests.RequestException as exc:
            Path(tmp).unlink(missing_ok=True)
            raise _BrokenDownload(_short(exc)) from None
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        new_meta = {
            "url": url,
            "etag": response.headers.get("ETag"),
            "last_modified": response.headers.get("Last-Modified"),
        }
        _atomic_write_text(meta_path, json.dumps(new_meta))
        progress.set_progress(100.0)
        return CachedFile(target, new_meta["etag"], new_meta["last_modified"], False)


def head_ok(url: str) -> bool:
    """True when ``url`` answers a HEAD (or a one-byte GET) with success."""
    import requests

    session = _session()
    try:
        r = session.head(url, timeout=http_limits()[:2], allow_redirects=True)
        if r.status_code == 405:
            r = session.get(url, headers={"Range": "bytes=0-0"}, timeout=http_limits()[:2])
        return r.status_code in (200, 206)
    except requests.RequestException:
        return False


def _atomic_write_text(path: Path, text: str) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".part")
    with os.fdopen(fd, "w") as f:
        f.write(text)
    os.replace(tmp, path)


def _short(exc: Exception) -> str:
    text = str(exc)
    return text if len(text) < 200 else text[:200] + "..."
