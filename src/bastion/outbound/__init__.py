"""Every HTTP request Bastion makes to another host goes through this package (see client.py): the
SSRF rules checked on the address actually connected to, no redirects followed, total deadlines and
size caps, and a separate small pool for fetches that strangers can trigger."""

from bastion.core.errors import FetchFailed
from bastion.core.netguard import AddressRefused
from bastion.outbound.client import MiB, Outbound
from bastion.outbound.httpx_guard import TOO_LARGE
from bastion.outbound.rules import Resolve, Rules

__all__ = ["TOO_LARGE", "AddressRefused", "FetchFailed", "MiB", "Outbound", "Resolve", "Rules"]
