from __future__ import annotations

import pytest

from receiver.notify.apprise import client_email_url, validate_target

BASE = "mailtos://hub:S3cretPass@smtp.example.com:587?from=hub@example.com"


def test_it_adds_the_client_as_the_to_address() -> None:
    url = client_email_url(BASE, "client@example.org")

    assert url == BASE + "&to=client%40example.org"
    assert validate_target(url) is None


def test_it_replaces_a_to_address_already_in_the_base_url() -> None:
    url = client_email_url(BASE + "&to=ops@example.com&cc=audit@example.com", "c@example.org")

    assert "ops" not in url
    assert url.endswith("&cc=audit@example.com&to=c%40example.org")


def test_it_encodes_characters_that_mean_something_in_a_query() -> None:
    url = client_email_url("mailto://127.0.0.1:2525?from=a@localhost", "o'neil+x&y=1@example.org")

    assert url.endswith("to=o%27neil%2Bx%26y%3D1%40example.org")


def test_it_accepts_a_base_url_without_a_query() -> None:
    assert client_email_url("mailto://127.0.0.1:2525", "a@b.example") == (
        "mailto://127.0.0.1:2525?to=a%40b.example"
    )


@pytest.mark.parametrize(
    "base", ["json://hub:S3cretPass@host/x", "https://hub:S3cretPass@host", "S3cretPass"]
)
def test_it_rejects_a_base_url_that_is_not_email_without_naming_secrets(base: str) -> None:
    with pytest.raises(ValueError, match=r"mailto:// or mailtos://") as raised:
        client_email_url(base, "client@example.org")

    assert "S3cretPass" not in str(raised.value)


def test_it_rejects_a_base_url_that_already_names_recipients() -> None:
    with pytest.raises(ValueError, match="recipients") as raised:
        client_email_url("mailtos://hub:S3cretPass@smtp.example.com/ops@example.com", "c@x.org")

    assert "S3cretPass" not in str(raised.value)


@pytest.mark.parametrize(
    "recipient",
    ["", "not-an-address", "a@example.org,b@example.org", "a@example.org b@example.org", "a@b@c"],
)
def test_it_rejects_anything_but_one_address(recipient: str) -> None:
    with pytest.raises(ValueError, match="single email address"):
        client_email_url(BASE, recipient)
