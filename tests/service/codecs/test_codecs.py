"""The codecs on their own: bytes and header strings in, rows out; outputs in, answer bytes out.

No server and no framework: what a gRPC transport will call is what the HTTP routes call.
"""

from __future__ import annotations

import asyncio
import json
import threading

import msgspec
import numpy as np
import pytest

from modelrepo.card import ModelCard
from service.codecs import kserve_v1, oip_v2, uploads
from service.codecs.decoding import FINITE_FLOAT32
from service.errors import InvalidInput, MalformedRequest, UnsupportedMediaType
from tests.conftest import MODELS_DIR, ROOT


def card(name: str) -> ModelCard:
    return ModelCard.model_validate_json((MODELS_DIR / name / "1" / "card.json").read_text())


IRIS = card("iris")


@pytest.mark.parametrize(
    ("body", "error", "says"),
    [
        (b'{"instances": [[1e400, 1, 2, 3]]}', MalformedRequest, "not valid JSON"),
        (b'{"instances": [[1, 2, 3, 4]', MalformedRequest, "not valid JSON"),
        (b'{"instances": [[1, 2, 3, 1e39]]}', InvalidInput, "at `$.instances[0][3]`"),
        (b'{"instances": [[1, "2", 3, 4]]}', InvalidInput, "Expected `float`, got `str`"),
        (b'{"rows": []}', InvalidInput, "send JSON like"),
    ],
)
def test_v1_tells_malformed_from_invalid_by_structure(
    body: bytes, error: type[Exception], says: str
) -> None:
    with pytest.raises(error, match=None) as caught:
        kserve_v1.decode_rows(body, IRIS, max_rows=10)
    assert says in str(caught.value)
    if error is InvalidInput and "1e39" in body.decode():
        assert str(caught.value).startswith(FINITE_FLOAT32)


def test_v1_answer_for_a_classifier_and_a_regressor() -> None:
    rows = kserve_v1.decode_rows(b'{"instances": [[5.1, 3.5, 1.4, 0.2]]}', IRIS, 10)
    assert rows.dtype == np.float32
    assert rows.shape == (1, 4)
    outputs = np.array([[0.9, 0.05, 0.05]], dtype=np.float32)
    answer = json.loads(kserve_v1.encode_answer(IRIS, outputs).body)
    assert answer["predictions"] == [
        {"label": 0, "class_name": "setosa", "probabilities": pytest.approx([0.9, 0.05, 0.05])}
    ]
    regression = card("regression")
    answer = json.loads(kserve_v1.encode_answer(regression, np.array([[1.5]])).body)
    assert answer == {
        "model_name": "regression",
        "model_version": "1",
        "predictions": [{"value": 1.5}],
    }


def test_v1_media_types() -> None:
    kserve_v1.check_media_type("")
    kserve_v1.check_media_type("application/json")
    with pytest.raises(UnsupportedMediaType, match="images go to :predict-image"):
        kserve_v1.check_media_type("image/png")


def test_v2_media_types() -> None:
    for media in ("", "application/json", "application/x-www-form-urlencoded"):
        oip_v2.check_media_type(media, binary=False)
    oip_v2.check_media_type("application/octet-stream", binary=True)
    for media, binary in [("application/octet-stream", False), ("text/plain", True)]:
        with pytest.raises(UnsupportedMediaType, match="send application/json"):
            oip_v2.check_media_type(media, binary=binary)


def v2_body(datatype: str, data: list) -> bytes:
    tensor = {"name": "INPUT__0", "shape": [1, 4], "datatype": datatype, "data": data}
    return json.dumps({"id": "a", "inputs": [tensor]}).encode()


def test_v2_binary_round_trip_with_a_timeout() -> None:
    header = json.dumps(
        {
            "inputs": [
                {
                    "name": "INPUT__0",
                    "shape": [2, 4],
                    "datatype": "FP64",
                    "parameters": {"binary_data_size": 64},
                }
            ],
            "outputs": [{"name": "OUTPUT__0", "parameters": {"binary_data": True}}],
            "parameters": {"timeout": 2_000_000},
        }
    ).encode()
    values = np.arange(8, dtype="<f8")
    payload = oip_v2.decode_request(header + values.tobytes(), str(len(header)), IRIS, 10, 30.0)
    np.testing.assert_array_equal(payload.rows, values.reshape(2, 4).astype(np.float32))
    assert payload.timeout_s == 2.0
    outputs = np.full((2, 3), 0.5, dtype=np.float32)
    answer = oip_v2.encode_answer(IRIS, payload, outputs)
    length = int(dict(answer.headers)[b"inference-header-content-length"])
    head = msgspec.json.decode(answer.body[:length])
    assert head["outputs"][0]["parameters"] == {"binary_data_size": 24}
    np.testing.assert_array_equal(np.frombuffer(answer.body[length:], "<f4"), outputs.ravel())
    assert answer.media_type == b"application/octet-stream"


def test_v2_json_answer_and_server_timeout_cap() -> None:
    payload = oip_v2.decode_request(
        v2_body("INT32", [1, 2, 3, 4]).replace(
            b'"id"', b'"parameters": {"timeout": 9000000000}, "id"'
        ),
        None,
        IRIS,
        10,
        30.0,
    )
    assert payload.timeout_s == 30.0
    answer = json.loads(oip_v2.encode_answer(IRIS, payload, np.zeros((1, 3), np.float32)).body)
    assert answer["id"] == "a"
    assert answer["outputs"][0]["data"] == [0.0, 0.0, 0.0]


@pytest.mark.parametrize(
    ("content_type", "boundary"),
    [("image/png", None), ("IMAGE/JPEG; q=1", None), ("multipart/form-data; boundary=xyz", "xyz")],
)
def test_upload_boundary(content_type: str, boundary: str | None) -> None:
    assert uploads.upload_boundary(content_type) == boundary


@pytest.mark.parametrize(
    ("content_type", "error"),
    [
        ("application/json", UnsupportedMediaType),
        (None, UnsupportedMediaType),
        ("multipart/form-data", MalformedRequest),
    ],
)
def test_upload_boundary_refuses(content_type: str | None, error: type[Exception]) -> None:
    with pytest.raises(error):
        uploads.upload_boundary(content_type)


def test_uploads_are_decoded_on_the_pool_never_on_the_event_loop(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Every decode of a request's files runs on the image pool's threads: a decode on the
    event loop would stall every other request for as long as it takes."""
    threads: list[str] = []
    decode = uploads.images.decode

    def recording(data: bytes, max_pixels: int):  # type: ignore[no-untyped-def]
        threads.append(threading.current_thread().name)
        return decode(data, max_pixels)

    monkeypatch.setattr(uploads.images, "decode", recording)
    digit = (ROOT / "samples" / "seven.png").read_bytes()
    files = [uploads.Upload(None, digit), uploads.Upload("two.png", digit)]
    preparer = uploads.ImagePreparer(2, 10**7, 10**8)

    async def prepare() -> tuple[list[uploads.PreparedImage], str]:
        prepared = await preparer.prepare(files, with_png=False, timeout_s=30)
        return prepared, threading.current_thread().name

    try:
        prepared, loop_thread = asyncio.run(prepare())
    finally:
        preparer.close()
    assert [row.row.shape for row in prepared] == [(784,), (784,)]
    assert len(threads) == 2
    assert loop_thread not in threads
    assert all(name.startswith("image-") for name in threads), threads
