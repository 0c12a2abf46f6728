"""uvicorn's httptools protocol with the limits a listener open to clients needs.

Stock `HttpToolsProtocol` buffers a request's headers without bound (httptools even grows one
long header by concatenation, quadratically), waits for ever on a request that stops arriving,
and takes every connection the kernel hands it. `LimitedHttpToolsProtocol` caps the header
bytes while reading (bytes past the cap never reach the parser) and the header count when the
head ends, gives headers and bodies a deadline, and refuses connections past a cap: each with
a `{"error": ...}` answer naming the setting, then the connection is closed. README: Security
and limits.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import math
import resource
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass
from types import FrameType
from typing import Any

import httptools
import msgspec
from uvicorn.config import Config
from uvicorn.protocols.http.httptools_impl import (
    STATUS_LINE,
    HttpToolsProtocol,
    RequestResponseCycle,
)
from uvicorn.server import ServerState
from uvicorn.supervisors import Multiprocess

from service.in_flight import REQUESTS
from service.settings import Settings

log = logging.getLogger(__name__)

# Descriptors kept back from the connection cap for the process's own files: log, model files
# while loading, metrics files with several workers, the event loop's, the listener, and the
# connections accepted in one loop iteration before the cap can close them.
FD_HEADROOM = 256
UNLIMITED = 1 << 62  # the head budget while no head is being read
TIMER_SLACK_S = 0.001  # the loop's timers round to milliseconds: do not re-arm for less


@dataclass(frozen=True, slots=True)
class HttpLimits:
    """What `LimitedHttpToolsProtocol` enforces, from the settings of the same names."""

    max_header_bytes: int
    max_headers: int
    header_timeout_s: float
    body_timeout_s: float
    max_connections: int

    @classmethod
    def from_settings(cls, settings: Settings) -> HttpLimits:
        """Raises ValueError when SERVE_MAX_CONNECTIONS does not fit the open-file limit."""
        return cls(
            max_header_bytes=settings.max_header_bytes,
            max_headers=settings.max_headers,
            header_timeout_s=settings.header_timeout_s,
            body_timeout_s=settings.body_timeout_s,
            max_connections=connection_cap(settings.max_connections),
        )

    @property
    def check_interval_s(self) -> float:
        """How often a connection's timer looks while the server, not the client, has the turn:
        never longer than a timeout, so a deadline set meanwhile is never overslept."""
        return min(self.header_timeout_s, self.body_timeout_s)

    def message(self, setting: str) -> str:
        """The client's `error` (and the log line) when the limit of `setting` acts."""
        return {
            "SERVE_MAX_HEADER_BYTES": f"request line and headers are larger than "
            f"{self.max_header_bytes} bytes (SERVE_MAX_HEADER_BYTES)",
            "SERVE_MAX_HEADERS": f"request has more than {self.max_headers} header fields "
            "(SERVE_MAX_HEADERS)",
            "SERVE_HEADER_TIMEOUT_S": f"request headers not complete within "
            f"{self.header_timeout_s:g} s (SERVE_HEADER_TIMEOUT_S)",
            "SERVE_BODY_TIMEOUT_S": f"no bytes of the request body for {self.body_timeout_s:g} s "
            "(SERVE_BODY_TIMEOUT_S)",
            "SERVE_MAX_CONNECTIONS": f"server is at its {self.max_connections} open connections "
            "(SERVE_MAX_CONNECTIONS); retry later",
        }[setting]


def connection_cap(requested: int | None) -> int:
    """SERVE_MAX_CONNECTIONS, or by default the open-file limit less FD_HEADROOM.

    A cap the limit cannot honour is refused at start: the process would run out of
    descriptors (and stop accepting anyone, silently) before the cap refused a connection.
    """
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY:
        return requested or UNLIMITED
    available = soft - FD_HEADROOM
    if available < 1:
        raise ValueError(f"the open-file limit ({soft}) leaves no room for connections: raise it")
    if requested is None:
        return available
    if requested > available:
        raise ValueError(
            f"SERVE_MAX_CONNECTIONS={requested} does not fit the open-file limit ({soft}) less "
            f"{FD_HEADROOM} for the process's own files: lower it or raise the limit (ulimit -n)"
        )
    return requested


