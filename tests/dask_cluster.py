"""A Dask cluster on this computer for tests: a scheduler and worker processes started with
the system's Python (/usr/bin/python3, not the test venv), no PYTHONPATH and a folder of their
own as working directory, so that the workers cannot import the plugin: whatever core code
they run is what the client shipped to them.

``hide`` runs the workers in a mount namespace of their own where that folder is an empty
tmpfs: a local path the client sees and the workers do not (needs root, for ``unshare -m``).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

SYSTEM_PYTHON = "/usr/bin/python3"


class DaskCluster:
    def __init__(self, folder: Path, workers: int = 2, hide: Path | None = None):
        folder.mkdir(parents=True, exist_ok=True)
        self.folder = folder
        self.workers = workers
        env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV")}
        env["EARTH_EMBEDDINGS_CACHE"] = str(folder / "worker-cache")
        env["PATH"] = "/usr/bin:/bin"
        file = folder / "scheduler.json"
        self.procs: list[subprocess.Popen] = []
        self.procs.append(
            self._start(
                [SYSTEM_PYTHON, "-m", "distributed.cli.dask_scheduler", "--host", "127.0.0.1", "--port", "0"]
                + ["--no-dashboard", "--scheduler-file", str(file)],
                env,
                "scheduler.log",
            )
        )
        deadline = time.time() + 60
        while not file.exists() and time.time() < deadline:
            time.sleep(0.2)
        self.address = json.loads(file.read_text())["address"]
        worker = [SYSTEM_PYTHON, "-m", "distributed.cli.dask_worker", self.address, "--nworkers", str(workers)]
        worker += ["--nthreads", "1", "--no-dashboard", "--local-directory", str(folder / "workers")]
        if hide is not None:
            quoted = " ".join(f"'{a}'" for a in worker)
            worker = [
                "unshare",
                "-m",
                "--propagation",
                "private",
                "sh",
                "-c",
                f"mount -t tmpfs none '{hide}' && exec {quoted}",
            ]
        self.procs.append(self._start(worker, env, "workers.log"))
        with self.client() as client:
            client.wait_for_workers(workers, timeout=120)

    def _start(self, cmd: list[str], env: dict[str, str], log: str) -> subprocess.Popen:
        out = open(self.folder / log, "wb")
        return subprocess.Popen(
            cmd, cwd=self.folder, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )

    def client(self):
        from distributed import Client

        return Client(self.address, set_as_default=False, timeout="30s")

    def worker_pids(self) -> dict[str, int]:
        with self.client() as client:
            return client.run(os.getpid)

    def wait_for_workers(self) -> None:
        with self.client() as client:
            client.wait_for_workers(self.workers, timeout=120)

    def close(self) -> None:
        for p in reversed(self.procs):
            if p.poll() is None:
                os.killpg(p.pid, signal.SIGTERM)
        for p in reversed(self.procs):
            try:
                p.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(p.pid, signal.SIGKILL)
                p.wait()
