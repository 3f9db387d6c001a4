"""Ports: what the pipeline and control plane need from the outside world."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol, runtime_checkable

from bastion.core.audit_chain import AuditEntry, SignedMark
from bastion.core.grants import ApiToken
from bastion.core.identity import Role, Team, User
from bastion.core.models import (
    CatalogItem,
    Discovery,
    RewrapReport,
    Upstream,
    UpstreamSpec,
    UpstreamState,
    UpstreamTokens,
    VirtualServerSpec,
)
from bastion.core.observation import CallRecord, EdgeEvent
from bastion.core.pinning import PinBook, PinRecord
from bastion.core.policy import Caller
from bastion.core.registry_listing import RegistryEntry, RegistrySource
from bastion.core.usage import UsageQuery, UsageRow

ProgressCallback = Callable[[float, float | None, str | None], Awaitable[None]]
LogCallback = Callable[[dict[str, Any]], Awaitable[None]]
"""Receives the params of an upstream's `notifications/message` for this call."""
AskCallback = Callable[[str, dict[str, Any]], Awaitable[dict[str, Any]]]
"""Puts one input request (`sampling/createMessage`, `elicitation/create`, `roots/list`) to the
client as a live request and returns its result, or a JSON-RPC error object."""

ListenCallback = Callable[[dict[str, Any], Caller], Awaitable[dict[str, Any]]]
"""Serves a 2026-07-28 `subscriptions/listen` stream for `caller` with the params the pipeline
allowed (its filter cut to what the caller may watch); returns the stream's final result."""


class Watcher(Protocol):
    """A 2025-11-25 session's resource subscriptions: who watches which URI from which upstream. The
    pipeline decides and subscribes Bastion upstream; the watcher remembers for the fan-out."""

    def watch(self, upstream: str, uri: str, caller: Caller) -> bool:
        """Remember that `caller` watches `uri` from `upstream`; False if the session already did."""
        ...

    def unwatch(self, uri: str) -> str | None:
        """Forget the session's watch of `uri`; the upstream it watched it from, None if it did not."""
        ...


LOG_LEVELS: tuple[str, ...] = ("debug", "info", "notice", "warning", "error", "critical", "alert", "emergency")


@dataclass(frozen=True, slots=True)
class CallHooks:
    """What a call relays back to its caller while it runs: progress, logs at or above a level, and
    (for a 2025-11-25 client) the questions an upstream's `input_required` result asks it."""

    on_progress: ProgressCallback | None = None
    log_level: str | None = None
    on_log: LogCallback | None = None
    ask: AskCallback | None = None
    session: str | None = None
    """The caller's 2025-11-25 MCP session (an opaque key, stable for the session's life), if any:
    what a caller's own upstream session is keyed by."""
    legacy: bool = False
    """The caller speaks 2025-11-25: a dual-era upstream is spoken to in 2025-11-25 for them."""

    def log_opt_in(self) -> str | None:
        """The level to ask a 2026-07-28 upstream for logs at: the caller's; for a 2025-11-25 caller
        that set none, every level (directly, such a client gets all of an upstream's logs)."""
        if self.on_log is None:
            return None
        return self.log_level or (LOG_LEVELS[0] if self.legacy else None)
    watcher: Watcher | None = None
    """For `resources/subscribe` and `resources/unsubscribe`: the session's subscriptions."""
    listen: ListenCallback | None = None
    """For `subscriptions/listen`: serves the stream once the pipeline has let it through."""
    on_dispatch: Callable[[], Awaitable[None]] | None = None
    """Awaited once the call passed every check (authentication, policy, rate limits, arguments) and
    goes to its upstream: what lets an async facade call answer a refusal itself, not as a 202."""


