"""How many requests the server holds right now, over every transport.

The HTTP protocol counts a request from the end of its headers to the end of its answer, the
gRPC servicer a call from its start to its end; both count before the handler runs, so a
request that is already read but not yet handled counts too. Where one request is in alone,
a model whose forward pass is known to be short runs it on the event loop, skipping the hop to
its worker thread and back (`DynamicBatcher.infer(alone=True)`); with company, requests queue
and batch as before.
"""

from __future__ import annotations


class InFlight:
    __slots__ = ("requests",)

    def __init__(self) -> None:
        self.requests = 0

    def alone(self) -> bool:
        """At most one request in the server (the caller's own, or none outside a server)."""
        return self.requests <= 1


REQUESTS = InFlight()
