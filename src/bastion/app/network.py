"""The outbound HTTP rules and limits, from settings (one Outbound per running Bastion)."""

from __future__ import annotations

from bastion.config import Settings
from bastion.core.grants import parse_networks
from bastion.outbound import Outbound, Rules


def outbound(settings: Settings) -> Outbound:
    rules = Rules(
        allow_private=settings.allow_private_upstreams, allowed=parse_networks(settings.upstream_allowed_networks)
    )
    return Outbound(
        rules,
        max_message_bytes=settings.upstream_max_message_bytes,
        max_result_bytes=settings.upstream_max_result_bytes,
        untrusted_timeout=settings.outbound_untrusted_timeout,
        untrusted_concurrency=settings.outbound_untrusted_concurrency,
    )
