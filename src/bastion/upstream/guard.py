"""The SSRF check of an upstream's URLs before a connection attempt, for a clear refusal (403).

Checked on registration, update and each reconnect, for the upstream's URL and its OAuth token
endpoint (Bastion posts credentials there). The connections themselves are checked again by the
outbound clients, on the address they connect to; this check is what names the reason.
"""

from __future__ import annotations

from bastion.core.models import OAuthClientCredentials, OAuthUserGrant, UpstreamSpec
from bastion.core.netguard import AddressRefused
from bastion.outbound import Outbound


class AddressGuard:
    def __init__(self, outbound: Outbound) -> None:
        self._outbound = outbound

    async def check(self, spec: UpstreamSpec) -> None:
        """Raise AddressRefused if an HTTP upstream's URL or token endpoint may not be connected to."""
        if spec.transport == "stdio" or not spec.url:
            return
        urls = [("", spec.url)]
        if isinstance(spec.auth, OAuthClientCredentials | OAuthUserGrant):
            urls.append(("the token endpoint's host ", spec.auth.token_url))
        for what, url in urls:
            try:
                await self._outbound.check(url)
            except AddressRefused as exc:
                raise AddressRefused(f"upstream {spec.name!r}: {what}{exc.detail}") from None

    async def check_url(self, url: str, what: str) -> None:
        """Raise AddressRefused if `url` may not be connected to (`what` names it in the message)."""
        try:
            await self._outbound.check(url)
        except AddressRefused as exc:
            raise AddressRefused(f"{what}: {exc.detail}") from None
