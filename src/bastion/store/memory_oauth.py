"""The in-memory OAuthRepo, for tests and a single short-lived process."""

from __future__ import annotations

from datetime import datetime

from bastion.core.oauth import AuthorizationGrant, PendingAuthorization, RefreshGrant, SigningKey, StoredClient


class MemoryOAuthRepo:
    def __init__(self) -> None:
        self.keys: dict[str, SigningKey] = {}
        self.clients: dict[str, StoredClient] = {}
        self.pending: dict[str, PendingAuthorization] = {}
        self.codes: dict[str, AuthorizationGrant] = {}
        self.refresh: dict[str, RefreshGrant] = {}
        self.revoked: dict[str, datetime] = {}

    async def list_signing_keys(self) -> list[SigningKey]:
        return sorted(self.keys.values(), key=lambda k: k.created_at)

    async def add_signing_key(self, key: SigningKey) -> None:
        self.keys[key.kid] = key

    async def retire_signing_keys(self, keep: str, at: datetime) -> None:
        for kid, key in list(self.keys.items()):
            if kid != keep and key.retired_at is None:
                self.keys[kid] = key.model_copy(update={"retired_at": at})

    async def delete_signing_keys(self, retired_before: datetime) -> None:
        for kid, key in list(self.keys.items()):
            if key.retired_at is not None and key.retired_at < retired_before:
                del self.keys[kid]

    async def save_client(self, client: StoredClient) -> None:
        self.clients[client.client_id] = client

    async def get_client(self, client_id: str) -> StoredClient | None:
        return self.clients.get(client_id)

    async def save_pending(self, pending: PendingAuthorization, per_client: int) -> None:
        self.pending[pending.id] = pending
        mine = sorted((p for p in self.pending.values() if p.client_id == pending.client_id), key=lambda p: p.expires_at)
        for surplus in mine[: max(0, len(mine) - per_client)]:
            del self.pending[surplus.id]

    async def get_pending(self, pending_id: str) -> PendingAuthorization | None:
        return self.pending.get(pending_id)

    async def set_pending_csrf(self, pending_id: str, csrf_hash: str) -> None:
        if pending_id in self.pending:
            self.pending[pending_id] = self.pending[pending_id].model_copy(update={"csrf_hash": csrf_hash})

    async def take_pending(self, pending_id: str) -> PendingAuthorization | None:
        return self.pending.pop(pending_id, None)

    async def save_code(self, grant: AuthorizationGrant) -> None:
        self.codes[grant.code_hash] = grant

    async def touch_client(self, client_id: str, at: datetime) -> None:
        if client_id in self.clients:
            self.clients[client_id] = self.clients[client_id].model_copy(update={"last_used_at": at})

    async def purge_clients(self, unused_before: datetime, idle_before: datetime) -> int:
        gone = [
            c.client_id
            for c in self.clients.values()
            if (c.last_used_at is None and c.created_at < unused_before)
            or (c.last_used_at is not None and c.last_used_at < idle_before)
        ]
        for client_id in gone:
            del self.clients[client_id]
        return len(gone)

    async def get_code(self, code_hash: str) -> AuthorizationGrant | None:
        return self.codes.get(code_hash)

    async def take_code(self, code_hash: str, family: str, keep_until: datetime) -> AuthorizationGrant | None:
        grant = self.codes.get(code_hash)
        if grant is None or grant.family is not None:
            return None
        self.codes[code_hash] = grant.model_copy(update={"family": family, "expires_at": keep_until})
        return self.codes[code_hash]

    async def save_refresh(self, grant: RefreshGrant) -> None:
        self.refresh[grant.token_hash] = grant.model_copy(update={"used_at": None, "family_revoked_at": None})

    async def get_refresh(self, token_hash: str) -> RefreshGrant | None:
        grant = self.refresh.get(token_hash)
        if grant is None:
            return None
        return grant.model_copy(update={"family_revoked_at": self.revoked.get(grant.family)})

    async def use_refresh(self, token_hash: str, at: datetime) -> bool:
        grant = self.refresh.get(token_hash)
        if grant is None or grant.used_at is not None:
            return False
        self.refresh[token_hash] = grant.model_copy(update={"used_at": at})
        return True

    async def revoke_family(self, family: str, at: datetime) -> None:
        self.revoked.setdefault(family, at)

    async def grant_alive(self, family: str, client_id: str, now: datetime) -> bool:
        if family in self.revoked or client_id not in self.clients:
            return False
        return any(g.family == family and g.expires_at > now for g in self.refresh.values())

    async def purge(self, now: datetime) -> None:
        self.pending = {k: v for k, v in self.pending.items() if v.expires_at >= now}
        self.codes = {k: v for k, v in self.codes.items() if v.expires_at >= now}
        self.refresh = {k: v for k, v in self.refresh.items() if v.expires_at >= now}
