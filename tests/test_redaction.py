"""What the library quotes of a URL never shows a credential in it: user info, tokens and
passkeys in the query, and the trackers of a magnet URI (a private tracker's URL is a passkey)."""

from __future__ import annotations

import socket

import pytest

from aria2_sync.errors import Aria2Error, Aria2InputError, redact_url
from aria2_sync.ui.sources import fetch_metalink


@pytest.mark.parametrize(
    "url, hidden, kept",
    [
        ("http://user:pw1@host/jsonrpc", "pw1", "user"),
        ("https://h/x.meta4?password=pw2&a=1", "pw2", "a=1"),
        ("https://h/announce?passkey=pw3", "pw3", "announce"),
        ("magnet:?xt=urn:btih:abcdef&dn=name&tr=http%3A%2F%2Ft%2Fpw4%2Fannounce", "pw4", "abcdef"),
    ],
)
def test_a_url_is_quoted_without_its_credentials(url, hidden, kept):
    shown = redact_url(url)
    assert hidden not in shown and kept in shown


def test_a_metalink_that_cannot_be_fetched_is_reported_without_its_password():
    with socket.socket() as probe:  # a port where nothing listens
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    url = f"http://127.0.0.1:{port}/x.meta4?password=hunter2"
    with pytest.raises(Aria2Error) as caught:
        fetch_metalink(url)
    assert "cannot fetch the metalink" in str(caught.value) and "hunter2" not in str(caught.value)
    with pytest.raises(Aria2InputError, match="must be http"):
        fetch_metalink("ftp://h/x.meta4?password=hunter2")
