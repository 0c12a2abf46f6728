"""Readiness across uvicorn workers: with `--workers N` the server is ready when all N are.

Probes over new connections reach whichever worker accepts them, so a worker that had loaded
its models would say ready while another, still loading, answered model requests 503. So
`python -m service`, when it starts several workers, names a board directory (in
`BOARD_VARIABLE`, under the workers' shared metrics directory, one per server); each worker
keeps a file there saying "loading" or "ready", and readiness counts the ready files of live
workers. Files of dead workers (crashed, killed, or a reused pid) are recognised by the
process's start time and dropped.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

log = logging.getLogger(__name__)

BOARD_VARIABLE = "MLP_SERVE_WORKER_BOARD"  # set by `python -m service` for its workers
READY = "ready"
LOADING = "loading"
RECORD_BYTES = 64  # one worker's file: its state and start time, space-padded


def process_start(pid: int) -> str | None:
    """The process's start time (clock ticks since boot), or None when it is gone or a zombie."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat[stat.rindex(")") + 2 :].split()  # after "pid (command) "
    state, start = fields[0], fields[19]
    return None if state in ("Z", "X") else start


class WorkerBoard:
    """One file per worker process: its state, read by every worker's readiness probe."""

    def __init__(self, directory: Path, workers: int, pid: int | None = None) -> None:
        self.directory = directory
        self.workers = workers
        self.pid = os.getpid() if pid is None else pid
        self.usable = True  # False once this worker could not post: readiness then ignores it

    def post(self, state: str) -> None:
        """Publish this worker's state, in place: the file's space is reserved when it is first
        written, so a disk that fills up later cannot stop a worker from saying it is ready.
        When even that fails, the board is given up (logged) rather than the worker."""
        record = f"{state} {process_start(self.pid)}".encode().ljust(RECORD_BYTES)
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
            descriptor = os.open(self.directory / str(self.pid), os.O_RDWR | os.O_CREAT, 0o644)
            try:
                os.posix_fallocate(descriptor, 0, RECORD_BYTES)
                os.pwrite(descriptor, record, 0)  # one write of one short record
            finally:
                os.close(descriptor)
        except OSError as error:
            self.usable = False
            log.error(
                "the worker board cannot be written (%s); readiness counts this worker only",
                error.strerror or error,
            )

    def leave(self) -> None:
        (self.directory / str(self.pid)).unlink(missing_ok=True)

    def states(self) -> dict[int, str]:
        """The state of every live worker on the board (the files of dead ones are dropped)."""
        states = {}
        for path in self.directory.glob("[0-9]*"):
            if not path.name.isdigit():
                continue
            try:
                state, start = path.read_text().split()
            except (FileNotFoundError, ValueError):  # left meanwhile, or not a board file
                continue
            pid = int(path.name)
            if process_start(pid) != start:  # exited, or the pid now names another process
                path.unlink(missing_ok=True)
                continue
            states[pid] = state
        return states

    def ready_count(self) -> int:
        """Live workers that have loaded; the server is ready at `workers` of them."""
        return sum(state == READY for state in self.states().values())


def share_board(metrics_dir: Path) -> None:
    """Name this server's board (under the workers' shared metrics directory) for its workers."""
    os.environ[BOARD_VARIABLE] = str(metrics_dir / f"workers-{os.getpid()}")


def worker_board(workers: int) -> WorkerBoard | None:
    """This worker's board, or None when it is a single process of its own (or the platform
    has no /proc to tell live workers from dead ones)."""
    directory = os.environ.get(BOARD_VARIABLE)
    if directory is None or workers == 1 or not Path("/proc/self/stat").exists():
        return None
    return WorkerBoard(Path(directory), workers)
