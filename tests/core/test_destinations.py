"""Approved origins for an upstream's stored credentials (core/destinations.py)."""

from __future__ import annotations

import pytest

from bastion.core.destinations import check_destinations, origin_of, origins, unapproved
from bastion.core.errors import UnapprovedDestination


def test_an_origin_is_scheme_host_and_port_without_defaults_or_user_info() -> None:
    assert origin_of("HTTPS://User:pw@API.Example.com:443/v1?x=1") == "https://api.example.com"
    assert origin_of("http://127.0.0.1:4603/api") == "http://127.0.0.1:4603"
    assert origin_of("http://[::1]:80/a") == "http://[::1]"
    assert origins(["http://a/x", "http://a/y", "http://b:81/"]) == ("http://a", "http://b:81")


def test_a_url_off_the_approved_origins_is_refused_and_named() -> None:
    approved = ("http://127.0.0.1:4602",)
    assert unapproved(["http://127.0.0.1:4602/api/v1"], approved) == []
    assert unapproved(["http://127.0.0.1:4603/api", "https://127.0.0.1:4602/"], approved) == [
        "http://127.0.0.1:4603", "https://127.0.0.1:4602",
    ]
    with pytest.raises(UnapprovedDestination) as raised:
        check_destinations("hx", ["http://127.0.0.1:4603/api"], approved, "the document")
    assert "http://127.0.0.1:4603" in raised.value.detail and raised.value.http_status == 502


def test_nothing_approved_yet_refuses_nothing() -> None:
    assert unapproved(["http://anywhere:1/"], ()) == []