class ConfigRepo(Protocol):
    """Durable configuration: upstreams, their catalog, virtual servers, API tokens."""

    async def list_upstreams(self) -> list[Upstream]: ...
    async def get_upstream(self, name: str) -> Upstream | None: ...
    async def create_upstream(self, upstream: Upstream, items: Sequence[CatalogItem]) -> int:
        """Save a new upstream with its items; returns the new row's revision."""
        ...
    async def update_upstream_spec(self, spec: UpstreamSpec, *, revision: int | None = None) -> None:
        """Save `spec`; with `revision` (as read), only if the row is still at it, else StaleWrite."""
        ...
    async def save_upstream_state(self, name: str, state: UpstreamState) -> None: ...
    async def replace_items(self, upstream: str, items: Sequence[CatalogItem]) -> list[CatalogItem]: ...
    async def delete_upstream(self, name: str, *, revision: int | None = None) -> None:
        """Delete the upstream; with `revision`, only if the row is still at it, else StaleWrite."""
        ...
    async def list_items(self) -> list[CatalogItem]: ...
    async def update_item(self, item: CatalogItem, *, was: CatalogItem | None = None) -> None:
        """Save `item`'s edits; with `was` (as read), only if the row still holds its edits, else StaleWrite."""
        ...
    async def list_servers(self) -> list[VirtualServerSpec]: ...
    async def get_server(self, name: str) -> VirtualServerSpec | None: ...
    async def get_server_revision(self, name: str) -> tuple[VirtualServerSpec, int] | None:
        """The server as stored, with the revision a conditional `save_server` compares."""
        ...
    async def save_server(self, spec: VirtualServerSpec, *, create: bool, revision: int | None = None) -> int:
        """Create or save `spec`; with `revision` (as read), only if the row is still at it, else StaleWrite.
        Returns the revision the row is saved at."""
        ...
    async def delete_server(self, name: str, *, revision: int | None = None) -> None:
        """Delete the server; with `revision`, only if the row is still at it, else StaleWrite."""
        ...
    async def list_pins(self) -> PinBook: ...
    async def save_pins(self, records: Sequence[PinRecord], *, drop: Sequence[PinRecord] = ()) -> None:
        """Upsert pin records and delete `drop` (by upstream, kind, key) in one transaction."""
        ...
    async def decide_pin(self, decision: PinRecord, *, keep: bool, was: PinRecord | None, serving: str | None) -> None:
        """Save an admin's decision on one item (`keep` False: forget its record), only if its record is
        still `was` and its stored definition still hashes to `serving` (None: gone), else StaleWrite."""
        ...
    async def set_pin_trust(self, upstream: str, trust: bool) -> None:
        """Approve (True) the upstream's next non-empty discovery as it comes, or stop doing so."""
        ...
    async def approve_trusted(self, upstream: str, records: Sequence[PinRecord]) -> bool:
        """Save `records` and stop trusting the next discovery, if the upstream still trusts it; else False."""
        ...
    async def get_secret_hash(self, key: str) -> str | None: ...
    async def set_secret_hash(self, key: str, value: str) -> None: ...
    async def create_api_token(self, token: ApiToken, token_hash: str) -> None: ...
    async def list_api_tokens(self) -> list[ApiToken]: ...
    async def get_api_token_by_hash(self, token_hash: str) -> ApiToken | None: ...
    async def revoke_api_token(self, token_id: str, at: datetime) -> None: ...
    async def touch_api_token(self, token_id: str, at: datetime, ip: str | None) -> None: ...
    async def seal_plaintext_secrets(self) -> int:
        """Seal credentials stored in plain text by older versions; returns how many upstreams changed."""
        ...
    async def rewrap_secrets(self) -> RewrapReport:
        """Re-wrap every stored secret's data key under the vault's current key."""
        ...


class RegistryRepo(Protocol):
    """MCP Registry sources and the entries last fetched from each."""

    async def list_sources(self) -> list[RegistrySource]: ...
    async def get_source(self, name: str) -> RegistrySource | None: ...
    async def create_source(self, source: RegistrySource, entries: Sequence[RegistryEntry]) -> None: ...
    async def save_listing(
        self, name: str, entries: Sequence[RegistryEntry] | None, at: datetime, error: str | None = None
    ) -> None: ...
    async def update_source(self, source: RegistrySource, entries: Sequence[RegistryEntry], *, was: RegistrySource) -> None:
        """Save the source's new URL or path with its listing, only if it is still at `was`'s, else StaleWrite."""
        ...
    async def delete_source(self, name: str, *, was: RegistrySource | None = None) -> None:
        """Delete the source; with `was`, only if its URL and path are still that one's, else StaleWrite."""
        ...
    async def list_entries(self, source: str | None = None) -> list[RegistryEntry]: ...


class StateSealer(Protocol):
    """Seals state that a client carries back verbatim; unseal raises ValueError if it was altered
    or is presented in another context."""

    def seal(self, payload: dict[str, Any], context: str) -> str: ...
    def unseal(self, token: str, context: str) -> dict[str, Any]: ...
    def owns(self, token: object) -> bool: ...


