"""The API key check on its own: how a key is presented, and which answer each case gets."""

from __future__ import annotations

import pytest

from service.api_key import check_key, presented_key
from service.errors import Forbidden, Unauthorized
from service.settings import Settings

KEY = "s3cret-key"


def lookup(**headers: str):  # type: ignore[no-untyped-def]
    """Headers or metadata by lower-case name, as the transports look them up."""
    return {name.replace("_", "-"): value for name, value in headers.items()}.get


@pytest.mark.parametrize(
    ("headers", "key"),
    [
        ({}, None),
        ({"x_api_key": KEY}, KEY),
        ({"x_api_key": ""}, ""),
        ({"authorization": f"Bearer {KEY}"}, KEY),
        ({"authorization": f"bearer  {KEY} "}, KEY),
        ({"authorization": f"BEARER {KEY}"}, KEY),
        ({"authorization": f"Basic {KEY}"}, None),
        ({"authorization": KEY}, None),
        ({"authorization": "Bearer"}, ""),
        ({"authorization": ""}, None),
        ({"x_api_key": "first", "authorization": "Bearer second"}, "first"),
    ],
)
def test_the_presented_key(headers: dict[str, str], key: str | None) -> None:
    assert presented_key(lookup(**headers)) == key


def test_no_key_set_lets_everything_through() -> None:
    for presented in (None, "", "anything"):
        check_key(Settings(api_key=None), presented)
        check_key(Settings(api_key=""), presented)


def test_the_right_key_passes() -> None:
    check_key(Settings(api_key=KEY), KEY)


@pytest.mark.parametrize("presented", [None, ""])
def test_a_missing_key_is_401_and_says_how_to_send_it(presented: str | None) -> None:
    with pytest.raises(Unauthorized) as caught:
        check_key(Settings(api_key=KEY), presented)
    assert str(caught.value) == "this endpoint needs an API key: send Authorization: Bearer <key>"


@pytest.mark.parametrize("presented", ["nope", KEY[:-1], KEY + "x", KEY.upper(), f" {KEY}"])
def test_a_wrong_key_is_403(presented: str) -> None:
    with pytest.raises(Forbidden) as caught:
        check_key(Settings(api_key=KEY), presented)
    assert str(caught.value) == "the API key is not valid"


def test_a_key_beyond_ascii_is_compared_as_utf8() -> None:
    check_key(Settings(api_key="clé-ü"), "clé-ü")
    with pytest.raises(Forbidden):
        check_key(Settings(api_key="clé-ü"), "cle-u")