@functools.cache
def process_limits() -> HttpLimits:
    """The limits, read once per process from SERVE_* (as the app reads its settings).

    uvicorn builds a protocol per connection, in each worker process, passing only its own
    Config; the environment is what `python -m service` gives every worker (the CLI has
    validated it), so the protocol needs no state from the parent."""
    return HttpLimits.from_settings(Settings())


class LimitLog:
    """One warning line per limit per interval, with the count of those held back since the
    last line: a flood of refusals must not turn into a flood of log lines."""

    def __init__(self, interval_s: float = 1.0, clock: Callable[[], float] = time.monotonic):
        self.interval_s = interval_s
        self.clock = clock
        self._quiet_until: dict[str, float] = {}
        self._held_back: dict[str, int] = {}

    def acted(self, setting: str, message: str, status: int | None, client: str | None) -> None:
        now = self.clock()
        if now < self._quiet_until.get(setting, -math.inf):
            self._held_back[setting] = self._held_back.get(setting, 0) + 1
            return
        self._quiet_until[setting] = now + self.interval_s
        fields = {
            "limit": setting,
            "status": status,
            "client": client,
            "held_back": self._held_back.pop(setting, 0),
        }
        log.warning(message, extra={"fields": fields})


class _TooManyHeaders(Exception):
    """Raised from `on_headers_complete` to stop the parser; `data_received` answers 431."""


