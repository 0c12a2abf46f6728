"""HEAD wherever GET is (RFC 9110): answered as the GET would be, without the body.

Litestar routes only the methods a handler declares, so probes and monitors that send HEAD
(`/v2/health/ready` included) got 405. This wrapper turns a HEAD into a GET for the app and
drops the body on the way out; uvicorn, which sees the original HEAD, sends headers only.
"""

from __future__ import annotations

from litestar.types import ASGIApp, Message, Receive, Scope, Send


class HeadAsGet:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "HEAD":
            await self.app(scope, receive, send)
            return

        async def send_headers_only(message: Message) -> None:
            if message["type"] == "http.response.body":
                if message.get("more_body", False):
                    return
                message = {"type": "http.response.body", "body": b"", "more_body": False}
            await send(message)

        await self.app({**scope, "method": "GET"}, receive, send_headers_only)
