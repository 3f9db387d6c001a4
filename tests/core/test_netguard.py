"""SSRF rules for upstream addresses: public always, private and loopback only when allowed,
link-local (metadata services) and other special ranges only when a listed network names them."""

from __future__ import annotations

import pytest

from bastion.core.grants import parse_networks
from bastion.core.netguard import refusal

PUBLIC = ["8.8.8.8", "93.184.216.34", "2606:4700:4700::1111"]
PRIVATE = ["10.1.2.3", "172.16.0.1", "192.168.1.1", "100.64.0.1", "fd00::1"]
LOOPBACK = ["127.0.0.1", "127.8.9.10", "::1", "::ffff:127.0.0.1"]
SPECIAL = ["169.254.169.254", "fe80::1%eth0", "224.0.0.1", "0.0.0.0", "240.0.0.1", "::ffff:169.254.169.254"]


@pytest.mark.parametrize("address", PUBLIC)
def test_public_addresses_are_always_allowed(address: str) -> None:
    assert refusal(address, allow_private=False, allowed=()) is None


@pytest.mark.parametrize("address", PRIVATE + LOOPBACK)
def test_private_and_loopback_need_the_admins_permission(address: str) -> None:
    assert refusal(address, allow_private=False, allowed=()) is not None
    assert refusal(address, allow_private=True, allowed=()) is None


@pytest.mark.parametrize("address", SPECIAL)
def test_link_local_and_special_ranges_stay_refused_even_with_private_allowed(address: str) -> None:
    assert refusal(address, allow_private=True, allowed=()) is not None


def test_a_listed_network_allows_exactly_its_addresses() -> None:
    allowed = parse_networks(["10.20.0.0/16", "169.254.169.254"])
    assert refusal("10.20.5.5", allow_private=False, allowed=allowed) is None
    assert refusal("10.21.5.5", allow_private=False, allowed=allowed) is not None
    assert refusal("169.254.169.254", allow_private=False, allowed=allowed) is None
    assert refusal("169.254.169.253", allow_private=False, allowed=allowed) is not None


def test_a_bad_network_in_settings_is_named() -> None:
    with pytest.raises(ValueError, match="10.0.0.0/33"):
        parse_networks(["10.0.0.0/8", "10.0.0.0/33"])
