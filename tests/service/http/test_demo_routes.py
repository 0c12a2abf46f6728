"""What the browser demo needs from the server: its page, its assets and the training curves."""

from __future__ import annotations

import io

import httpx
from PIL import Image


def test_the_page_is_served_at_the_root(http: httpx.Client) -> None:
    page = http.get("/")
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    assert "<html" in page.text


def test_training_curves_of_a_version(http: httpx.Client) -> None:
    curves = http.get("/v1/models/mnist/versions/1/curves.png")
    assert curves.status_code == 200
    assert curves.headers["content-type"] == "image/png"
    image = Image.open(io.BytesIO(curves.content))
    assert image.format == "PNG"
    assert min(image.size) > 100


def test_curves_of_an_unknown_version_are_404(http: httpx.Client) -> None:
    missing = http.get("/v1/models/mnist/versions/99/curves.png")
    assert missing.status_code == 404
    assert "version" in missing.json()["error"]
