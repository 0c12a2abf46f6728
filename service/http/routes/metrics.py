"""`GET /metrics`: the Prometheus exposition (behind the API key when the settings say so)."""

from __future__ import annotations

from litestar import MediaType, Request, Response, get

from service import metrics
from service.api_key import check_key
from service.http.auth import request_key
from service.http.state import services


@get("/metrics", summary="Prometheus metrics", tags=["Operations"], media_type=MediaType.TEXT)
async def prometheus_metrics(request: Request) -> Response[bytes]:
    settings = services(request).settings
    if settings.metrics_require_key:
        check_key(settings, request_key(request))
    body, content_type = metrics.exposition()
    # Litestar appends the charset to text/* itself.
    return Response(body, media_type=content_type.replace("; charset=utf-8", ""))
