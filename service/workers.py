"""Readiness across uvicorn workers: with `--workers N` the server is ready when all N are.

Probes over new connections reach whichever worker accepts them, so a worker that had loaded
its models would say ready while another, still loading, answered model requests 503. Each
worker therefore keeps a small file in the workers' shared directory (`workers/<pid>` under
`PROMETHEUS_MULTIPROC_DIR`, which `python -m service` makes for several workers) saying
"loading" or "ready", and readiness counts the ready files of live processes.
"""

from __future__ import annotations

import os
from pathlib import Path

from service import metrics

READY = "ready"
LOADING = "loading"


def process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # exists, owned by someone else
    return True


class WorkerBoard:
    """One file per worker process: its state, read by every worker's readiness probe."""

    def __init__(self, directory: Path, workers: int, pid: int | None = None) -> None:
        self.directory = directory
        self.workers = workers
        self.pid = os.getpid() if pid is None else pid

    def post(self, state: str) -> None:
        """Publish this worker's state (atomically: readers never see half a file)."""
        self.directory.mkdir(parents=True, exist_ok=True)
        draft = self.directory / f".{self.pid}.tmp"
        draft.write_text(state)
        os.replace(draft, self.directory / str(self.pid))

    def leave(self) -> None:
        (self.directory / str(self.pid)).unlink(missing_ok=True)

    def states(self) -> dict[int, str]:
        """The state of every live worker on the board (the files of dead ones are dropped)."""
        states = {}
        for path in self.directory.glob("[0-9]*"):
            pid = int(path.name)
            if not process_alive(pid):
                path.unlink(missing_ok=True)
                continue
            try:
                states[pid] = path.read_text()
            except FileNotFoundError:  # left between the listing and the read
                continue
        return states

    def ready_count(self) -> int:
        return sum(state == READY for state in self.states().values())

    def all_ready(self) -> bool:
        return self.ready_count() >= self.workers


def worker_board(workers: int) -> WorkerBoard | None:
    """The board of this server's workers, or None for a single process of its own."""
    shared = metrics.multiprocess_dir()
    if shared is None:
        return None
    return WorkerBoard(Path(shared) / "workers", workers)