class LimitedHttpToolsProtocol(HttpToolsProtocol):
    """HttpToolsProtocol with header limits, read deadlines and a connection cap.

    Every request pays for this, so the callbacks only do integer work and move a deadline:
    the head's byte budget is decremented per read, the header count is read once when the
    head ends (the byte cap already bounds what was parsed), and one timer per connection
    checks the deadline lazily (a deadline that moved later re-arms the timer when it fires).
    uvicorn's callbacks are called on the class, not through `super()`, for the same reason.
    """

    limit_log = LimitLog()  # one per process: the rate limit is the process's, not a connection's

    def __init__(
        self,
        config: Config,
        server_state: ServerState,
        app_state: dict[str, Any],
        _loop: asyncio.AbstractEventLoop | None = None,
    ) -> None:
        super().__init__(config, server_state, app_state, _loop)
        self.limits = process_limits()
        self._in_body = False
        self._head_left = self.limits.max_header_bytes  # bytes the current head may still take
        self._deadline = math.inf  # loop time by which the client must have sent what we wait on
        self._timer: asyncio.TimerHandle | None = None
        self._unanswered = 0  # requests of this connection counted in REQUESTS

    # --- connection ------------------------------------------------------------------------

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        if len(self.connections) > self.limits.max_connections:
            self._refuse(503, "SERVE_MAX_CONNECTIONS")
            return
        self._deadline = self.loop.time() + self.limits.header_timeout_s
        self._timer = self.loop.call_at(self._deadline, self._check_deadline)

    def connection_lost(self, exc: Exception | None) -> None:
        self._stop_timer()
        REQUESTS.requests -= self._unanswered  # no answer will complete them now
        self._unanswered = 0
        super().connection_lost(exc)

    def handle_websocket_upgrade(self) -> None:
        self._stop_timer()  # the WebSocket protocol owns the connection from here
        super().handle_websocket_upgrade()

    # --- reading ---------------------------------------------------------------------------

    def data_received(self, data: bytes | memoryview) -> None:
        """uvicorn's (0.54), counting the head's bytes before they reach the parser."""
        size = len(data)
        if size > self._head_left:
            self._feed_up_to_head_limit(memoryview(data))
            return
        self._head_left -= size
        self._unset_keepalive_if_required()
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError:
            self._parser_failed()
        except httptools.HttpParserUpgrade:
            if self._should_upgrade():
                self.handle_websocket_upgrade()
            else:
                self._unsupported_upgrade_warning()
        if self._in_body:  # the rest comes in later reads: the body timeout runs between reads
            self._deadline = self.loop.time() + self.limits.body_timeout_s

    def _feed_up_to_head_limit(self, data: memoryview) -> None:
        """Feed what the head may still take; the rest only if the head ended within it (the
        read also held a body or the next request).

        A request pipelined behind another in one read is counted from the next read on: the
        parser may see up to one read (256,000 bytes with uvloop) more of its head."""
        left = self._head_left
        self.data_received(data[:left])
        if self.transport.is_closing():
            return
        if self._head_left == 0:  # no end of headers within the cap
            self._refuse(431, "SERVE_MAX_HEADER_BYTES")
            return
        self.data_received(data[left:])

    def _parser_failed(self) -> None:
        if self.headers is not None and len(self.headers) > self.limits.max_headers:
            self._refuse(431, "SERVE_MAX_HEADERS")
            return
        message = "Invalid HTTP request received."
        self.logger.warning(message)
        self.send_400_response(message)

    # --- parser callbacks ------------------------------------------------------------------

    def on_headers_complete(self) -> None:
        if len(self.headers) > self.limits.max_headers:
            raise _TooManyHeaders  # before the app sees the request
        self._in_body = True
        self._head_left = UNLIMITED
        self._unanswered += 1
        REQUESTS.requests += 1
        HttpToolsProtocol.on_headers_complete(self)
        if type(self.cycle) is RequestResponseCycle:  # a new one (not on a WebSocket upgrade)
            self.cycle.__class__ = OneWriteCycle  # before its task first runs and sends

    def on_message_complete(self) -> None:
        self._in_body = False
        self._head_left = self.limits.max_header_bytes
        # The server has the turn until it has answered (unless it already has: an early 413).
        self._deadline = math.inf
        if self.cycle is not None and self.cycle.response_complete:
            self._deadline = self.loop.time() + self.limits.header_timeout_s
        HttpToolsProtocol.on_message_complete(self)

    def on_response_complete(self) -> None:
        # The client's turn for its next request, unless it is already queued (pipelined) or
        # this answer came before the body ended (then the body timeout still runs).
        if not self.pipeline and not self._in_body:
            self._deadline = self.loop.time() + self.limits.header_timeout_s
        if self._unanswered:
            self._unanswered -= 1
            REQUESTS.requests -= 1
        HttpToolsProtocol.on_response_complete(self)

    # --- deadlines -------------------------------------------------------------------------

    def _check_deadline(self) -> None:
        if self.transport.is_closing():
            return
        now = self.loop.time()
        if self._in_body and self._client_held_back():
            self._deadline = now + self.limits.body_timeout_s
        if now + TIMER_SLACK_S >= self._deadline:
            self._timer = None
            self._time_out()
            return
        wake = min(self._deadline, now + self.limits.check_interval_s)
        self._timer = self.loop.call_at(wake, self._check_deadline)

    def _client_held_back(self) -> bool:
        """The server paused reading (a full body buffer, a pipelined request) or owes the
        client its `100 Continue`: a silent client is not late then."""
        return self.flow.read_paused or self.cycle.waiting_for_100_continue

    def _time_out(self) -> None:
        if self._in_body:
            self._refuse(408, "SERVE_BODY_TIMEOUT_S")
        elif self._head_left < self.limits.max_header_bytes:  # part of a head arrived
            self._refuse(408, "SERVE_HEADER_TIMEOUT_S")
        else:  # nothing of a request arrived: close without an answer, as NGINX does
            self.transport.close()
            message = (
                f"closed a connection that sent nothing for {self.limits.header_timeout_s:g} s "
                "(SERVE_HEADER_TIMEOUT_S)"
            )
            self.limit_log.acted("SERVE_HEADER_TIMEOUT_S", message, None, self._client())

    def _stop_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    # --- refusing --------------------------------------------------------------------------

    def _refuse(self, status: int, setting: str) -> None:
        """Answer `status` with the limit's message (when it can be this request's answer),
        close the connection, log it."""
        message = self.limits.message(setting)
        if self._may_answer():
            self.transport.write(self._answer(status, message))
        self.transport.close()
        self.limit_log.acted(setting, message, status, self._client())

    def _may_answer(self) -> bool:
        """Whether an answer written now is the answer to the request being read: not while an
        earlier (pipelined) request's answer is still to come or half written."""
        cycle = self.cycle
        if cycle is None or cycle.response_complete:
            return True
        return self._in_body and not cycle.response_started and not self.pipeline

    def _answer(self, status: int, message: str) -> bytes:
        body = msgspec.json.encode({"error": message})
        head = [STATUS_LINE[status]]
        head += [
            name + b": " + value + b"\r\n" for name, value in self.server_state.default_headers
        ]
        head.append(b"content-type: application/json\r\n")
        head.append(b"content-length: %d\r\n" % len(body))
        if status == 503:
            head.append(b"retry-after: 1\r\n")
        head.append(b"connection: close\r\n\r\n")
        return b"".join(head) + body

    def _client(self) -> str | None:
        return f"{self.client[0]}:{self.client[1]}" if self.client else None