class ResourceSubscriber(Protocol):
    """Counted interest in an upstream resource's updates: the first subscribes, the last drops it."""

    async def subscribe(self, upstream: str, uri: str) -> None: ...
    async def unsubscribe(self, upstream: str, uri: str) -> None: ...


class UpstreamCaller(Protocol):
    """Send MCP requests to upstreams over pooled connections."""

    async def request(
        self,
        upstream: str,
        method: str,
        params: dict[str, Any],
        *,
        user: str | None,
        timeout: float,
        hooks: CallHooks | None = None,
        caller: str | None = None,
        client: str | None = None,
    ) -> dict[str, Any]:
        """`user` keys per-user connections and tokens; `caller` (`pipeline.context.holder_of`)
        says whose the call's upstream-side state is (an A2A agent's tasks); `client`
        (`pipeline.context.client_of`) the credential it came with, which tells a user's 2026-07-28
        clients (they have no session) apart on upstream sessions of their own."""
        ...

    async def discover(self, spec: UpstreamSpec) -> Discovery: ...

    def asks_mid_call(self, upstream: str) -> bool:
        """Whether the upstream may send sampling/elicitation/roots requests during a call (2025-11-25)."""
        ...


ChangeHandler = Callable[[], Awaitable[None]]
"""Reload configuration from the store: another replica changed it (or we may have missed that)."""
RevokeHandler = Callable[[str], Awaitable[None]]
"""Drop a revoked id (API token, session, `user:<id>`) from this replica's caches."""
RootsHandler = Callable[[str], Awaitable[None]]
"""A 2025-11-25 caller (`caller_digest` of its key) changed its roots through another replica: end
its own upstream sessions here."""


class ChangeFeed(Protocol):
    """Tells the other replicas that configuration changed, a token was revoked or a caller changed
    its roots.

    `publish_*` never raise for an unreachable bus: the store already holds the change, and the
    feed delivers it (as a reload) once the bus is back; a caller's changed roots are not stored, so
    a replica that missed them keeps the caller's own sessions until they idle out. `run` listens
    until cancelled."""

    async def publish_change(self) -> None: ...
    async def publish_revocation(self, token_id: str) -> None: ...
    async def publish_roots(self, caller: str) -> None:
        """`caller` (`caller_digest`) changed its roots here: every other replica ends its own sessions."""
        ...

    async def run(self, on_change: ChangeHandler, on_revoke: RevokeHandler, on_roots: RootsHandler | None = None) -> None: ...


class Revocations(Protocol):
    """Ids revoked recently, shared by every replica so a cached credential is refused at once:
    API token and sign-in session ids, `user:<id>` (a user's access changed), `jti:<jti>` (an
    OAuth access token). Entries outlive the caches that could still hold them."""

    async def revoke(self, token_id: str, ttl: float) -> None: ...
    async def is_revoked(self, *token_ids: str) -> bool:
        """Whether any of these ids is revoked; raises ServiceUnavailable when the list cannot be read."""
        ...


class CallBoard(Protocol):
    """Long facade calls as every replica sees them (the replica running a call keeps its record
    current; any replica reads it and queues the caller's answers for the one running it)."""

    async def put(self, call_id: str, record: dict[str, Any], ttl: float) -> None: ...
    async def get(self, call_id: str) -> dict[str, Any] | None: ...
    async def answer(self, call_id: str, answer: dict[str, Any], ttl: float) -> None: ...
    async def take_answer(self, call_id: str) -> dict[str, Any] | None: ...
    async def forget(self, call_id: str) -> None: ...


class RateLimiter(Protocol):
    """Counts calls in fixed windows, all-or-nothing over several counters."""

    async def hit(self, counters: Sequence[tuple[str, int, int]]) -> tuple[int, int] | None:
        """Count one call against every (key, limit, window seconds); None if all allowed, else
        (index of a counter that is used up, seconds until its window reopens) and nothing counted.
        Raises ServiceUnavailable when the counters cannot be reached."""
        ...


class Leadership(Protocol):
    """Whether this replica is the one that runs gateway-wide periodic work (health checks)."""

    def is_leader(self) -> bool: ...
    async def run(self) -> None:
        """Hold or contend for the lease until cancelled."""
        ...


class Readiness(Protocol):
    """A shared dependency a replica needs to serve; `problem` is None when it is fine."""

    async def problem(self) -> str | None: ...
@dataclass(frozen=True, slots=True)
class Session:
    """A signed-in user's session as stored (only the hash of its secret is kept)."""

    id: str
    user: str
    created_at: datetime
    expires_at: datetime
    revoked_at: datetime | None = None


