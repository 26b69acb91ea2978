"""Threads and PROJ: what code running off the main thread needs.

QGIS runs Processing algorithms on its own pooled native threads, and the reader decodes
blocks on threads of its own; both must keep PROJ usable there.
"""

from __future__ import annotations

_KEPT_PROJ_CONTEXTS: list[object] = []


def keep_proj_context() -> None:
    """Keep this thread's PROJ context alive for the life of the process.

    pyproj 3.7 keeps a thread's PROJ context in OS-thread storage but frees it with the Python
    thread state. QGIS runs algorithms on pooled native threads whose Python thread state is
    made and dropped around each call, so the second algorithm on a thread found a freed
    context and QGIS crashed (pyproj issues 1509 and 1622). Holding the context's owner keeps
    the pointer valid; there is one per native thread, so the cost is bounded. Call it at the
    start of work that may run off the main thread; a no-op on pyproj versions without
    per-thread contexts.
    """
    try:
        from pyproj._context import get_context_manager
        from pyproj.datadir import get_user_data_dir  # type: ignore[attr-defined]
    except ImportError:
        return
    get_user_data_dir()  # makes this thread's context if it has none yet
    owner = get_context_manager()
    if owner is not None and not any(owner is kept for kept in _KEPT_PROJ_CONTEXTS):
        _KEPT_PROJ_CONTEXTS.append(owner)
