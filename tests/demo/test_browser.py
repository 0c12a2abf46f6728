"""The browser demo in a real headless Chromium against a real server on the bundled models.

Digits are drawn stroke by stroke with mouse events, as a person would, and must be read right;
an upload goes through the file picker. The feature form is filled and sent as a person would.
Chromium must start: where it cannot, these tests fail.
"""

from __future__ import annotations

import base64
import io
import json
import math
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from PIL import Image
from playwright.sync_api import Browser, Page, Response, expect, sync_playwright

from tests.conftest import ROOT, copy_bundled
from tests.service.conftest import Server, start_server

CHROMIUM = "/usr/bin/chromium"
# A loaded 2-core runner (Chromium, the server and pytest) can take longer than the 5 s default.
expect.set_options(timeout=30_000)
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
    "--disable-sync",
    "--disable-quic",
]
UPLOADS = ROOT / "tests" / "fixtures" / "uploads"
UPLOAD = "scan_001.jpg"  # an 8, read right by the bundled mnist
DROPPED = "photo_000.jpg"  # a 9, photographed
MODELS = ["binary", "iris", "mnist", "regression"]
FEATURE_MODELS = ["binary", "iris", "regression"]  # mnist's pixels are drawn, not typed
IRIS_FEATURES = ["sepal_length_cm", "sepal_width_cm", "petal_length_cm", "petal_width_cm"]
IRIS_EXAMPLE = [5.1, 3.5, 1.4, 0.2]  # a setosa
IRIS_CLASSES = re.compile("^(setosa|versicolor|virginica)$")
CANVAS = 280  # the canvas's own pixels; strokes are given in these units

Point = tuple[float, float]


def ellipse(cx: float, cy: float, rx: float, ry: float, points: int = 24) -> list[Point]:
    """A closed loop, drawn from the top, anticlockwise like a hand-written 0."""
    return [
        (cx - rx * math.sin(2 * math.pi * i / points), cy - ry * math.cos(2 * math.pi * i / points))
        for i in range(points + 1)
    ]


# Each digit is a list of strokes; each stroke a polyline in canvas pixels.
DIGITS: dict[str, list[list[Point]]] = {
    "1": [[(150, 45), (140, 235)]],
    "7": [[(75, 55), (205, 55)], [(205, 55), (160, 140), (125, 235)]],
    "0": [ellipse(140, 140, 65, 95)],
}


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS
        )
        yield browser
        browser.close()