class IdentityRepo(Protocol):
    """Durable users, teams, memberships and sessions. Emails are stored normalised (lower case)."""

    async def create_user(self, user: User, password_hash: str) -> None: ...
    async def list_users(self) -> list[User]: ...
    async def get_user(self, user_id: str) -> User | None: ...
    async def find_login(self, email: str) -> tuple[User, str] | None:
        """The user with this (normalised) email and their password hash."""
        ...
    async def update_user(
        self, user_id: str, *, role: Role | None = None, active: bool | None = None, password_hash: str | None = None
    ) -> User: ...
    async def delete_user(self, user_id: str) -> None: ...
    async def create_team(self, team: Team) -> None: ...
    async def list_teams(self) -> list[Team]: ...
    async def get_team(self, name: str) -> Team | None: ...
    async def delete_team(self, name: str, *, members: tuple[str, ...] | None = None) -> None:
        """Delete the team; with `members`, only if it still has exactly those, else StaleWrite."""
        ...
    async def add_member(self, team: str, user_id: str) -> None: ...
    async def remove_member(self, team: str, user_id: str) -> None: ...
    async def create_session(self, session: Session, token_hash: str, *, password_hash: str | None = None) -> None:
        """NotFound if the user is gone, or (given the hash a sign-in checked) their password changed since."""
        ...

    async def get_session_by_hash(self, token_hash: str) -> Session | None: ...
    async def revoke_session(self, session_id: str, at: datetime) -> None: ...
    async def revoke_user_sessions(self, user_id: str, at: datetime) -> None: ...


class LoginThrottle(Protocol):
    """Counts failed logins per account and per client address and says how long to wait.

    In process for one replica, in Redis for several (they count together); a shared store that
    cannot be reached raises ServiceUnavailable, so login fails closed."""

    async def retry_after(self, account: str, ip: str | None) -> float:
        """Seconds until this account or address may try again; 0 when it may now."""
        ...
    async def failed(self, account: str, ip: str | None) -> None: ...
    async def succeeded(self, account: str, ip: str | None) -> None: ...


@dataclass(frozen=True, slots=True)
class SessionKey:
    """Finds a 2025-11-25 session's record: its id and a keyed hash of the caller's bearer token,
    so the id alone neither finds nor opens it."""

    session_id: str
    token_hash: str


@dataclass(frozen=True, slots=True)
class SessionRecord:
    """What any replica needs to serve the next request of a 2025-11-25 session."""

    server: str
    """The virtual server the session was opened on; it serves no other."""
    protocol_version: str
    client_info: dict[str, Any]
    capabilities: dict[str, Any]
    owner: str | None
    """The principal id that opened the session."""
    created: float
    last_seen: float
    log_level: str | None = None
    subscriptions: tuple[str, ...] = ()


SessionChanged = Callable[[str], Awaitable[None]]
"""Told the address (see `SessionStore.address`) of a record some replica changed or deleted."""
SessionRelayed = Callable[[str, bytes], Awaitable[None]]
"""Told a session's address and a (sealed) message another replica relayed for it."""


class SessionStore(Protocol):
    """Sealed 2025-11-25 session records shared by every replica, expiring when idle."""

    replicated: bool
    """Whether other replicas may share these records (and take messages relayed to them)."""

    def address(self, key: SessionKey) -> str:
        """An opaque name of the record, the same on every replica; reveals neither id nor token."""
        ...

    async def load(self, key: SessionKey) -> SessionRecord | None: ...
    async def save(self, key: SessionKey, record: SessionRecord) -> None: ...
    async def touch(self, key: SessionKey) -> None: ...
    async def delete(self, key: SessionKey) -> None: ...

    async def relay(self, address: str, payload: bytes) -> None:
        """Hand `payload` to every replica (the one holding the session at `address` takes it)."""
        ...

    async def watch(self, on_change: SessionChanged, on_relayed: SessionRelayed) -> None:
        """Call `on_change` for records other replicas save or delete, and `on_relayed` for messages
        they relay, until cancelled."""
        ...


@dataclass(frozen=True, slots=True)
class ConnectFlow:
    """A user's connect flow to a per-user OAuth upstream, between the authorization URL and the callback.
    `csrf_hash` guards its start page's form; `browser_hash` is the nonce of the browser its user signed
    in with there, which alone may finish the flow."""

    user: str
    upstream: str
    verifier: str
    expires_at: datetime
    csrf_hash: str | None = None
    browser_hash: str | None = None


