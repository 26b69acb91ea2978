"""A real HTTP server on 127.0.0.1 for tests: Range requests, ETags, byte counting,
and failure injection (503 every Nth request, or dropped connections)."""

from __future__ import annotations

import email.utils
import hashlib
import os
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path


class Stats:
    def __init__(self):
        self.lock = threading.Lock()
        self.requests = 0
        self.bytes_sent = 0
        self.paths: list[str] = []
        self.ranges: list[str] = []
        self.fetches: list[tuple[str, str]] = []  # (path, range) of every range request
        self.bytes_by_path: dict[str, int] = {}
        self.user_agents: set[str] = set()
        self.status_counts: dict[int, int] = {}
        self.in_flight = 0
        self.max_in_flight = 0  # requests being answered at the same time, at most

    def reset(self):
        with self.lock:
            self.requests = 0
            self.bytes_sent = 0
            self.paths.clear()
            self.ranges.clear()
            self.fetches.clear()
            self.bytes_by_path.clear()
            self.status_counts.clear()
            self.max_in_flight = self.in_flight


class _QuietServer(ThreadingHTTPServer):
    def handle_error(self, request, client_address):
        pass  # clients hanging up mid-answer is what failure tests provoke


class RangeServer:
    """Serve ``root`` with Range support. Use as a context manager; ``url`` is the base."""

    def __init__(
        self,
        root,
        fail_every: int = 0,
        fail_status: int = 503,
        drop_every: int = 0,
        forbid_default_agent: bool = False,
        truncate_every: int = 0,
        stall_s: float = 0.0,
        require_agent: str | None = None,
    ):
        self.root = Path(root).resolve()
        self.stats = Stats()
        self.fail_every = fail_every
        self.fail_status = fail_status
        self.drop_every = drop_every
        self.forbid_default_agent = forbid_default_agent
        self.truncate_every = truncate_every  # send half the body, then close
        self.stall_s = stall_s  # wait this long before answering (latency of a distant store)
        self.require_agent = require_agent  # 403 for any other User-Agent (the public store's rule)
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def setup(self):
                super().setup()
                # Headers and body leave in separate writes: without this, Nagle's algorithm
                # holds the body until the client's delayed ACK (~40 ms a request on loopback),
                # a stall no real object store adds.
                self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

            def do_HEAD(self):  # noqa: N802
                self._serve(head=True)

            def do_GET(self):  # noqa: N802
                self._serve(head=False)

            def _count(self, status):
                with server.stats.lock:
                    server.stats.status_counts[status] = server.stats.status_counts.get(status, 0) + 1

            def _serve(self, head):
                st = server.stats
                with st.lock:
                    st.requests += 1
                    n = st.requests
                    st.paths.append(self.path)
                    st.user_agents.add(self.headers.get("User-Agent", ""))
                self._head = head
                with st.lock:
                    st.in_flight += 1
                    st.max_in_flight = max(st.max_in_flight, st.in_flight)
                try:
                    self._answer(head, st, n)
                finally:
                    with st.lock:
                        st.in_flight -= 1

            def _answer(self, head, st, n):
                if server.stall_s:
                    time.sleep(server.stall_s)
                if server.require_agent and self.headers.get("User-Agent", "") != server.require_agent:
                    return self._error(403)
                if server.forbid_default_agent and "python-urllib" in self.headers.get("User-Agent", "").lower():
                    return self._error(403)
                if server.drop_every and n % server.drop_every == 0:
                    self._count(0)
                    self.close_connection = True
                    self.connection.shutdown(2)
                    return
                if server.fail_every and n % server.fail_every == 0:
                    return self._error(server.fail_status)
                rel = self.path.split("?", 1)[0].lstrip("/")
                path = (server.root / rel).resolve()
                if server.root not in path.parents and path != server.root or not path.is_file():
                    return self._error(404)
                size = path.stat().st_size
                mtime = path.stat().st_mtime
                etag = '"' + hashlib.md5(f"{path}|{size}|{mtime}".encode()).hexdigest() + '"'
                last_mod = email.utils.formatdate(mtime, usegmt=True)
                if self.headers.get("If-None-Match") == etag:
                    self.send_response(304)
                    self.send_header("ETag", etag)
                    self.send_header("Content-Length", "0")
                    self._count(304)  # before the answer leaves: the client may look at once
                    self.end_headers()
                    return
                rng = self.headers.get("Range")
                with st.lock:
                    if rng:
                        st.ranges.append(rng)
                        st.fetches.append((self.path, rng))
                if rng and rng.startswith("bytes="):
                    parts = []
                    for spec in rng[6:].split(","):
                        a, _, b = spec.strip().partition("-")
                        if a == "":
                            start, end = max(0, size - int(b)), size - 1
                        else:
                            start, end = int(a), min(size - 1, int(b) if b else size - 1)
                        if start > end or start >= size:
                            return self._error(416)
                        parts.append((start, end))
                    with open(path, "rb") as f:
                        chunks = []
                        for start, end in parts:
                            f.seek(start)
                            chunks.append((start, end, f.read(end - start + 1)))
                    if len(chunks) == 1:
                        start, end, data = chunks[0]
                        self.send_response(206)
                        self.send_header("Content-Range", f"bytes {start}-{end}/{size}")
                        body = data
                        ctype = "application/octet-stream"
                    else:
                        boundary = "EMBEDDINGSBOUNDARY"
                        pieces = []
                        for start, end, data in chunks:
                            pieces.append(
                                f"--{boundary}\r\nContent-Type: application/octet-stream\r\n"
                                f"Content-Range: bytes {start}-{end}/{size}\r\n\r\n".encode()
                                + data
                                + b"\r\n"
                            )
                        body = b"".join(pieces) + f"--{boundary}--\r\n".encode()
                        self.send_response(206)
                        ctype = f"multipart/byteranges; boundary={boundary}"
                    status = 206
                else:
                    body = path.read_bytes() if not head else b""
                    self.send_response(200)
                    ctype = "application/octet-stream"
                    status = 200
                self.send_header("Content-Type", ctype)
                self.send_header("Accept-Ranges", "bytes")
                self.send_header("ETag", etag)
                self.send_header("Last-Modified", last_mod)
                self.send_header("Content-Length", str(size if head and not rng else len(body)))
                self._count(status)
                self.end_headers()
                if not head:
                    if server.truncate_every and n % server.truncate_every == 0 and len(body) > 1:
                        self.wfile.write(body[: len(body) // 2])
                        self.wfile.flush()
                        self.close_connection = True
                        self.connection.shutdown(2)
                        return
                    with st.lock:
                        st.bytes_sent += len(body)
                        st.bytes_by_path[self.path] = st.bytes_by_path.get(self.path, 0) + len(body)
                    self.wfile.write(body)

            def _error(self, status):
                body = f"error {status}".encode()
                self.send_response(status)
                self.send_header("Content-Length", str(len(body)))
                self._count(status)
                self.end_headers()
                if not getattr(self, "_head", False):  # a HEAD response has no body
                    self.wfile.write(body)

        self.httpd = _QuietServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}/"

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.httpd.shutdown()
        self.httpd.server_close()


def total_size(root, suffix=".tiff") -> int:
    return sum(p.stat().st_size for p in Path(root).rglob(f"*{suffix}"))


if __name__ == "__main__":  # serve a folder by hand: python tests/httpserver.py DIR
    import sys

    with RangeServer(sys.argv[1]) as s:
        print(s.url, flush=True)
        while True:
            time.sleep(3600)
    os._exit(0)
