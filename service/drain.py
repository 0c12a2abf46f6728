"""Graceful drain: what SIGTERM does before uvicorn's own shutdown.

On the first SIGTERM, readiness answers 503 at once while the listener stays open for
`drain_delay_s` (load balancers and probes see the 503 rather than a refused connection); then
uvicorn's handler runs: no new connections, accepted requests finish (bounded by
`drain_timeout_s`), batchers drain, the process exits 0. A second signal skips the delay.
"""

from __future__ import annotations

import logging
import signal
import threading
from types import FrameType

log = logging.getLogger(__name__)


class Drain:
    """One server's drain state; set from the signal handler, read by readiness."""

    def __init__(self) -> None:
        self._draining = threading.Event()

    def begin(self) -> None:
        self._draining.set()

    @property
    def draining(self) -> bool:
        return self._draining.is_set()

    def install(self, delay_s: float) -> None:
        """Put the drain delay in front of the server's SIGTERM handler (main thread only:
        under uvicorn, not in an in-process test client)."""
        if threading.current_thread() is not threading.main_thread():
            return
        server_handler = signal.getsignal(signal.SIGTERM)
        if not callable(server_handler):
            return

        def on_sigterm(sig: int, frame: FrameType | None) -> None:
            if self.draining:
                log.info("SIGTERM again: shutting down without the rest of the drain delay")
                server_handler(sig, frame)  # asked twice: stop waiting
                return
            self.begin()
            log.info("SIGTERM: draining", extra={"fields": {"drain_delay_s": delay_s}})
            timer = threading.Timer(delay_s, server_handler, (sig, frame))
            timer.daemon = True
            timer.start()

        signal.signal(signal.SIGTERM, on_sigterm)