class OneWriteCycle(RequestResponseCycle):
    """uvicorn's request cycle, writing an answer's head together with its first body bytes.

    uvicorn writes the head when the app sends `http.response.start` and the body when it
    sends `http.response.body`: two send(2) calls, and two TCP segments, per answer. Here the
    head waits for the body's write (or for whatever the cycle does next with the transport)
    and both go out in one `writelines`, one send(2) on uvloop. Everything else is uvicorn's.
    """

    held: HeldHead | None = None

    async def send(self, message: dict[str, Any]) -> None:  # type: ignore[override]
        transport = self.transport
        if self.response_started and self.held is None:
            await RequestResponseCycle.send(self, message)  # type: ignore[arg-type]
            return
        holder = self.held or HeldHead(transport)
        self.transport = holder  # type: ignore[assignment]
        try:
            await RequestResponseCycle.send(self, message)  # type: ignore[arg-type]
        finally:
            self.transport = transport
        if self.response_started and message["type"] == "http.response.start":
            self.held = holder
        else:
            self.held = None
            holder.flush()  # a HEAD, or a failed send, wrote no body: the head goes alone


class HeldHead:
    """A transport that keeps the first bytes written (the head) until the next write, or
    any other use of the transport, and then writes them first."""

    __slots__ = ("head", "transport")

    def __init__(self, transport: asyncio.Transport) -> None:
        self.transport = transport
        self.head: bytes | None = None

    def write(self, data: bytes) -> None:
        if self.head is None and not self.transport.is_closing():
            self.head = data
            return
        head, self.head = self.head, b""
        self.transport.writelines((head, data) if head else (data,))

    def flush(self) -> None:
        if self.head:
            self.transport.write(self.head)
        self.head = b""

    def __getattr__(self, name: str) -> Any:  # close, is_closing, get_extra_info, ...
        self.flush()
        return getattr(self.transport, name)


class DrainingSupervisor(Multiprocess):
    """uvicorn's supervisor of `--workers N`, passing a second SIGTERM on to the workers, so
    that each skips the rest of its drain delay as a single server does. uvicorn's own sends
    the first one on, then waits for the workers with the second left unhandled."""

    def terminate_all(self) -> None:
        signal.signal(signal.SIGTERM, self._terminate_again)
        super().terminate_all()

    def _terminate_again(self, sig: int, frame: FrameType | None) -> None:
        log.info("SIGTERM again: passing it on to the workers")
        for process in self.processes:
            process.terminate()
