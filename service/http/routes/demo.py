"""The browser demo at `/`: plain HTML, CSS and JS from `service/static`."""

from __future__ import annotations

from pathlib import Path

from litestar import MediaType, Router, get
from litestar.response import File
from litestar.static_files import create_static_files_router

STATIC_DIR = Path(__file__).resolve().parents[2] / "static"


@get("/", include_in_schema=False)
async def demo_page() -> File:
    return File(
        STATIC_DIR / "index.html", media_type=MediaType.HTML, content_disposition_type="inline"
    )


def static_files() -> Router:
    return create_static_files_router(
        path="/static", directories=[STATIC_DIR], include_in_schema=False
    )
