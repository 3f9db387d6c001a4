"""Bastion assembled: `running(settings)` starts a gateway (the composition root is `root`)."""

from bastion.app.keys import KeyConfigError, Keys, load_keys, state_key, vault_key_ring
from bastion.app.root import Bastion, LifespanApp, running

__all__ = [
    "Bastion", "KeyConfigError", "Keys", "LifespanApp", "load_keys", "running", "state_key", "vault_key_ring"
]
