"""Bastion assembled: `running(settings)` starts a gateway (the composition root is `root`)."""

from bastion.app.keys import state_key, vault_key_ring
from bastion.app.root import Bastion, LifespanApp, running

__all__ = ["Bastion", "LifespanApp", "running", "state_key", "vault_key_ring"]