@pytest.fixture(scope="module")
def server(bundled_repo: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    server = start_server(bundled_repo, tmp_path_factory.mktemp("demo") / "server.log")
    yield server
    server.stop()


@pytest.fixture(scope="module")
def keyed_server(bundled_repo: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    log_path = tmp_path_factory.mktemp("demo-key") / "server.log"
    server = start_server(bundled_repo, log_path, api_key="k")
    yield server
    server.stop()


@pytest.fixture(scope="module")
def example_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """Iris alone, its cards giving a typical row (`input.example`), as a card written from data
    may; the bundled cards give none."""
    root = copy_bundled(tmp_path_factory.mktemp("example") / "models", "iris")
    for card_path in (root / "iris").glob("*/card.json"):
        card = json.loads(card_path.read_text())
        card["input"]["example"] = IRIS_EXAMPLE
        card_path.write_text(json.dumps(card))
    server = start_server(root, tmp_path_factory.mktemp("example-log") / "server.log")
    yield server
    server.stop()


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    context = browser.new_context(viewport={"width": 1200, "height": 900})
    page = context.new_page()
    yield page
    context.close()


def is_prediction(response: Response) -> bool:
    return ":predict-image" in response.url


def draw(page: Page, strokes: list[list[Point]]) -> None:
    """Draws with the mouse, one press per stroke; returns once every stroke is answered."""
    box = page.get_by_test_id("draw-canvas").bounding_box()
    assert box is not None
    scale = box["width"] / CANVAS

    def at(point: Point) -> Point:
        return box["x"] + point[0] * scale, box["y"] + point[1] * scale

    for stroke in strokes:
        with page.expect_response(is_prediction):
            page.mouse.move(*at(stroke[0]))
            page.mouse.down()
            for point in stroke[1:]:
                page.mouse.move(*at(point), steps=8)
            page.mouse.up()
    expect(page.locator("#result")).to_have_attribute("aria-busy", "false")


def clear(page: Page) -> None:
    page.get_by_test_id("clear").click()
    expect(page.get_by_test_id("prediction")).to_have_text("")


def label_of(filename: str) -> int:
    manifest = json.loads((UPLOADS / "manifest.json").read_text())
    return next(entry["label"] for entry in manifest if entry["file"] == filename)


def blank_png() -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (64, 64), "white").save(buffer, format="PNG")
    return buffer.getvalue()


def expect_model_input_shown(page: Page) -> None:
    model_input = page.get_by_test_id("model-input")
    expect(model_input).to_be_visible()
    expect(model_input).to_have_attribute("src", re.compile(r"^data:image/png;base64,"))
    page.wait_for_function(
        "image => image.complete && image.naturalWidth === 28", arg=model_input.element_handle()
    )


def test_drawn_and_uploaded_digits_are_read(server: Server, page: Page, tmp_path: Path) -> None:
    page.goto(server.base_url)
    prediction = page.get_by_test_id("prediction")
    for digit, strokes in DIGITS.items():
        clear(page)
        draw(page, strokes)
        expect(prediction).to_have_text(digit)
        expect(page.get_by_test_id("probabilities").locator("li")).to_have_count(10)
        expect(page.locator(".bar.best .bar-digit")).to_have_text(digit)
        expect_model_input_shown(page)

    clear(page)
    with page.expect_response(is_prediction):
        page.get_by_test_id("file-input").set_input_files(UPLOADS / UPLOAD)
    expect(prediction).to_have_text(str(label_of(UPLOAD)))
    expect(page.get_by_test_id("status")).to_contain_text(UPLOAD)
    expect_model_input_shown(page)

    screenshot = tmp_path / "demo.png"
    page.screenshot(path=screenshot, full_page=True, animations="disabled")
    assert screenshot.read_bytes().startswith(b"\x89PNG\r\n\x1a\n")
    assert Image.open(screenshot).size[0] >= 1000


def drop_file(page: Page, path: Path, media_type: str) -> None:
    """Drops a file on the canvas as a drag from the desktop would: a drop event with its files."""
    transfer = page.evaluate_handle(
        """([name, type, data]) => {
            const bytes = Uint8Array.from(atob(data), (char) => char.charCodeAt(0));
            const transfer = new DataTransfer();
            transfer.items.add(new File([bytes], name, { type }));
            return transfer;
        }""",
        [path.name, media_type, base64.b64encode(path.read_bytes()).decode()],
    )
    page.get_by_test_id("draw-canvas").dispatch_event("drop", {"dataTransfer": transfer})


def test_a_dropped_picture_is_read(server: Server, page: Page) -> None:
    page.goto(server.base_url)
    with page.expect_response(is_prediction):
        drop_file(page, UPLOADS / DROPPED, "image/jpeg")
    expect(page.get_by_test_id("prediction")).to_have_text(str(label_of(DROPPED)))
    expect(page.get_by_test_id("status")).to_contain_text(DROPPED)


def test_a_server_error_is_shown(server: Server, page: Page) -> None:
    page.goto(server.base_url)
    draw(page, DIGITS["1"])
    expect(page.get_by_test_id("prediction")).to_have_text("1")
    blank = {"name": "blank.png", "mimeType": "image/png", "buffer": blank_png()}
    page.get_by_test_id("file-input").set_input_files(blank)
    expect(page.get_by_test_id("status")).to_contain_text("no digit found in 'blank.png'")
    expect(page.get_by_test_id("prediction")).to_have_text("")
    expect(page.get_by_test_id("model-input")).to_be_hidden()


def test_the_models_panel_shows_every_card_and_its_curves(server: Server, page: Page) -> None:
    page.goto(server.base_url)
    cards = page.get_by_test_id("models").locator(".model-card")
    expect(cards).to_have_count(len(MODELS))
    expect(cards.locator(".model-name")).to_have_text(MODELS)
    mnist = cards.filter(has_text="mnist")
    expect(mnist).to_contain_text("classification")
    expect(mnist).to_contain_text("test_accuracy")
    page.wait_for_function(
        "() => [...document.querySelectorAll('.model-curves')]"
        ".every(image => image.complete && image.naturalWidth > 0)"
    )
    widths = page.locator(".model-curves").evaluate_all(
        "images => images.map(image => image.naturalWidth)"
    )
    assert len(widths) == len(MODELS)
    assert all(width > 0 for width in widths)


def test_the_page_asks_for_the_api_key_once_then_predicts(keyed_server: Server, page: Page) -> None:
    page.goto(keyed_server.base_url)
    dialog = page.get_by_role("dialog")
    expect(dialog).to_be_visible()

    page.get_by_role("textbox", name="API key").fill("wrong")
    page.get_by_role("button", name="Use this key").click()
    expect(dialog).to_contain_text("refused")

    page.get_by_role("textbox", name="API key").fill("k")
    page.get_by_role("button", name="Use this key").click()
    expect(dialog).to_be_hidden()
    expect(page.get_by_test_id("models").locator(".model-card")).to_have_count(len(MODELS))

    draw(page, DIGITS["7"])
    expect(page.get_by_test_id("prediction")).to_have_text("7")
    expect(dialog).to_be_hidden()
    assert page.evaluate("() => sessionStorage.getItem('mlp-serve.api-key')") == "k"
    page.wait_for_function(
        "() => [...document.querySelectorAll('.model-curves')]"
        ".every(image => image.complete && image.naturalWidth > 0)"
    )


def is_feature_prediction(response: Response) -> bool:
    return response.url.endswith(":predict")


def pick_feature_model(page: Page, base_url: str, model: str) -> None:
    page.goto(base_url)
    expect(page.get_by_test_id("feature-model").locator("option")).to_have_text(FEATURE_MODELS)
    page.get_by_test_id("feature-model").select_option(model)


def submit_features(page: Page) -> None:
    with page.expect_response(is_feature_prediction):
        page.get_by_test_id("feature-submit").click()
    expect(page.locator("#features-panel")).to_have_attribute("aria-busy", "false")


def feature_values(page: Page) -> dict[str, str]:
    fields = page.get_by_test_id("feature-fields").locator("input")
    names = fields.evaluate_all("inputs => inputs.map(input => input.name)")
    return dict(zip(names, fields.evaluate_all("inputs => inputs.map(i => i.value)"), strict=True))


def test_the_feature_form_is_filled_from_the_cards_example(
    example_server: Server, page: Page
) -> None:
    page.goto(example_server.base_url)
    form = page.get_by_test_id("features-form")
    expect(page.get_by_test_id("feature-model").locator("option")).to_have_text(["iris"])
    expect(form.locator(".feature-field span")).to_have_text(IRIS_FEATURES)
    assert feature_values(page) == dict(zip(IRIS_FEATURES, map(str, IRIS_EXAMPLE), strict=True))
    expect(page.get_by_test_id("feature-source")).to_contain_text("example row")
    submit_features(page)
    expect(page.get_by_test_id("feature-prediction")).to_have_text("setosa")
    expect(page.get_by_test_id("feature-status")).to_contain_text("sure · iris v2")


def test_without_an_example_the_form_starts_at_zero_and_shows_a_class(
    server: Server, page: Page
) -> None:
    pick_feature_model(page, server.base_url, "iris")
    assert feature_values(page) == dict.fromkeys(IRIS_FEATURES, "0")
    expect(page.get_by_test_id("feature-source")).to_contain_text("no example row")
    page.get_by_role("textbox", name="petal_length_cm").fill("5.4")
    submit_features(page)
    expect(page.get_by_test_id("feature-prediction")).to_have_text(IRIS_CLASSES)
    expect(page.get_by_test_id("feature-status")).to_contain_text("sure · iris v2")


def test_a_regression_model_shows_its_value(server: Server, page: Page) -> None:
    pick_feature_model(page, server.base_url, "regression")
    expect(page.get_by_test_id("feature-fields").locator("input")).to_have_count(500)
    submit_features(page)
    # All zeros: y = X.w + b is about b = 0.028.
    value = page.get_by_test_id("feature-prediction").text_content() or "no value"
    assert float(value) == pytest.approx(0.028, abs=0.05)
    expect(page.get_by_test_id("feature-status")).to_contain_text("y · regression v2")


def test_invalid_features_show_the_servers_message(server: Server, page: Page) -> None:
    pick_feature_model(page, server.base_url, "iris")
    field = page.get_by_role("textbox", name="petal_width_cm")
    field.fill("wide")
    submit_features(page)
    status = page.get_by_test_id("feature-status")
    expect(status).to_contain_text(
        "Expected `float`, got `str` - at `$.instances[0].petal_width_cm`"
    )
    expect(status).to_have_class(re.compile("error"))
    expect(page.get_by_test_id("feature-prediction")).to_have_text("")

    field.fill("")
    submit_features(page)
    expect(status).to_have_text("instance 0 lacks feature 'petal_width_cm'")

    field.fill("0.2")
    submit_features(page)
    expect(page.get_by_test_id("feature-prediction")).to_have_text(IRIS_CLASSES)
    expect(status).not_to_have_class(re.compile("error"))