class UpstreamTokenStore(Protocol):
    """Each user's own tokens for per-user OAuth upstreams, keyed by the verified user id, and the
    connect flows in progress (single use). Tokens that do not open raise CredentialsUnavailable."""

    async def get_tokens(self, upstream: str, user: str) -> UpstreamTokens | None: ...
    async def save_tokens(self, upstream: str, user: str, tokens: UpstreamTokens) -> None: ...
    async def delete_tokens(self, upstream: str, user: str) -> bool: ...
    async def delete_upstream_tokens(self, upstream: str) -> int:
        """Every user's tokens for `upstream`; how many there were."""
        ...
    async def save_flow(self, state_hash: str, flow: ConnectFlow) -> None: ...
    async def get_flow(self, state_hash: str, now: datetime) -> ConnectFlow | None:
        """The live flow (left in place), or None if unknown, taken or expired."""
        ...

    async def mark_flow(
        self, state_hash: str, *, csrf_hash: str | None = None, browser_hash: str | None = None
    ) -> bool:
        """Set the given hashes on the live flow; whether there was one."""
        ...

    async def take_flow(self, state_hash: str, now: datetime) -> ConnectFlow | None:
        """The flow (removed: single use), or None if unknown, already taken or expired."""
        ...


class AgentTaskHolders(Protocol):
    """Which caller started each A2A task and conversation (`kind` "task" or "context") Bastion
    relayed to an upstream agent, until it has been unused for its hold time; every replica sees
    the same. Ids and callers may be stored hashed: only equality is asked."""

    async def holds(self, upstream: str, kind: str, ident: str, holder: str) -> bool:
        """Whether `holder` holds it now (False for an unknown or lapsed one, and another's)."""
        ...

    async def claim(self, upstream: str, kind: str, ident: str, holder: str, ttl: float) -> bool:
        """Hold it for `holder` for `ttl` seconds from now, unless another caller holds it; whether
        `holder` holds it afterwards."""
        ...


class CallObserver(Protocol):
    """Told of every finished pipeline request. Runs on the hot path: record in memory, never wait."""

    def call_finished(self, record: CallRecord) -> None: ...


@runtime_checkable
class BatchCallObserver(CallObserver, Protocol):
    """A CallObserver that takes a batch of finished calls at once when the gateway has one (in order)."""

    def calls_finished(self, records: Sequence[CallRecord]) -> None: ...


class EdgeObserver(Protocol):
    """Told of admin changes, sign-ins and refused requests at the edge; records in memory only."""

    def edge_event(self, event: EdgeEvent) -> None: ...


@dataclass(frozen=True, slots=True)
class AuditFilter:
    """What to list from the audit log (all optional); newest first, `before` a row id (cursor)."""

    since: str | None = None
    until: str | None = None
    action: str | None = None
    actor: str | None = None
    target: str | None = None
    outcome: str | None = None
    server: str | None = None
    before: int | None = None
    after: int | None = None
    limit: int = 100


class AuditStore(Protocol):
    """The durable audit log: chained records and the signed heads and checkpoints of each chain."""

    async def append(self, entries: Sequence[AuditEntry], marks: Sequence[SignedMark]) -> None:
        """Store records and marks together (one transaction)."""
        ...

    async def find(self, query: AuditFilter) -> list[AuditEntry]: ...
    async def chains(self) -> list[str]: ...
    async def entries(self, chain: str, after: tuple[int, int] | None = None, limit: int | None = None) -> list[AuditEntry]:
        """Records of `chain` by (seq, id): those after the (seq, id) `after` (all when None), at most `limit`."""
        ...

    async def marks(self, chain: str) -> list[SignedMark]: ...
    async def prune(self, before: str, sign: Callable[[AuditEntry], SignedMark]) -> int:
        """Delete records older than `before` (ISO time); each chain's pruned prefix is replaced, in
        the same transaction, by the checkpoint `sign` makes of its last pruned record."""
        ...


class UsageStore(Protocol):
    """Usage buckets: each writer upserts its own rows; readers add the writers' rows up."""

    async def save(self, rows: Sequence[UsageRow]) -> None: ...
    async def query(self, query: UsageQuery) -> list[UsageRow]: ...
    async def used_since(self, since: str) -> set[tuple[str, str]]:
        """(upstream, item) pairs used at or after `since` (ISO time)."""
        ...

    async def prune(self, granularity: str, before: str) -> int: ...
